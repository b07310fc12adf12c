"""The text of the ``ploop`` section of pytest's terminal summary (and of the CLI).

By default one line::

    ploop: 8 workers, 12.3s wall, 80.1s of tests -> 6.5x speedup (81% efficiency), peak RSS 1.2 GiB

With verbosity (``-v``) also a table per worker, the slowest tasks, where the worker-seconds
went, and the Amdahl estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _format as fmt

if TYPE_CHECKING:  # numpy (the statistics) is imported only for more than the summary line
    from ._compare import Comparison
    from ._run import RunReport
    from ._stats import RunStats


def summary_line(report: RunReport) -> str:
    """``ploop: N workers, W wall, S of tests -> X speedup (E efficiency)[, peak RSS R]``.

    A fixed format that scripts can match (``1 worker``, ``2 workers``: ``workers?``)."""
    # The figures of report.stats(), from the record's own properties: no numpy for the one
    # line every run prints (importing it was a tenth of a second of a quick suite's run).
    record = report.record
    wall_s = record.wall_s if math.isfinite(record.wall_s) else 0.0
    efficiency = record.efficiency if record.workers else math.nan
    line = (
        f"ploop: {fmt.count(record.workers, 'worker')}, {fmt.seconds(wall_s)} wall, "
        f"{fmt.seconds(record.serial_s)} of {report.noun} -> {fmt.times(record.speedup)} "
        f"speedup ({fmt.percent(efficiency)} efficiency)"
    )
    peak = record.peak_rss
    if peak is not None:
        line += f", peak RSS {fmt.size(peak)}"
    return line


def terminal_lines(
    report: RunReport, verbosity: int = 0, comparison: Comparison | None = None, top: int = 5
) -> list[str]:
    """The summary line; with ``verbosity`` >= 1 the details; then the comparison, if any."""
    lines = [summary_line(report)]
    if verbosity >= 1:
        st = report.stats(top)
        lines += worker_table(st)
        lines += slowest_lines(st, report.noun)
        lines += where_the_time_went(st, report.noun)
    if comparison is not None:
        lines += comparison_lines(comparison)
    return lines


def worker_table(st: RunStats) -> list[str]:
    """One row per worker: tasks, busy and idle time, CPU, peak RSS, I/O, restarts."""
    head = (
        "worker",
        "tasks",
        "busy",
        "idle",
        "CPU mean",
        "peak RSS",
        "read",
        "written",
        "restarts",
    )
    rows = [head] + [
        (
            w.id,
            str(w.tasks),
            fmt.seconds(w.busy_s),
            fmt.seconds(w.startup_s + w.gaps_s + w.tail_s),
            "-" if w.cpu_mean is None else f"{w.cpu_mean:.0f}%",
            fmt.size(w.peak_rss),
            fmt.size(w.read_bytes),
            fmt.size(w.write_bytes),
            str(w.restarts),
        )
        for w in st.per_worker
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  " + "  ".join(cells))
    return out


def slowest_lines(st: RunStats, noun: str) -> list[str]:
    """The slowest tasks, one a line: seconds, worker, outcome, label."""
    if not st.slowest:
        return []
    out = [f"  slowest {noun}:"]
    for t in st.slowest:
        out.append(
            f"    {fmt.seconds(t.wall_s):>7}  {t.worker}  {fmt.outcome(t.outcome):<9} {t.label}"
        )
    return out


def where_the_time_went(st: RunStats, noun: str) -> list[str]:
    """Worker-seconds split into tasks, start-up, gaps, the tail and unused workers; the
    longest task, the load imbalance and the Amdahl estimate."""
    sp = st.split
    cap = sp.capacity_s

    def part(name: str, s: float) -> str:
        return f"{name} {fmt.seconds(s)} ({fmt.percent(s / cap if cap else None)})"

    parts = [
        part(noun, sp.tasks_s),
        part("start-up", sp.startup_s),
        part(f"between {noun}", sp.gaps_s),
        part("waiting at the end", sp.tail_s),
    ]
    if sp.unused_s:
        parts.append(part("unused workers", sp.unused_s))
    estimate = ", ".join(f"{p.workers}: {fmt.times(p.estimate)}" for p in st.amdahl)
    fraction = st.serial_fraction
    return [
        f"  where the time went ({fmt.count(st.lanes, 'worker')} x {fmt.seconds(st.wall_s)} wall = "
        f"{fmt.seconds(cap)} of worker time):",
        "    " + ", ".join(parts),
        f"  longest {noun[:-1]}: {fmt.seconds(st.critical_path_s)} (no worker count beats it)",
        f"  load imbalance: {_ratio(st.load_imbalance)} (busiest worker's busy time over the mean)",
        f"  CPU: {noun} used {fmt.seconds(st.cpu_s)} of CPU in {fmt.seconds(st.serial_s)} "
        f"({fmt.percent(st.cpu_share)}); the rest they waited (I/O, sleeps, or a CPU: "
        f"{fmt.count(st.cpus, 'CPU')} for {fmt.count(st.workers, 'worker')})",
        f"  Amdahl estimate, workers: speedup: {estimate}"
        + ("" if math.isnan(fraction) else f" (serial fraction {fmt.percent(fraction, 1)})"),
    ]


def fanout_lines(fanouts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per ``parametrize_parallel`` test whose cases ran on workers (``fanouts``:
    node id -> ``report.ploop_cases``)::

        test_x.py::test_x: 500 cases on 8 workers, 41.0s of cases in 6.2s -> 6.6x

    The decorated test's own row in the run record counts its fan-out as one test; this is
    what the fan-out bought.
    """
    lines = []
    # By node id: the reports arrive in the order the workers finish, which varies.
    for nodeid, s in sorted(fanouts.items()):
        if not s.get("workers"):
            continue
        speedup = s.get("speedup")
        cases, workers = fmt.count(s["cases"], "case"), fmt.count(s["workers"], "worker")
        lines.append(
            f"    {nodeid}: {cases} on {workers}, "
            f"{fmt.seconds(s['serial_s'])} of cases in {fmt.seconds(s['wall_s'])} -> "
            f"{fmt.times(speedup if speedup is not None else math.nan)}"
        )
    return (
        ["  parametrize_parallel tests (cases on workers of their own):", *lines] if lines else []
    )


def _ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


def comparison_lines(c: Comparison) -> list[str]:
    """The comparison's headline, the regression reasons and the tasks flagged slower."""
    out = [f"ploop: compared with the earlier run: {c.headline()}"]
    out += [f"  regression: {r}" for r in c.reasons]
    for t in c.flagged:
        out.append(
            f"  slower: {t.label} {fmt.seconds(t.old_s)} -> {fmt.seconds(t.new_s)} "
            f"({fmt.change(t.old_s, t.new_s)})"
        )
    return out
