"""Helpers of the Dask backend tests: a driver that does what ``Pool.map`` does with a run, and
task functions (module-level, so Dask's spawned workers import them by reference).

``dask_map`` stands in for ``ploop.map(fn, items, backend="dask")`` until the loop API builds
a ``DaskRun`` itself; it assembles results and raises exactly as ``Pool.map`` does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from pytest_ploop import LoopError
from pytest_ploop._backends._dask import DaskBackend, DaskRun
from pytest_ploop._engine._outcomes import failure_message
from pytest_ploop._engine._pool import RunOptions


def start(
    backend: DaskBackend, fn: Callable[[Any], Any], items: Iterable[Any], **options: Any
) -> DaskRun:
    """A started run with ``options`` (``RunOptions`` fields; ``workers`` does not apply)."""
    return backend.run(fn, items, RunOptions(workers=2, **options))


def results_of(run: DaskRun) -> list[Any]:
    """The results at their input positions (``None`` where a task did not pass)."""
    results: list[Any] = [None] * run.consumed
    for batch in run.outcomes.ready:
        for i, v in zip(batch.indices, batch.values, strict=True):
            results[i] = v
    for i in run.outcomes.failures:
        results[i] = None
    return results


def dask_map(
    backend: DaskBackend, fn: Callable[[Any], Any], items: Iterable[Any], **options: Any
) -> tuple[list[Any], DaskRun]:
    """Run ``fn`` over ``items`` to the end; return the results and the run, or raise
    ``LoopError`` (with ``err.run`` set) as ``Pool.map`` does."""
    run = start(backend, fn, items, **options)
    try:
        run.run_to_end()
    finally:
        run.finish()
    results = results_of(run)
    if run.fatal is not None:
        raise run.fatal
    failures = [run.outcomes.failures[i] for i in sorted(run.outcomes.failures)]
    if failures:
        err = LoopError(
            failure_message(failures, run.consumed, run.not_consumed),
            [f.exception for f in failures],
            failures=failures,
            results=results,
            total=run.consumed,
            not_consumed=run.not_consumed,
        )
        err.run = run  # type: ignore[attr-defined]
        raise err
    return results, run


# -- task functions ---------------------------------------------------------------------


def pid_after(seconds: float) -> int:
    """Sleep, then return the worker's pid."""
    time.sleep(seconds)
    return os.getpid()


def exit_on(x: tuple[int, int]) -> int:
    """``os._exit`` the worker when ``x[0]`` equals ``x[1]``; else return ``x[0]``."""
    if x[0] == x[1]:
        os._exit(7)
    return x[0]


def raise_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


def hold(x: tuple[str, int, float]) -> tuple[float, float]:
    """Hold the semaphore ``x[0]`` of ``x[1]`` slots for ``x[2]`` seconds; return when."""
    from pytest_ploop._backends._dask_sync import dask_semaphore

    name, slots, seconds = x
    with dask_semaphore(name, slots):
        t0 = time.time()
        time.sleep(seconds)
        return t0, time.time()


def try_lock(x: tuple[str, float]) -> str:
    """Take the lock ``x[0]``, waiting at most ``x[1]`` seconds."""
    from pytest_ploop._backends._dask_sync import dask_lock

    with dask_lock(x[0], timeout=x[1]):
        return "got it"


def sleep_then_fail(x: tuple[float, bool]) -> float:
    """Sleep ``x[0]`` seconds, then raise if ``x[1]``."""
    time.sleep(x[0])
    if x[1]:
        raise RuntimeError("failing after a sleep")
    return x[0]


def hold_ploop_lock(x: tuple[str, int, float]) -> tuple[float, float]:
    """Hold ``ploop.semaphore(x[0], x[1])`` (``ploop.lock`` when ``x[1]`` is 1) for ``x[2]``
    seconds; return when, on the machine's wall clock."""
    import pytest_ploop as ploop

    name, slots, seconds = x
    with ploop.lock(name) if slots == 1 else ploop.semaphore(name, slots):
        t0 = time.time()
        time.sleep(seconds)
        return t0, time.time()


def ploop_lock_within(x: tuple[str, float]) -> str:
    """Take ``ploop.lock(x[0])``, waiting at most ``x[1]`` seconds."""
    import pytest_ploop as ploop

    with ploop.lock(x[0], timeout=x[1]):
        return "got it"


def close_worker_once(x: tuple[int, str]) -> int:
    """The first time it runs with a ``marker`` path that does not exist yet: create it and
    close this task's Dask worker, as its cluster or nanny would (the process ends under the
    task). Otherwise return ``x[0]``."""
    value, marker = x
    if marker and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        from distributed import get_worker

        worker = get_worker()
        worker.loop.add_callback(worker.close)
        time.sleep(30)  # never ends: the close ends the process first
    return value
