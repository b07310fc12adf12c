"""The worker's side: a loop that runs chunks of tasks and sends their results back.

Standard library and the engine's message modules only, so that a worker starts fast under
``spawn``. Never imports pytest.

Before each task the worker writes the task's index, its start time and its phase into a small
shared-memory slot (see ``_messages.SLOT_*``). Writing there costs a fraction of a microsecond,
where a message per task would cost tens; the main process reads the slot when the worker dies
(to blame the right task) and on its tick (to enforce timeouts).
"""

from __future__ import annotations

import contextlib
import copyreg
import faulthandler
import io
import itertools
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
import traceback
from array import array
from collections import deque
from collections.abc import Callable, MutableSequence, Sequence
from dataclasses import dataclass, field
from multiprocessing import context as mp_context
from multiprocessing import process as mp_process
from typing import Any, NoReturn

from . import _threads, _transport
from ._messages import (
    PROBE_GROUP,
    SLOT_INDEX,
    SLOT_MARKER,
    SLOT_PHASE,
    SLOT_SEQ,
    SLOT_START,
    Cancel,
    Chunk,
    ChunkDone,
    ChunkRejected,
    Emitted,
    Failure,
    Function,
    FunctionFailed,
    NoMore,
    Phase,
    Stop,
    safe_str,
)

# multiprocessing's object for the process that imported this module (the main process:
# a worker imports it from there, by fork or by spawn, before its bootstrap replaced it).
_MAIN_PROCESS = mp_process.current_process()

# Functions the main process registered before forking: a forked worker finds a job's
# function here and nothing has to be pickled (closures and lambdas work under fork).
INHERITED: dict[int, Callable[[Any], Any]] = {}
# The input of each such job, when it is a list or tuple (RunOptions.inherit_items): a chunk
# then carries positions only, and the worker takes the arguments from here.
INHERITED_ITEMS: dict[int, Sequence[Any]] = {}

# File descriptors that belong to the main process (its ends of every worker's socket, its
# wake-up pipe). A forked worker closes them first, so that a worker sees EOF when the main
# process goes away and no worker keeps another worker's socket open.
PARENT_FDS: set[int] = set()

# Hooks run in a freshly forked worker before its loop starts (the plugin adds its own),
# and hooks run when its loop ends normally. A worker empties both lists for its own
# children: a loop run inside a task forks workers of its own, which are not the plugin's.
AFTER_FORK: list[Callable[[WorkerConfig], None]] = []
BEFORE_EXIT: list[Callable[[], None]] = []

# Set on the function: the worker calls fn(arg, next_arg), where next_arg is the argument of
# the task this worker runs next, or END when none follows (see _Loop._run_lookahead).
LOOKAHEAD = "ploop_lookahead"
END: Any = None

# This worker's shared slot and socket, for set_marker() and emit().
_SLOT: MutableSequence[float] | None = None
_SOCK: socket.socket | None = None
_JOB = 0  # the job whose chunk runs now
_LOOP: _Loop | None = None  # this worker's loop, for stop_requested()
_PID = 0  # this worker's pid: a process a task forks inherits the SIGTERM handler, not the role

_PR_SET_PDEATHSIG = 1
_CHECK_EVERY_S = 0.02  # how often a long chunk looks for a Cancel
_CPU_PER_TASK_MAX = 64  # chunks up to this size measure CPU per task; larger ones once
_PARENT_CHECK_S = 0.25  # how often a worker started by another thread looks for its parent


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to know about itself."""

    worker_id: str
    index: int
    count: int
    parent_pid: int  # 0: the parent is not the main process (forkserver)
    dump_path: str
    forked: bool
    env: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # cap of numeric libraries' thread pools
    # Started by the main process's main thread. The kernel's parent-death signal follows
    # the thread that forked, not the process: a worker started by another thread would be
    # killed when that thread ends (a Pool used from a ThreadPoolExecutor's threads).
    main_thread: bool = True
    # The main process as multiprocessing names it, and the start method it set
    # (``set_start_method``) or None: the worker's are the same (see _as_a_main_process).
    process_name: str = "MainProcess"
    start_method: str | None = None


def set_marker(value: float) -> None:
    """Mark a new step of the running task: ``value`` is where the main process reads it if
    this worker dies (see SLOT_MARKER), and the task's timeout counts from now."""
    if _SLOT is not None:
        _SLOT[SLOT_MARKER] = value
        _SLOT[SLOT_START] = time.monotonic()


