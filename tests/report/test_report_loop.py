"""Reports of the loop API's records: ``pool.last_run`` written and read back."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import pytest_ploop as ploop
from pytest_ploop._report import (
    RunReport,
    compute,
    read,
    render_html,
    report_paths,
    write_report,
    write_reports,
)


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


def test_a_pool_run_written_in_every_format_and_read_back(tmp_path: Path) -> None:
    with ploop.Pool(workers=2, start_method="fork") as pool:
        with pytest.raises(ploop.LoopError):
            pool.map(square_or_fail, range(40), chunksize=1)
        record = pool.last_run
    assert record is not None
    paths = write_reports(
        record, [tmp_path / "run.json", tmp_path / "run.md", tmp_path / "run.html"]
    )
    assert [p.name for p in paths] == ["run.json", "run.md", "run.html"]

    st = compute(record)
    assert (st.workers, st.tasks, st.counts["passed"], st.counts["failed"]) == (2, 40, 39, 1)
    assert "- **failed** `3` on w" in (tmp_path / "run.md").read_text()

    root = ET.fromstring((tmp_path / "run.html").read_text())
    lanes = [g.get("data-worker") for g in root.iter("g") if g.get("class") == "lane"]
    assert lanes == sorted(record.worker_info)
    failed = [e for e in root.iter("rect") if "failed" in e.get("class", "").split()]
    assert [e.get("data-index") for e in failed] == ["3"]

    back = read(tmp_path / "run.json").stats()
    # Times are kept to the microsecond: each task's time within 1 us, their sum within 40.
    assert back.wall_s == pytest.approx(st.wall_s, abs=1e-6)
    assert back.serial_s == pytest.approx(st.serial_s, abs=40e-6)
    assert back.speedup == pytest.approx(st.speedup, abs=40e-6 / st.wall_s)
    assert back.peak_rss == st.peak_rss
    # Tasks within a microsecond of each other may swap places; their times may not.
    assert [t.wall_s for t in back.slowest] == pytest.approx(
        [t.wall_s for t in st.slowest], abs=2e-6
    )


def test_a_run_in_this_process_has_one_lane_and_no_amdahl_fit() -> None:
    with ploop.Pool(workers=1) as pool:
        pool.map(abs, range(-5, 5))
        record = pool.last_run
    assert record is not None
    st = compute(record)
    assert (st.workers, st.tasks) == (1, 10)
    assert math.isnan(st.serial_fraction)
    root = ET.fromstring(render_html(RunReport(record)))
    assert [g.get("data-worker") for g in root.iter("g") if g.get("class") == "lane"] == ["main"]


def test_an_unknown_extension_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with ploop.Pool(workers=1) as pool:
        pool.map(abs, range(3))
    assert pool.last_run is not None
    with pytest.raises(ValueError, match=r"use a name ending in \.json, \.md or \.html"):
        write_report(pool.last_run, tmp_path / "run.txt")
    assert list(tmp_path.iterdir()) == []


def test_report_paths_for_a_report_argument(tmp_path: Path) -> None:
    assert report_paths(None) == []
    assert report_paths("run.html") == [Path("run.html")]
    assert report_paths([tmp_path / "a.json", "b.md"]) == [tmp_path / "a.json", Path("b.md")]
    with pytest.raises(ValueError, match=r"run\.txt"):
        report_paths(["run.html", "run.txt"])
