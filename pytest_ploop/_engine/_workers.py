"""Worker processes as the main process sees them: starting, replacing, stopping.

A :class:`Workers` set owns the processes across runs (a ``Pool`` reuses them); a run
(``_pool.Run``) borrows them. Worker slots keep their id (``w0``, ``w1``, ...) when the process
in them is replaced after a crash.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.sharedctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, MutableSequence, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from . import _forking, _shutdown, _threads, _transport, _worker
from ._messages import SLOT_SIZE, Stop

START_METHODS = ("fork", "spawn", "forkserver")
_SOCKET_BUFFER = 4 << 20  # the kernel caps it at net.core.wmem_max / rmem_max


def default_start_method() -> str:
    """``fork`` on POSIX (workers inherit what the main process loaded), else ``spawn``."""
    return "fork" if sys.platform != "win32" else "spawn"


@dataclass
class InFlight:
    """A chunk sent to a worker and not yet answered."""

    job: int
    seq: int
    indices: range | tuple[int, ...]
    args: bytes | None
    batch: bool = False
    budget: float = 0.0  # a probe's (see Chunk.budget)
    # The arguments themselves, as the main process had them: to name a failed task's
    # argument and to send a task again after a crash. Never unpickled back from ``args``:
    # an argument's unpickling is user code that may raise, hang or kill the process (it is
    # meant to run in the worker), and once made the main process fail with the task's error.
    arguments: Sequence[Any] = ()


@dataclass(eq=False)
class WorkerHandle:
    """The main process's handle on one worker process."""

    index: int
    id: str
    process: BaseProcess
    channel: _transport.Channel
    slot: MutableSequence[float]
    dump_path: str
    started: float
    inflight: deque[InFlight] = field(default_factory=deque)
    jobs: set[int] = field(default_factory=set)
    tasks_done: int = 0
    killed_for: str | None = None
    timeout_stack: str = ""
    told_no_more: bool = False
    retiring: bool = False  # told to stop: it takes no more chunks, and its exit is no death
    last_rss: int = 0  # bytes, from the last resource sample
    tasks_sent: int = 0
    inherited: frozenset[int] = frozenset()

    def started_with_job(self, job: int) -> bool:
        """Whether this worker was forked after ``job``'s function was registered."""
        return job in self.inherited

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def dump_text(self) -> str:
        """What faulthandler wrote for this worker (a crash's or a timeout's stack)."""
        try:
            with open(self.dump_path, errors="replace") as f:
                return f.read()[-8000:]
        except OSError:
            return ""


