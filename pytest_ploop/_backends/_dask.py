"""Runs on a Dask distributed cluster: the same tasks, outcomes and run record as the local
backend, executed by Dask's workers (imported only when ``backend="dask"`` is used).

::

    DaskRun, in this process (one thread)                 a Dask worker
    -------------------------------------                 -------------
    input -> batches (pickled arguments) --submit-->      run_batch (_dask_task):
      pure=False, retries=0                                 log a "start" event,
                                                            run and time each task
    as_completed (the client's loop thread) <--BatchDone-- values pickled per batch
    poll(): results, start events, signals, tick
      tick: overdue tasks (look_at on the worker), the drain deadline,
            worker metrics from the scheduler, progress
    stop:   cancel_run on every worker (batches skip what they have not started),
            cancel the futures of batches that have not started

Batches: Dask costs about a millisecond per task, so tasks travel in batches sized, like the
local ``dynamic`` schedule, from the measured task time to take ``TARGET_BATCH_S`` each.

A worker lost mid-task: Dask reports ``KilledWorker`` (a cluster started here has
``allowed-failures=0``: no silent reruns) for every task the worker held, running or waiting.
A batch announces its start through the scheduler before its first task, and the death comes
after that announcement on the same stream, so the run knows which batches were running on
the dead worker. One that was only waiting is submitted again as it is. A batch of one task
that ran alone in its worker process is ``crashed``. A batch of several tasks is run again in
parts, as the local backend does when it cannot tell which task killed a worker, until the
task is alone. Every attempt is counted (``DaskRun.attempts``), including the reruns Dask
makes itself (a cluster with ``allowed-failures`` above 0; a result lost with its worker).

The module is longer than most: ``DaskRun`` is one state machine (dispatch, results, a lost
worker, timeouts, the stop ladder) over shared state, as ``_engine._pool.Run`` is; its
methods each fit on a screen.

Times: tasks are timed on the worker's monotonic clock relative to their batch's start, and
the batch is placed on this process's ``time.monotonic()`` by its ``time.time()`` anchor,
then moved into the interval between its submission and its result's arrival when the two
machines' wall clocks disagree (see :meth:`DaskRun._place`).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import pickle
import signal
import time
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import cloudpickle
import dask
import distributed
from distributed.core import Status

from .._engine._outcomes import Outcomes, bounded_repr, rebuild
from .._engine._pool import RunOptions, length_of, signals_for_poll, take_signals
from .._engine._record import RunRecord, Sample, WorkerInfo
from .._engine._schedule import Dynamic, Progress, Scheduler, make_scheduler
from .._errors import PloopError, TaskTimeout, WorkerCrashed
from ._dask_task import TOPIC, BatchDone, Overdue, cancel_run, kill_worker, look_at, run_batch

__all__ = ["DaskBackend", "DaskRun"]

TICK_S = 0.1
TARGET_BATCH_S = 0.1  # a batch's work; Dask advises tasks of 100 ms and more
PREFETCH = 2  # batches per worker thread: one running, one waiting at the scheduler
SAMPLE_S = 1.0  # Dask's workers report metrics on their heartbeat, about once a second
KILL_WAIT_S = 10.0  # for the scheduler to see a worker killed here gone
# A batch whose future ended in error this long ago and that as_completed has not handed
# over is taken from the future itself (see DaskRun._rescue).
UNDELIVERED_S = 2.0
INLINE_FUNCTION_BYTES = 64 * 1024  # a bigger pickled function is scattered to the workers once
# A batch whose worker died is run again in parts, to find the task that killed it: one task a
# Dask task when it has few, else ISOLATE_PARTS parts (a part that dies again is split again).
# Each death costs a worker restart (seconds), each Dask task about a millisecond.
ISOLATE_SINGLES = 32
ISOLATE_PARTS = 16
# A batch reported waiting on a worker that died (or finished there, its result lost with it)
# is sent again as it is, this many times at most: its start announcement cannot be lost, but
# if it were, this bounds the workers lost.
MAX_WAITED = 3
_CLUSTER_CONFIG = {
    # A task whose worker died is not rerun silently: ploop decides (see the module docstring).
    "distributed.scheduler.allowed-failures": 0,
}


class State(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    DONE = "done"


class DaskBackend:
    """A connection to a Dask cluster that runs the tasks of one run after another.

    With no ``address`` it starts a ``distributed.LocalCluster`` (worker processes of one
    thread each, no dashboard) and closes it in :meth:`close`; with one it connects to that
    scheduler and leaves the cluster as it found it.

    Args:
        address: the scheduler, such as ``"tcp://scheduler:8786"``; ``None`` for a local one.
        workers: for a local cluster, how many worker processes (default: Dask's choice).
    """

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.cluster: Any = None
        self._size = 0  # a local cluster's worker count
        if address is None:
            with dask.config.set(_CLUSTER_CONFIG):
                self.cluster = distributed.LocalCluster(
                    n_workers=workers,
                    processes=True,
                    threads_per_worker=1,
                    dashboard_address=None,
                    # No dashboard, but the scheduler still serves its HTTP routes, on 8787
                    # unless told otherwise (and with a warning when 8787 is taken): a free
                    # port on the loopback interface instead.
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                )
            try:
                self.client: Any = distributed.Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
            self._size = len(self.cluster.worker_spec)
        else:
            self.client = distributed.Client(address, set_as_default=False)
        self._listeners: dict[str, deque[dict[str, Any]]] = {}
        self.client.subscribe_topic(TOPIC, self._on_event)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        # In the client's event loop thread: hand the event to its run; deque.append is
        # atomic, and the run reads its deque in the main thread.
        msg = event[1]
        queue = self._listeners.get(msg.get("token", "")) if isinstance(msg, dict) else None
        if queue is not None:
            queue.append(msg)

    def listen(self, token: str) -> deque[dict[str, Any]]:
        """The start events of run ``token`` from now on (until :meth:`unlisten`)."""
        queue: deque[dict[str, Any]] = deque()
        self._listeners[token] = queue
        return queue

    def unlisten(self, token: str) -> None:
        """Stop collecting the events of run ``token``."""
        self._listeners.pop(token, None)

    def threads(self) -> int:
        """Worker threads in the cluster now."""
        return sum(int(n) for n in self.client.nthreads().values())

    def workers_info(self) -> dict[str, dict[str, Any]]:
        """The scheduler's view of every worker: name, threads, metrics (cpu, memory...)."""
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before n_workers=: every worker already
            info = self.client.scheduler_info()
        return dict(info.get("workers", {}))

    def restore_workers(self) -> None:
        """Bring a local cluster back to its size.

        Dask closes for good the nanny of a worker that died and had not come back
        ``distributed.deploy.lost-worker-timeout`` (15 s) later: one that was restarting at
        that moment, because its tasks killed it again and again, is gone, and a cluster can
        lose every worker that way (its runs then wait for ever). Scaling to the size it had
        starts new ones. The closed nanny's last worker may hold its name at the scheduler
        for a moment, and the new nanny then fails to start: it is dropped, and the next call
        tries again (a run calls this on every tick). The work is done in the cluster's event
        loop, which owns its nannies. A cluster this backend did not start is left as it is.
        """
        cluster = self.cluster
        if cluster is None:
            return

        def heal() -> None:
            for name, nanny in list(cluster.workers.items()):
                if nanny.status in (Status.failed, Status.closed):
                    del cluster.workers[name]
            if len(cluster.workers) < self._size:
                cluster.scale(self._size)

        cluster.loop.add_callback(heal)

    def ship(self, fn: Callable[..., Any]) -> Any:
        """``fn`` as the workers get it: its pickle inline, or scattered once when large."""
        try:
            blob = cloudpickle.dumps(fn)
        except Exception as exc:
            raise PloopError(
                f"the function {fn!r} cannot be pickled to send it to the Dask workers: "
                f"{type(exc).__name__}: {exc}. Use a function that does not hold unpicklable "
                "state (open files, locks, sockets)"
            ) from exc
        if len(blob) <= INLINE_FUNCTION_BYTES:
            return blob
        return self.client.scatter(blob, broadcast=True, hash=False)

    def run(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        options: RunOptions,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> DaskRun:
        """Start a run of ``fn`` over ``items`` on this cluster; drive it with ``poll()``."""
        return DaskRun(self, fn, items, options, progress)

    def close(self) -> None:
        """Disconnect; close the local cluster if this backend started it."""
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(TOPIC)
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None


@dataclass
class _Batch:
    """A batch submitted to Dask and not yet settled."""

    seq: int
    indices: Sequence[int]
    args: list[Any]
    future: Any
    submitted: float  # this process's monotonic clock
    prior: int = 0  # attempts of its task(s) before this submission
    starts: int = 0  # "start" events seen: above 1, Dask ran it again after a worker died
    started: float | None = None  # when it started, on this process's clock (approximate)
    worker: str = ""  # the address it started on, last
    started_on: set[str] = field(default_factory=set)
    finished_on: set[str] = field(default_factory=set)  # per later start events there
    next_look: float = 0.0  # timeouts: when to ask its worker again
    ended_seen: float | None = None  # when its future was first seen ended, not yet delivered


class DaskRun:
    """One function over one input on a Dask cluster, with the interface of ``_pool.Run``:
    drive it with :meth:`poll` until :attr:`done`, then call :meth:`finish`.

    Options as for ``Run``; ``workers`` and ``threads_per_worker`` do not apply (the cluster
    has its own workers). ``timeout`` and
    ``fail_fast`` stop the run: batches not started are cancelled and their tasks are
    ``not_run``; a task that is running cannot be interrupted from outside: it runs on in its
    worker thread, and on a cluster started here its worker is restarted after the run.
    """

    def __init__(
        self,
        backend: DaskBackend,
        fn: Callable[..., Any],
        items: Iterable[Any],
        options: RunOptions,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.backend = backend
        self.client = backend.client
        self.fn = fn
        self.options = options
        self.progress = progress
        self.total = length_of(items)
        self.it: Iterator[Any] = iter(items)
        sliceable = type(items) in (list, tuple, range)
        self._seq: Sequence[Any] | None = items if sliceable else None  # type: ignore[assignment]
        if options.order is not None and (
            self._seq is None or sorted(options.order) != list(range(len(self._seq)))
        ):
            raise ValueError("an order of dispatch must name every position of a list once")
        self.token = uuid.uuid4().hex[:12]
        self.outcomes = Outcomes()
        self._threads = max(1, backend.threads())
        self.record = RunRecord(self._threads, "dask", time.monotonic())
        self.state = State.RUNNING
        self.stop_reason = ""
        self.fatal: BaseException | None = None
        self.interrupted: int | None = None
        self.consumed = 0
        self.exhausted = False
        self.delivered = 0
        self.emitted: deque[tuple[int, str, Any]] = deque()  # the local engine's; unused here
        self.attempts: dict[int, int] = {}
        """Tasks that took more than one attempt (a worker died under them): index -> count."""
        self._scheduler: Scheduler = (
            Dynamic(TARGET_BATCH_S)
            if options.schedule == "dynamic" and options.chunksize is None
            else make_scheduler(options.schedule, options.chunksize, self.total)
        )
        self._peeked: deque[Any] = deque()
        # Tasks to run again, before the others: (indices, arguments, prior attempts).
        self._retry: deque[tuple[Sequence[int], list[Any], int]] = deque()
        self._batches: dict[int, _Batch] = {}
        self._by_key: dict[str, int] = {}
        self._seqs = itertools.count(1)
        self._busy_sum = 0.0
        self._tasks_sum = 0.0
        self._mean_task_s: float | None = None
        self._pids: dict[str, int] = {}  # worker address -> pid
        self._abandoned: set[str] = set()  # workers left running a task this run gave up on
        self._died_under: dict[int, int] = {}  # task -> size of its batch when a worker died
        self._waited: dict[int, int] = {}  # first task of a batch -> deaths of workers it waited on
        self._closed: dict[str, bool] = {}  # worker address -> whether Dask closed it
        self._names: dict[str, str] = {}  # worker address -> lane id
        self._clock = time.time() - time.monotonic()  # wall - monotonic, here
        self._drain_deadline = 0.0
        self._next_tick = 0.0
        self._next_sample = 0.0
        self._signals: list[int] = []
        self._old_handlers: dict[int, Any] = {}
        self._events = backend.listen(self.token)
        self._ac = distributed.as_completed(
            with_results=True, raise_errors=False, loop=self.client.loop
        )
        try:
            self._fn_ref = backend.ship(fn)
        except BaseException:
            backend.unlisten(self.token)
            raise
        if not options.signals_while_polling:
            self._install_signals()  # held until finish() (a stream's: see RunOptions)
        try:
            with signals_for_poll(self):
                self._fill()
                self._check_done()
        except BaseException:
            self.finish()  # the caller never gets the run to finish it: signals, futures
            raise

    # -- driving ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def begin(self) -> None:
        """Nothing to do before the first poll: it takes the first tasks."""

    def poll(self, timeout: float = TICK_S) -> None:
        """Wait up to ``timeout`` for finished batches and act on what happened."""
        if self.done:
            return
        with signals_for_poll(self):
            self._poll(timeout)

    def _poll(self, timeout: float) -> None:
        if self._batches:
            _wait_ready(self._ac, min(timeout, max(0.0, self._next_tick - time.monotonic())))
        ready = self._ac.next_batch(block=False)
        self._on_events()  # first: a batch's start event came before its result
        for future, result in ready:
            self._on_result(future, result)
        self._on_events()
        self._on_signals()
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + TICK_S
            self._tick(now)
        self._fill()
        self._check_done()

    def run_to_end(self) -> None:
        """Poll until every task has its outcome."""
        while not self.done:
            self.poll()

    def abort(self, reason: str) -> None:
        """Stop now: cancel every batch; every task without an outcome is ``not_run``."""
        if self.done:
            return
        self._stop(reason)
        self._terminate()
        self._check_done()

    def finish(self) -> None:
        """Close the run's bookkeeping (always call, also after an error)."""
        if self.state is not State.DONE:
            self.abort(self.stop_reason or "the run ended early")
        self.record.ended = time.monotonic()
        self.record.counts = self.outcomes.counts.copy()
        self._restore_signals()
        self.backend.unlisten(self.token)
        if self._abandoned and self.backend.cluster is not None:
            # A cluster started here is this run's own: a worker thread still running an
            # abandoned task would hold up the next run's tasks there (or forever, for a task
            # that never returns), so its nanny kills it and starts a fresh one, as the local
            # backend kills a worker. A cluster connected to is left alone (see the docs).
            with contextlib.suppress(Exception):
                self.client.run(
                    kill_worker, workers=sorted(self._abandoned), nanny=True, on_error="ignore"
                )
                # Until the scheduler has removed them, it may give them the next run's
                # tasks, which would then be blamed for their death.
                deadline = time.monotonic() + KILL_WAIT_S
                while self._abandoned & set(self.client.nthreads()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
            self._abandoned.clear()
        self._ac.clear()  # drop its futures
        self._fn_ref = None  # a scattered function is released with its future

    @property
    def not_consumed(self) -> int | None:
        """Input items never taken from the input (``None`` when its length is unknown)."""
        if self.total is None:
            return 0 if self.exhausted else None
        return self.total - self.consumed

    # -- dispatch -----------------------------------------------------------------------

    def _has_work(self) -> bool:
        if self._retry or self._peeked:
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
        if self.state is not State.RUNNING:
            return
        ahead = self.options.max_ahead
        while len(self._batches) < self._threads * PREFETCH and self._has_work():
            if self._retry:  # tasks whose worker died, or skipped by a race: before the others
                # (Also while a stream holds back: they were taken from the input already,
                # and its consumer may be waiting for one of them.)
                self._submit(*self._retry.popleft())
                continue
            if ahead is not None and self.consumed - self.delivered >= ahead:
                return
            indices, args = self._take(self._batch_size())
            self._submit(indices, args, 0)

    def _batch_size(self) -> int:
        remaining = None if self.total is None else self.total - self.consumed
        size = self._scheduler.chunk_size(Progress(remaining, self._threads, self._mean_task_s))
        ahead = self.options.max_ahead
        if ahead is not None:
            size = max(1, min(size, ahead - (self.consumed - self.delivered)))
        return size

    def _take(self, size: int) -> tuple[Sequence[int], list[Any]]:
        start = self.consumed
        if self._seq is not None:
            order = self.options.order
            if order is not None:
                picked = tuple(order[start : start + size])
                self.consumed += len(picked)
                return picked, [self._seq[i] for i in picked]
            args = list(self._seq[start : start + size])
            self.consumed += len(args)
            return range(start, self.consumed), args
        args = list(self._peeked)
        self._peeked.clear()
        if len(args) < size:
            args.extend(itertools.islice(self.it, size - len(args)))
            if len(args) < size:
                self.exhausted = True
        self.consumed += len(args)
        return range(start, start + len(args)), args

    def _submit(self, indices: Sequence[int], args: list[Any], prior: int) -> None:
        try:
            blob = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            kept = [(i, a) for i, a in zip(indices, args, strict=True) if self._picklable(i, a)]
            if not kept:
                return
            indices, args = tuple(i for i, _ in kept), [a for _, a in kept]
            blob = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        seq = next(self._seqs)
        key = f"ploop-{self.token}-{seq}"
        future = self.client.submit(
            run_batch, self._fn_ref, self.token, seq, blob,
            key=key, pure=False, retries=0, priority=1 if prior else 0,
        )  # fmt: skip
        self._batches[seq] = _Batch(seq, indices, args, future, time.monotonic(), prior)
        self._by_key[key] = seq
        self._ac.add(future)

    def _picklable(self, index: int, arg: Any) -> bool:
        try:
            pickle.dumps(arg, protocol=pickle.HIGHEST_PROTOCOL)
            return True
        except Exception as exc:
            error = PloopError(
                f"the argument of task {index} cannot be pickled to send it to a Dask worker: "
                f"{type(exc).__name__}: {exc}. Pass picklable arguments (plain data, or objects "
                "whose classes are defined at module level), or open resources inside the task"
            )
            error.__cause__ = exc
            self.outcomes.fail(index, "failed", bounded_repr(arg), error, str(error))
            self._after_failure()
            return False

    # -- results ------------------------------------------------------------------------

    def _pop(self, seq: int) -> _Batch | None:
        batch = self._batches.pop(seq, None)
        if batch is not None:
            self._by_key.pop(batch.future.key, None)
        return batch

    def _on_result(self, future: Any, result: Any) -> None:
        seq = self._by_key.get(future.key)
        batch = None if seq is None else self._pop(seq)
        if batch is None:
            return  # settled already (cancelled by this run, or looked at when overdue)
        now = time.monotonic()
        status = future.status
        if isinstance(result, BatchDone):
            # Delivered: its worker may have died since, and the future say "lost" by now.
            self._batch_done(batch, result, now)
        elif status == "error" and isinstance(result, tuple) and len(result) == 3:
            exc = result[1]
            if isinstance(exc, distributed.KilledWorker):
                self._worker_died(batch, exc, now)
            else:
                self._batch_failed(batch, exc)
        elif status == "lost" and self.state is State.RUNNING:
            # Its result was lost with its worker before it got here: no task's doing.
            self._retry.append((batch.indices, batch.args, batch.prior))
        else:  # cancelled by someone else (another client, a restart of the cluster)
            self._not_run(batch, 0, self.stop_reason or f"its Dask task ended {status}")

    def _batch_done(self, batch: _Batch, done: BatchDone, now: float) -> None:
        if done.fatal is not None:
            self._fatal_batch(batch, done)
            return
        self._record(batch, done, now)
        if done.ran < len(batch.indices):
            if self.state is State.RUNNING:  # skipped by a race with look_at: run them again
                rest = slice(done.ran, len(batch.indices))
                self._retry.append((batch.indices[rest], batch.args[rest], batch.prior))
            else:
                self._not_run(batch, done.ran, self.stop_reason or "cancelled")

    def _record(self, batch: _Batch, done: BatchDone, now: float) -> None:
        """Outcomes and run record of the tasks a batch finished (its first ``done.ran``)."""
        ran = done.ran
        if not ran:
            return
        wid = self._worker(done.worker, done.name, done.pid)
        failures = dict(done.failures)
        try:
            values: list[Any] = pickle.loads(done.values)
        except Exception as exc:
            from ._dask_task import capture

            values = [None] * ran
            failures.update({p: capture(exc, "result") for p in range(ran) if p not in failures})
        indices = batch.indices[:ran]
        for pos, f in sorted(failures.items()):
            self.outcomes.fail(
                indices[pos], "failed", bounded_repr(batch.args[pos]), rebuild(f),
                f.traceback, wid,
            )  # fmt: skip
        self.outcomes.passed(indices, values[:ran], frozenset(failures))
        starts, ends = self._place(batch, done, now)
        self.record.tasks.add(
            indices, wid, starts[0], ends, done.cpu, dict.fromkeys(failures, "failed"), starts
        )
        busy = ends[-1] - starts[0]
        info = self.record.worker_info[wid]
        info.tasks += ran
        info.busy_s += busy
        # A decaying task-weighted mean, as the local engine keeps: it sizes the batches.
        self._busy_sum = 0.7 * self._busy_sum + busy
        self._tasks_sum = 0.7 * self._tasks_sum + ran
        self._mean_task_s = self._busy_sum / self._tasks_sum
        tries = batch.prior + max(1, batch.starts)
        if tries > 1:
            self.attempts.update(dict.fromkeys(indices, tries))
        if failures:
            self._after_failure()

    def _place(
        self, batch: _Batch, done: BatchDone, now: float
    ) -> tuple[array[float], array[float]]:
        """The batch's task times on this process's monotonic clock.

        The worker's ``time.time()`` at the batch's start gives its place here; if the two
        wall clocks disagree so much that the batch would start before it was submitted or
        end after its result arrived, it is moved (not stretched) into that interval.
        """
        base = done.wall0 - self._clock
        first, last = base + done.starts[0], base + done.ends[done.ran - 1]
        if first < batch.submitted:
            base += batch.submitted - first
        elif last > now:
            base -= min(last - now, first - batch.submitted)
        starts = array("d", [base + s for s in done.starts[: done.ran]])
        ends = array("d", [base + e for e in done.ends[: done.ran]])
        return starts, ends

    def _worker(self, address: str, name: str, pid: int = 0) -> str:
        """The lane id of a Dask worker: its name (``dask-0`` for a number), else its address.

        A worker that Dask's nanny restarts keeps its name: one lane, a new pid, a restart.
        """
        wid = self._names.get(address)
        if wid is None:
            if name and name != address and name != "None":
                wid = f"dask-{name}" if name.isdigit() else name
            else:
                wid = address or "dask"
            self._names[address] = wid
        info = self.record.worker_info.setdefault(wid, WorkerInfo(wid))
        if pid and pid not in info.pids:
            info.pids.append(pid)
            info.restarts = len(info.pids) - 1
            self._pids[address] = pid
        return wid

    def _not_run(self, batch: _Batch, start: int, reason: str) -> None:
        for index, arg in zip(batch.indices[start:], batch.args[start:], strict=True):
            self.outcomes.not_run(index, bounded_repr(arg), reason)

    def _fatal_batch(self, batch: _Batch, done: BatchDone) -> None:
        f = done.fatal
        assert f is not None
        if f.where == "argument" and len(batch.indices) > 1 and self.state is State.RUNNING:
            for index, arg in zip(batch.indices, batch.args, strict=True):
                self._retry.append(((index,), [arg], batch.prior))  # find the one that fails
            return
        if f.where == "argument":
            index = batch.indices[0]
            wid = self._worker(done.worker, done.name, done.pid)
            self.outcomes.fail(
                index, "failed", bounded_repr(batch.args[0]), rebuild(f), f.traceback, wid
            )
            self._not_run(batch, 1, self.stop_reason or "cancelled")
            self._after_failure()
            return
        self._not_run(batch, 0, "the function could not be loaded on a Dask worker")
        if self.fatal is None:
            self.fatal = PloopError(
                f"the function {self.fn!r} could not be loaded on Dask worker {done.worker}: "
                f"{f.type_name}: {f.message}. The workers need the modules it comes from "
                "(installed, or on their sys.path), as they need pytest-ploop"
            )
            self.fatal.__cause__ = rebuild(f)
        self._stop("the function could not be loaded on a Dask worker")

    def _batch_failed(self, batch: _Batch, exc: BaseException) -> None:
        """The Dask task itself failed: ploop's batch function did not run on the worker."""
        self._not_run(batch, 0, "ploop's task could not run on the Dask workers")
        if self.fatal is None:
            self.fatal = PloopError(
                f"a Dask worker could not run ploop's batch task: {type(exc).__name__}: {exc}. "
                "Every worker needs pytest-ploop installed (the same version as here)"
            )
            self.fatal.__cause__ = exc
        self._stop("ploop's task could not run on the Dask workers")

    # -- a worker lost ------------------------------------------------------------------

    def _worker_died(self, batch: _Batch, exc: Any, now: float) -> None:
        self._on_events()
        last = exc.last_worker
        address = str(getattr(last, "address", ""))
        nthreads = int(getattr(last, "nthreads", 0) or 0)
        wid = self._worker(address, str(getattr(last, "name", "")))
        waited = self._waited[batch.indices[0]] = self._waited.get(batch.indices[0], 0) + 1
        innocent = (
            address not in batch.started_on
            or address in batch.finished_on
            or self._closed_by_dask(address)
        )
        if innocent and waited <= MAX_WAITED:
            # It was waiting on that worker and never started there, or it finished there and
            # its result was lost with the worker, or the worker was closed (by its cluster or
            # its nanny) under it: send it again as it is.
            if self.state is State.RUNNING:
                self._retry.append((batch.indices, batch.args, batch.prior))
            else:
                self._not_run(batch, 0, self.stop_reason)
            return
        tries = max(1, batch.starts)  # Dask's own attempts at this submission
        if len(batch.indices) > 1 or not self._blame(batch, nthreads):
            for index in batch.indices:
                self._died_under.setdefault(index, len(batch.indices))
            if self.state is not State.RUNNING:
                self._not_run(batch, 0, self.stop_reason)
                return
            self.attempts.update(dict.fromkeys(batch.indices, batch.prior + tries))
            n = len(batch.indices)
            size = 1 if n <= ISOLATE_SINGLES else -(-n // ISOLATE_PARTS)
            for lo in range(0, n, size):
                part = slice(lo, lo + size)
                self._retry.append((batch.indices[part], batch.args[part], batch.prior + tries))
            return
        index, arg = batch.indices[0], batch.args[0]
        attempts = batch.prior + tries
        if attempts > 1:
            self.attempts[index] = attempts
        pid = self._pids.get(address)
        where = ", ".join(x for x in (wid, address, f"pid {pid}" if pid else "") if x)
        text = f"task {index}: the Dask worker running it died ({where}); attempt {attempts}"
        first = self._died_under.get(index, 1)
        if attempts > 1 and first > 1:
            text += f", after a worker died running it in a batch of {first} tasks"
        elif attempts > 1:
            text += ", after a worker died under it before"
        detail = "Its exit status is in the log of the worker's nanny."
        crash = WorkerCrashed(index, None, None, detail)
        crash.args = (f"{text}\n{detail}",)  # WorkerCrashed's own text wants an exit status
        self.outcomes.fail(index, "crashed", bounded_repr(arg), crash, str(crash), wid)
        start = batch.started if batch.started is not None else now
        self.record.tasks.add((index,), wid, start, array("d", (now,)), (0.0,), {0: "crashed"})
        info = self.record.worker_info[wid]
        info.tasks += 1
        info.busy_s += now - start
        self._after_failure()

    def _closed_by_dask(self, address: str) -> bool:
        """Whether the worker at ``address`` was closing when it left: Dask closed it (its
        cluster scaled down or restarted it, its nanny closed it) and its tasks were failed
        as though it had died. A worker that a task kills (a crash, ``os._exit``, the OOM
        killer) logs no close. The worker's own event log at the scheduler says which."""
        if not address:
            return False
        closed = self._closed.get(address)
        if closed is None:
            try:
                events = self.client.get_events(address)
            except Exception:  # the scheduler is gone or refuses: blame as before
                events = ()
            closed = self._closed[address] = any(
                isinstance(msg, dict)
                and (
                    msg.get("action") == "closing-worker"
                    or (
                        msg.get("action") == "worker-status-change"
                        and str(msg.get("status", "")).startswith("closing")
                    )
                )
                for _, msg in events
            )
        return closed

    def _blame(self, batch: _Batch, nthreads: int) -> bool:
        """Whether the one task of ``batch``, which was running on a worker that died, killed
        it: yes if it ran alone in that process, or if a worker died under it before."""
        return nthreads == 1 or batch.prior >= 1

    def _after_failure(self) -> None:
        if self.options.fail_fast:
            self._stop("fail_fast: an earlier task failed")

    # -- events and ticks ---------------------------------------------------------------

    def _on_events(self) -> None:
        while self._events:
            msg = self._events.popleft()
            address = str(msg.get("worker", ""))
            for seq in msg.get("finished", ()):
                done = self._batches.get(int(seq))
                if done is not None:  # finished there, its result not yet here
                    done.finished_on.add(address)
            batch = self._batches.get(int(msg.get("seq", 0)))
            if batch is None:
                continue
            batch.starts += 1
            batch.worker = address
            batch.started_on.add(address)
            if msg.get("pid"):
                self._pids[address] = int(msg["pid"])
            t = float(msg.get("t", 0.0)) - self._clock  # its wall clock, placed here
            batch.started = min(max(t, batch.submitted), time.monotonic())
            batch.next_look = 0.0

    def _rescue(self, now: float) -> None:
        """Settle batches whose Dask future ended but never came out of ``as_completed``.

        A batch whose result was lost with its worker (it finished there, and the worker died
        before the result was fetched) is computed again elsewhere. If that second run fails
        too, ``as_completed`` (``raise_errors=False``) is left with the error raised inside its
        fetch of the first result and never yields the future: the run waited for it for
        ever. After ``UNDELIVERED_S`` the run reads the outcome from the future itself.
        """
        for batch in list(self._batches.values()):
            status = batch.future.status
            if status not in ("error", "cancelled"):
                batch.ended_seen = None
            elif batch.ended_seen is None:
                batch.ended_seen = now
            elif now - batch.ended_seen >= UNDELIVERED_S:
                if status == "error":
                    exc = batch.future.exception()
                    self._on_result(batch.future, (type(exc), exc, None))
                else:
                    self._on_result(batch.future, None)

    def _tick(self, now: float) -> None:
        # As the run starts (the first poll ticks at once) and on: a run whose tasks kill
        # workers must not lose them all.
        self.backend.restore_workers()
        self._rescue(now)
        if self.options.timeout is not None and self.state is State.RUNNING:
            self._check_timeouts(now)
        if self.state is State.DRAINING and now >= self._drain_deadline and self._batches:
            self._terminate()
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_S
            self._sample(now)
        if self.progress is not None:
            self.progress(self.outcomes.settled, self.total)

    def _sample(self, now: float) -> None:
        """Each worker's CPU and memory from the scheduler (its last heartbeat); the thread
        count that sizes the run's batches in flight."""
        try:
            workers = self.backend.workers_info()
        except Exception:
            return
        self._threads = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        for address, w in workers.items():
            if address not in self._names:
                continue  # a worker that ran nothing of this run
            metrics = w.get("metrics", {})
            self.record.samples.append(
                Sample(
                    now,
                    self._names[address],
                    self._pids.get(address, 0),
                    float(metrics.get("cpu", 0.0)),
                    int(metrics.get("memory", 0)),
                    0,  # Dask reports host-wide I/O rates, not the process's bytes
                    0,
                    0,
                    0,
                )
            )

    def _check_timeouts(self, now: float) -> None:
        """Ask the workers of batches that may hold an overdue task; settle those that do."""
        limit = self.options.timeout
        assert limit is not None
        due = [
            b
            for b in self._batches.values()
            if b.started is not None and now - b.started > limit and now >= b.next_look
        ]
        if not due:
            return
        for address, found in self._look(due, limit).items():
            for batch in due:
                if batch.worker != address or batch.seq not in self._batches:
                    continue
                seen = found.get(batch.seq)
                if seen is None:
                    batch.next_look = now + TICK_S  # finished meanwhile, or not there yet
                elif seen.done is None:
                    batch.next_look = now + max(TICK_S, limit - seen.age)
                else:
                    self._timed_out(batch, seen, now)

    def _look(self, batches: list[_Batch], limit: float | None) -> dict[str, dict[int, Overdue]]:
        """``look_at`` on the workers of ``batches``: worker -> batch -> what it is doing."""
        addresses = sorted({b.worker for b in batches if b.worker})
        if not addresses:
            return {}
        seqs = [b.seq for b in batches]
        try:
            answers = self.client.run(
                look_at, self.token, seqs, limit, workers=addresses, on_error="return"
            )
        except Exception:
            return {}
        return {a: r for a, r in answers.items() if isinstance(r, dict)}

    def _timed_out(self, batch: _Batch, seen: Overdue, now: float) -> None:
        self._pop(batch.seq)
        self.client.cancel([batch.future])
        done = seen.done
        assert done is not None and self.options.timeout is not None
        self._record(batch, done, now)
        index, arg = batch.indices[seen.position], batch.args[seen.position]
        wid = self._worker(done.worker, done.name, done.pid)
        exc = TaskTimeout(index, self.options.timeout, seen.stack)
        text = (
            f"task {index} timed out after {self.options.timeout:g}s; a running Dask task "
            "cannot be interrupted: it runs on in its worker thread until it returns, and "
            "its result is dropped"
        )
        if seen.stack:
            text += f"\nstack of the task when it was overdue:\n{seen.stack.rstrip()}"
        exc.args = (text,)  # TaskTimeout's own text says the worker was killed: not here
        self.outcomes.fail(index, "timed_out", bounded_repr(arg), exc, str(exc), wid)
        start = done.wall0 - self._clock + seen.started
        start = min(max(start, batch.submitted), now)
        self.record.tasks.add((index,), wid, start, array("d", (now,)), (0.0,), {0: "timed_out"})
        self.record.worker_info[wid].tasks += 1
        self._abandoned.add(batch.worker)
        self._stop(f"timeout: task {index} ran longer than {self.options.timeout:g}s")
        self._not_run(batch, seen.position + 1, self.stop_reason)

    # -- stopping -----------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop dispatching and drain: batches running get the grace period."""
        self._stop(reason)

    def _stop(self, reason: str) -> None:
        if self.state is not State.RUNNING:
            return
        self.state = State.DRAINING
        self.stop_reason = reason
        self._drain_deadline = time.monotonic() + self.options.grace
        while self._retry:
            indices, args, _ = self._retry.popleft()
            for index, arg in zip(indices, args, strict=True):
                self.outcomes.not_run(index, bounded_repr(arg), reason)
        while self._peeked:
            self.outcomes.not_run(self.consumed, bounded_repr(self._peeked.popleft()), reason)
            self.consumed += 1
        if not self._batches:
            return
        # Every worker flags the run: batches that started return after their running task
        # with what they finished; the others will run nothing, so they are cancelled and
        # their tasks are not_run, exactly. A worker that does not answer may hold batches
        # that started: only those whose start nobody has reported are cancelled then.
        started: set[int] = set()
        complete = True
        try:
            answers = self.client.run(cancel_run, self.token, on_error="return")
        except Exception:
            answers, complete = {}, False
        for answer in answers.values():
            if isinstance(answer, list):
                started.update(answer)
            else:
                complete = False
        waiting = [
            b
            for b in self._batches.values()
            if b.seq not in started and (complete or b.started is None)
        ]
        self._cancel(waiting, reason)

    def _cancel(self, batches: list[_Batch], reason: str) -> None:
        if not batches:
            return
        with contextlib.suppress(Exception):
            self.client.cancel([b.future for b in batches])
        for b in batches:
            self._pop(b.seq)
            self._not_run(b, 0, reason)

    def _terminate(self) -> None:
        """Give up on the batches still running: keep what they finished (asked from their
        workers), and report their running and remaining tasks as ``not_run``."""
        running = list(self._batches.values())
        if not running:
            return
        found: dict[int, Overdue] = {}
        for answers in self._look([b for b in running if b.started is not None], None).values():
            found.update(answers)
        why = (
            f"{self.stop_reason}; still running after the {self.options.grace:g}s grace, "
            "cancelled (its Dask worker thread runs it to its end)"
        )
        now = time.monotonic()
        with contextlib.suppress(Exception):
            self.client.cancel([b.future for b in running])
        for b in running:
            self._pop(b.seq)
            seen = found.get(b.seq)
            finished = 0
            if seen is not None and seen.done is not None:
                self._record(b, seen.done, now)
                finished = seen.done.ran
            if finished < len(b.indices):
                if seen is not None:
                    self._abandoned.add(b.worker)
                self.outcomes.not_run(b.indices[finished], bounded_repr(b.args[finished]), why)
                self._not_run(b, finished + 1, self.stop_reason)

    def _check_done(self) -> None:
        if self.state is State.DONE or self._batches:
            return
        if self.state is State.RUNNING and self._has_work():
            return
        self.state = State.DONE

    # -- signals ------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._old_handlers = take_signals(self._on_signal, self.options.handle_signals)

    def _restore_signals(self) -> None:
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
                self._terminate()


def _wait_ready(ac: Any, timeout: float) -> None:
    """Block until ``ac`` (an ``as_completed``) has a finished future, at most ``timeout``.

    ``as_completed`` notifies its ``thread_condition`` when a future is ready; its own
    blocking ``next()`` has no timeout, which the run needs for its ticks and signals.
    """
    condition = getattr(ac, "thread_condition", None)
    if condition is None:  # pragma: no cover - a distributed without it: poll
        time.sleep(min(timeout, 0.005))
        return
    with condition:
        if not ac.has_ready():
            condition.wait(timeout)
