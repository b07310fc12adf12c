"""The main process's event loop for one run: dispatch, outcomes, ticks, termination.

One thread, one loop over a selector that watches every worker's socket (results), every
worker's process sentinel (death) and a wake-up pipe (signals). Each wake-up does one of:

- a worker's message: a chunk finished (values, failures, timings), or was rejected;
- a worker ended: the task it was running (read from its shared slot) is ``crashed`` or, if
  the loop killed it for running too long, ``timed_out``; the other tasks it held go back to
  the queue; its slot gets a fresh worker when there is work for it;
- a tick (``TICK_S``): sample resources, enforce timeouts and the drain deadline.

Termination is one ladder for every trigger: ``RUNNING -> DRAINING`` (no new chunks; workers
are told to cancel what they have not started; tasks in flight get ``grace`` seconds)
``-> TERMINATING`` (the busy workers and their children are killed) ``-> DONE`` (every task
taken from the input has exactly one outcome). A second Ctrl-C or a SIGTERM goes straight to
TERMINATING.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import pickle
import selectors
import signal
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from .._errors import PloopError, TaskTimeout, WorkerCrashed
from . import _metrics, _worker
from ._cpus import available_cpus
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
    Function,
    FunctionFailed,
    NoMore,
    Phase,
    Stop,
)
from ._outcomes import Outcomes, bounded_repr, rebuild
from ._record import RunRecord, WorkerInfo
from ._schedule import PROBE_BUDGET_S, Dynamic, Progress, make_scheduler, probe_size
from ._workers import InFlight, WorkerHandle, Workers, signal_name

TICK_S = 0.1
# Chunks per worker: one running and one waiting, so a worker never idles on a round trip
# (a lookahead task needs the second one, or NoMore); three when chunks are short, so that a
# main process that gets no CPU for a few milliseconds does not starve its workers.
PREFETCH = 2
PREFETCH_SHORT = 3
SHORT_TASK_S = 0.001
# Chunks of at least this many tasks of at most this long each run as batches.
BATCH_MIN_TASKS = 256
BATCH_MAX_TASK_S = 50e-6
MAX_STARTUP_DEATHS = 5
# Phases a task's timeout covers: unpickling its arguments and pickling its result run user
# code (``__reduce__``, ``__setstate__``) that can hang as well as the task itself can; a hang
# there was never timed out, and the run waited for ever.
_TIMED_PHASES = (Phase.LOADING, Phase.RUNNING, Phase.SENDING)
_JOBS = itertools.count(1)
_SEQS = itertools.count(1)


class State(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    TERMINATING = "terminating"
    DONE = "done"


@dataclass(frozen=True)
class RunOptions:
    """How one run behaves (validated by the API layer)."""

    workers: int
    timeout: float | None = None
    fail_fast: bool = False
    schedule: str = "dynamic"
    chunksize: int | None = None
    grace: float = 5.0
    max_ahead: int | None = None  # streaming: dispatched but not yet consumed, at most
    handle_signals: bool = True
    # Dispatch a list, tuple or range in this order of positions (longest-first scheduling);
    # tasks keep their input positions as indices.
    order: Sequence[int] | None = None
    threads_per_worker: int | None = None  # None: the CPUs over the workers; 0: no cap
    # The tasks of a chunk that finished before its worker died keep their outcome (passed,
    # without a value) instead of running again: for tasks that deliver what they do as they
    # go (``emit``), such as the pytest plugin's tests, which a second run would repeat.
    keep_finished: bool = False
    # The workers end with this run (``ploop.map``): one with nothing left to do is told to
    # stop at once, and its exit overlaps the last tasks of the others instead of adding to
    # the call's end.
    retire_idle: bool = False
    # The workers are forked for this run and the input is a list or tuple (``ploop.map``
    # under fork): each worker takes its tasks' arguments from its own copy of the input,
    # and the main process sends positions only. Nothing is pickled on the way in.
    inherit_items: bool = False
    # A stream's run (imap): Ctrl-C and SIGTERM are the run's only while it polls. Between
    # two results the consumer's own code runs, where they do what they do without the run
    # (KeyboardInterrupt raised there, SIGTERM's own action); the run's handlers, left in
    # place, swallowed both for as long as a stream was suspended or kept unfinished.
    signals_while_polling: bool = False


class _HoldsSignals(Protocol):
    options: RunOptions

    def _install_signals(self) -> None: ...

    def _restore_signals(self) -> None: ...


@contextlib.contextmanager
def signals_for_poll(run: _HoldsSignals) -> Iterator[None]:
    """Around what a stream's run does inside ``next()`` (``RunOptions.signals_while_polling``):
    its signal handlers, installed for that and restored after. Nothing for another run,
    which holds them from :meth:`Run.begin` to :meth:`Run.finish`."""
    if not run.options.signals_while_polling:
        yield
        return
    run._install_signals()
    try:
        yield
    finally:
        run._restore_signals()


def take_signals(handler: Callable[[int, FrameType | None], None], enabled: bool) -> dict[int, Any]:
    """Point SIGINT and SIGTERM at ``handler`` and return the handlers they had, for a run
    that acts on them. Not when ``enabled`` is false, off the main thread (Python allows
    handlers only there), or for a signal the process ignores (a background job of a script,
    nohup, a supervisor's choice): the run ignores it too, as the same code without workers
    would."""
    old: dict[int, Any] = {}
    if not enabled or threading.current_thread() is not threading.main_thread():
        return old
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) != signal.SIG_IGN:
            old[sig] = signal.signal(sig, handler)
    return old


class _Items(Sequence[Any]):
    """``seq[start:stop]`` without the copy: the arguments of a chunk whose worker holds
    the items, looked at only when a task needs naming or sending again."""

    __slots__ = ("seq", "start", "stop")

    def __init__(self, seq: Sequence[Any], start: int, stop: int) -> None:
        self.seq, self.start, self.stop = seq, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return list(self)[i]
            return _Items(self.seq, self.start + start, self.start + max(start, stop))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.seq[self.start + i]


def length_of(items: Iterable[Any]) -> int | None:
    """``len(items)`` when it has one (never consuming it), else ``None``: also when
    ``len()`` fails (``range(10**20)`` overflows it), as the iterable may still iterate."""
    try:
        return len(items)  # type: ignore[arg-type]
    except Exception:
        return None


class Run:
    """One function over one input on a set of workers; drive it with :meth:`poll`."""

    def __init__(
        self,
        workers: Workers,
        fn: Callable[..., Any],
        items: Iterable[Any],
        options: RunOptions,
        progress: Callable[[int, int | None], None] | None = None,
        *,
        begin: bool = True,
    ) -> None:
        """Set the run up; with ``begin`` (the default) also :meth:`begin` it."""
        self.workers = workers
        self.fn = fn
        self.options = options
        self.total = length_of(items)
        self.it: Iterator[Any] = iter(items)
        # A list, tuple or range is cut by slicing (a range slice pickles in a few bytes).
        sliceable = type(items) in (list, tuple, range) and self.total is not None
        self._seq: Sequence[Any] | None = items if sliceable else None  # type: ignore[assignment]
        if options.order is not None:
            if self._seq is None:
                raise TypeError("an order of dispatch needs a list, tuple or range of items")
            if sorted(options.order) != list(range(len(self._seq))):
                raise ValueError("the order of dispatch must name every position once")
        self.job = next(_JOBS)
        self.scheduler = make_scheduler(options.schedule, options.chunksize, self.total)
        self.outcomes = Outcomes()
        self.record = RunRecord(options.workers, workers.start_method, time.monotonic())
        self.progress = progress
        self.state = State.RUNNING
        self.stop_reason = ""
        self.fatal: BaseException | None = None
        self.interrupted: int | None = None
        self.consumed = 0
        self.exhausted = False
        self.delivered = 0  # for max_ahead: tasks the consumer has taken
        self._peeked: deque[Any] = deque()
        self.emitted: deque[tuple[int, str, Any]] = deque()  # (task index, worker, payload)
        # index, argument, isolate (one a chunk), fresh (it goes pickled: see _chunk_done)
        self._retry: deque[tuple[int, Any, bool, bool]] = deque()
        # Tasks to run again that had finished on a worker which died before it reported
        # them: what a not_run reason says of them if the run stops first.
        self._lost: dict[int, str] = {}
        # Tasks a probe did not start (its time ran out): (indices, arguments), to send again.
        self._returned: deque[tuple[Sequence[int], Sequence[Any]]] = deque()
        self._returned_n = 0
        # Chunks probe (see _schedule.PROBE_TASKS) under the dynamic policy, on an input cut
        # by slicing, without a timeout (a probe's tasks share one start time), and never for
        # a lookahead function (its chunk's last task is told which task follows it).
        self._probes = (
            isinstance(self.scheduler, Dynamic)
            and sliceable
            and options.timeout is None
            and not getattr(fn, _worker.LOOKAHEAD, False)
        )
        self._mean_task_s: float | None = None
        self._busy_sum = 0.0
        self._tasks_sum = 0.0
        self._startup_deaths = 0
        self._payload: bytes | None = None
        self._starts_pending = False  # workers still to start once poll() has looked round
        # A lookahead run's first chunk for each worker still to start (see _dispatch).
        self._reserved: dict[int, InFlight] = {}
        if workers.start_method != "fork":
            # Fail now, before any process starts, and before the run opens its wake-up pipe
            # and selector: nothing would close them (they leaked on every such call).
            self._function_payload()
        self._drain_deadline = 0.0
        # The first tick comes TICK_S in: at the start it took 0.7 ms (psutil reading /proc)
        # between one worker's fork and the next, for a first sample whose CPU reading is
        # empty (it starts the interval) and whose memory is the fork's.
        self._next_tick = time.monotonic() + TICK_S
        self._signals: list[int] = []
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup = -1
        self._sampler = _metrics.Sampler()
        self._selector = selectors.DefaultSelector()
        self._masks: dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        _worker.PARENT_FDS.update((self._wake_r, self._wake_w))
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        # key.data is (kind, worker or None)
        if workers.start_method == "fork":
            _worker.INHERITED[self.job] = fn
        # (A range is cut into ranges, which pickle in a few bytes. Workers running already
        # were forked before this input existed.)
        self._inherit = (
            options.inherit_items
            and workers.start_method == "fork"
            and type(self._seq) in (list, tuple)
            and not workers.live()
        )
        if self._inherit:
            _worker.INHERITED_ITEMS[self.job] = self._seq  # type: ignore[assignment]
        workers.count = options.workers
        threads = options.threads_per_worker
        workers.threads = available_cpus() // options.workers or 1 if threads is None else threads
        for w in workers.live():
            self._watch(w)
        self._finished = False
        self._after_grace = False  # busy workers were terminated when the grace ran out
        if begin:
            self.begin()

    def begin(self) -> None:
        """Take the first tasks from the input and start workers for them."""
        if not self.options.signals_while_polling:
            self._install_signals()  # held until finish()
        try:
            with signals_for_poll(self):
                self._fill()
                self._check_done()
        except BaseException:
            # The input (a generator that raises) or a worker's start can fail here: without
            # this the signal handlers stayed replaced (Ctrl-C then did nothing) and the
            # wake-up pipe leaked, when the caller did not finish the run.
            self.finish()
            raise

    # -- driving ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def poll(self, timeout: float = TICK_S) -> None:
        """Wait up to ``timeout`` for events and act on them."""
        if self.done:
            return
        if self._starts_pending and self.state is State.RUNNING:
            timeout = 0
        with signals_for_poll(self):
            self._poll(timeout)

    def _poll(self, timeout: float) -> None:
        for key, mask in self._selector.select(timeout):
            kind, w = key.data
            if w is None:
                with contextlib.suppress(OSError):
                    while os.read(self._wake_r, 512):
                        pass
                continue
            if kind == "chan":
                if mask & selectors.EVENT_WRITE:
                    w.channel.flush()
                if mask & selectors.EVENT_READ:
                    for msg in w.channel.read():
                        if not self._current(w):
                            # An earlier message of this batch settled the worker (a function
                            # it could not load stops the run and kills it): what it sent
                            # after that (the chunk it skipped) belongs to no chunk in flight.
                            break
                        self._on_message(w, msg)
                if w.channel.closed and self._current(w):
                    if not w.retiring:  # (one told to stop is not waited for: see _on_death)
                        w.process.join(timeout=1.0)  # EOF: its sentinel follows at once
                    self._on_death(w)
            elif self._current(w):  # its sentinel: the process ended
                self._on_death(w)
        self._on_signals()
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            self._tick(now)
        self._fill()
        self._check_done()
        self._update_masks()

    def run_to_end(self) -> None:
        """Poll until every task has its outcome."""
        while not self.done:
            self.poll()

    def abort(self, reason: str) -> None:
        """Stop now: kill busy workers; every task without an outcome is ``not_run``."""
        if self.done:
            return
        self._stop(reason)
        self._terminate_busy()
        self._check_done()

    def finish(self) -> None:
        """Close the run's bookkeeping (always call, also after an error; once is enough)."""
        if self._finished:
            return
        self._finished = True
        if self.state is not State.DONE:
            self.abort(self.stop_reason or "the run ended early")
        self.record.ended = time.monotonic()
        self.record.counts = self.outcomes.counts.copy()
        for wid, pids in self.workers.pids.items():
            info = self.record.worker_info.setdefault(wid, WorkerInfo(wid))
            info.pids = list(pids)
            info.restarts = self.workers.restarts.get(wid, 0)
        self._restore_signals()
        self.workers.resume_threads()
        _worker.INHERITED.pop(self.job, None)
        _worker.INHERITED_ITEMS.pop(self.job, None)
        for fd in (self._wake_r, self._wake_w):
            _worker.PARENT_FDS.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._selector.close()

    # -- dispatch -----------------------------------------------------------------------

    def _has_work(self) -> bool:
        if self._retry or self._peeked or self._returned:
            return True
        if self.exhausted:
            return False
        if self._seq is not None:
            self.exhausted = self.consumed >= len(self._seq)
            return not self.exhausted
        try:
            self._peeked.append(next(self.it))
        except StopIteration:
            self.exhausted = True
            return False
        return True

    def _fill(self) -> None:
        self._starts_pending = False  # set again by _dispatch if it left a start for later
        if self.state is not State.RUNNING:
            return
        self._dispatch()
        no_more = not self._has_work()
        for w in self.workers.live():
            # Tell each busy worker that nothing follows what it holds (a lookahead task,
            # the plugin's, waits for that before it tears its fixtures down).
            if w.inflight and not w.told_no_more and no_more:
                w.channel.queue(NoMore(self.job))
                w.told_no_more = True
        if no_more and self.options.retire_idle and not self._reserved:
            # No work is left for any worker: each leaves once it has run what it holds, and
            # its exit overlaps the others' last tasks and the main process's reading of the
            # results, instead of waiting for a Stop after them.
            for w in self.workers.live():
                # (Not while it holds a probe, which may send tasks back.)
                if not w.retiring and not any(c.budget for c in w.inflight):
                    w.channel.queue(Stop(unless_needed=True))
                    w.retiring = True

    def _dispatch(self) -> None:
        n = self.options.workers
        mean = self._mean_task_s
        short = mean is not None and mean < SHORT_TASK_S and self.options.chunksize is None
        # A lookahead task needs the chunk after its successor in flight too, or every task
        # would wait for a round trip to the main process before it starts.
        lookahead = getattr(self.fn, _worker.LOOKAHEAD, False)
        started = False
        for depth in range(PREFETCH_SHORT if short or lookahead else PREFETCH):
            if depth > 1 and self._reserved:
                # Until every worker started, a running one gets no more than the chunk its
                # first task needs: the chunks hand out in the order they did before.
                return
            for i in range(n):
                w = self.workers.get(i)
                if w is not None and (w.retiring or len(w.inflight) > depth):
                    continue  # (a retiring worker is on its way out: it takes nothing more)
                if w is None and started:
                    # One start per pass: a fork takes milliseconds (tens, in a large
                    # process), and workers already running would finish their first tasks
                    # and idle while the main process forked the rest. poll() comes back
                    # at once to start the next. No chunk goes deeper into a queue before
                    # every worker has its first: the first tasks spread as they did.
                    if not lookahead:
                        self._starts_pending = True
                        return
                    # A lookahead task cannot start before the chunk after it arrives: the
                    # first chunk of each worker still to start is set aside now, in slot
                    # order, and the running workers get their next chunks at once. (They
                    # waited for the last worker's start before: 30 ms with 8 workers, and
                    # then every worker started its first test at the same moment.)
                    if depth == 0 and i not in self._reserved:
                        chunk = self._take_chunk()
                        if chunk is not None:
                            self._reserved[i] = chunk
                    if i in self._reserved:
                        self._starts_pending = True
                    continue
                chunk = self._reserved.get(i) if w is None else None
                if chunk is None:
                    chunk = self._take_chunk()
                    if chunk is None:
                        if self._reserved:
                            continue  # workers still to start with their reserved chunks
                        return
                if w is None:
                    w = self.workers.start(i)
                    self._reserved.pop(i, None)
                    self._watch(w)
                    started = True
                self._send(w, chunk)

    def _take_chunk(self) -> InFlight | None:
        """The next chunk of fresh or retried tasks, or ``None`` when there is none now."""
        # Tasks to run again go out even while a stream holds back: they were taken from
        # the input already, and its consumer may be waiting for one of them. (It waited
        # for ever on the tasks of a crashed chunk that came first in input order.)
        while self._retry or self._returned or (self._has_work() and not self._held_back()):
            chunk = self._next_chunk()
            if chunk is not None:
                return chunk
        return None

    def _held_back(self) -> bool:
        ahead = self.options.max_ahead
        return ahead is not None and self.consumed - self.delivered >= ahead

    def _next_chunk(self) -> InFlight | None:
        indices, args, budget, fresh = self._take()
        blob = None  # (the worker takes the arguments from its copy of the input)
        if not self._inherit or fresh:
            try:
                blob = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                kept = [(i, a) for i, a in zip(indices, args, strict=True) if self._picklable(i, a)]
                if not kept:
                    return None
                indices, args = tuple(i for i, _ in kept), [a for _, a in kept]
                blob = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        batch = self._batch(len(indices))
        return InFlight(self.job, next(_SEQS), indices, blob, batch, budget, args)

    def _batch(self, n: int) -> bool:
        """Whether a chunk of ``n`` tasks runs as a batch (see ``_worker._Loop._run_batch``)."""
        mean = self._mean_task_s
        return (
            n >= BATCH_MIN_TASKS
            and mean is not None
            and mean < BATCH_MAX_TASK_S
            and self.options.timeout is None
            and not getattr(self.fn, _worker.LOOKAHEAD, False)
        )

    def _take(self) -> tuple[range | tuple[int, ...], Sequence[Any], float, bool]:
        """The next chunk's task indices, arguments, time budget (a probe's, or 0), and
        whether its arguments must travel pickled although the workers hold the input."""
        remaining = None if self.total is None else self.total - self.consumed + self._returned_n
        size = self.scheduler.chunk_size(
            Progress(remaining, self.options.workers, self._mean_task_s)
        )
        if self._retry:
            # Tasks to run again go in chunks no larger than fresh ones (with chunksize=1,
            # one by one): a chunk's finished tasks are re-run if its worker dies.
            index, arg, isolate, fresh = self._retry.popleft()
            pairs = [(index, arg)]
            limit = min(size, 64)
            while not isolate and self._retry and not self._retry[0][2] and len(pairs) < limit:
                index, arg, _, _ = self._retry.popleft()
                pairs.append((index, arg))
            return tuple(i for i, _ in pairs), [a for _, a in pairs], 0.0, fresh
        if self._returned:
            indices, arguments = self._returned[0]
            if len(indices) > size:
                self._returned[0] = (indices[size:], arguments[size:])
                indices, arguments = indices[:size], arguments[:size]
            else:
                self._returned.popleft()
            self._returned_n -= len(indices)
            return indices, arguments, 0.0, False  # type: ignore[return-value]
        budget = 0.0
        if self._probes and self._mean_task_s is None and remaining:
            arg_bytes = 1 if self._inherit else self._next_arg_bytes()  # (nothing pickled)
            size = probe_size(remaining, self.options.workers, arg_bytes)
            budget = PROBE_BUDGET_S if size > 1 else 0.0
        if self.options.max_ahead is not None:
            size = max(1, min(size, self.options.max_ahead - (self.consumed - self.delivered)))
        start = self.consumed
        if self._seq is not None:
            order = self.options.order
            if order is not None:
                picked = tuple(order[start : start + size])
                self.consumed += len(picked)
                self.exhausted = self.consumed >= len(self._seq)
                return picked, [self._seq[i] for i in picked], budget, False
            if self._inherit:
                stop = min(start + size, len(self._seq))
                self.consumed = stop
                self.exhausted = stop >= len(self._seq)
                return range(start, stop), _Items(self._seq, start, stop), budget, False
            seq_args = self._seq[start : start + size]
            self.consumed += len(seq_args)
            self.exhausted = self.consumed >= len(self._seq)
            return range(start, self.consumed), seq_args, budget, False
        args = list(self._peeked)
        self._peeked.clear()
        if len(args) < size and not self.exhausted:
            try:
                args.extend(itertools.islice(self.it, size - len(args)))
            except BaseException:
                # The items taken before the input raised are tasks like any other: they
                # were dropped without an outcome.
                self._peeked.extend(args)
                raise
            finally:
                if len(args) < size:
                    self.exhausted = True
        self.consumed += len(args)
        return range(start, start + len(args)), args, 0.0, False

    def _next_arg_bytes(self) -> int:
        """The pickled size of the next fresh argument (a probe's measure); one that cannot
        be pickled counts as huge, so that its probe is that one task."""
        assert self._seq is not None
        order = self.options.order
        position = order[self.consumed] if order is not None else self.consumed
        try:
            return len(pickle.dumps(self._seq[position], protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            return 1 << 62

    def _picklable(self, index: int, arg: Any) -> bool:
        try:
            pickle.dumps(arg, protocol=pickle.HIGHEST_PROTOCOL)
            return True
        except Exception as exc:
            error = PloopError(
                f"the argument of task {index} cannot be pickled to send it to a worker: "
                f"{type(exc).__name__}: {exc}. Pass picklable arguments (plain data, or objects "
                "whose classes are defined at module level), or open resources inside the task"
            )
            error.__cause__ = exc
            self.outcomes.fail(index, "failed", bounded_repr(arg), error, str(error))
            self._after_failure()
            return False

    def _function_payload(self) -> bytes:
        if self._payload is None:
            try:
                self._payload = pickle.dumps(self.fn, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                import cloudpickle  # lambdas, closures, functions of __main__

                try:
                    self._payload = cloudpickle.dumps(self.fn)
                except Exception as exc:
                    raise PloopError(
                        f"the function {self.fn!r} cannot be pickled to send it to the workers "
                        f"(start_method={self.workers.start_method!r}): {type(exc).__name__}: "
                        f"{exc}. Use start_method='fork', or a function that does not hold "
                        "unpicklable state (open files, locks, sockets)"
                    ) from exc
        return self._payload

    def _send(self, w: WorkerHandle, chunk: InFlight) -> None:
        if self.job not in w.jobs:
            inherited = self.job in _worker.INHERITED and w.started_with_job(self.job)
            w.channel.queue(Function(self.job, None if inherited else self._function_payload()))
            w.jobs.add(self.job)
        w.channel.queue(
            Chunk(chunk.job, chunk.seq, chunk.indices, chunk.args, chunk.batch, chunk.budget)
        )
        w.inflight.append(chunk)
        w.told_no_more = False
        w.tasks_sent += len(chunk.indices)

    def _requeue(self, index: int, arg: Any, isolate: bool, fresh: bool = False) -> None:
        if self.state is State.RUNNING:
            self._retry.append((index, arg, isolate, fresh))
        else:
            self.outcomes.not_run(index, bounded_repr(arg), self._why_not_run(index))

    def _why_not_run(self, index: int) -> str:
        lost = self._lost.get(index)
        return self.stop_reason if lost is None else f"{self.stop_reason} ({lost})"

    # -- events -------------------------------------------------------------------------

    def _on_message(self, w: WorkerHandle, msg: Any) -> None:
        match msg:
            case ChunkDone():
                self._chunk_done(w, msg)
            case Emitted():
                if msg.job == self.job:
                    self.emitted.append((msg.index, w.id, pickle.loads(msg.payload)))
            case ChunkRejected():
                chunk = w.inflight.popleft()
                args = chunk.arguments
                if len(chunk.indices) == 1:
                    exc = rebuild(msg.failure)
                    index, arg = chunk.indices[0], args[0]
                    self.outcomes.fail(
                        index, "failed", bounded_repr(arg), exc, msg.failure.traceback, w.id
                    )
                    self._after_failure()
                else:  # find the argument that cannot be unpickled: one task a chunk
                    for index, arg in zip(chunk.indices, args, strict=True):
                        self._requeue(index, arg, True)
            case FunctionFailed():
                f = msg.failure
                self.fatal = PloopError(
                    f"the function {self.fn!r} could not be loaded in worker {w.id} "
                    f"(start_method={self.workers.start_method!r}): {f.type_name}: {f.message}. "
                    "Define it at module level in a module the workers can import, or use "
                    "start_method='fork'"
                )
                self.fatal.__cause__ = rebuild(f)
                self._stop("the function could not be loaded in a worker")
                self._terminate_busy()

    def _chunk_done(self, w: WorkerHandle, msg: ChunkDone) -> None:
        chunk = w.inflight.popleft()
        assert chunk.seq == msg.seq, (chunk.seq, msg.seq)
        n = len(chunk.indices)
        ran = n - msg.skipped if msg.batch_end is not None else len(msg.ends)
        failures = dict(msg.failures)
        try:
            values: list[Any] = pickle.loads(msg.values)
        except Exception as exc:
            if n > 1:
                # The chunk's results travel as one pickled list, so one result that cannot
                # be unpickled here spoils the others too. Run the chunk's tasks again, one a
                # chunk (as after a crash): then only that task fails, with its own error.
                # Pickled: a worker holding the input may have run them, and a task that
                # changed its item there would run again on the changed item.
                for index, arg in zip(chunk.indices, chunk.arguments, strict=True):
                    self._requeue(index, arg, True, fresh=True)
                return
            values = [None] * n
            failures.update({p: _result_failure(exc) for p in range(ran) if p not in failures})
        indices = chunk.indices if ran == n else chunk.indices[:ran]
        if ran < n and chunk.budget and self.state is State.RUNNING:
            # A probe whose time ran out: the tasks it did not start go out again.
            self._returned.append((chunk.indices[ran:], chunk.arguments[ran:]))
            self._returned_n += n - ran
            n = ran
        if failures or ran < n:
            args = chunk.arguments
            for pos, f in sorted(failures.items()):
                self.outcomes.fail(
                    chunk.indices[pos],
                    "failed",
                    bounded_repr(args[pos]),
                    rebuild(f),
                    f.traceback,
                    w.id,
                )
            for pos in range(ran, n):
                self.outcomes.not_run(
                    chunk.indices[pos], bounded_repr(args[pos]), self.stop_reason or "cancelled"
                )
        if ran:
            self.outcomes.passed(indices, values if ran == n else values[:ran], frozenset(failures))
            batch = msg.batch_end is not None
            self.record.tasks.add(
                indices,
                w.id,
                msg.start,
                None if batch else msg.ends,
                msg.cpu,  # (one figure for a batch: the record shares it out when read)
                dict.fromkeys(failures, "failed"),
                msg.starts,
                msg.batch_end,
            )
            busy = (msg.batch_end if msg.batch_end is not None else msg.ends[-1]) - msg.start
            info = self.record.worker_info.setdefault(w.id, WorkerInfo(w.id))
            info.tasks += ran
            info.busy_s += busy
            # A task-weighted mean with decay: one slow first call (imports, warm-up) in a
            # chunk of one must not hold the chunk size down for the thousands that follow.
            self._busy_sum = 0.7 * self._busy_sum + busy
            self._tasks_sum = 0.7 * self._tasks_sum + ran
            self._mean_task_s = self._busy_sum / self._tasks_sum
            w.tasks_done += ran
        if failures:
            self._after_failure()

    def _after_failure(self) -> None:
        if self.options.fail_fast:
            self._stop("fail_fast: an earlier task failed")

    def _current(self, w: WorkerHandle) -> bool:
        """Whether ``w`` is still the worker in its slot (not already settled)."""
        return self.workers.get(w.index) is w

    def _on_death(self, w: WorkerHandle) -> None:
        """Settle the tasks of a worker whose process ended, and free its slot."""
        if not self._current(w):
            return
        if w.retiring and w.inflight and not w.channel.closed:
            # It left after its last chunk: the results it sent before that may be unread.
            for msg in w.channel.read():
                if not self._current(w):
                    return
                self._on_message(w, msg)
            if not self._current(w):
                return
        if w.retiring and not w.inflight:
            # Told to stop (retire_idle), it closed its end or exited: no death. Its slot is
            # free now; the process, on its way out, is joined when the workers close.
            self._unwatch(w)
            self._sampler.forget(w.pid)
            self.workers.retire(w)
            return
        w.process.join(timeout=1.0)
        code = w.process.exitcode
        phase, seq = int(w.slot[SLOT_PHASE]), int(w.slot[SLOT_SEQ])
        marker = int(w.slot[SLOT_MARKER])
        running, started = int(w.slot[SLOT_INDEX]), w.slot[SLOT_START]
        inflight = list(w.inflight)
        w.inflight.clear()
        self._unwatch(w)
        detail = w.dump_text().strip()
        left = self._sampler.forget(w.pid)
        self.workers.discard(w)
        # What the dead worker started and its group's kill did not reach (a test's server
        # in a session of its own), as far as the samples saw it.
        _metrics.kill_all(_metrics.alive(left), signal.SIGKILL)
        if w.tasks_done == 0 and phase == Phase.IDLE and seq == 0 and w.killed_for is None:
            self._died_at_start(w, code, detail)
        else:
            self._startup_deaths = 0
        if not inflight:
            return
        first, rest = inflight[0], inflight[1:]
        args = first.arguments
        on_first = seq == first.seq
        if w.killed_for == "terminate":
            for index, arg in zip(first.indices, args, strict=True):
                why = self.stop_reason
                if on_first and phase == Phase.RUNNING and index == running:
                    why += (
                        f"; still running after the {self.options.grace:g}s grace, terminated"
                        if self._after_grace
                        else "; it was running, and was terminated"
                    )
                self.outcomes.not_run(index, bounded_repr(arg), why)
        elif on_first and phase == Phase.RUNNING and running in first.indices:
            # A chunk's tasks run in its order: those before the running one finished.
            ran = first.indices.index(running)
            done = ran if self.options.keep_finished else 0
            if done:
                self.outcomes.passed(first.indices[:done], [None] * done, frozenset())
            # (Those not kept run again, or are not run if the run stops first.)
            self._lost.update(dict.fromkeys(first.indices[done:ran], self._lost_note(w, running)))
            for index, arg in zip(first.indices[done:], args[done:], strict=True):
                if index != running:
                    self._requeue(index, arg, False)
                    continue
                self._blame(w, index, arg, code, started, detail, marker)
        elif on_first and phase != Phase.IDLE and len(first.indices) == 1:
            self._blame(w, first.indices[0], args[0], code, started, detail, marker)
        elif on_first and first.budget and phase == Phase.BATCH and running in first.indices:
            # A probe names the first task of the group it runs: those before it passed (their
            # results died with the worker) and run again; the group's run one by one.
            k = first.indices.index(running)
            self._lost.update(dict.fromkeys(first.indices[:k], self._lost_note(w, running)))
            for p, (index, arg) in enumerate(zip(first.indices, args, strict=True)):
                self._requeue(index, arg, k <= p < k + PROBE_GROUP)
        else:  # died between tasks: try them again one by one to find the culprit
            for index, arg in zip(first.indices, args, strict=True):
                self._requeue(index, arg, on_first and phase != Phase.IDLE)
        for chunk in rest:
            for index, arg in zip(chunk.indices, chunk.arguments, strict=True):
                self._requeue(index, arg, False)

    @staticmethod
    def _lost_note(w: WorkerHandle, running: int) -> str:
        return f"it had run on {w.id}, which died in task {running} before reporting it"

    def _died_at_start(self, w: WorkerHandle, code: int | None, detail: str) -> None:
        """A worker that dies before its first task would die again in its place: after a
        few in a row, stop the run with the reason instead of forking forever."""
        self._startup_deaths += 1
        if self._startup_deaths < MAX_STARTUP_DEATHS or self.fatal is not None:
            return
        how = f"killed by {signal_name(code)}" if signal_name(code) else f"exit code {code}"
        self.fatal = PloopError(
            f"worker processes die as they start ({self._startup_deaths} in a row, the last "
            f"{how}, start_method={self.workers.start_method!r})"
            + (f":\n{detail}" if detail else "")
        )
        self._stop("the workers could not start")

    def _blame(
        self,
        w: WorkerHandle,
        index: int,
        arg: Any,
        code: int | None,
        started: float,
        detail: str,
        marker: int,
    ) -> None:
        now = time.monotonic()
        exc: BaseException
        if w.killed_for == "timeout":
            assert self.options.timeout is not None
            exc = TaskTimeout(index, self.options.timeout, w.timeout_stack)
            exc.marker = marker if marker >= 0 else None
            kind = "timed_out"
        else:
            sig = signal_name(code)
            if sig == "SIGKILL" and w.killed_for is None:
                detail = _oom_hint(w.last_rss) + detail
            exc = WorkerCrashed(index, None if sig else code, sig, detail)
            exc.marker = marker if marker >= 0 else None
            kind = "crashed"
        self.outcomes.fail(index, kind, bounded_repr(arg), exc, str(exc), w.id)  # type: ignore[arg-type]
        self.record.tasks.add((index,), w.id, started, array("d", (now,)), (0.0,), {0: kind})
        info = self.record.worker_info.setdefault(w.id, WorkerInfo(w.id))
        info.tasks += 1
        info.busy_s += now - started
        self._after_failure()

    def _tick(self, now: float) -> None:
        live = self.workers.live()
        if live:
            samples = self._sampler.sample({w.id: w.pid for w in live})
            self.record.samples.extend(samples)
            rss = {s.worker: s.rss for s in samples}
            for w in live:
                w.last_rss = rss.get(w.id, w.last_rss)
        timeout = self.options.timeout
        if timeout is not None:
            for w in live:
                if (
                    w.inflight
                    and int(w.slot[SLOT_PHASE]) in _TIMED_PHASES
                    and now - w.slot[SLOT_START] > timeout
                ):
                    w.timeout_stack = self.workers.signal_stack_dump(w)
                    w.killed_for = "timeout"
                    self.workers.kill([w])
                    self._on_death(w)
        if self.state is State.DRAINING and now >= self._drain_deadline:
            self._after_grace = True
            self._terminate_busy()
        if self.progress is not None:
            self.progress(self.outcomes.settled, self.total)

    # -- stopping -----------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop dispatching and drain: tasks in flight get the grace period (see the ladder)."""
        self._stop(reason)

    def _stop(self, reason: str) -> None:
        if self.state is not State.RUNNING:
            return
        self.state = State.DRAINING
        self.stop_reason = reason
        self._drain_deadline = time.monotonic() + self.options.grace
        for w in self.workers.live():
            if w.inflight:
                w.channel.queue(Cancel(self.job))
        while self._retry:
            index, arg, _, _ = self._retry.popleft()
            self.outcomes.not_run(index, bounded_repr(arg), self._why_not_run(index))
        while self._returned:
            indices, arguments = self._returned.popleft()
            for index, arg in zip(indices, arguments, strict=True):
                self.outcomes.not_run(index, bounded_repr(arg), reason)
        self._returned_n = 0
        while self._peeked:
            arg = self._peeked.popleft()
            self.outcomes.not_run(self.consumed, bounded_repr(arg), reason)
            self.consumed += 1
        for chunk in self._reserved.values():  # set aside for workers never started
            for index, arg in zip(chunk.indices, chunk.arguments, strict=True):
                self.outcomes.not_run(index, bounded_repr(arg), reason)
        self._reserved.clear()

    def _terminate_busy(self) -> None:
        busy = [w for w in self.workers.live() if w.inflight]
        if not busy:
            return
        self.state = State.TERMINATING
        for w in busy:
            w.killed_for = "terminate"
        self.workers.kill(busy, wait_s=1.0)
        for w in busy:
            self._on_death(w)

    def _check_done(self) -> None:
        if self.state is State.DONE:
            return
        busy = any(w.inflight for w in self.workers.live())
        if busy:
            return
        pending = (
            self._retry or self._peeked or self._reserved or self._returned or not self.exhausted
        )
        if self.state is State.RUNNING and pending:
            return
        self.state = State.DONE

    @property
    def not_consumed(self) -> int | None:
        """Input items never taken from the input (``None`` when its length is unknown)."""
        if self.total is None:
            return 0 if self.exhausted else None
        return self.total - self.consumed

    # -- selector and signals -----------------------------------------------------------

    def _watch(self, w: WorkerHandle) -> None:
        self._selector.register(w.channel.fileno(), selectors.EVENT_READ, ("chan", w))
        self._selector.register(w.process.sentinel, selectors.EVENT_READ, ("sentinel", w))
        self._masks[w.channel.fileno()] = selectors.EVENT_READ

    def _unwatch(self, w: WorkerHandle) -> None:
        for fd in (w.channel.fileno(), w.process.sentinel):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)
        self._masks.pop(w.channel.fileno(), None)

    def _update_masks(self) -> None:
        for w in self.workers.live():
            fd = w.channel.fileno()
            if fd not in self._masks:
                continue
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if w.channel.wants_write else 0)
            if self._masks[fd] != want:
                self._selector.modify(fd, want, ("chan", w))
                self._masks[fd] = want

    def _install_signals(self) -> None:
        self._old_handlers = take_signals(self._on_signal, self.options.handle_signals)
        if self._old_handlers:
            self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _restore_signals(self) -> None:
        if not self._old_handlers:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)  # act on it in the loop, never in the handler

    def _on_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            first = self.interrupted is None
            self.interrupted = sig if first or sig == signal.SIGTERM else self.interrupted
            if sig == signal.SIGINT and first:
                self._stop("interrupted (Ctrl-C); press Ctrl-C again to stop at once")
            else:
                self._stop("terminated by SIGTERM" if sig == signal.SIGTERM else "interrupted")
                self._terminate_busy()


def _oom_hint(rss: int) -> str:
    """Why a worker nobody here killed may have got SIGKILL: usually the kernel's OOM killer."""
    gib = 1 << 30
    try:
        available = _metrics.available_memory()
    except Exception:
        available = 0
    seen = f" Its last sampled memory (RSS) was {rss / gib:.2f} GiB." if rss else ""
    free = f" {available / gib:.2f} GiB are available now." if available else ""
    return f"Killed by the OOM killer?{seen}{free} The kernel log tells (dmesg).\n"


def _result_failure(exc: Exception) -> Any:
    from ._worker import capture

    return capture(exc, "result")
