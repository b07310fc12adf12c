"""The renderings of hand-made records: the terminal line, Markdown and the HTML page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from report_support import issue_record, known_record, make_record

from pytest_ploop._report import RunReport, render_html, render_markdown, terminal_lines
from pytest_ploop._report._svg import nice_ticks
from pytest_ploop._report._terminal import summary_line

LABELS = {0: "test_a.py::test_one", 1: "test_a.py::test_two", 2: "test_b.py::test_<three>&"}


def _pytest_report() -> RunReport:
    return RunReport(known_record(), LABELS, kind="pytest")


# -- terminal -----------------------------------------------------------------------------


def test_the_summary_line_of_the_issue() -> None:
    line = summary_line(RunReport(issue_record(), kind="pytest"))
    assert line == (
        "ploop: 8 workers, 12.3s wall, 80.1s of tests -> 6.5x speedup (81% efficiency), "
        "peak RSS 1.2 GiB"
    )


def test_a_loop_says_tasks_and_a_run_without_samples_no_rss() -> None:
    rec = make_record(2, 0.5, [(0, "w0", 0.0, 0.4, 0, "passed"), (1, "w1", 0.0, 0.3, 0, "passed")])
    assert summary_line(RunReport(rec)) == (
        "ploop: 2 workers, 0.50s wall, 0.70s of tasks -> 1.4x speedup (70% efficiency)"
    )


def test_one_line_by_default_details_with_verbosity() -> None:
    report = _pytest_report()
    assert terminal_lines(report) == [summary_line(report)]
    text = "\n".join(terminal_lines(report, verbosity=1))
    assert re.search(r"^  worker  tasks  busy  idle  CPU mean  peak RSS .*restarts$", text, re.M)
    assert re.search(r"^  w0 +2 +6\.0s +4\.0s +40% +150 B +35 B +2 B +1$", text, re.M)
    assert re.search(r"^  w1 +1 +8\.0s +2\.0s +95% +300 B +0 B +4 B +0$", text, re.M)
    assert "  slowest tests:\n       8.0s  w1  passed    test_a.py::test_two\n" in text
    assert "2 workers x 10.0s wall = 20.0s of worker time" in text
    assert "tests 14.0s (70%), start-up 1.0s (5%), between tests 0.00s (0%), waiting" in text
    assert "longest test: 8.0s" in text
    assert "load imbalance: 1.14" in text
    assert "1: 1.0x, 2: 1.4x, 4: 1.8x, 8: 1.8x, 16: 1.8x (serial fraction 42.9%)" in text
    assert "  CPU: tests used 11.0s of CPU in 14.0s (79%); the rest they waited" in text


# -- Markdown -----------------------------------------------------------------------------


def test_markdown_summary() -> None:
    md = render_markdown(_pytest_report())
    assert md.startswith("## ploop test run: 1.4x speedup on 2 workers\n")
    assert "2 workers ran 14.0s of tests in 10.0s of wall time: 70% efficiency." in md
    for row in (
        "| wall time | 10.0s |",
        "| speedup | 1.4x |",
        "| longest test (critical path) | 8.0s |",
        "| load imbalance (busiest worker / mean) | 1.14 |",
        "| parallel overhead (worker-seconds not in tests) | 6.0s (30%) |",
        "| peak RSS (all workers) | 450 B |",
        "| CPU time of the tests (share of their time) | 11.0s (79%) |",
        "| outcomes | 2 passed, 1 failed |",
        "| w1 | 1 | 8.0s | 2.0s | 95% | 300 B | 0 B | 4 B | 0 |",
        "| 1 | 8.0s | w1 | passed | 300 B | `test_a.py::test_two` |",
        "| expected speedup | 1.0x | 1.4x | 1.8x | 1.8x | 1.8x |",
    ):
        assert row + "\n" in md, row
    assert "### Tests that did not pass\n\n- **failed** `test_b.py::test_<three>&` on w0" in md


def test_markdown_escapes_table_cells() -> None:
    report = RunReport(known_record(), {1: "test_x[a|b`c]"}, kind="pytest")
    assert "| `test_x[a\\|b'c]` |" in render_markdown(report)


# -- HTML ---------------------------------------------------------------------------------


def _tree(html: str) -> ET.Element:
    return ET.fromstring(html)  # well-formed XML, or this raises


def _tasks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter("rect") if "task" in e.get("class", "").split()]


def test_html_is_well_formed_for_xml_and_html_parsers() -> None:
    html = render_html(_pytest_report())
    assert html.startswith("<!DOCTYPE html>")
    assert _tree(html).tag == "html"

    class Strict(HTMLParser):
        void = frozenset({"meta"})  # the one HTML void element the page uses; the rest close

        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in self.void:
                self.stack.append(tag)

        def handle_startendtag(self, tag: str, attrs: object) -> None:
            pass

        def handle_endtag(self, tag: str) -> None:
            assert self.stack.pop() == tag

    parser = Strict()
    parser.feed(html)
    assert parser.stack == []


def test_html_is_self_contained() -> None:
    root = _tree(render_html(_pytest_report()))
    for e in root.iter():
        for attr in ("src", "href", "xlink:href", "action"):
            assert e.get(attr) is None, (e.tag, attr)
        assert e.tag not in ("script", "link", "iframe", "img", "object")
    html = render_html(_pytest_report())
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html


def test_one_lane_per_worker_one_bar_per_task_with_a_hover_title() -> None:
    root = _tree(render_html(_pytest_report()))
    lanes = [g for g in root.iter("g") if g.get("class") == "lane"]
    assert [g.get("data-worker") for g in lanes] == ["w0", "w1"]
    bars = {g.get("data-worker"): _tasks(g) for g in lanes}
    assert [b.get("data-index") for b in bars["w0"]] == ["0", "2"]
    assert [b.get("data-index") for b in bars["w1"]] == ["1"]
    (failed,) = [b for b in _tasks(root) if "failed" in b.get("class", "")]
    title = failed.find("title")
    assert title is not None and title.text is not None
    assert title.text.startswith("test_b.py::test_<three>& · 2.0s · failed · w0")


def test_bar_positions_follow_the_times() -> None:
    root = _tree(render_html(_pytest_report()))
    by_index = {b.get("data-index"): b for b in _tasks(root)}
    width = {i: float(b.get("width", 0)) for i, b in by_index.items()}
    x = {i: float(b.get("x", 0)) for i, b in by_index.items()}
    assert width["1"] == 2 * width["0"] == 4 * width["2"]  # 8 s, 4 s and 2 s
    assert x["2"] == x["0"] + width["0"]  # task 2 starts when task 0 ends


def test_the_headline() -> None:
    root = _tree(render_html(_pytest_report()))
    (headline,) = [s for s in root.iter("section") if s.get("id") == "headline"]
    text = " ".join(" ".join(t.strip() for t in headline.itertext()).split())
    for part in ("1.4x speedup", "70% efficiency", "10.0s wall time", "14.0s of tests",
                 "450 B peak RSS", "10.0s 3 tests: 2 passed 1 failed"):  # fmt: skip
        assert part in text, (part, text)


def test_the_sections_a_person_looks_for() -> None:
    root = _tree(render_html(_pytest_report()))
    ids = [s.get("id") for s in root.iter("section")]
    assert ids == ["headline", "timeline", "resources", "time", "slowest", "failures",
                   "amdahl", "workers"]  # fmt: skip
    series = [p.get("data-series") for p in root.iter("polyline") if p.get("data-series")]
    assert series == ["w0", "w1", "w0", "w1", "all workers"]  # CPU, then RSS


def test_thousands_of_tiny_tasks_are_drawn_together() -> None:
    # 20,000 tasks of 0.5 ms on two workers: far under a pixel each.
    tasks = [(i, f"w{i % 2}", (i // 2) * 0.0005, (i // 2 + 1) * 0.0005, 0.0, "passed")
             for i in range(20_000)]  # fmt: skip
    tasks[777] = (777, "w1", 388 * 0.0005, 389 * 0.0005, 0.0, "failed")
    rec = make_record(2, 5.0, tasks)
    root = _tree(render_html(RunReport(rec)))
    bars = _tasks(root)
    assert len(bars) < 2_000
    assert sum(int(b.get("data-tasks", 1)) for b in bars) == 20_000
    failed = [b for b in bars if "failed" in b.get("class", "")]
    assert [b.get("data-index") for b in failed] == ["777"]  # a failure is never hidden


def test_axis_ticks_are_round_numbers() -> None:
    assert nice_ticks(8.5) == [0, 2, 4, 6, 8]  # a time axis stops at the run's end
    assert nice_ticks(0.23) == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert nice_ticks(97, 4, cover=True) == [0, 50, 100]  # a value axis covers the top
    assert nice_ticks(0.0) == [0.0]
