"""Fanning a function's cases out to forked workers, within a budget of processes.

Used by ``parametrize_parallel`` in pytest and in direct calls. A task is a case's index: the
workers are forked after the cases (and, in pytest, the fixtures) exist, and inherit them.

Inside a ``--ploop-workers`` run every worker is a process running tests, and a test that fans
its cases out starts more. The budget bounds them all together: ``B`` slots (the CPUs this
process may use, or ``PLOOP_FANOUT_BUDGET``), a counting semaphore of ``flock`` files in the
run's private directory (``PLOOP_RUN_DIR``, which every worker of the run knows)::

    slot i < W (W: the run's workers)   held by worker w<i> while it has tests to run; a
                                        fan-out may take it only after w<i> marked itself
                                        done, never before (a worker that has not started
                                        yet keeps its slot)
    slot i >= W                         free for any fan-out

A fan-out in worker w<k> runs on w<k>'s own slot (w<k> only waits for it) plus the slots it can
take; it takes more as they come free (workers that ran out of tests), up to its cap, and near
its end gives back what its remaining cases no longer need. The kernel releases a dead
process's ``flock``, so a crash never leaks a slot.

Why a semaphore rather than the CPUs divided by the worker count: the usual case is one
expensive decorated test among many quick tests. Divided, its fan-out keeps CPUs/W processes
for its whole life, also once the other workers have no test left and sit idle; with the
semaphore it grows into their slots, and still never takes a slot a worker needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import filelock

from ._backends import LoopRun, open_dask
from ._engine import _worker
from ._engine._cpus import BUDGET_ENV, available_cpus
from ._engine._inline import InlineRun
from ._engine._pool import Run, RunOptions, State
from ._engine._workers import Workers

RESIZE_EVERY_S = 0.1
SLOT_LOCK_PREFIX = "fanout-slot-"


class _QuietSlotLocks(logging.Filter):
    """filelock logs each acquire and release at DEBUG. The slots' locks are this module's
    own, taken around every test of a ``--ploop-workers`` run: their records filled the
    users' ``--log-file`` and live logging at DEBUG. The user's own locks still log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(a, str) and SLOT_LOCK_PREFIX in a for a in args)


logging.getLogger("filelock").addFilter(_QuietSlotLocks())

__all__ = ["BUDGET_ENV", "Plan", "Slots", "budget_size", "default_cap", "reraise_interrupt", "run"]


def budget_size() -> int:
    """The processes a run may use at once: ``PLOOP_FANOUT_BUDGET``, else the CPUs."""
    given = os.environ.get(BUDGET_ENV, "").strip()
    if given and given.lower() != "auto":
        with contextlib.suppress(ValueError):
            return max(1, int(given))
    return available_cpus()


