"""Inline SVG charts for the HTML report: the worker timeline, lines over time, the Amdahl
curve, stacked bars. Every function returns markup that is also well-formed XML."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from . import _format as fmt
from ._stats import Floats, Ints, RunStats, expected_speedup

OUTCOME_COLOURS = {
    "passed": "#3f9b58",
    "failed": "#d6453d",
    "error": "#9c1c1c",
    "crashed": "#8e3ba8",
    "timed_out": "#e8901c",
    "skipped": "#d9c45a",
    "xfailed": "#8fb8a0",
    "not_run": "#a0a4a8",
}
SERIES_COLOURS = (
    "#3b6fd1",
    "#e07b39",
    "#3f9b58",
    "#c23c85",
    "#7a5bc7",
    "#2aa3a3",
    "#b59a1f",
    "#d6453d",
    "#5d6d7e",
    "#8c564b",
)
WIDTH = 1100  # the drawing width of every chart, in px
LEFT = 64  # room for lane names and axis labels
RIGHT = 16
LANE_H = 22
MIN_BAR_PX = 1.0  # narrower tasks are drawn together with their neighbours
GROUP_PX = 4.0  # ... in bars of about this width
CHAR_PX = 6.2  # about the width of a character of a bar's label
MAX_POINTS = 600  # per line; longer series keep each bucket's highest value


def colour(i: int) -> str:
    """The ``i``-th series colour (repeating)."""
    return SERIES_COLOURS[i % len(SERIES_COLOURS)]


def nice_ticks(top: float, count: int = 8, cover: bool = False) -> list[float]:
    """Round values from 0 to about ``top`` for an axis: steps of 1, 2 or 5 times a power of
    ten, about ``count`` of them; with ``cover`` the last one is at or above ``top``."""
    if not top > 0 or not math.isfinite(top):
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    last = math.ceil(top / step - 1e-9) if cover else int(top / step + 1e-9)
    return [round(i * step, 10) for i in range(last + 1)]


def _tick_text(x: float, unit: str) -> str:
    text = f"{x:g}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class Lane:
    """One worker's tasks in the order they started: arrays of one length, times relative to
    the run's start; ``rows`` are the tasks' positions in the task table (what the title
    and name functions are called with), ``index`` their task indices."""

    worker: str
    start: Floats
    end: Floats
    outcome: Ints  # positions in the ``outcomes`` given to :func:`timeline`
    rows: Ints
    index: Ints


def _x(t: float, wall: float) -> float:
    return LEFT + (t / wall if wall > 0 else 0.0) * (WIDTH - LEFT - RIGHT)


def time_axis(wall: float, y: float, height: float) -> str:
    """Vertical grid lines and seconds under a chart of ``height`` starting at ``y``."""
    out = []
    for t in nice_ticks(wall):
        x = _x(t, wall)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + height:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{y + height + 14:.1f}" text-anchor="middle">'
            f"{_tick_text(t, 's')}</text>"
        )
    return "".join(out)


def lane_height(lanes: int) -> int:
    """Taller lanes for few workers, thinner ones for many."""
    return 30 if lanes <= 8 else LANE_H if lanes <= 32 else 12


def timeline(
    lanes: Sequence[Lane],
    wall: float,
    outcomes: Sequence[str],
    title: Callable[[int], str],
    name: Callable[[int], str],
) -> str:
    """One lane per worker, one bar per task coloured by outcome, ``title(row)`` its tooltip
    and ``name(row)`` its label when the bar is wide enough. Tasks narrower than a pixel
    (thousands of tiny ones) are drawn together, a bar for each run of them of one outcome
    within a few pixels, which says how many it holds: a failure is never hidden among
    passes."""
    lane = lane_height(len(lanes))
    height = len(lanes) * lane
    parts = [
        f'<svg class="timeline" width="{WIDTH}" height="{height + 24}" '
        f'viewBox="0 0 {WIDTH} {height + 24}" role="img" aria-label="timeline of the workers">',
        time_axis(wall, 0, height),
    ]
    for row, tasks in enumerate(lanes):
        y = row * lane
        parts.append(
            f'<g class="lane" data-worker="{escape(tasks.worker)}">'
            f'<rect class="lane-bg" x="{LEFT}" y="{y + 2}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{lane - 4}"/>'
            f'<text class="lane-name" x="{LEFT - 8}" y="{y + lane / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(tasks.worker[:12])}<title>{escape(tasks.worker)}</title>'
            "</text>"
        )
        geometry = _Geometry(wall, y, lane)
        for first, last in _groups(tasks, wall):
            if first == last:
                parts.append(_bar(tasks, first, outcomes, title, name, geometry))
            else:
                parts.append(_group(tasks, first, last, outcomes, title, geometry))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class _Geometry:
    wall: float
    y: float
    lane: int

    @property
    def pad(self) -> int:
        return 4 if self.lane >= 20 else 2

    def rect(self, x0: float, x1: float) -> str:
        return (
            f'x="{x0:.2f}" y="{self.y + self.pad}" width="{max(x1 - x0, MIN_BAR_PX):.2f}" '
            f'height="{self.lane - 2 * self.pad}"'
        )


def _px(t: Floats, wall: float) -> Floats:
    scale = (WIDTH - LEFT - RIGHT) / wall if wall > 0 else 0.0
    return LEFT + t * scale


def _groups(tasks: Lane, wall: float) -> list[tuple[int, int]]:
    """``(first, last)`` positions (in start order) of each bar to draw: a wide task alone,
    a run of narrow ones of one outcome that start in the same ``GROUP_PX`` of the lane
    together. Vectorised: a lane may hold tens of thousands of tasks."""
    x0, x1 = _px(tasks.start, wall), _px(tasks.end, wall)
    narrow = (x1 - x0) < MIN_BAR_PX
    bucket = np.floor((x0 - LEFT) / GROUP_PX)
    n = len(x0)
    if not n:
        return []
    new = np.ones(n, dtype=bool)
    new[1:] = ~(
        narrow[1:]
        & narrow[:-1]
        & (bucket[1:] == bucket[:-1])
        & (tasks.outcome[1:] == tasks.outcome[:-1])
    )
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, n - 1)
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def _group(
    tasks: Lane,
    first: int,
    last: int,
    outcomes: Sequence[str],
    title: Callable[[int], str],
    g: _Geometry,
) -> str:
    outcome = outcomes[tasks.outcome[first]]
    count = last - first + 1
    total = float((tasks.end[first : last + 1] - tasks.start[first : last + 1]).sum())
    x0, x1 = (
        _px(tasks.start[first : first + 1], g.wall)[0],
        _px(tasks.end[last : last + 1], g.wall)[0],
    )
    tip = (
        f"{count:,} {fmt.outcome(outcome)} tasks, too short to draw one by one: "
        f"{fmt.seconds(total)} in all, from {title(int(tasks.rows[first]))} "
        f"to {title(int(tasks.rows[last]))}"
    )
    return (
        f'<rect class="task agg {outcome}" data-tasks="{count}" {g.rect(x0, x1)}>'
        f"<title>{escape(tip)}</title></rect>"
    )


def _bar(
    tasks: Lane,
    k: int,
    outcomes: Sequence[str],
    title: Callable[[int], str],
    name: Callable[[int], str],
    g: _Geometry,
) -> str:
    row = int(tasks.rows[k])
    x0, x1 = _x(float(tasks.start[k]), g.wall), _x(float(tasks.end[k]), g.wall)
    fits = int((x1 - x0 - 8) / CHAR_PX)
    label = ""
    if g.lane >= 20 and fits >= 6:
        text = name(row)
        text = text if len(text) <= fits else text[: fits - 1] + "\u2026"
        label = (
            f'<text class="bar-label" x="{x0 + 4:.2f}" y="{g.y + g.lane / 2 + 4:.1f}">'
            f"{escape(text)}</text>"
        )
    outcome = outcomes[tasks.outcome[k]]
    return (
        f'<rect class="task {outcome}" data-index="{tasks.index[k]}" {g.rect(x0, x1)}>'
        f"<title>{escape(title(row))}</title></rect>" + label
    )


def downsample(t: Floats, v: Floats, points: int = MAX_POINTS) -> tuple[Floats, Floats]:
    """At most ``points`` of the series, each the highest of its bucket (peaks survive)."""
    if len(t) <= points:
        return t, v
    edges = np.linspace(0, len(t), points + 1).astype(np.int64)[:-1]
    return t[edges], np.maximum.reduceat(v, edges)


def line_chart(
    series: Sequence[tuple[str, Floats, Floats, bool]],
    wall: float,
    top: float,
    unit: str,
    label: str,
    height: int = 170,
) -> str:
    """Lines over the run's time, one per ``(name, t, values, dashed)``, y from 0 to ``top``."""
    ticks = nice_ticks(top, 4, cover=True)
    top = max(top, ticks[-1]) or 1.0
    parts = [
        f'<svg class="chart" width="{WIDTH}" height="{height + 24}" '
        f'viewBox="0 0 {WIDTH} {height + 24}" role="img" aria-label="{escape(label)}">',
        time_axis(wall, 0, height),
    ]
    for tick in ticks:
        y = height - tick / top * height
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_tick_text(tick, unit)}</text>"
        )
    for i, (name, t, v, dashed) in enumerate(series):
        ts, vs = downsample(t, v)
        pts = " ".join(
            f"{_x(a, wall):.1f},{height - b / top * height:.1f}"
            for a, b in zip(ts.tolist(), vs.tolist(), strict=True)
        )
        style = ' stroke-dasharray="5 3"' if dashed else ""
        stroke = "#333" if dashed else colour(i)
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" '
            f'stroke="{stroke}" stroke-width="1.6"{style} points="{pts}">'
            f"<title>{escape(name)}</title></polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)


