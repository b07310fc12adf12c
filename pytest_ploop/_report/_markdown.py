"""A Markdown summary of a run, for a CI job's page (``$GITHUB_STEP_SUMMARY``) or a file."""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import _format as fmt
from ._compare import Comparison
from ._run import RunReport
from ._stats import SHOWN_OUTCOMES, RunStats

MAX_FAILURES = 50


def _code(text: str) -> str:
    """``text`` as inline code inside a table cell."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _table(head: list[str], rows: list[list[str]], numeric: Iterable[int] = ()) -> list[str]:
    """A Markdown table; the columns at positions ``numeric`` are right-aligned."""
    right = set(numeric)
    align = ["---:" if i in right else "---" for i in range(len(head))]
    return [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def outcomes_text(counts: dict[str, int]) -> str:
    """``12 passed, 1 failed, 2 errors``, outcomes in their usual order, zeros left out."""
    parts = [fmt.outcome_count(counts[k], k) for k in SHOWN_OUTCOMES if counts.get(k)]
    return ", ".join(parts) or "none"


def render_markdown(report: RunReport, comparison: Comparison | None = None, top: int = 10) -> str:
    """The Markdown summary: headline figures, workers, slowest tasks, failures, the Amdahl
    estimate and, given ``comparison``, what changed since the earlier run."""
    st = report.stats(top)
    noun = report.noun
    lines = [
        f"## {report.title}: {fmt.times(st.speedup)} speedup on {fmt.count(st.workers, 'worker')}",
        "",
        f"{fmt.count(st.workers, 'worker')} ran {fmt.seconds(st.serial_s)} of {noun} in "
        f"{fmt.seconds(st.wall_s)} of wall time: {fmt.percent(st.efficiency)} efficiency.",
        "",
        *_headline(report, st),
        "",
        "### Workers",
        "",
        *_workers(st),
    ]
    if st.slowest:
        lines += ["", f"### Slowest {noun}", "", *_slowest(st, noun)]
    failures = _failures(report)
    if failures:
        lines += ["", f"### {noun.capitalize()} that did not pass", "", *failures]
    lines += ["", "### Amdahl estimate", "", *_amdahl(st)]
    if comparison is not None:
        lines += ["", "### Compared with the earlier run", "", *_comparison(comparison, noun)]
    return "\n".join(lines) + "\n"


def _headline(report: RunReport, st: RunStats) -> list[str]:
    noun = report.noun
    machine = report.machine
    assert machine is not None
    sp = st.split
    rows = [
        ["wall time", fmt.seconds(st.wall_s)],
        [f"{noun} (serial-equivalent)", fmt.seconds(st.serial_s)],
        ["speedup", fmt.times(st.speedup)],
        ["efficiency (speedup / workers)", fmt.percent(st.efficiency)],
        [f"longest {noun[:-1]} (critical path)", fmt.seconds(st.critical_path_s)],
        ["load imbalance (busiest worker / mean)", _ratio(st.load_imbalance)],
        [
            "parallel overhead (worker-seconds not in " + noun + ")",
            f"{fmt.seconds(sp.overhead_s)} ({fmt.percent(st.overhead_fraction)})",
        ],
        [
            f"CPU time of the {noun} (share of their time)",
            f"{fmt.seconds(st.cpu_s)} ({fmt.percent(st.cpu_share)})",
        ],
        ["peak RSS (all workers)", fmt.size(st.peak_rss)],
        ["outcomes", outcomes_text(st.counts)],
        [
            "machine",
            f"{machine.cpus} CPUs, {fmt.size(machine.memory_bytes)} memory, "
            f"start method {st.start_method}",
        ],
    ]
    return _table(["figure", "value"], rows)


def _ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


def _workers(st: RunStats) -> list[str]:
    head = [
        "worker",
        "tasks",
        "busy",
        "idle",
        "CPU mean",
        "peak RSS",
        "read",
        "written",
        "restarts",
    ]
    rows = [
        [
            w.id,
            str(w.tasks),
            fmt.seconds(w.busy_s),
            fmt.seconds(w.startup_s + w.gaps_s + w.tail_s),
            "-" if w.cpu_mean is None else f"{w.cpu_mean:.0f}%",
            fmt.size(w.peak_rss),
            fmt.size(w.read_bytes),
            fmt.size(w.write_bytes),
            str(w.restarts),
        ]
        for w in st.per_worker
    ]
    return _table(head, rows, range(1, len(head)))


def _slowest(st: RunStats, noun: str) -> list[str]:
    rows = [
        [
            str(k),
            fmt.seconds(t.wall_s),
            t.worker,
            fmt.outcome(t.outcome),
            fmt.size(t.peak_rss),
            _code(t.label),
        ]
        for k, t in enumerate(st.slowest, 1)
    ]
    return _table(["#", "time", "worker", "outcome", "peak RSS", noun[:-1]], rows, (0, 1, 4))


def _failures(report: RunReport) -> list[str]:
    bad = report.columns().bad()
    if not len(bad):
        return []
    shown = report.tasks(bad[:MAX_FAILURES])
    lines = [
        f"- **{fmt.outcome(t.outcome)}** {_code(t.label)} on {t.worker} after "
        f"{fmt.seconds(t.wall_s)}"
        for t in shown
    ]
    if len(bad) > MAX_FAILURES:
        lines.append(f"- ... and {len(bad) - MAX_FAILURES} more")
    return lines


def _amdahl(st: RunStats) -> list[str]:
    head = ["workers", *(str(p.workers) for p in st.amdahl)]
    rows = [["expected speedup", *(fmt.times(p.estimate) for p in st.amdahl)]]
    note = (
        f"Amdahl's law with the serial fraction this run shows "
        f"({fmt.percent(st.serial_fraction, 1)}), capped by the longest task "
        f"({fmt.seconds(st.critical_path_s)})."
        if math.isfinite(st.serial_fraction)
        else "One worker: no serial fraction to fit; the cap of the longest task only."
    )
    return [*_table(head, rows, range(1, len(head))), "", note]


def _comparison(c: Comparison, noun: str) -> list[str]:
    o, n = c.old, c.new
    rows = [
        ["wall time", fmt.seconds(o.wall_s), fmt.seconds(n.wall_s), fmt.change(o.wall_s, n.wall_s)],
        ["speedup", fmt.times(o.speedup), fmt.times(n.speedup), fmt.change(o.speedup, n.speedup)],
        [
            f"{noun} (serial-equivalent)",
            fmt.seconds(o.serial_s),
            fmt.seconds(n.serial_s),
            fmt.change(o.serial_s, n.serial_s),
        ],
        ["workers", str(o.workers), str(n.workers), ""],
    ]
    out = _table(["", "before", "now", "change"], rows, (1, 2, 3))
    if c.threshold_pct is not None:
        verdict = (
            "**Regression**: " + "; ".join(c.reasons)
            if c.regressed
            else f"No regression beyond {c.threshold_pct:g}%."
        )
        out += ["", verdict]
    if c.changes:
        flagged = set(c.flagged)
        rows = [
            [
                _code(t.label),
                fmt.seconds(t.old_s),
                fmt.seconds(t.new_s),
                fmt.change(t.old_s, t.new_s) + (" :warning:" if t in flagged else ""),
            ]
            for t in c.changes
        ]
        out += [
            "",
            f"{noun.capitalize()} whose time changed most:",
            "",
            *_table([noun[:-1], "before", "now", "change"], rows, (1, 2, 3)),
        ]
    if c.added or c.removed:
        out += [
            "",
            f"{noun.capitalize()} only in this run: {c.added}; "
            f"only in the earlier one: {c.removed}.",
        ]
    return out