def in_worker() -> bool:
    """Whether this very process is a ploop worker: a process that one of its tasks started
    inherits ``PLOOP_WORKER`` in its environment, and is not one (a pytest run as a
    subprocess of a test is a run of its own)."""
    return os.getpid() == _PID


def emit(payload: Any) -> None:
    """Send ``payload`` (picklable) to the main process now, tagged with the running task."""
    if _SOCK is None or _SLOT is None:
        raise RuntimeError("emit() is only available inside a ploop worker")
    blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    _transport.send(_SOCK, Emitted(_JOB, int(_SLOT[SLOT_INDEX]), blob))


def running_chunk() -> int:
    """The sequence number of the chunk this worker runs now (0 outside a worker)."""
    return int(_SLOT[SLOT_SEQ]) if _SLOT is not None else 0


def stop_requested() -> bool:
    """Whether the main process has stopped the running job (``fail_fast``, Ctrl-C, pytest's
    ``-x``): for a task of many steps (the plugin's group of tests), whose steps not started
    then are not run, as the tasks queued here are not."""
    return _LOOP is not None and _LOOP._cancel_requested(_JOB)


def leave() -> NoReturn:
    """End this worker now, from inside the first task of a chunk, as though it had died
    between two chunks: the main process sends this chunk and those queued here to other
    workers (no task is blamed) and forks a fresh worker into this one's slot. The exit hooks
    run first. (Called later in a chunk, the chunk's finished tasks would run again.)

    The pytest plugin calls it to replace a worker between tests (``--ploop-max-worker-rss``,
    ``--ploop-max-tasks-per-worker``) without running the tests it already holds."""
    if _SLOT is None or not in_worker():
        raise RuntimeError("leave() is only available inside a ploop worker")
    _SLOT[SLOT_PHASE] = Phase.IDLE  # read at the death: no task of ours runs now
    for hook in BEFORE_EXIT:
        hook()
    os._exit(0)


def main(sock: socket.socket, slot: MutableSequence[float], config: WorkerConfig) -> None:
    """Entry point of a worker process."""
    global _SLOT, _SOCK
    _SLOT, _SOCK = slot, sock
    slot[SLOT_MARKER] = -1
    _setup(config)
    dump = open(config.dump_path, "w")  # noqa: SIM115 - open for the process's lifetime
    faulthandler.enable(file=dump)
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True, chain=False)
    try:
        _Loop(sock, slot, config).run()
        # Registered after the fork: by the plugin's AFTER_FORK hook, or by tasks (run_once's
        # teardown). A crash skips them; so does a kill.
        for hook in BEFORE_EXIT:
            hook()
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _setup(config: WorkerConfig) -> None:
    global _PID
    _PID = os.getpid()
    BEFORE_EXIT.clear()  # a forked worker of a worker does not run its parent's exit hooks
    for fd in PARENT_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)
    PARENT_FDS.clear()
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    # The main process decides what an interrupt means; a worker ignores Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _die_with_group)
    os.register_at_fork(before=_sigterm_default, after_in_parent=_sigterm_ours)
    # Own process group: the main process ends a worker and every process it started with
    # one killpg(), and a terminal's Ctrl-C reaches only the main process.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _die_with_parent(config.parent_pid, config.main_thread)
    if config.parent_pid == 0:
        _leave_forkserver_alive_pipe()
    _as_a_main_process(config.process_name, config.start_method)
    for name, value in config.env.items():  # (update() costs an ABC check, 20 µs)
        os.environ[name] = value
    if config.threads:
        _threads.cap(config.threads)
    hooks = list(AFTER_FORK) if config.forked else []
    AFTER_FORK.clear()
    for hook in hooks:
        hook(config)


