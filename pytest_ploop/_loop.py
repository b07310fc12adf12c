"""The loop API: ``map``, ``Pool`` and map-reduce, on the engine.

Every call is one *run*: the function over the input, on the workers, ending with exactly one
outcome per task taken from the input and a run record. The call returns the results when
every task passed, and raises :class:`~pytest_ploop.LoopError` otherwise.

Where the tasks run is the pool's *backend*: ``"local"`` (the engine's worker processes) or
``"dask"`` (a Dask distributed cluster, ``_backends``). Both give runs with one interface
(``_backends.LoopRun``), which this module drives the same way.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._backends import LoopRun, check_backend, open_dask
from ._engine._cpus import resolve_workers
from ._engine._inline import InlineRun
from ._engine._outcomes import failure_message
from ._engine._pool import Run, RunOptions
from ._engine._record import RunRecord
from ._engine._schedule import SCHEDULES, longest_first
from ._engine._workers import START_METHODS, Workers, default_start_method
from ._errors import LoopError, PloopError
from ._progress import Progress
from ._report._files import ReportOption, report_paths

if TYPE_CHECKING:
    from ._backends._dask import DaskBackend

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")

_UNSET: Any = object()
_STREAM_AHEAD = 50_000  # streaming calls: results waiting for the consumer, at most

__all__ = ["Pool", "map"]


@dataclass(frozen=True)
class _Options:
    workers: int
    timeout: float | None = None
    fail_fast: bool = False
    schedule: str = "dynamic"
    chunksize: int | None = None
    start_method: str | None = None
    grace: float = 5.0
    progress: bool = False
    cost: Callable[[Any], float] | RunRecord | None = None
    report: tuple[Path, ...] = ()
    # workers=1 asked for (not "auto" on one CPU): the tasks run in the calling process.
    inline: bool = False


def _options(
    base: _Options | None = None,
    *,
    workers: int | str | None = _UNSET,
    timeout: float | None = _UNSET,
    fail_fast: bool = _UNSET,
    schedule: str = _UNSET,
    chunksize: int | None = _UNSET,
    start_method: str | None = _UNSET,
    grace: float = _UNSET,
    progress: bool = _UNSET,
    cost: Callable[[Any], float] | RunRecord | None = _UNSET,
    report: ReportOption = _UNSET,
) -> _Options:
    """Validate options (those given override ``base``); raise with the fix when one is off."""
    given: dict[str, Any] = {
        k: v
        for k, v in dict(
            timeout=timeout, fail_fast=fail_fast, schedule=schedule, chunksize=chunksize,
            start_method=start_method, grace=grace, progress=progress, cost=cost,
        ).items()
        if v is not _UNSET
    }  # fmt: skip
    if report is not _UNSET:  # a wrong extension fails now, not after the run
        try:
            given["report"] = tuple(report_paths(report))
        except TypeError:
            raise TypeError(
                f"report={report!r} must be a path (str or os.PathLike), a list of paths, or None"
            ) from None
    if workers is not _UNSET or base is None:
        given["workers"] = resolve_workers(None if workers is _UNSET else workers)
        # Only workers=1 itself runs in this process: "auto" on one CPU keeps a worker
        # process, so that a crash or a timeout still costs one task and not the caller.
        given["inline"] = type(workers) is int and workers == 1
    opts = replace(base, **given) if base is not None else _Options(**given)
    if opts.timeout is not None and not (
        isinstance(opts.timeout, int | float)
        and not isinstance(opts.timeout, bool)
        and opts.timeout > 0
    ):
        raise ValueError(f"timeout={opts.timeout!r} must be a number of seconds above 0, or None")
    if opts.chunksize is not None and not (
        isinstance(opts.chunksize, int) and not isinstance(opts.chunksize, bool)
        and opts.chunksize >= 1
    ):  # fmt: skip
        raise ValueError(
            f"chunksize={opts.chunksize!r} must be a whole number of at least 1, or None"
        )
    # No map(repr, ...) in this module: its own map() shadows the builtin, and formatting
    # these messages started worker processes (and failed inside a daemonic worker).
    if opts.schedule not in (*SCHEDULES, "lpt"):
        choices = ", ".join(repr(s) for s in (*SCHEDULES, "lpt"))
        raise ValueError(f"schedule={opts.schedule!r} is not one of {choices}")
    if opts.cost is not None and not (callable(opts.cost) or isinstance(opts.cost, RunRecord)):
        raise TypeError(
            f"cost={opts.cost!r} must be a function giving an item's expected seconds, or the "
            "run record of an earlier run over the same items (pool.last_run), or None"
        )
    if opts.schedule == "lpt" and opts.cost is None:
        raise ValueError(
            "schedule='lpt' (longest first) needs cost=: a function giving an item's expected "
            "seconds, or the run record of an earlier run over the same items (pool.last_run)"
        )
    if opts.start_method is not None and opts.start_method not in START_METHODS:
        raise ValueError(
            f"start_method={opts.start_method!r} is not one of "
            f"{', '.join(repr(m) for m in START_METHODS)} (or None for the platform's default)"
        )
    if not (isinstance(opts.grace, int | float) and opts.grace >= 0):
        raise ValueError(f"grace={opts.grace!r} must be a number of seconds, at least 0")
    return opts


def _costs(cost: Any, items: Any) -> list[float]:
    """Each item's expected seconds: from ``cost(item)``, or from an earlier run's record
    (by input position; a position it does not have counts as its median)."""
    if isinstance(cost, RunRecord):
        t = cost.tasks
        seen = {i: e - s for i, s, e in zip(t.index, t.start, t.end, strict=True)}
        known = sorted(seen.values())
        default = known[len(known) // 2] if known else 1.0
        return [seen.get(i, default) for i in range(len(items))]
    return [float(cost(item)) for item in items]


def _check_call(fn: Any, items: Any) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r:.60}")
    try:
        iter(items)
    except TypeError:
        raise TypeError(
            f"items must be an iterable (a list, a range, a generator...), got "
            f"{type(items).__name__} {items!r:.60}"
        ) from None


class Pool:
    """Worker processes kept across calls: ``map``, ``imap``, ``imap_unordered``, ``map_reduce``.

    Workers start on the first call (only as many as there are tasks, up to ``workers``) and
    stay until :meth:`close`; a worker that crashes is replaced. Options given here are the
    defaults of every call; each call can override them (all but ``backend`` and
    ``address``, which are the pool's).

    With ``backend="dask"`` the tasks run on a Dask distributed cluster, with the same
    outcomes, :class:`~pytest_ploop.LoopError` and run record (docs/dask.md says what differs):
    without ``address`` the pool starts a ``LocalCluster`` of ``workers`` processes (one
    thread each, no dashboard) at its first call and closes it in :meth:`close`; with one it
    connects to that scheduler and leaves the cluster running.

    Args:
        workers: how many worker processes: an int, or ``"auto"`` (the default) for the CPUs
            this process may use (affinity and cgroup quota respected). ``1`` runs the tasks
            in the calling process, so a debugger works.
        timeout: seconds a task may run; an overdue task's worker is killed and the task is
            ``timed_out``.
        fail_fast: stop at the first task that does not pass; the rest are ``not_run``.
        schedule: ``"dynamic"`` (adaptive chunks), ``"static"``, ``"guided"``, or ``"lpt"``
            (longest first, by ``cost``: a run's wall is bounded by its last long task).
        chunksize: tasks per message to a worker; ``None`` adapts it to the tasks' duration.
        start_method: ``"fork"`` (POSIX default), ``"spawn"`` or ``"forkserver"``.
        grace: seconds tasks in flight get to finish when the run stops early.
        progress: show a progress bar on stderr (tqdm where installed).
        cost: for ``schedule="lpt"``: a function giving an item's expected seconds, or the
            run record of an earlier run over the same items (``pool.last_run``).
        backend: ``"local"`` (the default: worker processes of this machine) or ``"dask"``
            (``pip install "pytest-ploop[dask]"``).
        address: with ``backend="dask"``, the scheduler, such as ``"tcp://scheduler:8786"``;
            ``None`` starts a local cluster. ``workers`` is ignored with an address (the
            cluster has its own workers), and ``start_method`` is refused on Dask.
        report: write each call's run record to this file, or to each of these files, in the
            format its extension names (``.json``, ``.md``, ``.html``), also when the call
            raises; a later call overwrites them (give a call its own ``report=``).

    Raises:
        ValueError, TypeError: an option is out of range (a report name whose format is
            unknown, an unknown backend); the message says the fix.
        PloopError: ``backend="dask"`` without Dask distributed installed (at the first call).

    Example:
        >>> import operator
        >>> import pytest_ploop as ploop
        >>> with ploop.Pool(workers=2) as pool:
        ...     squares = pool.map(abs, [-1, -2, 3])
        ...     total = pool.map_reduce(abs, range(-3, 4), reduce=operator.add, initial=0)
        >>> squares, total
        ([1, 2, 3], 12)
    """

    def __init__(
        self,
        workers: int | str | None = None,
        *,
        timeout: float | None = None,
        fail_fast: bool = False,
        schedule: str = "dynamic",
        chunksize: int | None = None,
        start_method: str | None = None,
        grace: float = 5.0,
        progress: bool = False,
        cost: Callable[[Any], float] | RunRecord | None = None,
        backend: str = "local",
        address: str | None = None,
        report: ReportOption = None,
    ) -> None:
        check_backend(backend, address)
        self._backend = backend
        self._address = address
        self._defaults = _options(
            workers=workers, timeout=timeout, fail_fast=fail_fast, schedule=schedule,
            chunksize=chunksize, start_method=start_method, grace=grace, progress=progress,
            cost=cost, report=report,
        )  # fmt: skip
        self._check_backend_options(self._defaults)
        self._workers: Workers | None = None
        # Set by map(): the pool is closed after its one call, so its workers may leave as
        # soon as they have nothing left to do (RunOptions.retire_idle).
        self._one_shot = False
        self._dask: DaskBackend | None = None  # the Dask connection, opened at the first call
        self._closed = False
        self._running: LoopRun | None = None  # the call that has the workers now
        # Taken by a call from its check that no other call runs until it holds the
        # workers: two threads' calls both passed the check, drove one set of workers, and
        # took each other's results.
        self._claim = threading.Lock()
        self._busy = False
        # id(run) -> where its report goes, and its progress bar (None: no bar)
        self._reports: dict[int, tuple[tuple[Path, ...], Progress | None]] = {}
        self.last_run: RunRecord | None = None
        """The run record of the last call (also after it raised)."""

    # -- public calls -------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T], **options: Any) -> list[R]:
        """Apply ``fn`` to every item; return the results in input order.

        Raises:
            LoopError: some task did not pass; ``err.results`` holds the others' results.
            KeyboardInterrupt: Ctrl-C (after the tasks in flight drained or were stopped).
        """
        run = self._start(fn, items, options, stream=False)
        try:
            run.begin()
            run.run_to_end()
        finally:
            self._finish(run)
        # Every input position, also those a stopped run never took from a list or range.
        results: list[Any] = [None] * max(run.consumed, run.total or 0)
        for batch in run.outcomes.ready:
            if isinstance(batch.indices, range) and batch.indices.step == 1:
                results[batch.indices.start : batch.indices.stop] = batch.values
            else:
                for i, v in zip(batch.indices, batch.values, strict=True):
                    results[i] = v
        for i in run.outcomes.failures:
            results[i] = None
        self._conclude(run, results)
        return results

    def imap(self, fn: Callable[[T], R], items: Iterable[T], **options: Any) -> Iterator[R]:
        """Like :meth:`map`, yielding results in input order as they become available.

        A task that does not pass yields nothing; the :class:`LoopError` raised after the last
        result lists it by index. The input is consumed lazily.
        """
        return self._stream(fn, items, options, ordered=True)

    def imap_unordered(
        self, fn: Callable[[T], R], items: Iterable[T], *, with_index: bool = False,
        **options: Any,
    ) -> Iterator[Any]:  # fmt: skip
        """Like :meth:`imap`, yielding results as tasks finish, in any order.

        With ``with_index=True`` it yields ``(index, result)`` pairs.
        """
        return self._stream(fn, items, options, ordered=False, with_index=with_index)

    def map_reduce(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        reduce: Callable[[A, R], A],
        initial: A = _UNSET,
        **options: Any,
    ) -> A:
        """Map ``fn`` over ``items`` in the workers and fold the results with ``reduce`` here,
        in input order (so ``reduce`` need not be commutative), without keeping the results.

        Without ``initial`` the first result starts the fold (an empty input then raises
        ``TypeError``, as :func:`functools.reduce` does).
        """
        it = self.imap(fn, items, **options)
        try:
            if initial is _UNSET:
                try:
                    initial = next(it)  # type: ignore[assignment]
                except StopIteration:
                    raise TypeError(
                        "map_reduce() of an empty input with no initial value"
                    ) from None
            return functools.reduce(reduce, it, initial)
        finally:
            # A reduce that raises leaves the stream suspended, and the exception's
            # traceback keeps it alive: its run held the workers and the signal handlers.
            it.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop the workers (they finish nothing more) and release them; on Dask, close the
        local cluster the pool started, or disconnect from the one it connected to."""
        self._closed = True
        running = self._running
        if running is not None:
            # A stream not iterated to its end: its tasks in flight end now, the rest are
            # not run, and iterating it further raises the LoopError that says so.
            running.abort("the pool was closed")
            self._finish(running)
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        if self._dask is not None:
            dask, self._dask = self._dask, None
            dask.close()

    terminate = close

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------

    def _engine(self, start_method: str | None) -> Workers:
        # A call's start_method is for that call: the next one without its own goes back
        # to the pool's (it kept the last call's, and a closure then failed under spawn).
        method = start_method or default_start_method()
        if self._workers is not None and self._workers.start_method != method:
            self._workers.close()
            self._workers = None
        if self._workers is None:
            self._workers = Workers(method)
        return self._workers

    def _dask_backend(self, workers: int) -> DaskBackend:
        """The pool's Dask connection (a local cluster of ``workers`` processes, without an
        address), opened at its first call and kept until :meth:`close`."""
        if self._dask is None:
            self._dask = open_dask(self._address, None if self._address else workers)
        return self._dask

    def _check_backend_options(self, opts: _Options) -> None:
        if self._backend == "dask" and opts.start_method is not None:
            raise ValueError(
                f"start_method={opts.start_method!r} does not apply to backend='dask': the "
                "cluster starts its own worker processes; leave start_method out"
            )

    def _check(self, fn: Any, items: Any, overrides: dict[str, Any]) -> _Options:
        _check_call(fn, items)
        unknown = set(overrides) - set(_Options.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        opts = _options(self._defaults, **overrides)
        self._check_backend_options(opts)
        return opts

    def _start(self, fn: Any, items: Any, overrides: dict[str, Any], stream: bool) -> LoopRun:
        opts = self._check(fn, items, overrides)
        order = None
        if opts.schedule == "lpt" and opts.workers > 1:
            if type(items) not in (list, tuple, range):
                items = list(items)  # longest first needs every item's cost up front
            order = longest_first(_costs(opts.cost, items))
        run_options = RunOptions(
            workers=opts.workers,
            timeout=opts.timeout,
            fail_fast=opts.fail_fast,
            schedule="dynamic" if opts.schedule == "lpt" else opts.schedule,
            chunksize=opts.chunksize,
            grace=opts.grace,
            max_ahead=_STREAM_AHEAD if stream else None,
            signals_while_polling=stream,
            order=order,
            retire_idle=self._one_shot,
            inherit_items=self._one_shot and not stream,
        )
        if self._closed:
            raise ValueError("this Pool is closed; create a new one")
        if opts.inline and self._backend == "local":
            progress = Progress() if opts.progress else None
            run: LoopRun = InlineRun(fn, items, run_options, progress)
            self._reports[id(run)] = (opts.report, progress)
            return run
        with self._claim:
            if self._busy:
                # A run owns the workers until it ends: a second one on them took the first
                # one's results for its own (and the first lost them).
                raise PloopError(
                    "this Pool is still running another call (an imap() or imap_unordered() "
                    "not iterated to its end, or a call from another thread): finish it or "
                    "close() the pool first; a Pool runs one call at a time (use a second "
                    "Pool to run two at once)"
                )
            self._busy = True
        try:
            progress = Progress() if opts.progress else None
            if self._backend == "dask":
                # One call at a time here too: a run holds the signal handlers until it ends.
                dask = self._dask_backend(opts.workers)
                run = dask.run(fn, items, run_options, progress)
            else:
                run = Run(
                    self._engine(opts.start_method), fn, items, run_options, progress,
                    begin=False,
                )  # fmt: skip
        except BaseException:
            self._busy = False
            raise
        self._running = run
        self._reports[id(run)] = (opts.report, progress)
        return run

    def _finish(self, run: LoopRun) -> None:
        if id(run) not in self._reports:
            return  # finished already (by close(), before its stream's consumer came back)
        reports, progress = self._reports.pop(id(run))
        if run is self._running:
            self._running = None
            self._busy = False
        run.finish()
        self.last_run = run.record
        if progress is not None:
            progress(run.outcomes.settled, run.total)  # the last count, not the last tick's
            progress.close()
        if reports:  # before the call returns or raises (LoopError, Ctrl-C)
            from ._report import write_reports

            write_reports(run.record, reports)

    def _conclude(self, run: LoopRun, results: list[Any] | None) -> None:
        __tracebackhide__ = True
        if run.fatal is not None:
            raise run.fatal
        if run.interrupted == signal.SIGTERM:
            self.close()
            signal.raise_signal(signal.SIGTERM)  # the handler we replaced decides now
        elif run.interrupted is not None:
            raise KeyboardInterrupt
        failures = [run.outcomes.failures[i] for i in sorted(run.outcomes.failures)]
        if failures:
            total = run.consumed
            raise LoopError(
                failure_message(failures, total, run.not_consumed),
                [f.exception for f in failures],
                failures=failures,
                results=results,
                total=total,
                not_consumed=run.not_consumed,
            )

    def _stream(
        self, fn: Any, items: Any, overrides: dict[str, Any], *, ordered: bool,
        with_index: bool = False,
    ) -> Iterator[Any]:  # fmt: skip
        # Bad input fails at the call, as for map(); the run starts at the first next(): an
        # iterator never iterated left a run behind that nothing finished (its workers busy,
        # and Ctrl-C caught by its handler for good).
        self._check(fn, items, overrides)
        return self._drive_stream(fn, items, overrides, ordered, with_index)

    def _drive_stream(
        self, fn: Any, items: Any, overrides: dict[str, Any], ordered: bool, with_index: bool
    ) -> Iterator[Any]:
        run = self._start(fn, items, overrides, stream=True)
        failures = run.outcomes.failures
        buffer: dict[int, Any] = {}
        next_index = 0
        input_error: Exception | None = None
        try:
            run.begin()
            while True:
                ready = run.outcomes.ready
                while ready:
                    batch = ready.popleft()
                    pairs = (
                        (i, v)
                        for pos, (i, v) in enumerate(zip(batch.indices, batch.values, strict=True))
                        if pos not in batch.failed
                    )
                    if ordered:
                        buffer.update(pairs)
                        continue
                    for i, v in pairs:
                        yield (i, v) if with_index else v
                if ordered:
                    while next_index in buffer or next_index in failures:
                        if next_index in buffer:
                            value = buffer.pop(next_index)
                            next_index += 1
                            run.delivered = next_index
                            yield (next_index - 1, value) if with_index else value
                        else:
                            next_index += 1
                            run.delivered = next_index
                else:
                    run.delivered = run.outcomes.settled
                if run.done and not ready:
                    break
                try:
                    run.poll()
                except Exception as exc:
                    if input_error is not None:
                        raise
                    # The input raised: as multiprocessing's imap does, the results of the
                    # items taken before come first, then the input's error.
                    input_error = exc
        except GeneratorExit:
            run.abort("the caller stopped iterating")
            self._finish(run)
            raise
        except BaseException:
            self._finish(run)
            raise
        self._finish(run)
        if input_error is not None:
            raise input_error
        self._conclude(run, None)


def map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | str | None = None,
    timeout: float | None = None,
    fail_fast: bool = False,
    schedule: str = "dynamic",
    chunksize: int | None = None,
    start_method: str | None = None,
    grace: float = 5.0,
    progress: bool = False,
    cost: Callable[[Any], float] | RunRecord | None = None,
    backend: str = "local",
    address: str | None = None,
    report: ReportOption = None,
) -> list[R]:
    """Apply ``fn`` to every item in worker processes; return the results in input order.

    Workers are forked for the call (so ``fn`` may be a lambda or a closure under ``fork``) and
    gone when it returns. Options as for :class:`Pool`: ``backend="dask"`` runs the tasks on
    a Dask cluster (``address``, or a local cluster started and closed by the call), and
    ``report="run.html"`` (or a list of ``.json``, ``.md``, ``.html`` names) writes the run
    record there, also when the call raises.

    Raises:
        LoopError: any task did not pass (failed, crashed, timed out, not run); it holds one
            exception per such task and ``err.results`` with the results of the others.
        KeyboardInterrupt: Ctrl-C; the first drains the tasks in flight, a second stops now.
        TypeError, ValueError: bad input, with the fix in the message (before anything runs).
        PloopError: ``backend="dask"`` without Dask distributed installed.

    Example:
        >>> import pytest_ploop as ploop
        >>> ploop.map(abs, [-3, -2, -1], workers=2)
        [3, 2, 1]
        >>> ploop.map(abs, [-3, -2], workers=2, backend="dask")  # doctest: +SKIP
        [3, 2]
    """
    with Pool(
        workers, timeout=timeout, fail_fast=fail_fast, schedule=schedule, chunksize=chunksize,
        start_method=start_method, grace=grace, progress=progress, cost=cost, backend=backend,
        address=address, report=report,
    ) as pool:  # fmt: skip
        pool._one_shot = True
        return pool.map(fn, items)