def longest_task_cap(st: RunStats) -> float:
    """The speedup no worker count passes: all the tasks' time over the longest one's."""
    return st.serial_s / st.critical_path_s if st.critical_path_s > 0 else math.inf


def amdahl_chart(st: RunStats, height: int = 260) -> str:
    """Expected speedup over 1 to 16 workers (log scale), the ideal, the longest-task bound
    and this run's measured point."""
    ns = np.geomspace(1, 16, 61)
    est = [expected_speedup(n, st.serial_s, st.critical_path_s, st.serial_fraction)[2] for n in ns]
    measured = st.speedup if math.isfinite(st.speedup) else 0.0
    bound = longest_task_cap(st)
    top = max(max(est), measured, 1.0) * 1.25
    if bound <= 2 * top:  # show the cap when it is near; a far one would flatten the curve
        top = max(top, bound * 1.1)
    ticks = nice_ticks(top, 5, cover=True)
    top = max(top, ticks[-1])
    width = 560
    left, right = 48, 20

    def px(n: float) -> float:
        return left + math.log2(n) / 4 * (width - left - right)

    def py(s: float) -> float:
        return height - s / top * height

    parts = [
        f'<svg class="chart amdahl" width="{width}" height="{height + 36}" '
        f'viewBox="0 0 {width} {height + 36}" role="img" aria-label="expected speedup">'
    ]
    for v in ticks:
        parts.append(
            f'<line class="grid" x1="{left}" y1="{py(v):.1f}" x2="{width - right}" '
            f'y2="{py(v):.1f}"/><text class="tick" x="{left - 6}" y="{py(v) + 4:.1f}" '
            f'text-anchor="end">{v:g}x</text>'
        )
    for n in (1, 2, 4, 8, 16):
        parts.append(
            f'<line class="grid" x1="{px(n):.1f}" y1="0" x2="{px(n):.1f}" y2="{height}"/>'
            f'<text class="tick" x="{px(n):.1f}" y="{height + 14}" text-anchor="middle">{n}</text>'
        )
    parts.append(
        f'<text class="axis-name" x="{(left + width - right) / 2:.0f}" y="{height + 30}" '
        'text-anchor="middle">workers</text>'
    )
    ideal = " ".join(f"{px(n):.1f},{py(n):.1f}" for n in ns if n <= top)
    parts.append(
        f'<polyline class="ideal" fill="none" stroke="#999" stroke-dasharray="4 3" '
        f'points="{ideal}"><title>ideal: speedup = workers</title></polyline>'
    )
    if bound <= top:
        parts.append(
            f'<line class="bound" x1="{left}" y1="{py(bound):.1f}" x2="{width - right}" '
            f'y2="{py(bound):.1f}" stroke="#d6453d" stroke-dasharray="2 3">'
            f"<title>the longest task caps the speedup at {fmt.times(bound)}</title></line>"
        )
    curve = " ".join(f"{px(n):.1f},{py(s):.1f}" for n, s in zip(ns, est, strict=True))
    parts.append(
        f'<polyline class="estimate" fill="none" stroke="#3b6fd1" stroke-width="2.2" '
        f'points="{curve}"><title>expected speedup</title></polyline>'
    )
    for p in st.amdahl:
        parts.append(
            f'<circle class="estimate-point" cx="{px(p.workers):.1f}" cy="{py(p.estimate):.1f}" '
            f'r="3.5" fill="#3b6fd1"><title>{p.workers} workers: {fmt.times(p.estimate)} '
            f"expected</title></circle>"
        )
    if st.workers >= 1 and measured:
        parts.append(
            f'<circle class="measured" cx="{px(min(max(st.workers, 1), 16)):.1f}" '
            f'cy="{py(measured):.1f}" r="6" fill="none" stroke="#e07b39" stroke-width="2.5">'
            f"<title>this run: {st.workers} workers, {fmt.times(measured)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(parts: Sequence[tuple[str, float, str]], total: float) -> str:
    """One horizontal bar split into ``(name, value, colour)`` parts of ``total``."""
    height = 28
    out = [
        f'<svg class="stacked" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'role="img" aria-label="where the time went">'
    ]
    x = 0.0
    for name, value, col in parts:
        if value <= 0 or total <= 0:
            continue
        w = value / total * WIDTH
        out.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" fill="{col}">'
            f"<title>{escape(name)}: {fmt.seconds(value)} ({fmt.percent(value / total)})</title>"
            "</rect>"
        )
        x += w
    out.append("</svg>")
    return "".join(out)
