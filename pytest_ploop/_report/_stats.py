"""Statistics of a run record: what parallelism bought, where the time went, what it cost.

Every figure comes from the record alone (so a record read back from JSON gives the same
numbers). Times are seconds; task and sample times are relative to the run's start.

- ``serial_s``: the sum of the tasks' wall times, what one process would have needed;
  ``speedup = serial_s / wall_s``; ``efficiency = speedup / workers``.
- ``critical_path_s``: the longest task, the bound no worker count beats.
- ``load_imbalance``: the busiest worker's busy time over the mean busy time (1.0 is even).
- ``overhead_s``: worker-seconds not spent in tasks (``workers * wall_s - serial_s``), split
  in :class:`TimeSplit` into start-up, gaps between tasks, the tail and unused workers.
- ``amdahl``: the speedup expected at 1, 2, 4, 8 and 16 workers: Amdahl's law with the serial
  fraction fitted to this run (the Karp-Flatt metric), capped by the longest task.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._engine._record import OUTCOMES, RunRecord

AMDAHL_WORKERS = (1, 2, 4, 8, 16)

# What a report shows per task: the engine's outcomes, and for tests what pytest said of
# them (a test that failed its assertion ran fine as far as the engine is concerned).
SHOWN_OUTCOMES = ("passed", "failed", "error", "crashed", "timed_out", "skipped", "xfailed",
                  "not_run")  # fmt: skip
BAD_OUTCOMES = frozenset({"failed", "error", "crashed", "timed_out"})
_ENGINE_TO_SHOWN = np.array([SHOWN_OUTCOMES.index(o) for o in OUTCOMES], dtype=np.int64)

Outcomes = Mapping[int, str] | None
"""Task index -> the outcome to show where the engine saw it pass, or the kind of failure
where it saw it fail (see ``SHOWN_OUTCOMES`` and :func:`columns`)."""

Counts = Mapping[str, int] | None
"""Shown outcome -> how many: a pytest run's tests as pytest counted them (a task may be a
group of tests, or never have reached a worker); ``None``: counted from the task table."""

Labels = Mapping[int, str] | Callable[[int], str] | None
"""How a task index is named in a report: a mapping (missing indices show as numbers), a
function, or ``None`` (the index itself)."""

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def label_function(labels: Labels) -> Callable[[int], str]:
    """``labels`` as a function of the task index."""
    if labels is None:
        return str
    if callable(labels):
        return labels
    mapping = labels
    return lambda i: mapping.get(i, str(i))


@dataclass(frozen=True)
class TaskStat:
    """One task as a report shows it (times relative to the run's start)."""

    index: int
    label: str
    worker: str
    start: float
    end: float
    cpu_s: float
    outcome: str
    peak_rss: int | None  # its worker's highest sampled RSS while it ran; None: no sample

    @property
    def wall_s(self) -> float:
        """Seconds from the task's start to its end."""
        return self.end - self.start


@dataclass(frozen=True)
class WorkerStat:
    """One worker slot over the run: its tasks, its idle time and its sampled resources."""

    id: str
    tasks: int
    busy_s: float
    cpu_s: float  # CPU seconds of its tasks, as the worker measured them
    startup_s: float  # from the run's start to its first task (the whole run if it had none)
    gaps_s: float  # between its tasks: dispatch and messages
    tail_s: float  # from its last task's end to the run's end: waiting for the others
    restarts: int
    pids: tuple[int, ...]
    samples: int
    cpu_mean: float | None  # percent of one CPU, mean of the samples
    cpu_max: float | None
    peak_rss: int | None  # bytes
    read_bytes: int  # over all its processes, from their last samples
    write_bytes: int
    ctx_switches: int


@dataclass(frozen=True)
class TimeSplit:
    """Where the worker-seconds went: ``capacity_s = lanes * wall_s`` is the sum of the rest."""

    capacity_s: float
    tasks_s: float
    startup_s: float
    gaps_s: float
    tail_s: float
    unused_s: float  # worker slots that ran no task at all

    @property
    def overhead_s(self) -> float:
        """Worker-seconds not spent in tasks."""
        return self.capacity_s - self.tasks_s


@dataclass(frozen=True)
class AmdahlPoint:
    """The speedup expected at ``workers``: ``estimate = min(amdahl, bound)``."""

    workers: int
    amdahl: float  # Amdahl's law with the fitted serial fraction (nan when not fitted)
    bound: float  # serial_s / max(longest task, serial_s / workers)
    estimate: float


@dataclass(frozen=True)
class RunStats:
    """The figures of one run (see the module docstring for their definitions)."""

    workers: int
    lanes: int  # worker slots: ``workers``, or more if more ran tasks
    start_method: str
    cpus: int
    tasks: int  # tasks that reached a worker
    counts: dict[str, int]
    wall_s: float
    serial_s: float
    cpu_s: float
    speedup: float
    efficiency: float
    critical_path_s: float
    load_imbalance: float
    overhead_s: float
    serial_fraction: float  # Karp-Flatt: nan with one worker
    peak_rss: int | None  # the workers' RSS summed at one sample, at its highest
    split: TimeSplit
    amdahl: tuple[AmdahlPoint, ...]
    slowest: tuple[TaskStat, ...]
    per_worker: tuple[WorkerStat, ...]

    @property
    def cpu_share(self) -> float:
        """The tasks' CPU time over their wall time: well under 1 when they waited (I/O,
        sleeps, locks) or, CPU-bound, competed for too few CPUs."""
        return self.cpu_s / self.serial_s if self.serial_s > 0 else math.nan

    @property
    def overhead_fraction(self) -> float:
        """The share of worker-seconds not spent in tasks."""
        cap = self.split.capacity_s
        return self.overhead_s / cap if cap > 0 else math.nan


@dataclass(frozen=True)
class TaskColumns:
    """The task table as numpy arrays, times relative to the run's start; ``outcome`` holds
    positions in ``SHOWN_OUTCOMES``."""

    index: Ints
    worker: Ints
    start: Floats
    end: Floats
    cpu: Floats
    outcome: Ints

    @property
    def wall(self) -> Floats:
        """Each task's wall time."""
        return self.end - self.start

    def bad(self) -> Ints:
        """Positions of the tasks that failed, errored, crashed or timed out."""
        codes = [SHOWN_OUTCOMES.index(o) for o in sorted(BAD_OUTCOMES)]
        return np.flatnonzero(np.isin(self.outcome, codes))


def columns(record: RunRecord, outcomes: Outcomes = None) -> TaskColumns:
    """The record's task table as numpy arrays (times relative to ``record.started``), with
    ``outcomes`` shown for the tasks the engine saw pass, and for those it saw fail where
    they name another failure (a test's error)."""
    t = record.tasks
    t0 = record.started
    index = np.asarray(t.index, dtype=np.int64)
    shown = _ENGINE_TO_SHOWN[np.asarray(t.outcome, dtype=np.int64)]
    if outcomes:
        # A test that failed its assertion ran fine as far as the engine is concerned: pytest's
        # word replaces its "passed". Its "failed" is kept, unless pytest's word is another
        # failure: a record read back holds a test's "error" as the engine's "failed".
        failed = SHOWN_OUTCOMES.index("failed")
        for k in np.flatnonzero((shown == 0) | (shown == failed)).tolist():
            name = outcomes.get(int(index[k]))
            if name is not None and (shown[k] == 0 or name in BAD_OUTCOMES):
                shown[k] = SHOWN_OUTCOMES.index(name)
    return TaskColumns(
        index,
        np.asarray(t.worker, dtype=np.int64),
        np.asarray(t.start, dtype=np.float64) - t0,
        np.asarray(t.end, dtype=np.float64) - t0,
        np.asarray(t.cpu_s, dtype=np.float64),
        shown,
    )


def worker_order(record: RunRecord) -> list[str]:
    """Every worker id the record names, in natural order (``w2`` before ``w10``)."""
    ids = set(record.tasks.worker_ids) | set(record.worker_info)
    ids |= {s.worker for s in record.samples}
    return sorted(ids, key=_natural)


def _natural(text: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p]


def compute(
    record: RunRecord,
    labels: Labels = None,
    top: int = 10,
    outcomes: Outcomes = None,
    counts: Counts = None,
) -> RunStats:
    """The figures of ``record``; ``labels`` names tasks, ``top`` is the slowest tasks kept,
    ``outcomes`` overrides what the engine saw pass (tests that failed), ``counts`` are the
    outcomes' counts when they are not the task table's (a pytest run's tests).

    Example::

        stats = compute(pool.last_run)
        print(f"{stats.speedup:.1f}x, {stats.load_imbalance:.2f} imbalance")
    """
    cols = columns(record, outcomes)
    wall_s = record.wall_s if math.isfinite(record.wall_s) else 0.0
    walls = cols.wall
    serial_s = float(walls.sum())
    ids = worker_order(record)
    per_worker = _per_worker(record, cols, ids, wall_s)
    lanes = max(record.workers, len(ids))
    busy = np.array([w.busy_s for w in per_worker] + [0.0] * (lanes - len(per_worker)))
    mean_busy = float(busy.mean()) if lanes else 0.0
    speedup = serial_s / wall_s if wall_s > 0 else math.nan
    critical = float(walls.max()) if len(walls) else 0.0
    split = _split(per_worker, lanes, wall_s, serial_s)
    fraction = _serial_fraction(speedup, record.workers)
    return RunStats(
        workers=record.workers,
        lanes=lanes,
        start_method=record.start_method,
        cpus=record.cpus,
        tasks=len(walls),
        counts=_counts(record, cols, counts),
        wall_s=wall_s,
        serial_s=serial_s,
        cpu_s=float(cols.cpu.sum()),
        speedup=speedup,
        efficiency=speedup / record.workers if record.workers else math.nan,
        critical_path_s=critical,
        load_imbalance=float(busy.max()) / mean_busy if mean_busy > 0 else math.nan,
        overhead_s=split.overhead_s,
        serial_fraction=fraction,
        peak_rss=record.peak_rss,
        split=split,
        amdahl=amdahl(serial_s, critical, fraction),
        slowest=tuple(task_stats(record, labels, _slowest(cols, top), cols)),
        per_worker=tuple(per_worker),
    )


def _counts(record: RunRecord, cols: TaskColumns, given: Counts) -> dict[str, int]:
    """Per shown outcome: ``given``, else tasks: those that ran from the table, the rest from
    the record."""
    if given is not None:
        return {k: int(given.get(k, 0)) for k in SHOWN_OUTCOMES}
    ran = np.bincount(cols.outcome, minlength=len(SHOWN_OUTCOMES)).tolist()
    counts = dict(zip(SHOWN_OUTCOMES, ran, strict=True))
    counts["not_run"] = int(record.counts.get("not_run", 0))
    return counts


def _slowest(cols: TaskColumns, top: int) -> Ints:
    """Positions of the ``top`` longest tasks, longest first (ties: lower index first)."""
    order = np.lexsort((cols.index, -cols.wall))
    return order[:top]


def task_stats(
    record: RunRecord,
    labels: Labels = None,
    positions: npt.ArrayLike | None = None,
    cols: TaskColumns | None = None,
) -> list[TaskStat]:
    """The tasks at ``positions`` of the table (all of them by default), with their labels
    and peak RSS."""
    cols = cols if cols is not None else columns(record)
    pos = np.arange(len(cols.end)) if positions is None else np.asarray(positions, dtype=np.int64)
    name = label_function(labels)
    ids = record.tasks.worker_ids
    peaks = task_peak_rss(record, cols, pos)
    return [
        TaskStat(
            int(cols.index[p]),
            name(int(cols.index[p])),
            ids[cols.worker[p]],
            float(cols.start[p]),
            float(cols.end[p]),
            float(cols.cpu[p]),
            SHOWN_OUTCOMES[cols.outcome[p]],
            None if peak < 0 else int(peak),
        )
        for p, peak in zip(pos.tolist(), peaks.tolist(), strict=True)
    ]


def task_peak_rss(record: RunRecord, cols: TaskColumns, positions: Ints) -> Ints:
    """Per task at ``positions``: the highest RSS sampled from its worker while it ran
    (``-1`` where no sample fell inside the task: it was shorter than the tick)."""
    out = np.full(len(positions), -1, dtype=np.int64)
    if not record.samples or not len(positions):
        return out
    t0 = record.started
    readings: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for s in record.samples:
        readings[s.worker].append((s.t - t0, s.rss))
    by_worker: dict[str, tuple[Floats, Ints]] = {}
    for wid, rows in readings.items():
        rows.sort()
        by_worker[wid] = (
            np.array([t for t, _ in rows], dtype=np.float64),
            np.array([r for _, r in rows], dtype=np.int64),
        )
    ids = record.tasks.worker_ids
    workers = cols.worker[positions]
    for code in np.unique(workers).tolist():
        found = by_worker.get(ids[code])
        if found is None:
            continue
        ts, rss = found
        where = np.flatnonzero(workers == code)
        lo = np.searchsorted(ts, cols.start[positions[where]], side="left")
        hi = np.searchsorted(ts, cols.end[positions[where]], side="right")
        # Each sample falls in at most one task of its worker: this loop is over samples.
        for k in np.flatnonzero(hi > lo).tolist():
            out[where[k]] = int(rss[lo[k] : hi[k]].max())
    return out


def _per_worker(
    record: RunRecord, cols: TaskColumns, ids: list[str], wall_s: float
) -> list[WorkerStat]:
    table_ids = record.tasks.worker_ids
    code = {wid: table_ids.index(wid) if wid in table_ids else -1 for wid in ids}
    samples: dict[str, list[tuple[float, int, float, int, int, int, int]]] = {w: [] for w in ids}
    for s in record.samples:
        samples[s.worker].append(
            (s.t, s.pid, s.cpu_percent, s.rss, s.read_bytes, s.write_bytes, s.ctx_switches)
        )
    out = []
    for wid in ids:
        mask = cols.worker == code[wid]
        starts, ends = cols.start[mask], cols.end[mask]
        busy = float((ends - starts).sum())
        info = record.worker_info.get(wid)
        if len(starts):
            first, last = float(starts.min()), float(ends.max())
            startup, tail, gaps = first, max(0.0, wall_s - last), max(0.0, last - first - busy)
        else:
            startup, tail, gaps = wall_s, 0.0, 0.0
        out.append(
            WorkerStat(
                id=wid,
                tasks=int(mask.sum()),
                busy_s=busy,
                cpu_s=float(cols.cpu[mask].sum()),
                startup_s=startup,
                gaps_s=gaps,
                tail_s=tail,
                restarts=info.restarts if info else 0,
                pids=tuple(info.pids) if info else (),
                **_resources(samples[wid]).__dict__,
            )
        )
    return out


@dataclass(frozen=True)
class _Resources:
    samples: int = 0
    cpu_mean: float | None = None
    cpu_max: float | None = None
    peak_rss: int | None = None
    read_bytes: int = 0
    write_bytes: int = 0
    ctx_switches: int = 0


def _resources(rows: list[tuple[float, int, float, int, int, int, int]]) -> _Resources:
    """CPU, peak RSS and I/O of one worker from its samples. I/O and context switches are
    counters of each process since it started: the last reading of each process, summed."""
    if not rows:
        return _Resources()
    cpu = np.array([r[2] for r in rows], dtype=np.float64)
    last: dict[int, tuple[int, int, int]] = {}
    for _t, pid, _cpu, _rss, read, write, ctx in sorted(rows):
        last[pid] = (read, write, ctx)
    totals = np.array(list(last.values()), dtype=np.int64).sum(axis=0)
    return _Resources(
        samples=len(rows),
        cpu_mean=float(cpu.mean()),
        cpu_max=float(cpu.max()),
        peak_rss=max(r[3] for r in rows),
        read_bytes=int(totals[0]),
        write_bytes=int(totals[1]),
        ctx_switches=int(totals[2]),
    )


def _split(per_worker: list[WorkerStat], lanes: int, wall_s: float, serial_s: float) -> TimeSplit:
    used = [w for w in per_worker if w.tasks]
    idle_lanes = lanes - len(used)
    return TimeSplit(
        capacity_s=lanes * wall_s,
        tasks_s=serial_s,
        startup_s=math.fsum(w.startup_s for w in used),
        gaps_s=math.fsum(w.gaps_s for w in used),
        tail_s=math.fsum(w.tail_s for w in used),
        unused_s=idle_lanes * wall_s,
    )


def _serial_fraction(speedup: float, workers: int) -> float:
    """The Karp-Flatt metric: the serial fraction ``e`` for which Amdahl's law gives the
    measured speedup at ``workers``, clipped to [0, 1]; nan with one worker."""
    if workers <= 1 or not math.isfinite(speedup) or speedup <= 0:
        return math.nan
    e = (1 / speedup - 1 / workers) / (1 - 1 / workers)
    return min(1.0, max(0.0, e))


def expected_speedup(
    n: float, serial_s: float, critical_s: float, fraction: float
) -> tuple[float, float, float]:
    """At ``n`` workers: (Amdahl's law with the serial ``fraction``, the bound of the longest
    task and of ``n`` itself, the estimate: the smaller of the two)."""
    law = 1 / (fraction + (1 - fraction) / n) if math.isfinite(fraction) else math.nan
    longest = max(critical_s, serial_s / n)
    bound = serial_s / longest if longest > 0 else float(n)
    return law, bound, bound if math.isnan(law) else min(law, bound)


def amdahl(
    serial_s: float, critical_s: float, fraction: float, at: tuple[int, ...] = AMDAHL_WORKERS
) -> tuple[AmdahlPoint, ...]:
    """The expected speedup at each worker count of ``at``: Amdahl's law with the serial
    ``fraction``, and never more than ``serial_s / critical_s`` (the longest task runs
    whole on one worker) nor than the worker count."""
    return tuple(AmdahlPoint(n, *expected_speedup(n, serial_s, critical_s, fraction)) for n in at)
