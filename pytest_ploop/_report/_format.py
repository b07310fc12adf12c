"""Numbers as the reports write them."""

from __future__ import annotations

import math


def seconds(s: float) -> str:
    """``12.3s``; two decimals under ten seconds' tenth (``0.52s``); ``-`` for no number."""
    if not math.isfinite(s):
        return "-"
    return f"{s:.2f}s" if abs(s) < 0.95 else f"{s:.1f}s"


def size(n: float | None) -> str:
    """Bytes in binary units: ``1.2 GiB``, ``340 MiB``, ``12 KiB``; ``-`` for none."""
    if n is None or not math.isfinite(n):
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 or unit == "GiB" else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def times(x: float) -> str:
    """A speedup: ``6.5x``, ``0.03x`` under one; ``-`` when there is none."""
    if not math.isfinite(x):
        return "-"
    return f"{x:.2f}x" if x < 0.95 else f"{x:.1f}x"


def percent(x: float | None, digits: int = 0) -> str:
    """A fraction as a percentage: ``81%``; ``-`` when there is none."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 100:.{digits}f}%"


def change(old: float, new: float) -> str:
    """The relative change from ``old`` to ``new``: ``+12%``, ``-3%``; ``new`` when old is 0."""
    if not (math.isfinite(old) and math.isfinite(new)):
        return "-"
    if old == 0:
        return "new" if new else "0%"
    return f"{(new - old) / old * 100:+.0f}%"


def count(n: int, noun: str) -> str:
    """``1 worker``, ``8 workers``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def outcome(name: str) -> str:
    """An outcome as the text says it: ``timed out``, ``not run`` (``timed_out`` in data)."""
    return name.replace("_", " ")


def outcome_count(n: int, name: str) -> str:
    """``12 passed``, ``1 error``, ``2 errors``, ``3 timed out``: pytest's words."""
    text = f"{n:,} {outcome(name)}"
    return text + "s" if name == "error" and n != 1 else text
