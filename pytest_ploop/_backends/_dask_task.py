"""What runs on a Dask worker: one batch of a run's tasks, and the two calls the client makes
into a worker while batches run (stop a run's batches; look at an overdue one).

The client side is ``_dask``. This module is imported on every Dask worker, so it uses the
standard library only (and ``distributed``, which a Dask worker has, imported where used).

Times: a batch reads ``time.time()`` once when it starts and times its tasks on the worker's
``time.monotonic()`` *relative to the batch's start*: monotonic clocks of two machines are not
comparable, durations on one are exact. The client places a batch on its own clock by the
wall-clock anchor (see ``_dask.DaskRun._place``).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._engine._messages import Failure, safe_str

# The Dask event topic of batch starts: one for every run, as the scheduler keeps a log per topic.
TOPIC = "ploop"
_KEEP_FUNCTIONS = 8  # unpickled functions kept per worker process, by run
_KEEP_CANCELLED = 256  # runs told to stop, remembered per worker process

_FUNCTIONS: OrderedDict[str, Callable[[Any], Any]] = OrderedDict()
_CANCELLED: OrderedDict[str, None] = OrderedDict()
_STARTED: OrderedDict[str, set[int]] = OrderedDict()  # run -> its batches that started here
_RUNNING: dict[tuple[str, int], _Batch] = {}
# run -> its batches that finished here since this process last announced a start of it.
_FINISHED: OrderedDict[str, list[int]] = OrderedDict()
_LOCK = threading.Lock()  # guards the five above: batches run in several threads of a worker
# The run whose task this thread is running (``ploop.lock`` then takes a cluster-wide lock).
_CURRENT = threading.local()


@dataclass
class BatchDone:
    """What a batch did, sent back to the client as the Dask task's result.

    Attributes:
        seq: the batch's number in its run.
        worker: the Dask worker's address; ``name`` its name; ``pid`` its process.
        wall0: ``time.time()`` on the worker when the batch started.
        starts, ends: each task's start and end, seconds after the batch's start (worker's
            monotonic clock); ``cpu`` its CPU seconds (its thread's ``time.thread_time``).
        values: the pickled list of results of the tasks that ran (``None`` where one failed).
        failures: position in the batch -> the exception of a task that raised.
        ran: how many tasks ran; the rest were skipped because the run was stopped.
        fatal: set when nothing ran: the function (``where="function"``) or the arguments
            (``where="argument"``) could not be unpickled here.
    """

    seq: int
    worker: str
    name: str
    pid: int
    wall0: float
    starts: array[float] = field(default_factory=lambda: array("d"))
    ends: array[float] = field(default_factory=lambda: array("d"))
    cpu: array[float] = field(default_factory=lambda: array("d"))
    values: bytes = b""
    failures: dict[int, Failure] = field(default_factory=dict)
    ran: int = 0
    fatal: Failure | None = None


@dataclass
class Overdue:
    """The answer of :func:`look_at`: where a running batch is, and what it finished.

    Attributes:
        position: the position in the batch of the task running now.
        age: seconds it has been running (worker's monotonic clock).
        stack: the running thread's stack, when the batch was stopped.
        done: when the batch was stopped: what it finished so far (its values and timings),
            else ``None``.
        started: when the running task started, seconds after the batch's start.
    """

    position: int
    age: float
    stack: str = ""
    done: BatchDone | None = None
    started: float = 0.0


@dataclass
class _Batch:
    """A batch while it runs; :func:`look_at` reads it from the worker's event loop thread."""

    out: BatchDone
    thread: int
    mono0: float
    values: list[Any] = field(default_factory=list)
    position: int = 0  # the task running now; tasks before it have their times and values
    started: float = 0.0  # monotonic start of the task running now
    abandoned: bool = False  # the client gave up on it: run nothing more


def _worker_identity() -> tuple[str, str, Any]:
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):  # not in a Dask worker (unit tests call run_batch)
        return "", "local", None
    return str(w.address), str(w.name), w


def capture(exc: BaseException, where: str) -> Failure:
    """Describe ``exc`` so that it can cross to the client whatever it holds."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # this module's frames are not the user's business
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    blob: bytes | None
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)  # an exception can pickle and still fail to unpickle
    except Exception:
        blob = None
    name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    return Failure(name, safe_str(exc), text, where, blob)


def in_ploop_task() -> bool:
    """Whether this thread is running a task of a ploop run on a Dask worker (``_sync``
    then maps ``ploop.lock`` and ``ploop.semaphore`` to the cluster's semaphores)."""
    return getattr(_CURRENT, "token", None) is not None


def _function(token: str, blob: bytes) -> Callable[[Any], Any]:
    with _LOCK:
        cached = _FUNCTIONS.get(token)
        if cached is not None:
            _FUNCTIONS.move_to_end(token)
            return cached
    fn: Callable[[Any], Any] = pickle.loads(blob)  # cloudpickle's output: pickle loads it
    with _LOCK:
        _FUNCTIONS[token] = fn
        while len(_FUNCTIONS) > _KEEP_FUNCTIONS:
            _FUNCTIONS.popitem(last=False)
    return fn


def _announce(worker: Any, msg: dict[str, Any]) -> None:
    """Tell the client, through the scheduler, that this batch starts on this worker, and
    wait until the scheduler has it: the client learns of a worker's death from the scheduler
    too, after this event, so it knows whether the batch was running on a worker that died or
    only waiting there. (``Worker.log_event`` would batch the message, and a task that kills
    its worker at once would take it along.) The client also counts attempts and times
    overdue tasks by this event.

    It names the batches of the run that finished in this process since its last start
    announcement: the worker tells the scheduler that a task finished in a batched message,
    and a batch that kills the worker right after another one finished could take that
    message along; the scheduler then reports the finished batch as lost with the worker
    like the one that killed it, and the client must not blame it."""
    msg["worker"] = str(worker.address)
    with _LOCK:
        msg["finished"] = _FINISHED.pop(msg["token"], [])
    try:
        from distributed.utils import sync

        sync(worker.loop, worker.scheduler.log_event, topic=TOPIC, msg=msg)
    except Exception:  # an older scheduler, a broken connection: the batched way, then
        worker.log_event(TOPIC, msg)


def run_batch(fn_blob: bytes, token: str, seq: int, args_blob: bytes) -> BatchDone:
    """Run the function of run ``token`` on each pickled argument, in order, on this worker.

    A task that raises is recorded and the next one runs; when the client stops the run
    (:func:`cancel_run`) or gives up on this batch (:func:`look_at`), the tasks not started
    are skipped. Never raises for a task's sake: the Dask task fails only if the worker dies.
    """
    address, name, worker = _worker_identity()
    wall0, mono0 = time.time(), time.monotonic()
    out = BatchDone(seq, address, name, os.getpid(), wall0)
    if worker is not None:
        _announce(worker, {"token": token, "seq": seq, "t": wall0, "pid": out.pid})
    try:
        fn = _function(token, fn_blob)
    except Exception as exc:
        out.fatal = capture(exc, "function")
        return out
    try:
        args = pickle.loads(args_blob)
    except Exception as exc:
        out.fatal = capture(exc, "argument")
        return out
    state = _Batch(out, threading.get_ident(), mono0)
    with _LOCK:
        # Registered before its first look at the cancel flag: see cancel_run.
        _RUNNING[(token, seq)] = state
        _STARTED.setdefault(token, set()).add(seq)
        while len(_STARTED) > _KEEP_CANCELLED:
            _STARTED.popitem(last=False)
    _CURRENT.token = token
    try:
        _run(fn, args, token, state)
    finally:
        _CURRENT.token = None
        with _LOCK:
            _RUNNING.pop((token, seq), None)
    out.values = _pickle_values(state.values, out.failures)
    with _LOCK:
        _FINISHED.setdefault(token, []).append(seq)
        while len(_FINISHED) > _KEEP_CANCELLED:
            _FINISHED.popitem(last=False)
    return out


def _run(fn: Callable[[Any], Any], args: list[Any], token: str, state: _Batch) -> None:
    # The hot loop of tiny tasks: no lock; each field is written by this thread only, and
    # ``position`` last, so a reader (look_at) sees a consistent prefix.
    out, values = state.out, state.values
    clock, cpu_clock, mono0 = time.monotonic, time.thread_time, state.mono0
    for pos, arg in enumerate(args):
        if state.abandoned or token in _CANCELLED:
            break
        c0 = cpu_clock()
        t0 = state.started = clock()
        try:
            value = fn(arg)
        except BaseException as exc:  # SystemExit fails the task too, as in the local backend
            out.failures[pos] = capture(exc, "run")
            value = None
        t1 = clock()
        out.cpu.append(cpu_clock() - c0)
        out.starts.append(t0 - mono0)
        out.ends.append(t1 - mono0)
        values.append(value)
        out.ran = pos + 1
        state.started = t1  # before position: a reader never sees a finished task as running
        state.position = pos + 1


def _pickle_values(values: list[Any], failures: dict[int, Failure]) -> bytes:
    try:
        return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    for pos, value in enumerate(values):
        try:
            pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            failures[pos] = capture(exc, "result")
            values[pos] = None
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)


def cancel_run(token: str) -> list[int]:
    """Tell this worker's batches of run ``token`` to skip the tasks they have not started
    (run by the client on every worker with ``Client.run``); return the batches of the run
    that started in this process.

    Under one lock with the batches' registration, so that every batch of the run is either
    in the answer (it started: it returns with what it ran) or will see the flag before its
    first task (it runs nothing, and the client may cancel it and call its tasks not run).
    """
    with _LOCK:
        _CANCELLED[token] = None
        while len(_CANCELLED) > _KEEP_CANCELLED:
            _CANCELLED.popitem(last=False)
        return sorted(_STARTED.get(token, ()))


def look_at(token: str, seqs: list[int], limit: float | None) -> dict[int, Overdue]:
    """Where each of the batches ``seqs`` of run ``token`` that run in this worker process is.

    When a batch's running task has run longer than ``limit`` seconds (or ``limit`` is ``None``:
    stop it now), the batch is abandoned: it runs nothing after that task (which cannot be
    interrupted from outside and runs on), and the answer carries its stack and what the batch
    finished, which the client records since the Dask task's own result will never come.
    Runs in the worker's event loop thread (``Client.run``), while the batches' threads run.
    """
    found = {}
    for seq in seqs:
        with _LOCK:
            state = _RUNNING.get((token, seq))
        if state is not None:
            found[seq] = _look(state, limit)
    return found


def _task_stack(thread: int) -> str:
    """The stack of ``thread`` from the task's function down (Dask's frames above it cut)."""
    frame = sys._current_frames().get(thread)
    frames = traceback.extract_stack(frame) if frame is not None else []
    for i, f in enumerate(frames):
        if f.filename == __file__ and f.name == "_run":
            frames = frames[i + 1 :]
            break
    return "".join(traceback.format_list(frames))


def _look(state: _Batch, limit: float | None) -> Overdue:
    position = state.position
    age = time.monotonic() - state.started
    if limit is not None and age <= limit:
        return Overdue(position, age)
    state.abandoned = True
    if state.position != position and limit is not None:
        # The overdue task returned just now: let the batch go on (it may already have
        # seen the flag and stopped; then it reports the tasks it skipped as usual).
        state.abandoned = False
        return Overdue(state.position, 0.0)
    stack = _task_stack(state.thread)
    out = state.out
    position = state.position
    done = BatchDone(
        out.seq,
        out.worker,
        out.name,
        out.pid,
        out.wall0,
        out.starts[:position],
        out.ends[:position],
        out.cpu[:position],
        b"",
        {p: f for p, f in dict(out.failures).items() if p < position},
        position,
    )
    done.values = _pickle_values(list(state.values[:position]), done.failures)
    return Overdue(position, age, stack, done, state.started - state.mono0)


def kill_worker(dask_worker: Any) -> int:
    """In a nanny (``Client.run(..., nanny=True)``): SIGKILL its worker process, which the
    nanny then replaces; return the pid killed (0 if none). Used on a cluster ploop started
    for a worker left running a task that ploop gave up on."""
    pid = int(getattr(dask_worker, "pid", 0) or 0)
    if pid:
        os.kill(pid, signal.SIGKILL)
    return pid
