"""Resources shared between the workers of one run: named locks, counting semaphores and
values computed once, on file locks (filelock) in the run's private directory.

The run directory is made by the main process (``tempfile.mkdtemp``: a fresh, unpredictable
name, mode 0700) and handed to workers in ``PLOOP_RUN_DIR``. A process that is not part of a
run makes its own on first use. A directory that is not ours or that others may write is
refused: values are unpickled from it, so it must be as private as the process itself.

File locks are ``flock`` locks: the kernel releases them when their holder dies, so a worker
that crashed while holding one deadlocks nobody.

Inside a task that a ploop run sent to a Dask worker (``backend="dask"``), file locks would
not cross machines, nor even the cluster's worker processes (each has its own run directory):
there :class:`lock` and :class:`semaphore` take the cluster's ``distributed.Semaphore`` of the
same name instead (``_backends._dask_sync``). ``run_once`` and ``once`` stay per process there.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import hashlib
import inspect
import os
import pickle
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ContextDecorator
from pathlib import Path
from typing import Any, TypeVar

import filelock

from ._errors import LockTimeout, PloopError

ENV = "PLOOP_RUN_DIR"
_POLL_S = 0.01
_ONCE: dict[str, Any] = {}  # values computed here, or inherited by a fork
T = TypeVar("T")

__all__ = ["lock", "once", "run_dir", "run_once", "semaphore"]


def run_dir() -> Path:
    """The directory shared by the processes of this run (created when there is none).

    Raises:
        PloopError: ``PLOOP_RUN_DIR`` names a directory that is not private to this user.
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        check_private(path)
        return path
    path = Path(tempfile.mkdtemp(prefix="ploop-run-"))
    os.environ[ENV] = str(path)
    atexit.register(_remove_if_owner, path, os.getpid())
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked child inherits the atexit hook, not the directory
        shutil.rmtree(path, ignore_errors=True)