def default_cap() -> int:
    """Workers of a fan-out when the decorator does not say: the budget in a ploop run; the
    CPUs divided by the workers under pytest-xdist (which shares no directory to count in);
    else the CPUs."""
    if Slots.from_env() is not None:
        return budget_size()
    xdist = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if xdist.isdigit() and int(xdist) > 0:
        return max(1, available_cpus() // int(xdist))
    return available_cpus()


class Slots:
    """The budget's slots as seen by one process: which it holds, which it may take."""

    def __init__(self, directory: Path, size: int, workers: int, own: int) -> None:
        self.directory = directory
        self.size = size
        self.workers = workers
        self.own = own
        self.held: list[filelock.BaseFileLock] = []

    @classmethod
    def from_env(cls) -> Slots | None:
        """The slots of the ploop run this process is a worker of, or ``None`` outside one.

        The environment names the run, but a pytest that a test starts as a subprocess
        inherits it and is a run of its own: only a process whose worker loop runs (its
        socket is set; never true after an exec) is a worker.
        """
        worker, directory = os.environ.get("PLOOP_WORKER", ""), os.environ.get("PLOOP_RUN_DIR")
        if not worker.startswith("w") or not worker[1:].isdigit() or not directory:
            return None
        if _worker._SOCK is None:
            return None
        count = os.environ.get("PLOOP_WORKER_COUNT", "1")
        workers = int(count) if count.isdigit() else 1
        return cls(Path(directory), budget_size(), workers, int(worker[1:]))

    def lock(self, i: int) -> filelock.BaseFileLock:
        path = str(self.directory / f"{SLOT_LOCK_PREFIX}{i}.lock")
        return filelock.FileLock(path, is_singleton=False)

    def done_marker(self, i: int) -> Path:
        return self.directory / f"fanout-done-{i}"

    def take(self, n: int) -> int:
        """Take up to ``n`` more free slots now (never waits); how many it took."""
        got = 0
        for i in range(self.size):
            if got >= n:
                break
            if i == self.own or (i < self.workers and not self.done_marker(i).exists()):
                continue
            slot = self.lock(i)
            try:
                slot.acquire(timeout=0)
            except filelock.Timeout:
                continue
            self.held.append(slot)
            got += 1
        return got

    def give_back(self, n: int) -> None:
        """Release ``n`` of the slots this process took."""
        for _ in range(min(n, len(self.held))):
            self.held.pop().release()

    def release(self) -> None:
        self.give_back(len(self.held))


# A worker's own slot, held while it has tests (see the module docstring).
_OWN: filelock.BaseFileLock | None = None
# The process and environment found to have no slot of their own (not a worker, or a worker
# past the budget): the next test does not read the CPU quota again to find the same.
_SLOTLESS: tuple[object, ...] | None = None


def hold_worker_slot() -> None:
    """In a ploop worker about to run a test: hold its own slot (no wait: a slot a fan-out
    took after this worker said it was done is left to the fan-out)."""
    global _OWN, _SLOTLESS
    if _OWN is not None:
        return
    env = os.environ
    key = (os.getpid(), *(env.get(k, "") for k in ("PLOOP_WORKER", "PLOOP_RUN_DIR", BUDGET_ENV)))
    if key == _SLOTLESS:
        return
    slots = Slots.from_env()
    if slots is None or slots.own >= slots.size:
        _SLOTLESS = key
        return
    slot = slots.lock(slots.own)
    with contextlib.suppress(filelock.Timeout):
        slot.acquire(timeout=0)
        _OWN = slot
        slots.done_marker(slots.own).unlink(missing_ok=True)


def worker_slot_done() -> None:
    """In a ploop worker that ran its last test: mark it done, then free its slot."""
    global _OWN
    slots = Slots.from_env()
    if slots is None or _OWN is None:
        return
    slots.done_marker(slots.own).touch()
    _OWN.release()
    _OWN = None


@dataclass(frozen=True)
class Plan:
    """How to run the cases: the decorator's options, resolved."""

    workers: int | None  # at most this many; None: default_cap()
    timeout: float | None = None
    fail_fast: bool = False
    schedule: str = "dynamic"
    order: Sequence[int] | None = None  # positions in dispatch order (longest first)
    inline: bool = False  # in the calling process (a direct call with workers=1)
    backend: str = "local"  # or "dask": the cases are pickled to a Dask cluster's workers
    address: str | None = None  # the Dask scheduler; None: a local cluster for this run
    dask: Any = None  # an open DaskBackend to run on (kept open), instead of address


def run(fn: Callable[[int], Any], items: list[int], plan: Plan) -> LoopRun:
    """Run ``fn`` on every case index in ``items``; return the finished run (outcomes by
    position in ``items``, and the run record)."""
    in_worker = _worker._SOCK is not None  # this process is a worker (see Slots.from_env)
    slots = Slots.from_env()
    cap = max(1, min(plan.workers or default_cap(), len(items)))
    options = RunOptions(
        workers=1,
        timeout=plan.timeout,
        fail_fast=plan.fail_fast,
        schedule=plan.schedule,
        order=plan.order,
        # In a ploop worker its own handlers stay: the main process decides for the run.
        handle_signals=not in_worker,
        # Within the budget every process counts: one thread each for numeric libraries.
        threads_per_worker=max(1, available_cpus() // slots.size) if slots is not None else None,
    )
    if plan.backend == "dask" and items:
        return _run_on_dask(fn, items, plan, replace(options, workers=cap))
    if plan.inline or not items or not hasattr(os, "fork"):
        inline = InlineRun(fn, items, options)
        try:
            inline.run_to_end()
        finally:
            inline.finish()
        _settle_the_rest(inline, items)
        return inline
    # In a budget: this worker's own slot (it only waits), and what is free of the rest.
    start = 1 + slots.take(cap - 1) if slots is not None else cap
    pool = Workers("fork")
    task_run = None
    try:
        task_run = Run(pool, fn, items, replace(options, workers=start))
        _drive(task_run, slots, cap)
    finally:
        if task_run is not None:
            task_run.finish()
        pool.close()
        if slots is not None:
            slots.release()
    _settle_the_rest(task_run, items)
    return task_run


def _run_on_dask(
    fn: Callable[[int], Any], items: list[int], plan: Plan, options: RunOptions
) -> LoopRun:
    """The cases on a Dask cluster: ``fn`` (which holds them) is pickled to its workers, no
    process is forked here and the fan-out budget does not apply (the cluster has its own
    workers). A local cluster of ``options.workers`` processes lives for this run only."""
    backend = plan.dask if plan.dask is not None else open_dask(plan.address, options.workers)
    try:
        task_run = backend.run(fn, items, replace(options, threads_per_worker=None))
        try:
            task_run.run_to_end()
        finally:
            task_run.finish()
    finally:
        if plan.dask is None:
            backend.close()
    _settle_the_rest(task_run, items)
    return task_run


def _settle_the_rest(task_run: LoopRun, items: list[int]) -> None:
    """Give the cases the run never took from its input (it stopped first: fail_fast, an
    interrupt) their ``not_run`` outcome: every case ends with exactly one."""
    settled = set(task_run.outcomes.failures)
    for batch in task_run.outcomes.ready:
        settled.update(batch.indices)
    reason = task_run.stop_reason or "the run ended early"
    for pos in range(len(items)):
        if pos not in settled:
            task_run.outcomes.not_run(pos, str(items[pos]), reason)


def _drive(task_run: Run, slots: Slots | None, cap: int) -> None:
    next_resize = time.monotonic() + RESIZE_EVERY_S
    while not task_run.done:
        task_run.poll()
        if slots is not None and time.monotonic() >= next_resize:
            next_resize = time.monotonic() + RESIZE_EVERY_S
            _resize(task_run, slots, cap)


def _resize(task_run: Run, slots: Slots, cap: int) -> None:
    """Grow into slots that came free; give back what the cases left no longer need.

    Engine gap: a Run has no public way to change its worker count, so this replaces its
    (frozen) options; ``_dispatch`` reads ``options.workers`` on every fill, starts workers
    in new slots when it grows, and sends nothing to slots past it when it shrinks (a busy
    worker there finishes what it holds: each holds at least one unsettled case, so the
    processes busy never exceed the cases left, which is what the slots held cover).
    """
    left = (task_run.total or 0) - task_run.outcomes.settled
    want = max(1, min(cap, left))
    have = 1 + len(slots.held)
    if want > have and task_run.state is State.RUNNING:  # not while it drains
        have += slots.take(want - have)
    elif want < have:
        slots.give_back(have - want)
        have = want
    if have != task_run.options.workers:
        task_run.options = replace(task_run.options, workers=have)
        task_run.workers.count = max(task_run.workers.count, have)
        task_run.record.workers = max(task_run.record.workers, have)


def reraise_interrupt(task_run: LoopRun) -> None:
    """After a run: re-raise what stopped it from outside (as ``ploop.map`` does)."""
    __tracebackhide__ = True
    if task_run.fatal is not None:
        raise task_run.fatal
    if task_run.interrupted == signal.SIGTERM:
        signal.raise_signal(signal.SIGTERM)  # the handler the run had replaced decides now
    elif task_run.interrupted is not None:
        raise KeyboardInterrupt
