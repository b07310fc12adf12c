"""The JSON run record: the documented schema, the round trip, versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_support import known_record, make_record, schema_errors

from pytest_ploop import PloopError
from pytest_ploop._report import RunReport, read, write_report
from pytest_ploop._report._json import JSON_SCHEMA, SCHEMA, dumps, from_dict

LABELS = {0: "test_a.py::test_one", 1: "test_a.py::test_two", 2: "test_b.py::test_three"}


def _report() -> RunReport:
    return RunReport(known_record(), LABELS, kind="pytest", title="unit", outcomes={0: "xfailed"})


def test_top_level_fields_the_issue_names() -> None:
    data = json.loads(dumps(_report()))
    for key in ("schema", "workers", "wall_s", "serial_s", "speedup", "efficiency", "tasks",
                "samples"):  # fmt: skip
        assert key in data
    assert data["schema"] == SCHEMA == "pytest-ploop/run/1"
    assert (data["workers"], data["wall_s"], data["serial_s"]) == (2, 10.0, 14.0)
    assert (data["speedup"], data["efficiency"]) == (1.4, 0.7)
    assert data["tasks"][0] == {
        "index": 0, "label": "test_a.py::test_one", "worker": "w0", "start": 0.0, "end": 4.0,
        "cpu_s": 3.0, "outcome": "xfailed",
    }  # fmt: skip
    assert data["samples"][0] == {
        "t": 2.0, "worker": "w0", "pid": 11, "cpu_percent": 50.0, "rss": 100, "read_bytes": 10,
        "write_bytes": 1, "ctx_switches": 5, "children": 0,
    }  # fmt: skip


def test_the_file_is_valid_against_the_documented_schema() -> None:
    data = json.loads(dumps(_report()))
    assert schema_errors(data, JSON_SCHEMA) == []


def test_the_schema_checker_finds_what_breaks_the_schema() -> None:
    data = json.loads(dumps(_report()))
    data["tasks"][1]["outcome"] = "exploded"
    data["samples"][0]["rss"] = -1
    del data["wall_s"]
    data["schema"] = "pytest-ploop/run/0"
    assert sorted(schema_errors(data, JSON_SCHEMA)) == [
        "$.samples[0].rss: -1 < 0",
        "$.schema: 'pytest-ploop/run/0' != 'pytest-ploop/run/1'",
        "$.tasks[1].outcome: 'exploded' not in ['passed', 'failed', 'error', 'crashed', "
        "'timed_out', 'skipped', 'xfailed', 'not_run']",
        "$: missing 'wall_s'",
    ]


def test_a_figure_that_does_not_exist_is_null_never_nan() -> None:
    text = dumps(RunReport(make_record(2, 0.0, [])))
    data = json.loads(text)  # strict JSON: NaN would not parse in other languages
    assert "NaN" not in text
    assert data["speedup"] is None and data["load_imbalance"] is None
    assert schema_errors(data, JSON_SCHEMA) == []


def test_round_trip_gives_the_same_report(tmp_path: Path) -> None:
    original = _report()
    path = write_report(original, tmp_path / "run.json")
    back = read(path)
    assert (back.kind, back.title, back.created) == ("pytest", "unit", original.created)
    assert back.machine == original.machine
    assert {i: back.label(i) for i in range(3)} == LABELS
    assert back.stats() == original.stats()
    assert dumps(back) == dumps(original)


def test_a_read_back_report_renders_like_the_original(tmp_path: Path) -> None:
    from pytest_ploop._report import render_html, render_markdown

    original = _report()
    back = read(write_report(original, tmp_path / "run.json"))
    assert render_markdown(back) == render_markdown(original)
    assert render_html(back) == render_html(original)


def test_an_unknown_or_newer_schema_is_refused(tmp_path: Path) -> None:
    data = json.loads(dumps(_report()))
    with pytest.raises(PloopError, match="newer than this pytest-ploop reads"):
        from_dict(data | {"schema": "pytest-ploop/run/2"})
    with pytest.raises(PloopError, match="not a pytest-ploop run record"):
        from_dict({"schema": "something/else/1"})
    with pytest.raises(PloopError, match="malformed"):
        from_dict({k: v for k, v in data.items() if k != "tasks"})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PloopError, match=r"cannot read the run record .*bad\.json"):
        read(tmp_path / "bad.json")


def test_one_task_a_line_for_readable_diffs() -> None:
    lines = dumps(_report()).splitlines()
    task_lines = [line for line in lines if line.startswith('  {"index"')]
    assert len(task_lines) == 3