def check_private(path: Path) -> None:
    """Raise ``PloopError`` unless ``path`` is a real directory owned by this user that no one
    else may write (or read)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise PloopError(f"the run directory {path} ({ENV}) cannot be used: {exc}") from exc
    problems = []
    if not stat.S_ISDIR(st.st_mode):
        problems.append("it is not a directory (or it is a symbolic link)")
    if st.st_uid != os.getuid():
        problems.append(f"it belongs to uid {st.st_uid}, not to this user ({os.getuid()})")
    if st.st_mode & 0o077:
        problems.append(f"others may use it (mode {stat.S_IMODE(st.st_mode):04o})")
    if problems:
        raise PloopError(
            f"refusing the run directory {path} ({ENV}): {'; '.join(problems)}. Unset {ENV} "
            "to let ploop make a private one"
        )


def _file(kind: str, name: str, suffix: str = ".lock") -> Path:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {kind} name must be a non-empty string, got {name!r}")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return run_dir() / f"{kind}-{safe}-{digest}{suffix}"


def _me() -> str:
    worker = os.environ.get("PLOOP_WORKER", "main")
    test = os.environ.get("PYTEST_CURRENT_TEST", "")
    return f"worker {worker} (pid {os.getpid()})" + (f" running {test}" if test else "")


def _on_cluster(
    name: str, slots: int, timeout: float | None
) -> AbstractContextManager[None] | None:
    """In a task of a ploop run on a Dask worker: the cluster-wide semaphore ``name``,
    acquired; elsewhere ``None`` (the file locks apply)."""
    task = sys.modules.get("pytest_ploop._backends._dask_task")
    if task is None or not task.in_ploop_task():
        return None  # not imported: no Dask task of ploop's runs in this process
    from ._backends._dask_sync import dask_semaphore

    held = dask_semaphore(name, slots, timeout)
    held.__enter__()
    return held


def _release(held: filelock.FileLock | AbstractContextManager[None]) -> None:
    if isinstance(held, filelock.BaseFileLock):
        with contextlib.suppress(OSError):
            Path(held.lock_file).with_suffix(".holder").unlink()
        held.release()
    else:
        held.__exit__(None, None, None)


def _holder(path: Path) -> str:
    try:
        return path.with_suffix(".holder").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


class lock(ContextDecorator):
    """A named lock held across every process of the run: a context manager and a decorator.

    Args:
        name: any string; the same name is the same lock in every worker.
        timeout: seconds to wait; ``None`` waits as long as it takes.

    Raises:
        LockTimeout: not acquired within ``timeout``; it names the holder's worker and test.

    On the Dask backend (in a task that ``ploop.map(..., backend="dask")`` runs), it is the
    cluster-wide ``distributed.Semaphore`` of one slot with this name, shared by every run
    on the cluster.

    Example:
        >>> import pytest_ploop as ploop
        >>> with ploop.lock("database"):
        ...     pass  # one worker at a time here
    """

    def __init__(self, name: str, timeout: float | None = None) -> None:
        self.name = name
        self.timeout = timeout
        self._held: list[filelock.FileLock | AbstractContextManager[None]] = []

    def __enter__(self) -> lock:
        held = _on_cluster(self.name, 1, self.timeout)
        if held is not None:
            self._held.append(held)
            return self
        path = _file("lock", self.name)
        flock = filelock.FileLock(str(path), is_singleton=False)
        try:
            flock.acquire(timeout=-1 if self.timeout is None else self.timeout)
        except filelock.Timeout:
            raise LockTimeout(self.name, self.timeout or 0.0, _holder(path)) from None
        path.with_suffix(".holder").write_text(_me())
        self._held.append(flock)
        return self

    def __exit__(self, *exc: object) -> None:
        _release(self._held.pop())


class semaphore(ContextDecorator):
    """At most ``slots`` holders at once across every process of the run.

    Args:
        name: any string; the same name is the same semaphore in every worker.
        slots: how many may hold it at once (at least 1).
        timeout: seconds to wait; ``None`` waits as long as it takes.

    Raises:
        LockTimeout: no slot within ``timeout``; it names the holders.

    On the Dask backend it is the cluster-wide ``distributed.Semaphore`` of this name (every
    user of a name must give the same ``slots``), as for :class:`lock`.

    Example:
        >>> import pytest_ploop as ploop
        >>> with ploop.semaphore("gpu", slots=2):
        ...     pass  # two workers at a time here
    """

    def __init__(self, name: str, slots: int, timeout: float | None = None) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots={slots!r} must be a whole number of at least 1")
        self.name = name
        self.slots = slots
        self.timeout = timeout
        self._held: list[filelock.FileLock | AbstractContextManager[None]] = []

    def __enter__(self) -> semaphore:
        held = _on_cluster(self.name, self.slots, self.timeout)
        if held is not None:
            self._held.append(held)
            return self
        paths = [_file("sem", f"{self.name}#{i}") for i in range(self.slots)]
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            for path in paths:
                flock = filelock.FileLock(str(path), is_singleton=False)
                try:
                    flock.acquire(timeout=0)
                except filelock.Timeout:
                    continue
                path.with_suffix(".holder").write_text(_me())
                self._held.append(flock)
                return self
            if deadline is not None and time.monotonic() >= deadline:
                holders = "; ".join(_holder(p) for p in paths)
                raise LockTimeout(self.name, self.timeout or 0.0, holders)
            time.sleep(_POLL_S)  # no event to wait on for "any of N files is free"

    def __exit__(self, *exc: object) -> None:
        _release(self._held.pop())


def run_once(key: str, fn: Callable[[], T], teardown: Callable[[T], object] | None = None) -> T:
    """``fn()`` computed once per run, however many workers ask, and shared with all of them.

    The first caller computes it under a lock and leaves it, pickled, in the private run
    directory; later callers (and workers forked after it was computed, from memory) get it
    from there. It answers "my session fixture runs once per worker": call it in the fixture.
    ``teardown(value)`` runs once, in the last process using the value, when it ends.

    Raises:
        PloopError: the value cannot be pickled, so it cannot be shared; share something
            that can (a URL, a path, a port number) and open the resource in each worker.

    Example:
        >>> import pytest_ploop as ploop
        >>> ploop.run_once("answer", lambda: 6 * 7)
        42
    """
    if key in _ONCE:
        return _ONCE[key]  # type: ignore[no-any-return]
    path = _file("once", key, ".pickle")
    with lock(f"once:{key}"):
        if path.exists():
            value = pickle.loads(path.read_bytes())
        else:
            value = fn()
            _share(key, path, value)
        if teardown is not None:
            _use(key, path, lambda: teardown(value))
    _ONCE[key] = value
    return value  # type: ignore[no-any-return]


def _share(key: str, path: Path, value: object) -> None:
    try:
        blob = pickle.dumps(value)
    except Exception as exc:
        raise PloopError(
            f"run_once({key!r}): the value cannot be pickled to share it between workers "
            f"({type(exc).__name__}: {exc}); return something that can be, such as a URL, a "
            "path or a port, and open the resource in each worker"
        ) from exc
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


# This process's teardown duties: key -> (its shared lock on the value's users file, whether
# it created a generator fixture's value, whose teardown can only run here).
_DUTIES: dict[str, tuple[int, bool]] = {}


def _use(key: str, path: Path, teardown: Callable[[], object], creator: bool = False) -> None:
    """Count this process among the value's users (a shared ``flock``, which the kernel drops
    if the process dies) and, when it ends, run ``teardown`` if it is the last user.

    With ``creator``, this process waits at its end for the others (an exclusive lock): a
    generator fixture's teardown can only run where the generator lives.
    """
    users = os.open(path.with_suffix(".users"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(users, fcntl.LOCK_SH)
    _DUTIES[key] = (users, creator)

    def at_end() -> None:
        _DUTIES.pop(key, None)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | (0 if creator else fcntl.LOCK_NB))
        except OSError:
            return  # another process still uses it: the last one tears it down
        try:
            teardown()
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(users)

    _at_exit(at_end)


def must_stay() -> bool:
    """Whether ending this process now, in the middle of a run, would tear down a run-once
    value that the run may still need (and the next user compute it again): it created a
    ``@once`` generator fixture's value (whose teardown can only run here, after every
    other user), or it is right now the only process using a value with a teardown.

    The pytest plugin asks before it replaces a worker between tests
    (``--ploop-max-tasks-per-worker``, ``--ploop-max-worker-rss``): such a worker stays."""
    for users, creator in _DUTIES.values():
        if creator:
            return True
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # others use it too: they tear it down
        fcntl.flock(users, fcntl.LOCK_SH)
        return True
    return False


def _at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` when this process ends: a worker's loop end, or interpreter exit."""
    from ._engine import _worker

    if _worker.in_worker():  # not a process a worker started: it has no worker loop
        _worker.BEFORE_EXIT.append(hook)
    else:
        atexit.register(_if_still, os.getpid(), hook)


