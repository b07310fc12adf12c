"""Resources shared between the workers of one run: named locks, counting semaphores and
values computed once, on file locks (filelock) in the run's private directory.

The run directory is made by the main process (``tempfile.mkdtemp``: a fresh, unpredictable
name, mode 0700) and handed to workers in ``PLOOP_RUN_DIR``. A process that is not part of a
run makes its own on first use, except a pytest-xdist worker: every worker of an xdist run
is a session of its own, with no main process of ploop's to hand them a directory, so they
meet in one named after xdist's run id (:func:`_xdist_dir`). A directory that is not ours or
that others may write is refused: values are unpickled from it, so it must be as private as
the process itself.

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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ContextDecorator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import filelock

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    from builtins import ExceptionGroup
else:  # pragma: no cover - version dependent
    from exceptiongroup import ExceptionGroup

from ._errors import LockTimeout, PloopError

ENV = "PLOOP_RUN_DIR"
XDIST_UID = "PYTEST_XDIST_TESTRUNUID"  # set by pytest-xdist in each of its workers
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
    uid = os.environ.get(XDIST_UID)
    if uid:
        path = _xdist_dir(uid)
    else:
        path = Path(tempfile.mkdtemp(prefix="ploop-run-"))
        atexit.register(_remove_if_owner, path, os.getpid())
    os.environ[ENV] = str(path)
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # a forked child inherits the atexit hook, not the directory
        shutil.rmtree(path, ignore_errors=True)


def _xdist_dir(uid: str) -> Path:
    """The run directory that the workers of one pytest-xdist run share: named after the run's
    id (a fresh uuid4 unless given with ``--testrunuid``), made private by the first worker
    to ask, refused like a given one unless private, removed by the last worker to leave.

    Each worker joins by holding a shared ``flock`` on its ``members`` file until it ends. A
    worker that joins just as the last one removes the directory opened the old file: its
    lock waits until the remover is done, then it finds the file unlinked and starts over.
    """
    digest = hashlib.sha1(uid.encode()).hexdigest()[:16]  # any text --testrunuid was given
    path = Path(tempfile.gettempdir()) / f"ploop-xdist-{digest}"
    while True:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        check_private(path)
        try:
            members = os.open(path / "members", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # removed since the check: make it again
        fcntl.flock(members, fcntl.LOCK_SH)
        if os.fstat(members).st_nlink:
            break
        os.close(members)
    atexit.register(_leave_xdist_dir, path, members, os.getpid())
    return path


def _leave_xdist_dir(path: Path, members: int, owner: int) -> None:
    if os.getpid() != owner:
        return
    try:
        fcntl.flock(members, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        # Another worker is still a member: it removes the directory. (The failed conversion
        # dropped this worker's share, which is what leaving means.)
        return
    shutil.rmtree(path, ignore_errors=True)  # after this process's run-once teardowns (atexit)
    os.close(members)


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


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {kind} name must be a non-empty string, got {name!r}")


def _file(kind: str, name: str, suffix: str = ".lock") -> Path:
    _check_name(kind, name)
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


def _check_timeout(timeout: float | None) -> float | None:
    """``timeout`` itself, if it is ``None`` or a number of seconds of at least 0."""
    if timeout is None:
        return None
    ok = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout >= 0
    if not ok:  # (NaN is not >= 0)
        raise ValueError(
            f"timeout={timeout!r} must be a number of seconds of at least 0 (0: do not wait), "
            "or None to wait as long as it takes"
        )
    return timeout


# What this process holds now, by thread: (pid, thread, kind, name). A forked child inherits
# the set, not what it names: the pid tells its own entries from its parent's.
_HELD: set[tuple[int, int, str, str]] = set()


@contextlib.contextmanager
def _not_nested(kind: str, name: str) -> Iterator[None]:
    """Hold the mark of ``kind`` ``name`` for the block; refuse at once if this thread holds
    it already: the flock of a nested acquire would wait for the outer one, which waits for
    the nested one to end (a semaphore of one slot hangs; a lock's filelock raises a
    confusing error). Other threads and processes wait as usual."""
    mark = (os.getpid(), threading.get_ident(), kind, name)
    if mark in _HELD:
        raise PloopError(
            f"ploop.{kind}({name!r}) is already held by this thread, and it is not reentrant: "
            "taking it again inside would wait for itself. Hold it once, around the outer "
            "block, and let the code inside run without taking it again"
        )
    _HELD.add(mark)
    try:
        yield
    finally:
        _HELD.discard(mark)


_H = TypeVar("_H", bound="_Held")


class _Held(ContextDecorator):
    """What :class:`lock` and :class:`semaphore` share: refuse a nested acquire, take the
    Dask cluster's semaphore in a Dask task and ``_flock()`` elsewhere, release in order."""

    kind = ""

    def __init__(self, name: str, slots: int, timeout: float | None) -> None:
        _check_name(self.kind, name)  # (a list would fail as unhashable in _not_nested)
        self.name = name
        self.slots = slots
        self.timeout = _check_timeout(timeout)
        self._held: list[contextlib.ExitStack] = []

    def __enter__(self: _H) -> _H:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_not_nested(self.kind, self.name))
            held = _on_cluster(self.name, self.slots, self.timeout)
            stack.callback(_release, self._flock() if held is None else held)
            self._held.append(stack.pop_all())
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.pop().close()

    def _flock(self) -> filelock.FileLock:
        raise NotImplementedError


