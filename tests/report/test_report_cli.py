"""``python -m pytest_ploop``: render a saved record again, compare, print the schema."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_support import known_record, schema_errors

from pytest_ploop.__main__ import main
from pytest_ploop._report import RunReport, write_report
from pytest_ploop._report._json import JSON_SCHEMA

LABELS = {0: "test_a.py::test_one", 1: "test_a.py::test_two", 2: "test_b.py::test_three"}


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_ploop", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _saved(tmp_path: Path, name: str = "run.json", scale: float = 1.0) -> Path:
    path = write_report(RunReport(known_record(), LABELS, kind="pytest"), tmp_path / name)
    if scale != 1.0:  # the same run, every time multiplied by ``scale``
        data = json.loads(path.read_text())
        data["wall_s"] *= scale
        for t in data["tasks"]:
            t["start"], t["end"] = t["start"] * scale, t["end"] * scale
        path.write_text(json.dumps(data))
    return path


def test_report_renders_html_and_markdown_again(tmp_path: Path) -> None:
    run = _saved(tmp_path)
    result = _cli("report", run, "--html", "out.html", "--md", "out.md", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ploop: 2 workers, 10.0s wall, 14.0s of tests -> 1.4x speedup (70% efficiency), "
        "peak RSS 450 B",
        "ploop: wrote out.html",
        "ploop: wrote out.md",
    ]
    root = ET.fromstring((tmp_path / "out.html").read_text())
    lanes = [g.get("data-worker") for g in root.iter("g") if g.get("class") == "lane"]
    assert lanes == ["w0", "w1"]
    assert (
        "| 1 | 8.0s | w1 | passed | 300 B | `test_a.py::test_two` |"
        in (tmp_path / "out.md").read_text()
    )


def test_report_verbose_and_json_again(tmp_path: Path) -> None:
    result = _cli("report", _saved(tmp_path), "-v", "--json", "again.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  slowest tests:" in result.stdout
    assert (tmp_path / "again.json").read_text() == (tmp_path / "run.json").read_text()


def test_compare_and_the_regression_exit_status(tmp_path: Path) -> None:
    old = _saved(tmp_path, "old.json", scale=0.5)  # the earlier run took half the time
    new = _saved(tmp_path, "new.json")
    ok = _cli("report", new, "--compare", old, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "wall 5.0s -> 10.0s (+100%)" in ok.stdout
    failed = _cli("report", new, "--compare", old, "--fail-on-regression", "50", cwd=tmp_path)
    assert failed.returncode == 1
    assert "  regression: wall time grew 100% (5.0s -> 10.0s), more than 50%" in failed.stdout
    better = _cli("report", old, "--compare", new, "--fail-on-regression", "50", cwd=tmp_path)
    assert better.returncode == 0


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In this process (main() is what ``python -m`` runs): each case is a message and a status.
    run = _saved(tmp_path)
    (tmp_path / "other.txt").write_text("{}")
    cases = [
        (("report", tmp_path / "missing.json"), "cannot read the run record"),
        (("report", tmp_path / "other.txt"), "not a pytest-ploop run record"),
        (("report", run, "--html", tmp_path / "out.md"), "out.md: the name must end in .html"),
        (("report", run, "--fail-on-regression", "5"), "needs --compare"),
    ]
    for args, message in cases:
        assert main([str(a) for a in args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "out.md").exists()


def test_schema_prints_the_json_schema(tmp_path: Path) -> None:
    result = _cli("schema", cwd=tmp_path)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema == JSON_SCHEMA
    assert schema_errors(json.loads(_saved(tmp_path).read_text()), schema) == []