def _if_still(owner: int, hook: Callable[[], None]) -> None:
    if os.getpid() == owner:  # not in a forked child that inherited the atexit hook
        hook()


def once(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Decorate a session fixture's function so that it runs once per run, not per worker.

    A plain function's value is shared (see :func:`run_once`). A generator function (setup,
    ``yield value``, teardown) is set up once; its teardown runs in the process that set it
    up, after every other worker using the value is done.

    Example:
        >>> import pytest
        >>> import pytest_ploop as ploop
        >>> @pytest.fixture(scope="session")
        ... @ploop.once
        ... def database_url():
        ...     url = "sqlite:///shared.db"  # create it here
        ...     yield url
        ...     # drop it here: once, after the last worker
    """
    key = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper() -> Any:
        if not inspect.isgeneratorfunction(fn):
            return run_once(key, fn)
        if key in _ONCE:
            return _ONCE[key]
        path = _file("once", key, ".pickle")
        with lock(f"once:{key}"):
            if path.exists():
                value = pickle.loads(path.read_bytes())
                _use(key, path, lambda: None)
            else:
                gen = fn()
                value = next(gen)
                _share(key, path, value)
                _use(key, path, lambda: next(gen, None), creator=True)
        _ONCE[key] = value
        return value

    return wrapper


@contextlib.contextmanager
def _private_env(path: Path) -> Iterator[None]:
    """Point ``PLOOP_RUN_DIR`` at ``path`` for the block (tests)."""
    old = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