class lock(_Held):
    """A named lock held across every process of the run: a context manager and a decorator.

    Args:
        name: any string; the same name is the same lock in every worker.
        timeout: seconds to wait (at least 0); ``None`` waits as long as it takes.

    Raises:
        LockTimeout: not acquired within ``timeout``; it names the holder's worker and test.
        PloopError: this thread holds it already (it is not reentrant).
        ValueError: ``timeout`` is negative or not a number.

    On the Dask backend (in a task that ``ploop.map(..., backend="dask")`` runs), it is the
    cluster-wide ``distributed.Semaphore`` of one slot with this name, shared by every run
    on the cluster.

    Example:
        >>> import pytest_ploop as ploop
        >>> with ploop.lock("database"):
        ...     pass  # one worker at a time here
    """

    kind = "lock"

    def __init__(self, name: str, timeout: float | None = None) -> None:
        super().__init__(name, 1, timeout)

    def _flock(self) -> filelock.FileLock:
        path = _file("lock", self.name)
        flock = filelock.FileLock(str(path), is_singleton=False)
        try:
            flock.acquire(timeout=-1 if self.timeout is None else self.timeout)
        except filelock.Timeout:
            raise LockTimeout(self.name, self.timeout or 0.0, _holder(path)) from None
        path.with_suffix(".holder").write_text(_me())
        return flock


class semaphore(_Held):
    """At most ``slots`` holders at once across every process of the run.

    Args:
        name: any string; the same name is the same semaphore in every worker.
        slots: how many may hold it at once (at least 1).
        timeout: seconds to wait (at least 0); ``None`` waits as long as it takes.

    Raises:
        LockTimeout: no slot within ``timeout``; it names the holders.
        PloopError: this thread holds a slot already (it is not reentrant).
        ValueError: ``slots`` is not a whole number of at least 1, or ``timeout`` is negative
            or not a number.

    On the Dask backend it is the cluster-wide ``distributed.Semaphore`` of this name (every
    user of a name must give the same ``slots``), as for :class:`lock`.

    Example:
        >>> import pytest_ploop as ploop
        >>> with ploop.semaphore("gpu", slots=2):
        ...     pass  # two workers at a time here
    """

    kind = "semaphore"

    def __init__(self, name: str, slots: int, timeout: float | None = None) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots={slots!r} must be a whole number of at least 1")
        super().__init__(name, slots, timeout)

    def _flock(self) -> filelock.FileLock:
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
                return flock
            if deadline is not None and time.monotonic() >= deadline:
                holders = "; ".join(_holder(p) for p in paths)
                raise LockTimeout(self.name, self.timeout or 0.0, holders)
            time.sleep(_POLL_S)  # no event to wait on for "any of N files is free"


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
    with _gate(key):
        if path.exists():
            value = pickle.loads(path.read_bytes())
        else:
            value = fn()
            _share(key, path, value)
        if teardown is not None:
            _use(key, _Duty(path, _join(path), functools.partial(teardown, value)))
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


