"""The HTML report: one self-contained page (inline CSS and SVG; no scripts, no network).

Sections: the headline (speedup, efficiency, wall against serial), the timeline (one lane per
worker, one bar per task coloured by outcome, hover for the task and its time), CPU and RSS
over time per worker, where the worker-seconds went, the slowest tasks, the tasks that did
not pass, the expected speedup at other worker counts and the workers; the comparison with
an earlier run, when there is one, comes right after the headline. The markup is
well-formed XML as well as HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from .. import __version__
from . import _format as fmt
from . import _svg
from ._compare import Comparison
from ._json import SCHEMA
from ._markdown import MAX_FAILURES
from ._run import RunReport
from ._stats import SHOWN_OUTCOMES, RunStats, TaskStat, worker_order

CSS = (
    """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2125;
  margin: 24px auto; max-width: 1140px; padding: 0 16px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.sub, .note { color: #5f6b76; } .note { margin: 2px 0 8px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0 8px; }
.card { border: 1px solid #dde1e5; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card .value { font-size: 26px; font-weight: 650; }
.card.key .value { font-size: 34px; color: #2456b8; }
.card .label { color: #5f6b76; font-size: 12.5px; }
.versus { margin: 6px 0 4px; }
.versus div { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
.versus .name { width: 200px; text-align: right; color: #5f6b76; }
.versus .bar { height: 16px; border-radius: 3px; }
svg { display: block; overflow: visible; margin-bottom: 6px; }
h3.chart-title { font-size: 13px; font-weight: 600; margin: 14px 0 4px 64px; color: #1d2125; }
svg text { font: 11px system-ui, sans-serif; fill: #5f6b76; }
svg .lane-name { fill: #1d2125; font-weight: 600; }
.grid { stroke: #eceef0; stroke-width: 1; }
.lane-bg { fill: #f6f7f8; }
.task { stroke: #fff; stroke-width: 0.5; }
.task:hover { stroke: #000; stroke-width: 1.2; }
svg text.bar-label { fill: #fff; font-size: 10.5px; pointer-events: none; }
.outcomes { margin: 8px 0 0 208px; } .outcomes span { margin-right: 12px; }
"""
    + "".join(
        f".{o} {{ fill: {c}; }} .swatch.{o} {{ background: {c}; }}\n"
        for o, c in _svg.OUTCOME_COLOURS.items()
    )
    + """
.legend { display: flex; gap: 14px; flex-wrap: wrap; margin: 4px 0 6px 64px; font-size: 12.5px; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceef0; text-align: left; }
th { font-weight: 600; color: #5f6b76; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td code { font-size: 12.5px; word-break: break-all; }
.bad { color: #b3261e; font-weight: 600; } .good { color: #2e7d32; }
footer { margin-top: 32px; color: #8a949e; font-size: 12px; }
"""
)


def render_html(report: RunReport, comparison: Comparison | None = None, top: int = 15) -> str:
    """The report as one self-contained HTML page."""
    st = report.stats(top)
    body = [
        _header(report, st),
        # A comparison, when there is one, is what the reader came for: right under the headline.
        _comparison(comparison, report.noun) if comparison is not None else "",
        _timeline(report, st),
        _resources(report, st),
        _time_split(report, st),
        _slowest(report, st),
        _failures(report),
        _amdahl(st),
        _workers(st),
        f"<footer>pytest-ploop {escape(__version__)} · record schema {SCHEMA} · "
        f"{escape(report.created)}</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{escape(report.title)}: {fmt.times(st.speedup)} speedup</title>"
        f"<style>{CSS}</style></head><body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


def _card(value: str, label: str, key: bool = False) -> str:
    return (
        f'<div class="card{" key" if key else ""}"><div class="value">{escape(value)}</div>'
        f'<div class="label">{escape(label)}</div></div>'
    )


def _header(report: RunReport, st: RunStats) -> str:
    m = report.machine
    assert m is not None
    noun = report.noun
    cards = [
        _card(fmt.times(st.speedup), "speedup (serial time / wall time)", key=True),
        _card(
            fmt.percent(st.efficiency), f"efficiency (speedup / {fmt.count(st.workers, 'worker')})"
        ),
        _card(fmt.seconds(st.wall_s), "wall time"),
        _card(fmt.seconds(st.serial_s), f"of {noun}, if run one after another"),
        _card(fmt.size(st.peak_rss), "peak RSS, all workers together"),
    ]
    outcomes = " ".join(
        f'<span><i class="swatch {o}"></i> {fmt.outcome_count(st.counts[o], o)}</span>'
        for o in _svg.OUTCOME_COLOURS
        if st.counts.get(o)
    )
    longest = max(st.serial_s, st.wall_s, 1e-9)
    versus = "".join(
        f'<div><span class="name">{escape(name)}</span><span class="bar" '
        f'style="width: {max(value / longest * 800, 2):.0f}px; background: {col}"></span>'
        f"<span>{fmt.seconds(value)}</span></div>"
        for name, value, col in (
            (f"{noun} one after another", st.serial_s, "#a0a4a8"),
            (f"wall time on {fmt.count(st.workers, 'worker')}", st.wall_s, "#3b6fd1"),
        )
    )
    return (
        f"<header><h1>{escape(report.title)}</h1>"
        f'<div class="sub">{fmt.count(st.workers, "worker")} ({st.start_method}) on {m.cpus} CPUs, '
        f"{fmt.size(m.memory_bytes)} memory · {escape(m.platform)} · Python {escape(m.python)}"
        f" · {escape(report.created)}</div></header>"
        f'<section id="headline"><div class="cards">{"".join(cards)}</div>'
        f'<div class="versus">{versus}</div>'
        f'<div class="outcomes">{sum(st.counts.values()):,} {noun}: {outcomes}</div>'
        "</section>"
    )


def _legend(items: Sequence[tuple[str, str]], indent: bool = True) -> str:
    spans = "".join(
        f'<span><i class="swatch" style="background: {c}"></i>{escape(n)}</span>' for n, c in items
    )
    style = "" if indent else ' style="margin-left: 0"'
    return f'<div class="legend"{style}>{spans}</div>'


def _timeline(report: RunReport, st: RunStats) -> str:
    cols = report.columns()
    ids = report.record.tasks.worker_ids
    label = report.label
    lanes = []
    for wid in worker_order(report.record):
        mine = np.flatnonzero(cols.worker == ids.index(wid)) if wid in ids else cols.worker[:0]
        mine = mine[np.argsort(cols.start[mine], kind="stable")]
        lanes.append(
            _svg.Lane(wid, cols.start[mine], cols.end[mine], cols.outcome[mine], mine,
                      cols.index[mine])
        )  # fmt: skip

    def title(row: int) -> str:
        start, end = float(cols.start[row]), float(cols.end[row])
        return (
            f"{label(int(cols.index[row]))} · {fmt.seconds(end - start)} · "
            f"{fmt.outcome(SHOWN_OUTCOMES[cols.outcome[row]])} · {ids[cols.worker[row]]} · "
            f"{start:.2f}s to {end:.2f}s"
        )

    def name(row: int) -> str:  # a test's name without its path: the bar is short
        return label(int(cols.index[row])).rsplit("::", 1)[-1]

    present = {SHOWN_OUTCOMES[c] for c in np.unique(cols.outcome).tolist()}
    legend = _legend([(fmt.outcome(o), c) for o, c in _svg.OUTCOME_COLOURS.items()
                      if o in present or o == "passed"])  # fmt: skip
    drawing = _svg.timeline(lanes, st.wall_s, SHOWN_OUTCOMES, title, name)
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f'<p class="note">One lane per worker, one bar per {report.noun[:-1]}, coloured by '
        "outcome; hover over a bar for its name and time. Gaps are time the worker spent "
        f"outside {report.noun}: starting, waiting for work, or done before the others.</p>"
        f"{legend}{drawing}</section>"
    )


def _resources(report: RunReport, st: RunStats) -> str:
    samples = report.record.samples
    if not samples:
        return (
            '<section id="resources"><h2>CPU and memory per worker</h2><p class="note">No '
            "resource samples: the run was shorter than one sampling tick (0.1 s).</p></section>"
        )
    t0 = report.record.started
    ids = worker_order(report.record)
    t = np.array([s.t - t0 for s in samples])
    cpu = np.array([s.cpu_percent for s in samples])
    rss = np.array([s.rss for s in samples], dtype=np.float64) / (1 << 20)
    who = np.array([s.worker for s in samples])
    cpu_series, rss_series = [], []
    for wid in ids:
        mask = who == wid
        if mask.any():
            order = np.argsort(t[mask], kind="stable")
            cpu_series.append((wid, t[mask][order], cpu[mask][order], False))
            rss_series.append((wid, t[mask][order], rss[mask][order], False))
    ticks, tick = np.unique(t, return_inverse=True)
    total = np.bincount(tick.ravel(), weights=rss)
    rss_series.append(("all workers", ticks, total, True))
    cpu_top = max(100.0, float(cpu.max()) if len(cpu) else 0.0)
    legend = _legend(
        [(wid, _svg.colour(i)) for i, (wid, *_r) in enumerate(cpu_series)]
        + [("all workers (RSS)", "#333")]
    )
    return (
        '<section id="resources"><h2>CPU and memory per worker</h2>'
        f'<p class="note">Sampled by the main process every 0.1 s with psutil. CPU is percent '
        f"of one core ({st.cpus} available); RSS in MiB, the dashed line all workers "
        f"together.</p>{legend}"
        + '<h3 class="chart-title">CPU, percent of one core</h3>'
        + _svg.line_chart(cpu_series, st.wall_s, cpu_top, "%", "CPU per worker")
        + '<h3 class="chart-title">Memory (RSS), MiB</h3>'
        + _svg.line_chart(rss_series, st.wall_s, float(total.max()), " MiB", "RSS per worker")
        + "</section>"
    )


def _time_split(report: RunReport, st: RunStats) -> str:
    sp = st.split
    parts = [
        (f"in {report.noun}", sp.tasks_s, _svg.OUTCOME_COLOURS["passed"]),
        ("starting up", sp.startup_s, "#7a8fb8"),
        (f"between {report.noun}", sp.gaps_s, "#e8c547"),
        ("waiting for the others at the end", sp.tail_s, "#e8901c"),
        ("workers that ran nothing", sp.unused_s, "#c9cdd1"),
    ]
    shown = [p for p in parts if p[1] > 0]
    legend = _legend(
        [(f"{n}: {fmt.seconds(v)} ({fmt.percent(v / sp.capacity_s)})", c) for n, v, c in shown],
        indent=False,
    )
    return (
        '<section id="time"><h2>Where the time went</h2>'
        f'<p class="note">{fmt.count(st.lanes, "worker")} \u00d7 {fmt.seconds(st.wall_s)} wall = '
        f"{fmt.seconds(sp.capacity_s)} of worker time. The load imbalance is "
        f"{_ratio(st.load_imbalance)} (the busiest worker's busy time over the mean; 1.00 is "
        f"even); the longest {report.noun[:-1]} took {fmt.seconds(st.critical_path_s)}, and no "
        f"number of workers finishes sooner than that. The {report.noun} used "
        f"{fmt.seconds(st.cpu_s)} of CPU in their {fmt.seconds(st.serial_s)} "
        f"({fmt.percent(st.cpu_share)}): the rest of their time they waited, on I/O, sleeps or "
        f"locks, or for a CPU ({fmt.count(st.cpus, 'CPU')} for "
        f"{fmt.count(st.workers, 'worker')}).</p>"
        f"{_svg.stacked_bar(shown, sp.capacity_s)}{legend}</section>"
    )


def _ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


def _task_rows(tasks: Sequence[TaskStat], wall: float) -> str:
    return "".join(
        f'<tr><td class="num">{k}</td><td class="num">{fmt.seconds(t.wall_s)}</td>'
        f'<td class="num">{fmt.percent(t.wall_s / wall if wall > 0 else None)}</td>'
        f'<td>{escape(t.worker)}</td><td><i class="swatch {t.outcome}"></i> '
        f"{escape(fmt.outcome(t.outcome))}</td>"
        f'<td class="num">{fmt.size(t.peak_rss)}</td><td><code>{escape(t.label)}</code></td></tr>'
        for k, t in enumerate(tasks, 1)
    )


_TASK_HEAD = (
    '<tr><th class="num">#</th><th class="num">time</th><th class="num">of wall</th>'
    '<th>worker</th><th>outcome</th><th class="num">peak RSS</th><th>{noun}</th></tr>'
)


def _slowest(report: RunReport, st: RunStats) -> str:
    if not st.slowest:
        return ""
    return (
        f'<section id="slowest"><h2>Slowest {report.noun}</h2>'
        '<p class="note">Peak RSS: the highest sample of the worker while it ran (blank for '
        f"{report.noun} shorter than the sampling tick).</p>"
        f"<table>{_TASK_HEAD.format(noun=report.noun[:-1])}"
        f"{_task_rows(st.slowest, st.wall_s)}</table></section>"
    )


def _failures(report: RunReport) -> str:
    bad = report.columns().bad()
    not_run = report.stats().counts["not_run"]
    if not len(bad) and not not_run:
        return ""
    rows = report.tasks(bad[:MAX_FAILURES])
    more = len(bad) - len(rows)
    return (
        f'<section id="failures"><h2>{report.noun.capitalize()} that did not pass</h2>'
        + (
            f"<table>{_TASK_HEAD.format(noun=report.noun[:-1])}"
            f"{_task_rows(rows, report.stats().wall_s)}</table>"
            if rows
            else ""
        )
        + (f'<p class="note">... and {more} more.</p>' if more > 0 else "")
        + (f'<p class="note">{not_run} never ran (the run stopped first).</p>' if not_run else "")
        + "</section>"
    )


def _amdahl(st: RunStats) -> str:
    cap = _svg.longest_task_cap(st)
    legend = [
        ("expected speedup", "#3b6fd1"),
        ("ideal (speedup = workers)", "#999"),
        (f"cap of the longest task: {fmt.times(cap)}", "#d6453d"),
        (f"this run: {fmt.times(st.speedup)}", "#e07b39"),
    ]
    cells = "".join(f'<td class="num">{fmt.times(p.estimate)}</td>' for p in st.amdahl)
    head = "".join(f'<th class="num">{p.workers}</th>' for p in st.amdahl)
    if math.isfinite(st.serial_fraction):
        how = (
            f"Amdahl's law with the serial fraction this run shows "
            f"({fmt.percent(st.serial_fraction, 1)}: the share of the time that did not "
            f"shrink with more workers), capped by the longest task."
        )
    else:
        how = "One worker: no serial fraction to fit, only the cap of the longest task."
    return (
        '<section id="amdahl"><h2>Expected speedup at other worker counts</h2>'
        f'<p class="note">{how} Past the machine\'s '
        f"{st.cpus} CPUs, CPU-bound work stops gaining.</p>"
        f"<table><tr><th>workers</th>{head}</tr><tr><td>expected speedup</td>{cells}</tr>"
        f"</table>{_legend(legend)}{_svg.amdahl_chart(st)}</section>"
    )


def _workers(st: RunStats) -> str:
    rows = "".join(
        f'<tr><td>{escape(w.id)}</td><td class="num">{w.tasks}</td>'
        f'<td class="num">{fmt.seconds(w.busy_s)}</td>'
        f'<td class="num">{fmt.seconds(w.startup_s + w.gaps_s + w.tail_s)}</td>'
        f'<td class="num">{"-" if w.cpu_mean is None else f"{w.cpu_mean:.0f}%"}</td>'
        f'<td class="num">{fmt.size(w.peak_rss)}</td><td class="num">{fmt.size(w.read_bytes)}</td>'
        f'<td class="num">{fmt.size(w.write_bytes)}</td><td class="num">{w.ctx_switches}</td>'
        f'<td class="num">{w.restarts}</td></tr>'
        for w in st.per_worker
    )
    head = "".join(
        f'<th class="num">{h}</th>'
        for h in (
            "tasks",
            "busy",
            "idle",
            "CPU mean",
            "peak RSS",
            "read",
            "written",
            "context switches",
            "restarts",
        )
    )
    return (
        '<section id="workers"><h2>Workers</h2>'
        f"<table><tr><th>worker</th>{head}</tr>{rows}</table></section>"
    )


def _comparison(c: Comparison, noun: str) -> str:
    o, n = c.old, c.new
    rows = "".join(
        f'<tr><td>{name}</td><td class="num">{a}</td><td class="num">{b}</td>'
        f'<td class="num">{d}</td></tr>'
        for name, a, b, d in (
            (
                "wall time",
                fmt.seconds(o.wall_s),
                fmt.seconds(n.wall_s),
                fmt.change(o.wall_s, n.wall_s),
            ),
            (
                "speedup",
                fmt.times(o.speedup),
                fmt.times(n.speedup),
                fmt.change(o.speedup, n.speedup),
            ),
            (
                f"{noun} (serial)",
                fmt.seconds(o.serial_s),
                fmt.seconds(n.serial_s),
                fmt.change(o.serial_s, n.serial_s),
            ),
            ("workers", str(o.workers), str(n.workers), ""),
        )
    )
    verdict = ""
    if c.threshold_pct is not None:
        verdict = (
            f'<p class="bad">Regression: {escape("; ".join(c.reasons))}</p>'
            if c.regressed
            else f'<p class="good">No regression beyond {c.threshold_pct:g}%.</p>'
        )
    flagged = set(c.flagged)
    changes = "".join(
        f'<tr><td><code>{escape(t.label)}</code></td><td class="num">{fmt.seconds(t.old_s)}</td>'
        f'<td class="num">{fmt.seconds(t.new_s)}</td>'
        f'<td class="num{" bad" if t in flagged else ""}">{fmt.change(t.old_s, t.new_s)}</td></tr>'
        for t in c.changes
    )
    return (
        '<section id="comparison"><h2>Compared with the earlier run</h2>'
        '<table><tr><th></th><th class="num">before</th><th class="num">now</th>'
        f'<th class="num">change</th></tr>{rows}</table>{verdict}'
        + (
            f"<h3>{noun.capitalize()} whose time changed most</h3><table><tr><th>{noun[:-1]}</th>"
            '<th class="num">before</th><th class="num">now</th><th class="num">change</th></tr>'
            f"{changes}</table>"
            if changes
            else ""
        )
        + (
            f'<p class="note">{noun.capitalize()} only in this run: {c.added}; only in the '
            f"earlier one: {c.removed}.</p>"
            if c.added or c.removed
            else ""
        )
        + "</section>"
    )
