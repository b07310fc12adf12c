"""The run record: what a run did and what it cost, collected by the engine.

Tasks are stored column by column (one ``array`` per field) so that a run of a hundred
thousand tiny tasks records them at the cost of a few list extensions per chunk.
"""

from __future__ import annotations

import math
import os
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("passed", "failed", "crashed", "timed_out", "not_run")


@dataclass(frozen=True)
class TaskRow:
    """One task as it ran: times are ``time.monotonic()`` seconds (machine-wide on Linux)."""

    index: int
    worker: str
    start: float
    end: float
    cpu_s: float
    outcome: str

    @property
    def wall_s(self) -> float:
        """Seconds from the task's start to its end."""
        return self.end - self.start


@dataclass
class TaskTable:
    """Every task that reached a worker, column by column.

    ``worker`` and ``outcome`` hold small codes (positions in ``worker_ids`` and
    ``OUTCOMES``); :meth:`row` and iteration give the names. Chunks are added as they came
    and spread into the columns when a column is first read: the run itself pays a list
    append per chunk, and whoever reads the record pays for the rest.
    """

    _index: array[int] = field(default_factory=lambda: array("q"))
    _worker: array[int] = field(default_factory=lambda: array("H"))
    _start: array[float] = field(default_factory=lambda: array("d"))
    _end: array[float] = field(default_factory=lambda: array("d"))
    _cpu: array[float] = field(default_factory=lambda: array("d"))
    _outcome: array[int] = field(default_factory=lambda: array("b"))
    _pending: list[tuple[Any, ...]] = field(default_factory=list)
    worker_ids: list[str] = field(default_factory=list)

    def add(
        self,
        indices: Sequence[int],
        worker: str,
        first_start: float,
        ends: Sequence[float] | None,
        cpu: Sequence[float],
        failed: dict[int, str] | None = None,
        starts: Sequence[float] | None = None,
        batch_end: float | None = None,
    ) -> None:
        """Append a chunk's tasks: the first started at ``first_start``, each later one when
        the one before it ended (or at ``starts``). A batch gives no ``ends`` but
        ``batch_end``: its tasks share the batch's time equally. ``cpu`` is each task's CPU
        seconds, or one figure that the tasks share equally. ``failed`` maps positions that
        did not pass to their outcome."""
        self._pending.append((indices, worker, first_start, ends, cpu, failed, starts, batch_end))

    def _flush(self) -> None:
        for indices, worker, first, ends, cpu, failed, starts, batch_end in self._pending:
            n = len(indices)
            if ends is None:
                step = (batch_end - first) / n if n else 0.0
                ends = array("d", [first + step * (i + 1) for i in range(n)])
            self._index.extend(indices)
            self._worker.extend(array("H", [self._worker_code(worker)]) * n)
            if starts is not None:
                self._start.extend(starts)
            else:
                self._start.append(first)
                self._start.extend(ends[: n - 1])
            self._end.extend(ends)
            if len(cpu) == n:
                self._cpu.extend(cpu)
            elif n:
                self._cpu.extend(array("d", [sum(cpu) / n]) * n)
            codes = array("b", bytes(n))
            for pos, outcome in (failed or {}).items():
                codes[pos] = OUTCOMES.index(outcome)
            self._outcome.extend(codes)
        self._pending.clear()

    def _worker_code(self, worker: str) -> int:
        try:
            return self.worker_ids.index(worker)
        except ValueError:
            self.worker_ids.append(worker)
            return len(self.worker_ids) - 1

    @property
    def index(self) -> array[int]:
        """Each task's position in the input."""
        self._flush()
        return self._index

    @property
    def worker(self) -> array[int]:
        """Each task's worker, as a position in ``worker_ids``."""
        self._flush()
        return self._worker

    @property
    def start(self) -> array[float]:
        """Each task's start, ``time.monotonic()`` seconds."""
        self._flush()
        return self._start

    @property
    def end(self) -> array[float]:
        """Each task's end, ``time.monotonic()`` seconds."""
        self._flush()
        return self._end

    @property
    def cpu_s(self) -> array[float]:
        """Each task's CPU seconds."""
        self._flush()
        return self._cpu

    @property
    def outcome(self) -> array[int]:
        """Each task's outcome, as a position in ``OUTCOMES``."""
        self._flush()
        return self._outcome

    def __len__(self) -> int:
        return len(self.end)

    def __iter__(self) -> Iterator[TaskRow]:
        for i in range(len(self)):
            yield self.row(i)

    def row(self, i: int) -> TaskRow:
        """The ``i``-th recorded task (in the order they were recorded)."""
        self._flush()
        return TaskRow(
            self._index[i],
            self.worker_ids[self._worker[i]],
            self._start[i],
            self._end[i],
            self._cpu[i],
            OUTCOMES[self._outcome[i]],
        )