# Who tears a run-once value down, and when.
#
# Every process using a value that has a teardown holds a shared flock on the value's
# ``.users`` file until it ends (the kernel drops it if the process dies). "Am I its last
# user?" is asked by converting that share to an exclusive lock without blocking. On Linux a
# failed conversion has already dropped the share (flock(2): conversion is not atomic): had
# another process asked at that moment, or later, it would have counted itself the last user
# while this one still used the value, and both would tear it down. So the question is only
# ever asked under the value's gate (``_gate``), which joining the value (or setting it up)
# also takes, and the asker takes its share back before it lets go of the gate (``_alone``):
# no other process can ask or join in between, so none ever sees a share missing. Taking it
# back never blocks: only an asker, under the gate, holds the file exclusively, or a creator
# waiting at its end (below), for a value whose other users never ask. The ``.users`` file is
# never removed: a new file would be a new lock, which the old value's users do not hold.
#
# A generator fixture's value (``once``) can only be torn down where its generator lives: in
# its creator, after every other user. The creator holds the value's ``.creator`` file
# exclusively for its life; a joiner that finds no live creator (it crashed, and took its
# teardown with it) sets the value up again and becomes the creator (``_claim``).
#
# At its end a process first lets go of every value it did not create (tearing down those of
# which it is the last user), and only then, as a creator, waits for the other users of its
# own values, holding no gate while it waits (``_at_end``). So a creator waits only for
# processes still running tests or in that first step, which waits for no other process's
# end: two creators, each using the other's value, never wait for each other.


class _Duty(NamedTuple):
    """What this process must do at its end for one run-once value it uses."""

    path: Path  # the pickled value
    users: int  # the value's ``.users`` file, which this process holds shared
    teardown: Callable[[], object] | None  # None: nothing to run here (a generator's user)
    creator: int | None = None  # held ``.creator`` file: this process set up a generator
    pid: int = 0  # the process that took the duty (a forked child inherits the dict)


_DUTIES: dict[str, _Duty] = {}
_HOOKED = 0  # the pid of the process whose end runs _at_end


def _gate(key: str) -> lock:
    """The lock under which a value is set up, joined, and its last user decided."""
    return lock(f"once:{key}")


