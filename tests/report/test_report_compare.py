"""Comparing two runs: the figures, the tasks that changed most, the regression gate."""

from __future__ import annotations

import re

import pytest
from report_support import make_record

from pytest_ploop._report import RunReport, compare, render_html, render_markdown, terminal_lines


def _run(durations: dict[str, float], wall: float, workers: int = 2) -> RunReport:
    """Tests named by ``durations``, laid end to end on ``workers`` lanes."""
    ends = [0.0] * workers
    tasks = []
    for i, seconds in enumerate(durations.values()):
        lane = ends.index(min(ends))
        tasks.append((i, f"w{lane}", ends[lane], ends[lane] + seconds, 0.0, "passed"))
        ends[lane] += seconds
    labels = dict(enumerate(durations))
    return RunReport(make_record(workers, wall, tasks), labels, kind="pytest")


OLD = _run({"t::a": 2.0, "t::b": 1.0, "t::c": 1.0, "t::gone": 0.5}, wall=2.5)
NEW = _run({"t::a": 2.0, "t::b": 3.0, "t::c": 0.5, "t::new": 0.25}, wall=3.0)


def test_figures_before_and_after() -> None:
    c = compare(OLD, NEW)
    assert (c.old.wall_s, c.new.wall_s) == (2.5, 3.0)
    assert c.wall_change_pct == pytest.approx(20.0)
    # speedup 4.5 / 2.5 = 1.8 before, 5.75 / 3 after
    assert c.speedup_change_pct == pytest.approx((5.75 / 3 - 1.8) / 1.8 * 100)
    assert (c.added, c.removed) == (1, 1)


def test_the_tasks_that_changed_most_matched_by_label() -> None:
    c = compare(OLD, NEW)
    assert [(t.label, t.old_s, t.new_s) for t in c.changes] == [
        ("t::b", 1.0, 3.0),
        ("t::c", 1.0, 0.5),
        ("t::a", 2.0, 2.0),
    ]
    assert c.changes[0].change_pct == 200.0
    assert [t.label for t in c.flagged] == ["t::b"]  # slower by more than 20% and 0.1 s


def test_no_threshold_never_regresses() -> None:
    assert not compare(OLD, NEW).regressed
    assert compare(OLD, NEW).reasons == []


def test_the_gate_fails_past_the_threshold_only() -> None:
    assert not compare(OLD, NEW, threshold_pct=25).regressed
    c = compare(OLD, NEW, threshold_pct=10)
    assert c.regressed
    assert c.reasons == ["wall time grew 20% (2.5s -> 3.0s), more than 10%"]


def test_a_fall_in_speedup_is_a_regression_too() -> None:
    slow = _run({"t::a": 2.0, "t::b": 1.0, "t::c": 1.0, "t::gone": 0.5}, wall=4.5)
    fast = _run({"t::a": 2.0, "t::b": 1.0, "t::c": 1.0, "t::gone": 0.5}, wall=2.25)
    c = compare(fast, slow, threshold_pct=30)
    assert c.reasons == [
        "wall time grew 100% (2.2s -> 4.5s), more than 30%",
        "speedup fell 50% (2.0x -> 1.0x), more than 30%",
    ]
    assert not compare(slow, fast, threshold_pct=30).regressed


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="percentage >= 0"):
        compare(OLD, NEW, threshold_pct=-1)


def test_the_comparison_in_each_rendering() -> None:
    c = compare(OLD, NEW, threshold_pct=10)
    lines = terminal_lines(NEW, comparison=c)
    assert lines[1:] == [
        "ploop: compared with the earlier run: wall 2.5s -> 3.0s (+20%), speedup 1.8x -> 1.9x, "
        "serial 4.5s -> 5.8s (+28%): REGRESSION",
        "  regression: wall time grew 20% (2.5s -> 3.0s), more than 10%",
        "  slower: t::b 1.0s -> 3.0s (+200%)",
    ]
    md = render_markdown(NEW, c)
    assert "**Regression**: wall time grew 20%" in md
    assert "| `t::b` | 1.0s | 3.0s | +200% :warning: |" in md
    assert "Tests only in this run: 1; only in the earlier one: 1." in md
    html = render_html(NEW, c)
    assert "Regression: wall time grew 20%" in html
    sections = re.findall(r'<section id="(\w+)">', html)
    assert sections[:3] == ["headline", "comparison", "timeline"]  # first thing after the headline
