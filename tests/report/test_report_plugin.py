"""--ploop-report, --ploop-compare and --ploop-fail-on-regression through a real pytest run
(in a subprocess: the workers are forked processes). The report plugin is named with ``-p``
so that these tests do not depend on how ``pytest_ploop.plugin`` registers it."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_support import schema_errors

from pytest_ploop._report._json import JSON_SCHEMA
from pytest_ploop._report._plugin import group_label

INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:randomly
"""
SUITE = """\
import time

import pytest


@pytest.mark.parametrize("i", range(6))
def test_work(i):
    time.sleep(0.02)  # the work of the test: a bar wide enough to draw alone


def test_fails():
    assert 1 == 2


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


class TestGroup:
    def test_one(self):
        pass

    def test_two(self):
        pass
"""
NODEIDS = [
    *(f"test_suite.py::test_work[{i}]" for i in range(6)),
    "test_suite.py::test_fails",
    "test_suite.py::test_skipped",
    "test_suite.py::TestGroup::test_one",
    "test_suite.py::TestGroup::test_two",
]
LINE = re.compile(
    r"ploop: 2 workers, [\d.]+s wall, [\d.]+s of tests -> [\d.]+x speedup \(\d+% efficiency\)"
    r"(, peak RSS [\d.]+ [KMG]?i?B)?"
)
PLUGIN = ("-p", "pytest_ploop._report._plugin")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--ploop-workers=2", *PLUGIN, *args, timeout=120)


def _ploop_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if LINE.fullmatch(line)]
    assert len(lines) == 1, result.outlines
    return lines[0]


