"""A run record with what a report needs besides it: task labels, the kind of run, the
machine, a title. Saved JSON reads back into one of these, so that a saved run renders and
compares exactly as a fresh one."""

from __future__ import annotations

import datetime
import os
import platform as _platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._engine._record import RunRecord

if TYPE_CHECKING:  # numpy: imported with _stats, when a figure beyond the summary is asked
    import numpy.typing as npt

    from ._stats import Counts, Labels, Outcomes, RunStats, TaskColumns, TaskStat

KINDS = ("pytest", "loop")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Machine:
    """Where the run ran: CPUs this process could use, physical memory, OS, Python."""

    cpus: int
    memory_bytes: int | None = field(default_factory=_memory_bytes)
    platform: str = field(default_factory=_platform.platform)
    python: str = field(default_factory=_platform.python_version)


@dataclass
class RunReport:
    """What every rendering takes: a record, how to name its tasks, and context.

    Attributes:
        record: the run record (``pool.last_run``, the plugin's, or one read from JSON).
        labels: task names (a mapping or a function of the task index; default the index).
        kind: ``"pytest"`` (tasks are tests) or ``"loop"``.
        title: a heading for the Markdown and HTML reports.
        created: when the record was first written (ISO 8601, UTC).
        machine: where it ran (by default this machine, with the record's CPU count).
        outcomes: what to show for tasks the engine saw pass (pytest's verdict on a test).
        counts: tests per outcome, as pytest counted them, for a pytest run (its tasks may
            be groups of tests; tests the run never started have no task); by default the
            task table's counts.

    Example::

        report = RunReport(pool.last_run, title="resize images")
        Path("run.html").write_text(render_html(report))
    """

    record: RunRecord
    labels: Labels = None
    kind: str = "loop"
    title: str = ""
    created: str = field(default_factory=_now)
    machine: Machine | None = None
    outcomes: Outcomes = None
    counts: Counts = None
    _stats: dict[int, RunStats] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.machine is None:
            self.machine = Machine(self.record.cpus)
        if not self.title:
            self.title = "ploop test run" if self.kind == "pytest" else "ploop run"

    @property
    def noun(self) -> str:
        """What a task is called in the text: ``"tests"`` or ``"tasks"``."""
        return "tests" if self.kind == "pytest" else "tasks"

    def label(self, index: int) -> str:
        """The name of task ``index``."""
        from ._stats import label_function

        return label_function(self.labels)(index)

    def columns(self) -> TaskColumns:
        """The task table as numpy arrays, with the outcomes shown."""
        from ._stats import columns

        return columns(self.record, self.outcomes)

    def tasks(self, positions: npt.ArrayLike | None = None) -> list[TaskStat]:
        """The tasks at ``positions`` of the table (default: all), named and with outcomes."""
        from ._stats import task_stats

        return task_stats(self.record, self.labels, positions, self.columns())

    def stats(self, top: int = 10) -> RunStats:
        """The run's figures (computed once per ``top``)."""
        if top not in self._stats:
            from ._stats import compute

            self._stats[top] = compute(self.record, self.labels, top, self.outcomes, self.counts)
        return self._stats[top]


def as_report(run: RunReport | RunRecord, labels: Labels = None, kind: str = "loop") -> RunReport:
    """``run`` itself, or a record wrapped in a :class:`RunReport`."""
    if isinstance(run, RunReport):
        return run
    return RunReport(run, labels, kind)