@dataclass(frozen=True)
class Sample:
    """One reading of one worker's resources, taken by the main process on its tick."""

    t: float
    worker: str
    pid: int
    cpu_percent: float
    rss: int
    read_bytes: int
    write_bytes: int
    ctx_switches: int
    children: int


@dataclass
class WorkerInfo:
    """One worker slot over the run: the processes it had and how it spent its time."""

    id: str
    pids: list[int] = field(default_factory=list)
    restarts: int = 0
    tasks: int = 0
    busy_s: float = 0.0


@dataclass
class RunRecord:
    """What one run did and what it cost.

    Attributes:
        workers: the worker count the run was given (1 runs in the calling process).
        start_method: ``"fork"``, ``"spawn"``, ``"forkserver"`` or ``"inline"``.
        started, ended: ``time.monotonic()`` at the start and the end of the run.
        tasks: every task that reached a worker (see :class:`TaskTable`).
        counts: tasks per outcome, including ``not_run``.
        samples: resource samples of the workers.
        worker_info: per worker slot, its processes, restarts, tasks and busy time.
        cpus: CPUs this process may use, for context.
    """

    workers: int
    start_method: str
    started: float
    ended: float = math.nan
    tasks: TaskTable = field(default_factory=TaskTable)
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    worker_info: dict[str, WorkerInfo] = field(default_factory=dict)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def wall_s(self) -> float:
        """Seconds from the start of the run to its end."""
        return self.ended - self.started

    @property
    def serial_s(self) -> float:
        """Serial-equivalent seconds: the sum of every task's wall time."""
        return math.fsum(e - s for s, e in zip(self.tasks.start, self.tasks.end, strict=True))

    @property
    def speedup(self) -> float:
        """Serial-equivalent time over wall time."""
        wall = self.wall_s
        return self.serial_s / wall if wall > 0 else math.nan

    @property
    def efficiency(self) -> float:
        """Speedup per worker (1.0 is perfect)."""
        return self.speedup / self.workers

    @property
    def critical_path_s(self) -> float:
        """The longest task: the bound no worker count beats."""
        return max(
            (e - s for s, e in zip(self.tasks.start, self.tasks.end, strict=True)), default=0.0
        )

    @property
    def peak_rss(self) -> int | None:
        """The highest sum of the workers' RSS over the samples of one tick (they share
        ``t``); ``None`` without samples."""
        if not self.samples:
            return None
        per_tick: dict[float, int] = {}
        for s in self.samples:
            per_tick[s.t] = per_tick.get(s.t, 0) + s.rss
        return max(per_tick.values())

    def summary(self) -> str:
        """One line: workers, wall, serial-equivalent time, speedup and efficiency."""
        return (
            f"{self.workers} worker{'s' if self.workers != 1 else ''}, {self.wall_s:.2f}s wall, "
            f"{self.serial_s:.2f}s of tasks"
            f" -> {self.speedup:.2f}x speedup ({self.efficiency:.0%} efficiency)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready values."""
        return {
            "workers": self.workers,
            "start_method": self.start_method,
            "wall_s": self.wall_s,
            "serial_s": self.serial_s,
            "speedup": self.speedup,
            "efficiency": self.efficiency,
            "critical_path_s": self.critical_path_s,
            "counts": {k: self.counts.get(k, 0) for k in OUTCOMES},
            "cpus": self.cpus,
            "tasks": [
                {
                    "index": r.index,
                    "worker": r.worker,
                    "start": r.start - self.started,
                    "end": r.end - self.started,
                    "cpu_s": r.cpu_s,
                    "outcome": r.outcome,
                }
                for r in self.tasks
            ],
            "samples": [s.__dict__ | {"t": s.t - self.started} for s in self.samples],
            "worker_info": [w.__dict__ for w in self.worker_info.values()],
        }