def _as_a_main_process(name: str, start_method: str | None) -> None:
    """Give multiprocessing the state of the process the tasks would run in without
    workers: a main process, not the multiprocessing child that started this worker.

    As that child, a worker differed where code looks: ``current_process().name`` was the
    worker's, ``parent_process()`` was set, a test's processes were named ``Process-1:1``,
    ``set_start_method()`` failed ("context has already been set", the child's bootstrap
    set it), and, daemonic, it could start no process at all (a test's
    ``multiprocessing.Pool``, or ``ploop.map`` inside a task: "daemonic processes are not
    allowed to have children"). It still ends with the main process (the death signal, and
    EOF on its socket). Private names of multiprocessing, unchanged from 3.8 to 3.13."""
    with contextlib.suppress(Exception):
        _MAIN_PROCESS.name = name  # (spawn's start named it after the worker)
        mp_process._current_process = _MAIN_PROCESS  # type: ignore[attr-defined]
        mp_process._parent_process = None  # type: ignore[attr-defined]
        default = mp_context._default_context
        default._actual_context = (  # type: ignore[attr-defined]
            None if start_method is None else default.get_context(start_method)
        )


def _die_with_group(signum: int, frame: object) -> None:
    if os.getpid() != _PID:
        # A process a test forked (a multiprocessing.Pool worker, which Pool.terminate()
        # ends with SIGTERM) runs this inherited handler: it must end alone, as it would
        # have without it, not SIGKILL the worker's whole process group.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    with contextlib.suppress(OSError):
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os._exit(128 + signum)


_reset_for_fork = False


def _sigterm_default() -> None:
    """Before a task forks (a multiprocessing.Pool worker): the child must be born with
    SIGTERM's default action, not the handler above. Pool.terminate() may signal it before it
    ran a line of Python, and a signal caught then is dropped by the child's after-fork
    reset: the child lived on and its pool waited for it forever."""
    global _reset_for_fork
    if os.getpid() == _PID and signal.getsignal(signal.SIGTERM) is _die_with_group:
        with contextlib.suppress(ValueError):  # not in the main thread: leave it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _reset_for_fork = True


def _sigterm_ours() -> None:
    global _reset_for_fork
    if _reset_for_fork:
        signal.signal(signal.SIGTERM, _die_with_group)
        _reset_for_fork = False


_PRCTL: Any = None  # libc's prctl, looked up once (see prepare_prctl)


def prepare_prctl() -> None:
    """Look libc's ``prctl`` up in the main process, before forking: a forked worker then
    only calls it. (Loading libc through ctypes took 0.17 ms of every worker's start.)"""
    global _PRCTL
    if _PRCTL is None and sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(parent_pid: int, main_thread: bool) -> None:
    """End this worker (and its process group) when the main process dies.

    Started by the main thread (or by the fork server): the kernel sends SIGTERM when the
    parent ends (Linux). Started by another thread, whose end would send it too, a thread
    of this worker looks at the parent every ``_PARENT_CHECK_S`` instead.
    """
    if not main_thread and parent_pid:
        threading.Thread(
            target=_watch_parent, args=(parent_pid,), name="ploop-parent-watch", daemon=True
        ).start()
    elif sys.platform.startswith("linux"):
        prepare_prctl()  # (done already, unless the worker was spawned)
        with contextlib.suppress(Exception):
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # Under forkserver the parent is the fork server, which lives as long as the main process.
    if parent_pid and os.getppid() != parent_pid:  # it died before the request took effect
        _die_with_group(signal.SIGTERM, None)


def _watch_parent(parent_pid: int) -> None:
    """Until the parent is gone (this process is handed to another), then end as
    SIGTERM from the kernel would have ended it."""
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_CHECK_S)
    _die_with_group(signal.SIGTERM, None)


def _leave_forkserver_alive_pipe() -> None:
    """Close this worker's copy of the fork server's "main process alive" pipe.

    The fork server exits when every copy of that pipe's write end is closed: the main
    process's, and the copy each process it starts inherits. While a worker held its copy the
    server outlived a main process killed with SIGKILL, and so did every worker (their death
    signal comes when the server ends), running and holding their children for ever.
    """
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if server is None or fd is None:
        return
    with contextlib.suppress(OSError):
        os.close(fd)
    # A loop this worker runs with forkserver then starts a fork server of its own.
    server._forkserver_alive_fd = None


def _dump_exception(exc: BaseException) -> bytes:
    """``exc`` pickled as plain pickle does it, whatever was imported: tblib's
    ``pickling_support.install()`` (Dask distributed calls it) registers reducers for every
    exception class that rebuild some without their ``__init__`` (a ``SystemExit`` lost its
    ``code``), so an exception crossed differently once some test had imported Dask."""
    table = {
        cls: reduce
        for cls, reduce in copyreg.dispatch_table.items()
        if not (
            isinstance(cls, type)
            and issubclass(cls, BaseException)
            and getattr(reduce, "__module__", "").startswith("tblib")
        )
    }
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    pickler.dump(exc)
    return buffer.getvalue()