def test_reports_by_extension_and_the_summary_line(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = suite.path / "step_summary.md"
    summary.write_text("earlier steps\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = _run(suite, "--ploop-report=out.json", "--ploop-report=out.html",
                  "--ploop-report=sub/out.md")  # fmt: skip
    result.assert_outcomes(passed=8, failed=1, skipped=1)
    _ploop_line(result)
    result.stdout.fnmatch_lines(["ploop: wrote out.json", "ploop: wrote out.html",
                                 "ploop: wrote sub/out.md"])  # fmt: skip

    data = json.loads((suite.path / "out.json").read_text())
    assert schema_errors(data, JSON_SCHEMA) == []
    assert (data["kind"], data["workers"]) == ("pytest", 2)
    outcomes = {t["label"]: t["outcome"] for t in data["tasks"]}
    assert sorted(outcomes) == sorted(NODEIDS)
    assert outcomes["test_suite.py::test_fails"] == "failed"
    assert outcomes["test_suite.py::test_skipped"] == "skipped"
    assert data["counts"]["passed"] == 8

    root = ET.fromstring((suite.path / "out.html").read_text())
    lanes = [g for g in root.iter("g") if g.get("class") == "lane"]
    assert sorted(g.get("data-worker") or "" for g in lanes) == ["w0", "w1"]
    bars = [e for e in root.iter("rect") if "task" in e.get("class", "").split()]
    assert sum(int(b.get("data-tasks", 1)) for b in bars) == len(NODEIDS)
    work = [b for b in bars if "test_work[" in (b.findtext("title") or "")]
    assert len(work) == 6  # one bar each: 20 ms is wide enough on this timeline

    md = (suite.path / "sub" / "out.md").read_text()
    assert md.startswith("## ploop test run: ")
    assert "`test_suite.py::test_fails`" in md
    assert summary.read_text() == "earlier steps\n" + md + "\n"


def test_more_detail_with_verbose(suite: pytest.Pytester) -> None:
    result = _run(suite, "-v")
    result.stdout.fnmatch_lines(
        ["  worker  tasks *busy *idle *", "  w0 *", "  w1 *", "  slowest tests:",
         "* test_suite.py::test_work*", "  where the time went (2 workers x *"]
    )  # fmt: skip


def test_a_serial_run_writes_nothing(suite: pytest.Pytester) -> None:
    # No workers, no record: in this process (pytester's in-process run) is enough.
    result = suite.runpytest_inprocess(*PLUGIN, "--ploop-report=out.json")
    result.assert_outcomes(passed=8, failed=1, skipped=1)
    assert not (suite.path / "out.json").exists()
    assert not [line for line in result.outlines if line.startswith("ploop")]


def _scale(path: Path, factor: float, tasks: bool = True) -> None:
    """Make the saved run ``factor`` times as long, every task in proportion (or only its
    wall time, when not ``tasks``: its speedup falls by ``factor``)."""
    data = json.loads(path.read_text())
    data["wall_s"] *= factor
    for t in data["tasks"] if tasks else ():
        t["start"], t["end"] = t["start"] * factor, t["end"] * factor
    path.write_text(json.dumps(data))


def test_compare_and_fail_on_regression(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_suite="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    _run(suite, "--ploop-report=base.json").assert_outcomes(passed=2)
    _scale(suite.path / "base.json", 0.01)  # as if the earlier run had been 100x faster
    result = _run(suite, "--ploop-compare=base.json", "--ploop-fail-on-regression=50",
                  "--ploop-report=new.md")  # fmt: skip
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["ploop: compared with the earlier run: wall * -> *: REGRESSION",
         "  regression: wall time grew *% (*), more than 50%",
         "ploop: FAILED: a regression beyond 50%"]
    )  # fmt: skip
    assert "**Regression**: wall time grew" in (suite.path / "new.md").read_text()
    # Compared the other way round, nothing regressed. (Only the wall time grows: the speedup
    # of two empty tests is noise, and the earlier run's must be far below any new one's.)
    _scale(suite.path / "base.json", 10_000, tasks=False)
    faster = _run(suite, "--ploop-compare=base.json", "--ploop-fail-on-regression=50")
    assert faster.ret == pytest.ExitCode.OK
    faster.stdout.fnmatch_lines(["ploop: compared with the earlier run: *: within 50%"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ploop-report=out.txt",), "*--ploop-report: cannot tell the report format*"),
        (("--ploop-fail-on-regression=5",), "*--ploop-fail-on-regression needs --ploop-compare*"),
        (("--ploop-compare=x.json", "--ploop-fail-on-regression=lots"), "*percentage >= 0*"),
        (("--ploop-compare=test_suite.py",), "*--ploop-compare: cannot read the run record*"),
    ],
)
def test_usage_errors(suite: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    # Refused while pytest configures, before any worker: in this process.
    result = suite.runpytest_inprocess("--ploop-workers=2", *PLUGIN, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_groups_named_by_their_scope_and_a_missing_earlier_run(suite: pytest.Pytester) -> None:
    result = _run(suite, "--ploop-dist=scope", "--ploop-report=out.json",
                  "--ploop-compare=nothing.json", "--ploop-fail-on-regression=5")  # fmt: skip
    result.assert_outcomes(passed=8, failed=1, skipped=1)
    # The first CI run has no earlier one: a note, not a failure.
    result.stdout.fnmatch_lines(["ploop: no earlier run at nothing.json to compare with"])
    labels = {t["label"] for t in json.loads((suite.path / "out.json").read_text())["tasks"]}
    assert labels == {"test_suite.py (8 tests)", "test_suite.py::TestGroup (2 tests)"}


def test_group_label() -> None:
    assert group_label(["a.py::test_x"]) == "a.py::test_x"
    assert group_label(["a.py::K::t1", "a.py::K::t2"]) == "a.py::K (2 tests)"
    assert group_label(["a.py::t[1]", "b.py::t[2]"]) == "a.py::t[1] ... (2 tests)"


NUMPY_SEEN = """
import os
import sys


def pytest_unconfigure(config):
    if not os.environ.get("PLOOP_WORKER"):  # the main process, after its summary
        with open("numpy-seen.txt", "w") as f:
            f.write(str("numpy" in sys.modules))
"""


def test_the_summary_line_alone_does_not_import_numpy(suite: pytest.Pytester) -> None:
    # numpy is for the statistics beyond the one line (-v, report files): a quick suite's
    # run should not pay for importing it.
    suite.makeconftest(NUMPY_SEEN)
    quiet = _run(suite)
    assert _ploop_line(quiet)
    assert (suite.path / "numpy-seen.txt").read_text() == "False"
    verbose = _run(suite, "-v")
    assert "slowest tests:" in verbose.stdout.str()
    assert (suite.path / "numpy-seen.txt").read_text() == "True"
