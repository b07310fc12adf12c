"""Inline SVG charts for the HTML report: the worker timeline, lines over time, the Amdahl
curve, stacked bars. Every function returns markup that is also well-formed XML."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from . import _format as fmt
from ._stats import Floats, RunStats, expected_speedup

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
CHAR_PX = 6.2  # about the width of a character of a bar's label
MAX_POINTS = 600  # per line; longer series keep each bucket's highest value


def colour(i: int) -> str:
    """The ``i``-th series colour (repeating)."""
    return SERIES_COLOURS[i % len(SERIES_COLOURS)]


def nice_ticks(top: float, count: int = 8) -> list[float]:
    """Round values from 0 to about ``top`` for an axis: steps of 1, 2 or 5 times a power of
    ten, about ``count`` of them."""
    if not top > 0 or not math.isfinite(top):
        return [0.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [round(i * step, 10) for i in range(int(top / step + 1e-9) + 1)]


def _tick_text(x: float, unit: str) -> str:
    text = f"{x:g}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class Bar:
    """One task on a lane (times relative to the run's start)."""

    start: float
    end: float
    outcome: str
    title: str
    index: int


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


def timeline(lanes: Sequence[tuple[str, Sequence[Bar]]], wall: float) -> str:
    """One lane per worker, one bar per task coloured by outcome, its ``<title>`` the tooltip.
    Runs of tasks narrower than a pixel (thousands of tiny ones) are drawn as one bar each
    and say how many they hold; a task of another outcome always gets its own bar."""
    lane = lane_height(len(lanes))
    height = len(lanes) * lane
    parts = [
        f'<svg class="timeline" width="{WIDTH}" height="{height + 24}" '
        f'viewBox="0 0 {WIDTH} {height + 24}" role="img" aria-label="timeline of the workers">',
        time_axis(wall, 0, height),
    ]
    for row, (worker, bars) in enumerate(lanes):
        y = row * lane
        parts.append(
            f'<g class="lane" data-worker="{escape(worker)}">'
            f'<rect class="lane-bg" x="{LEFT}" y="{y + 2}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{lane - 4}"/>'
            f'<text class="lane-name" x="{LEFT - 8}" y="{y + lane / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(worker[:12])}<title>{escape(worker)}</title></text>'
        )
        parts += _bars(bars, wall, y, lane)
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _bars(bars: Sequence[Bar], wall: float, y: float, lane: int) -> list[str]:
    out: list[str] = []
    group: list[Bar] = []

    def flush() -> None:
        if not group:
            return
        if len(group) == 1:
            out.append(_bar(group[0], wall, y, lane))
        else:
            total = math.fsum(b.end - b.start for b in group)
            x0, x1 = _x(group[0].start, wall), _x(group[-1].end, wall)
            tip = (
                f"{len(group)} {group[0].outcome} tasks drawn as one, {fmt.seconds(total)} "
                f"in all: {group[0].title} ... {group[-1].title}"
            )
            out.append(
                f'<rect class="task agg {group[0].outcome}" data-tasks="{len(group)}" '
                f'x="{x0:.2f}" y="{y + _pad(lane)}" width="{max(x1 - x0, MIN_BAR_PX):.2f}" '
                f'height="{lane - 2 * _pad(lane)}"><title>{escape(tip)}</title></rect>'
            )
        group.clear()

    for bar in sorted(bars, key=lambda b: b.start):
        narrow = _x(bar.end, wall) - _x(bar.start, wall) < MIN_BAR_PX
        if not narrow:
            flush()
            out.append(_bar(bar, wall, y, lane))
            continue
        if group and (
            group[0].outcome != bar.outcome or _x(bar.end, wall) - _x(group[0].start, wall) > 4
        ):
            flush()
        group.append(bar)
    flush()
    return out


def _pad(lane: int) -> int:
    return 4 if lane >= 20 else 2


def _bar(bar: Bar, wall: float, y: float, lane: int) -> str:
    x0, x1 = _x(bar.start, wall), _x(bar.end, wall)
    fits = int((x1 - x0 - 8) / CHAR_PX)
    name = bar.title.split(" · ", 1)[0].rsplit("::", 1)[-1]  # a test's name, not its path
    label = ""
    if lane >= 20 and fits >= 6:
        text = name if len(name) <= fits else name[: fits - 1] + "\u2026"
        label = (
            f'<text class="bar-label" x="{x0 + 4:.2f}" y="{y + lane / 2 + 4:.1f}">'
            f"{escape(text)}</text>"
        )
    return (
        f'<rect class="task {bar.outcome}" data-index="{bar.index}" x="{x0:.2f}" '
        f'y="{y + _pad(lane)}" width="{max(x1 - x0, MIN_BAR_PX):.2f}" '
        f'height="{lane - 2 * _pad(lane)}">'
        f"<title>{escape(bar.title)}</title></rect>" + label
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
    ticks = nice_ticks(top, 4)
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
    ticks = nice_ticks(top, 5)
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