class Workers:
    """Worker processes of one start method, started on demand and replaced after a crash."""

    def __init__(self, start_method: str | None = None, env: dict[str, str] | None = None) -> None:
        method = start_method or default_start_method()
        if method not in START_METHODS:
            raise ValueError(
                f"start_method={method!r} is not one of {', '.join(map(repr, START_METHODS))}"
            )
        self.start_method = method
        self.ctx = mp.get_context(method)
        self.env = dict(env or {})
        self.slots: list[WorkerHandle | None] = []
        self.restarts: dict[str, int] = {}
        self.pids: dict[str, list[int]] = {}
        self.dir = tempfile.mkdtemp(prefix="ploop-")
        self.count = 0  # the worker count announced to workers (set by the run)
        self.threads: int | None = None  # numeric libraries' threads per worker (the run)
        self.on_start: list[Callable[[WorkerHandle], None]] = []
        self.retired: list[WorkerHandle] = []  # told to stop, not yet joined (see retire)
        self.closed = False
        self._capped_here = False  # a library's threads capped in this process (_threads)
        self._resume: list[Callable[[], None]] = []  # threads paused to fork (_forking)

    def get(self, index: int) -> WorkerHandle | None:
        """The live worker in slot ``index``, if any."""
        return self.slots[index] if index < len(self.slots) else None

    def live(self) -> list[WorkerHandle]:
        """Every worker that has a process now."""
        return [w for w in self.slots if w is not None]

    def start(self, index: int) -> WorkerHandle:
        """Start a worker in slot ``index`` (replacing a dead one there)."""
        while len(self.slots) <= index:
            self.slots.append(None)
        wid = f"w{index}"
        parent_sock, child_sock = socket.socketpair()
        for sock in (parent_sock, child_sock):
            # Room for a large chunk's results: a worker that finishes a chunk while the main
            # process has no CPU should not block on its send with the next chunk waiting.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        slot: MutableSequence[float] = mp.sharedctypes.RawArray("d", SLOT_SIZE)
        if self.start_method == "fork":
            _worker.prepare_prctl()
            if self.threads and _threads.prepare(self.threads):
                self._capped_here = True
            for pause in list(_forking.BEFORE_FORK):
                resume = pause()
                if resume is not None:
                    self._resume.append(resume)
        dump_path = os.path.join(self.dir, f"{wid}-{self.restarts.get(wid, 0)}.dump")
        config = _worker.WorkerConfig(
            worker_id=wid,
            index=index,
            count=self.count,
            parent_pid=0 if self.start_method == "forkserver" else os.getpid(),
            dump_path=dump_path,
            forked=self.start_method == "fork",
            threads=self.threads,
            main_thread=threading.current_thread() is threading.main_thread(),
            process_name=mp.current_process().name,
            start_method=mp.get_start_method(allow_none=True),
            env=self.env
            | {
                "PLOOP_WORKER": wid,
                "PLOOP_WORKER_COUNT": str(self.count),
                # Locks and run-once values (pytest_ploop._sync) live here; a run inside a
                # worker keeps the outer run's directory, so its locks are the same locks.
                "PLOOP_RUN_DIR": os.environ.get("PLOOP_RUN_DIR") or self.dir,
            },
        )
        _worker.PARENT_FDS.add(parent_sock.fileno())
        process = self.ctx.Process(  # type: ignore[attr-defined]
            target=_worker.main, args=(child_sock, slot, config), name=f"ploop-{wid}", daemon=True
        )
        try:
            process.start()
        except BaseException:
            # A start that fails (fork refused; spawn's resource tracker warning, an error
            # under -W error) must not leave this socket's number in PARENT_FDS: a worker
            # forked later closed whatever then had that number, once its own sentinel, and
            # the main process waited for that live worker's exit for ever.
            _worker.PARENT_FDS.discard(parent_sock.fileno())
            parent_sock.close()
            child_sock.close()
            raise
        child_sock.close()
        with contextlib.suppress(OSError):  # both sides set it: no race with an early killpg
            os.setpgid(process.pid, process.pid)
        handle = WorkerHandle(
            index, wid, process, _transport.Channel(parent_sock), slot, dump_path, time.monotonic()
        )
        if self.start_method == "fork":
            handle.inherited = frozenset(_worker.INHERITED)
        self.slots[index] = handle
        self.pids.setdefault(wid, []).append(process.pid)
        for hook in self.on_start:
            hook(handle)
        return handle

    def resume_threads(self) -> None:
        """Resume the threads that hooks of ``_forking.BEFORE_FORK`` paused for the forks so
        far, last paused first (a run calls it when it ends: the next fork pauses them again)."""
        while self._resume:
            self._resume.pop()()

    def discard(self, handle: WorkerHandle) -> None:
        """Forget a worker whose process has ended; count the restart its slot will need."""
        self._let_go(handle)
        handle.process.join(timeout=1)
        _shutdown.kill_group(handle.pid)  # its children that outlived it
        self.restarts[handle.id] = self.restarts.get(handle.id, 0) + 1
        with contextlib.suppress(OSError):
            handle.process.close()

    def retire(self, handle: WorkerHandle) -> None:
        """Free the slot of a worker told to stop: it exits on its own, and :meth:`close`
        waits for it (and ends what it left running) with the others."""
        self._let_go(handle)
        self.retired.append(handle)

    def _let_go(self, handle: WorkerHandle) -> None:
        """Close this process's end of ``handle``'s socket and free its slot."""
        _worker.PARENT_FDS.discard(handle.channel.fileno())
        handle.channel.close()
        if self.get(handle.index) is handle:
            self.slots[handle.index] = None

    def kill(self, handles: list[WorkerHandle], wait_s: float = 1.0) -> None:
        """Terminate ``handles`` now (the ladder), without discarding them."""
        _shutdown.terminate([h.process for h in handles], wait_s)

    def close(self, wait_s: float = 10.0) -> None:
        """Stop every worker: ask, wait up to ``wait_s`` (their exit hooks may be tearing a
        shared fixture down), then terminate what is left."""
        if self.closed:
            return
        self.closed = True
        live = self.live()
        for h in live:
            with contextlib.suppress(Exception):
                h.channel.queue(Stop())
        live += self.retired
        self.retired = []
        deadline = time.monotonic() + wait_s
        for h in live:
            h.process.join(timeout=max(0.0, deadline - time.monotonic()))
        _shutdown.terminate([h.process for h in live if h.process.is_alive()], 1.0)
        for h in live:
            self._let_go(h)
            _shutdown.kill_group(h.pid)
            h.process.join(timeout=1)
        self.slots.clear()
        if self._capped_here:
            _threads.restore()
        self.resume_threads()
        shutil.rmtree(self.dir, ignore_errors=True)

    def signal_stack_dump(self, handle: WorkerHandle, wait_s: float = 0.5) -> str:
        """Ask a (hung) worker for its stack via SIGUSR1 and return what it wrote."""

        def size() -> int:
            try:
                return os.path.getsize(handle.dump_path)
            except OSError:
                return 0

        before = size()
        with contextlib.suppress(OSError):
            os.kill(handle.pid, signal.SIGUSR1)
        deadline = time.monotonic() + wait_s
        last = before
        # A bounded wait for the file to grow and then stop growing: faulthandler writes the
        # dump in pieces, and there is no event to wait on.
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = size()
            if now > before and now == last:
                break
            last = now
        try:
            with open(handle.dump_path, errors="replace") as f:
                f.seek(before)
                return f.read()
        except OSError:
            return ""

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self.closed:
                self.close(wait_s=0.5)


def signal_name(exitcode: int | None) -> str | None:
    """``"SIGSEGV"`` for an exit code of -11, ``None`` for a normal exit."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"