def _join(path: Path) -> int:
    """Count this process among the value's users (under its gate): its ``.users`` file, held
    shared."""
    users = os.open(path.with_suffix(".users"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(users, fcntl.LOCK_SH)
    return users


def _claim(path: Path) -> int | None:
    """The value's ``.creator`` file, held exclusively from now on, unless a live process
    holds it already (its creator: ``None``). Under the value's gate."""
    fd = os.open(path.with_suffix(".creator"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _alone(users: int) -> bool:
    """Whether no other process uses the value; if so this one now holds ``users``
    exclusively. Under the value's gate (see above)."""
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fcntl.flock(users, fcntl.LOCK_SH)  # the failed conversion dropped it: take it back
        return False
    return True


def _let_go(fd: int) -> None:
    # Unlocked first: a child forked since shares the lock, and closing our copy of the
    # descriptor would leave it held.
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _use(key: str, duty: _Duty) -> None:
    """Take ``duty`` for ``key``, done when this process ends."""
    global _HOOKED
    _DUTIES[key] = duty._replace(pid=os.getpid())
    if os.getpid() != _HOOKED:
        _HOOKED = os.getpid()
        _at_exit(_at_end)


def _mine() -> list[tuple[str, _Duty]]:
    return [(key, duty) for key, duty in _DUTIES.items() if duty.pid == os.getpid()]


def _at_end() -> None:
    """Let go of every value this process uses: first those it did not create, tearing down
    those of which it is the last user; then, as their creator, wait for the other users of
    its generator values and tear them down (see above for why in this order)."""
    duties = sorted(_mine(), key=lambda item: item[1].creator is not None)  # (a stable sort)
    _DUTIES.clear()
    errors: list[Exception] = []
    for key, duty in duties:
        try:
            if duty.creator is not None:
                _end_as_creator(key, duty)
            elif duty.teardown is None:
                _let_go(duty.users)  # a generator's user: its creator tears it down
            else:
                _end_as_user(key, duty)
        except Exception as exc:  # the other values are still let go of
            errors.append(exc)
    if errors:
        raise ExceptionGroup("run-once teardowns failed", errors)


def _end_as_user(key: str, duty: _Duty) -> None:
    with _gate(key):
        if _alone(duty.users):
            _tear_down(duty)
        else:
            _let_go(duty.users)  # another user tears it down


def _end_as_creator(key: str, duty: _Duty) -> None:
    while True:
        with _gate(key):
            if _alone(duty.users):
                _tear_down(duty)
                return
        # Wait for the other users to let go, without the gate (they may join meanwhile, or
        # ask about their other values). Once they have, back to a share before taking the
        # gate again: a joiner holding the gate waits for a share, which an exclusive lock
        # held here would never grant.
        fcntl.flock(duty.users, fcntl.LOCK_EX)
        fcntl.flock(duty.users, fcntl.LOCK_SH)


def _tear_down(duty: _Duty) -> None:
    """Run the value's teardown and forget the value (its last user, under its gate, holding
    ``users`` exclusively): a later joiner sets it up afresh."""
    try:
        if duty.teardown is not None:
            duty.teardown()
    finally:
        with contextlib.suppress(OSError):
            duty.path.unlink()
        _let_go(duty.users)
        if duty.creator is not None:
            _let_go(duty.creator)


def must_stay() -> bool:
    """Whether ending this process now, in the middle of a run, would tear down a run-once
    value that the run may still need (and the next user compute it again): it created a
    ``@once`` generator fixture's value (whose teardown can only run here, after every
    other user), or it is right now the only process using a value with a teardown.

    The pytest plugin asks before it replaces a worker between tests
    (``--ploop-max-tasks-per-worker``, ``--ploop-max-worker-rss``): such a worker stays."""
    for key, duty in _mine():
        if duty.creator is not None:
            return True
        if duty.teardown is None:
            continue  # a generator's user: its creator tears it down
        with _gate(key):
            alone = _alone(duty.users)
            if alone:
                fcntl.flock(duty.users, fcntl.LOCK_SH)  # still one of its users
        if alone:
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


def _once_key(fn: Callable[[], Any]) -> str:
    """The key of ``fn``'s value: the same for the same definition in every worker, and
    different for fixtures of one name in different ``conftest.py`` files (all of them in a
    module named ``conftest``)."""
    code = getattr(fn, "__code__", None)
    where = f"@{code.co_filename}:{code.co_firstlineno}" if code is not None else ""
    return f"{fn.__module__}.{fn.__qualname__}{where}"


def once(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Decorate a session fixture's function so that it runs once per run, not per worker.

    A plain function's value is shared (see :func:`run_once`). A generator function (setup,
    ``yield value``, teardown) is set up once; its teardown runs in the process that set it
    up, after every other worker using the value is done. If that process crashes, the next
    worker to ask sets the value up again (and tears it down).

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
    key = _once_key(fn)

    @functools.wraps(fn)
    def wrapper() -> Any:
        if not inspect.isgeneratorfunction(fn):
            return run_once(key, fn)
        if key in _ONCE:
            return _ONCE[key]
        path = _file("once", key, ".pickle")
        with _gate(key):
            creator = _claim(path)
            if creator is None:  # its creator is alive: it shared the value
                value = pickle.loads(path.read_bytes())
                _use(key, _Duty(path, _join(path), None))
            else:  # the first to ask, or its creator crashed
                try:
                    gen = fn()
                    value = next(gen)
                    _share(key, path, value)
                except BaseException:
                    _let_go(creator)
                    raise
                _use(key, _Duty(path, _join(path), lambda: next(gen, None), creator))
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