def capture(exc: BaseException, where: str) -> Failure:
    """Describe ``exc`` so that it can cross to the main process whatever it holds."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the worker's own loop is not the user's business
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    blob: bytes | None
    try:
        blob = _dump_exception(exc)
        pickle.loads(blob)  # an exception can pickle and still fail to unpickle
    except Exception:
        blob = None
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return Failure(name.removeprefix("builtins."), safe_str(exc), text, where, blob)


class _Loop:
    def __init__(
        self, sock: socket.socket, slot: MutableSequence[float], config: WorkerConfig
    ) -> None:
        self.sock = sock
        self.slot = slot
        self.config = config
        self.functions: dict[int, Callable[[Any], Any]] = {}
        self.cancelled: set[int] = set()
        self.pending: deque[Any] = deque()

    def run(self) -> None:
        global _LOOP
        _LOOP = self
        while True:
            if self.pending:
                msg = self.pending.popleft()
            else:
                try:
                    msg = _transport.recv(self.sock)
                except (_transport.Closed, OSError):
                    return  # the main process is gone or closed us
            match msg:
                case Function():
                    self._load(msg)
                case Chunk():
                    self._chunk(msg)
                case Cancel():
                    self.cancelled.add(msg.job)
                case NoMore():
                    pass  # only a lookahead task waiting for its successor needs it
                case Stop(unless_needed=True) if _holds_a_run_once_value():
                    pass  # leaving now would tear it down: wait for the workers' close
                case Stop():
                    return

    def _load(self, msg: Function) -> None:
        self.cancelled.discard(msg.job)
        try:
            fn = INHERITED[msg.job] if msg.payload is None else pickle.loads(msg.payload)
        except BaseException as exc:
            _transport.send(self.sock, FunctionFailed(msg.job, capture(exc, "function")))
            return
        self.functions = {msg.job: fn}  # one job at a time; drop the old one

    def _chunk(self, msg: Chunk) -> None:
        global _JOB
        _JOB = msg.job
        slot = self.slot
        slot[SLOT_SEQ] = msg.seq
        # The timeout counts from here: unpickling the arguments is part of the task (it runs
        # user code, which may hang). Written before the phase, so that the main process never
        # sees a timed phase with the previous chunk's start.
        slot[SLOT_START] = time.monotonic()
        slot[SLOT_PHASE] = Phase.LOADING
        fn = self.functions.get(msg.job)
        # A Cancel sent after this chunk was queued waits behind it in the socket: look for one
        # before starting, or every worker ran its prefetched chunk in full after the run had
        # stopped (fail_fast, Ctrl-C), and a drain waited for tasks that never had to start.
        if fn is None or msg.job in self.cancelled or self._cancel_requested(msg.job):
            self._skip(msg)
            return
        try:
            args = _arguments(msg)
        except BaseException as exc:
            slot[SLOT_PHASE] = Phase.IDLE
            _transport.send(self.sock, ChunkRejected(msg.job, msg.seq, capture(exc, "argument")))
            return
        if getattr(fn, LOOKAHEAD, False):
            self._run_lookahead(msg, fn, args)
        elif msg.batch or msg.budget:
            self._run_batch(msg, fn, args)
        else:
            self._run(msg, fn, args)

    def _skip(self, msg: Chunk) -> None:
        n = len(msg.indices)
        empty: array[float] = array("d")
        done = ChunkDone(msg.job, msg.seq, pickle.dumps([None] * n), {}, 0.0, empty, empty, n)
        self.slot[SLOT_PHASE] = Phase.IDLE
        _transport.send(self.sock, done)

    def _run(self, msg: Chunk, fn: Callable[[Any], Any], args: list[Any]) -> None:
        # The hot loop: per task, one clock read, two slot writes and an append. A task's
        # start is the previous task's end (the chunk's start for the first).
        slot, indices = self.slot, msg.indices
        n = len(args)
        values: list[Any] = []
        failures: dict[int, Failure] = {}
        ends: array[float] = array("d")
        cpu: array[float] = array("d")
        per_task_cpu = n <= _CPU_PER_TASK_MAX
        monotonic, process_time = time.monotonic, time.process_time
        chunk_cpu = c = process_time()
        first_start = t = monotonic()
        next_check = t + _CHECK_EVERY_S
        slot[SLOT_PHASE] = Phase.RUNNING
        skipped = 0
        for pos, (index, arg) in enumerate(zip(indices, args, strict=True)):
            slot[SLOT_INDEX] = index
            slot[SLOT_START] = t
            try:
                values.append(fn(arg))
            except BaseException as exc:
                values.append(None)
                failures[pos] = capture(exc, "run")
            t = monotonic()
            ends.append(t)
            if per_task_cpu:
                c, c0 = process_time(), c
                cpu.append(c - c0)
            if t >= next_check and pos + 1 < n:
                next_check = t + _CHECK_EVERY_S
                if self._cancel_requested(msg.job):
                    skipped = n - pos - 1
                    break
        if not per_task_cpu:
            cpu.append(process_time() - chunk_cpu)  # for all of them (see ChunkDone.cpu)
        slot[SLOT_PHASE] = Phase.SENDING
        blob = _pickle_values(values, failures)
        done = ChunkDone(msg.job, msg.seq, blob, failures, first_start, ends, cpu, skipped)
        _transport.send(self.sock, done)
        slot[SLOT_PHASE] = Phase.IDLE

    def _run_batch(self, msg: Chunk, fn: Callable[[Any], Any], args: list[Any]) -> None:
        """Tiny tasks, at the speed of a plain loop: no per-task clock or slot writes.

        The main process asks for this for large chunks of tasks that take microseconds and
        have no timeout, and for probes (``msg.budget``: task times still unknown). Time and
        CPU are measured for the chunk and shared equally among its tasks.

        A batch runs as one group. A probe runs in groups of 1, 2, 4, ... PROBE_GROUP until
        the chunk ends or ``msg.budget`` seconds have passed (a long first task ends it after
        one); the tasks not started are reported skipped, and the main process sends them
        again. The slot names the first task of the group running (Phase.BATCH): if the
        worker dies, nobody knows which task of the group killed it, and the main process
        runs them again one at a time (a batch's: all of them; see ``_pool.Run._on_death``).
        """
        slot, indices = self.slot, msg.indices
        values: list[Any] = []
        failures: dict[int, Failure] = {}
        append = values.append
        c0, t0 = time.process_time(), time.monotonic()
        slot[SLOT_START] = t0
        n, pos, skipped = len(args), 0, 0
        group = 1 if msg.budget else n
        it = iter(args)
        while pos < n:
            slot[SLOT_INDEX] = indices[pos]
            slot[SLOT_PHASE] = Phase.BATCH
            stop = min(n, pos + group)
            while len(values) < stop:
                try:
                    # A Python loop, not extend(map(fn, ...)), a sixth faster: a StopIteration
                    # that fn raises would end map() as if the arguments had run out, and the
                    # task's failure was lost (its results shifted, or the loop never ended).
                    for arg in itertools.islice(it, stop - len(values)):
                        append(fn(arg))
                except BaseException as exc:
                    failures[len(values)] = capture(exc, "run")
                    append(None)
            pos = stop
            if msg.budget and pos < n and time.monotonic() >= t0 + msg.budget:
                skipped = n - pos
                break
            group = min(2 * group, PROBE_GROUP)
        t1 = time.monotonic()
        cpu = array("d", [time.process_time() - c0])  # for all of them (see ChunkDone.cpu)
        slot[SLOT_PHASE] = Phase.SENDING
        blob = _pickle_values(values, failures)
        empty: array[float] = array("d")
        done = ChunkDone(msg.job, msg.seq, blob, failures, t0, empty, cpu, skipped, None, t1)
        _transport.send(self.sock, done)
        slot[SLOT_PHASE] = Phase.IDLE

    def _run_lookahead(self, msg: Chunk, fn: Callable[..., Any], args: list[Any]) -> None:
        """Run tasks as fn(arg, next_arg): the last task of a chunk waits for the next chunk
        (or NoMore, Cancel, Stop) so that it knows what follows it. The pytest plugin needs
        this to tear fixtures down exactly as a serial run does."""
        slot, indices = self.slot, msg.indices
        n = len(args)
        values: list[Any] = []
        failures: dict[int, Failure] = {}
        starts: array[float] = array("d")
        ends: array[float] = array("d")
        cpu: array[float] = array("d")
        skipped = 0
        for pos, (index, arg) in enumerate(zip(indices, args, strict=True)):
            if pos + 1 < n:
                next_arg, cancelled = args[pos + 1], False
            else:
                slot[SLOT_PHASE] = Phase.IDLE  # waiting: no task of ours runs now
                next_arg, cancelled = self._wait_next(msg.job)
            if cancelled or (pos and self._cancel_requested(msg.job)):
                skipped = n - pos
                break
            slot[SLOT_MARKER] = -1
            slot[SLOT_INDEX] = index
            c0, t0 = time.process_time(), time.monotonic()
            slot[SLOT_START] = t0
            slot[SLOT_PHASE] = Phase.RUNNING
            try:
                values.append(fn(arg, next_arg))
            except BaseException as exc:
                values.append(None)
                failures[pos] = capture(exc, "run")
            starts.append(t0)
            ends.append(time.monotonic())
            cpu.append(time.process_time() - c0)
        slot[SLOT_PHASE] = Phase.SENDING
        blob = _pickle_values(values, failures)
        first = starts[0] if starts else 0.0
        done = ChunkDone(msg.job, msg.seq, blob, failures, first, ends, cpu, skipped, starts)
        _transport.send(self.sock, done)
        slot[SLOT_PHASE] = Phase.IDLE

    def _wait_next(self, job: int) -> tuple[Any, bool]:
        """The argument of the task after this chunk, END, and whether the job is cancelled.

        Messages read here stay queued in ``pending`` (in order) for the main loop, except
        the NoMore and Cancel that answer the wait.
        """
        i = 0
        while True:
            if i < len(self.pending):
                msg = self.pending[i]
            else:
                try:
                    msg = _transport.recv(self.sock)
                except (_transport.Closed, OSError):
                    self.pending.append(Stop())
                    return END, True
                self.pending.append(msg)
            if isinstance(msg, Chunk) and msg.job == job:
                try:
                    return _arguments(msg)[0], False
                except BaseException:
                    return END, False  # that chunk is rejected when its turn comes
            if isinstance(msg, NoMore | Cancel):
                del self.pending[i]
                if isinstance(msg, Cancel):
                    self.cancelled.add(msg.job)
                if msg.job == job:
                    return END, isinstance(msg, Cancel)
                continue
            if isinstance(msg, Stop):
                # A plain Stop ends the run here; one "unless needed" only says that no
                # chunk follows (it comes after the NoMore that says so too).
                return END, not msg.unless_needed
            i += 1

    def _cancel_requested(self, job: int) -> bool:
        while select.select([self.sock], [], [], 0)[0]:
            try:
                msg = _transport.recv(self.sock)
            except (_transport.Closed, OSError):
                self.pending.append(Stop())
                return True
            if isinstance(msg, Cancel):
                self.cancelled.add(msg.job)
            else:
                self.pending.append(msg)
            if isinstance(msg, Stop) and not msg.unless_needed:
                return True  # (one "unless needed" waits until the chunks held here ran)
        return job in self.cancelled


def _arguments(msg: Chunk) -> list[Any]:
    """A chunk's arguments: unpickled, or taken from the input this worker was forked with."""
    if msg.args is not None:
        unpickled: list[Any] = pickle.loads(msg.args)
        return unpickled
    items = INHERITED_ITEMS[msg.job]
    indices = msg.indices
    if not isinstance(indices, range):
        return [items[i] for i in indices]
    args = items[indices.start : indices.stop]
    return args if type(args) is list else list(args)


def _holds_a_run_once_value() -> bool:
    """Whether this worker must stay to the run's end for a run-once value (see
    ``pytest_ploop._sync.must_stay``); never true where that module was never imported."""
    sync = sys.modules.get("pytest_ploop._sync")
    return sync is not None and bool(sync.must_stay())


def _pickle_values(values: list[Any], failures: dict[int, Failure]) -> bytes:
    try:
        return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        pass
    for pos, value in enumerate(values):
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            failures[pos] = capture(exc, "result")
            values[pos] = None
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
