"""Compare a run with an earlier one: wall time, speedup, and the tasks whose time changed most.

Tasks are matched by label (a test's node id; a loop iteration's index). A run *regressed*
beyond ``threshold_pct`` when its wall time grew by more than that percentage, or its speedup
fell by more than that percentage.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from . import _format as fmt
from ._run import RunReport
from ._stats import RunStats

FLAG_PCT = 20.0  # a task is flagged slower past this change when no threshold is given
MIN_DELTA_S = 0.1  # ... and only if it grew by at least this much (noise on tiny tests)


@dataclass(frozen=True)
class TaskChange:
    """One task's wall time in both runs (summed if it ran more than once)."""

    label: str
    old_s: float
    new_s: float

    @property
    def delta_s(self) -> float:
        """Seconds gained (positive: slower now)."""
        return self.new_s - self.old_s

    @property
    def change_pct(self) -> float:
        """The change in percent of the old time (inf for a task that took no time before)."""
        if self.old_s == 0:
            return math.inf if self.new_s else 0.0
        return self.delta_s / self.old_s * 100


@dataclass(frozen=True)
class Comparison:
    """What changed between two runs.

    Attributes:
        old, new: the figures of each run.
        changes: the tasks of both runs whose wall time changed most, largest change first.
        added, removed: how many tasks only the new, or only the old, run has.
        threshold_pct: the regression threshold (``None``: report, never fail).
    """

    old: RunStats
    new: RunStats
    changes: tuple[TaskChange, ...]
    added: int
    removed: int
    threshold_pct: float | None = None

    @property
    def wall_change_pct(self) -> float:
        """How much longer (positive) or shorter the new run's wall time is, in percent."""
        return _pct(self.old.wall_s, self.new.wall_s)

    @property
    def speedup_change_pct(self) -> float:
        """How much the speedup grew (positive) or fell, in percent."""
        return _pct(self.old.speedup, self.new.speedup)

    @property
    def reasons(self) -> list[str]:
        """Why this is a regression (empty: it is not, or there is no threshold)."""
        limit = self.threshold_pct
        if limit is None:
            return []
        out = []
        if self.wall_change_pct > limit:
            out.append(
                f"wall time grew {self.wall_change_pct:.0f}% ({fmt.seconds(self.old.wall_s)} -> "
                f"{fmt.seconds(self.new.wall_s)}), more than {limit:g}%"
            )
        if -self.speedup_change_pct > limit:
            out.append(
                f"speedup fell {-self.speedup_change_pct:.0f}% ({fmt.times(self.old.speedup)} "
                f"-> {fmt.times(self.new.speedup)}), more than {limit:g}%"
            )
        return out

    @property
    def regressed(self) -> bool:
        """Whether the new run is worse than the old one beyond ``threshold_pct``."""
        return bool(self.reasons)

    @property
    def flagged(self) -> tuple[TaskChange, ...]:
        """The changed tasks that grew past the threshold (or 20%) by at least 0.1 s."""
        limit = FLAG_PCT if self.threshold_pct is None else self.threshold_pct
        return tuple(c for c in self.changes if c.delta_s >= MIN_DELTA_S and c.change_pct > limit)

    def headline(self) -> str:
        """One line: wall and speedup, before and after."""
        o, n = self.old, self.new
        text = (
            f"wall {fmt.seconds(o.wall_s)} -> {fmt.seconds(n.wall_s)} "
            f"({fmt.change(o.wall_s, n.wall_s)}), speedup {fmt.times(o.speedup)} -> "
            f"{fmt.times(n.speedup)}, serial {fmt.seconds(o.serial_s)} -> "
            f"{fmt.seconds(n.serial_s)} ({fmt.change(o.serial_s, n.serial_s)})"
        )
        if self.threshold_pct is not None:
            text += ": REGRESSION" if self.regressed else f": within {self.threshold_pct:g}%"
        return text


def _pct(old: float, new: float) -> float:
    if not (math.isfinite(old) and math.isfinite(new)) or old == 0:
        return math.nan
    return (new - old) / old * 100


def task_times(report: RunReport) -> dict[str, float]:
    """Each task label's wall time in ``report`` (summed over repeats)."""
    cols = report.columns()
    out: dict[str, float] = defaultdict(float)
    for index, wall in zip(cols.index.tolist(), cols.wall.tolist(), strict=True):
        out[report.label(index)] += wall
    return dict(out)


def compare(
    old: RunReport, new: RunReport, threshold_pct: float | None = None, top: int = 10
) -> Comparison:
    """Compare ``new`` with the earlier ``old``; keep the ``top`` tasks that changed most.

    Example::

        c = compare(read("main.json"), read("branch.json"), threshold_pct=10)
        if c.regressed:
            print(c.reasons)
    """
    if threshold_pct is not None and not (threshold_pct >= 0):
        raise ValueError(f"the regression threshold must be a percentage >= 0, not {threshold_pct}")
    before, after = task_times(old), task_times(new)
    both = before.keys() & after.keys()
    changes = sorted(
        (TaskChange(k, before[k], after[k]) for k in both),
        key=lambda c: (-abs(c.delta_s), c.label),
    )
    return Comparison(
        old.stats(),
        new.stats(),
        tuple(changes[:top]),
        added=len(after.keys() - both),
        removed=len(before.keys() - both),
        threshold_pct=threshold_pct,
    )
