"""Reports that count and name every test as pytest does, whatever stopped the run; saved
records that render as the fresh ones; errors, not tracebacks, for files that cannot be read
or written.

Runs with workers are real pytest runs in a subprocess (the workers are forked processes);
the report plugin is named with ``-p`` as in test_report_plugin.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_support import known_record, make_record

from pytest_ploop.__main__ import main
from pytest_ploop._report import RunReport, read, render_markdown, terminal_lines, write_report
from pytest_ploop._report._merge import merge
from pytest_ploop._testing._durations import MAX_SHARDS, parse_shard

INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:randomly
    -p no:cacheprovider
"""
PLUGIN = ("-p", "pytest_ploop._report._plugin")
NOT_RUN = re.compile(r"ploop: (\d+) tests not run \(.*\)")
VERBOSE = re.compile(r"(\S+::\S+) (PASSED|FAILED|ERROR)\b")


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makeini(INI)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--ploop-workers=2", *PLUGIN, *args, timeout=120)


def _counts(path: Path) -> dict[str, int]:
    """The record's counts, zeros left out."""
    return {k: v for k, v in json.loads(path.read_text())["counts"].items() if v}


def _pytest_counts(result: pytest.RunResult) -> dict[str, int]:
    """The tests of pytest's final line, as the record names them."""
    names = {"passed": "passed", "failed": "failed", "errors": "error", "skipped": "skipped"}
    return {names[k]: n for k, n in result.parseoutcomes().items() if k in names}


# -- a saved record renders as the fresh one ----------------------------------------------


def _with_an_error() -> RunReport:
    """A test that passed and one whose set-up failed: the engine saw both pass."""
    tasks = [(0, "w0", 0.0, 1.0, 0.5, "passed"), (1, "w1", 0.0, 2.0, 0.5, "passed")]
    labels = {0: "test_e.py::test_error", 1: "test_e.py::test_ok"}
    return RunReport(make_record(2, 2.0, tasks), labels, "pytest", outcomes={0: "error"})


def test_a_saved_error_renders_and_merges_as_an_error(tmp_path: Path) -> None:
    fresh = _with_an_error()
    saved = read(write_report(fresh, tmp_path / "run.json"))
    assert render_markdown(saved) == render_markdown(fresh)
    assert "| outcomes | 1 passed, 1 error |" in render_markdown(saved)
    merged = merge([saved, read(tmp_path / "run.json")])
    assert [t.outcome for t in merged.tasks()] == ["error", "passed", "error", "passed"]
    assert "| outcomes | 2 passed, 2 errors |" in render_markdown(merged)


def test_outcomes_are_worded_as_pytest_words_them() -> None:
    tasks = [(0, "w0", 0.0, 3.0, 0.1, "timed_out"), (1, "w1", 0.0, 2.0, 0.1, "passed"),
             (2, "w1", 2.0, 2.5, 0.1, "passed")]  # fmt: skip
    report = RunReport(make_record(2, 3.0, tasks), kind="pytest", outcomes={1: "error", 2: "error"})
    md = render_markdown(report)
    assert "| outcomes | 2 errors, 1 timed out |" in md
    assert "| 1 | 3.0s | w0 | timed out |" in md  # the slowest tests
    assert "- **timed out** `0` on w0 after 3.0s" in md  # the tests that did not pass
    assert "timed_out" not in md
    lines = terminal_lines(report, verbosity=1)
    assert "       3.0s  w0  timed out 0" in lines
    assert not [line for line in lines if "timed_out" in line]


# -- -x, Ctrl-C: the tests that ran are in the record, the rest counted once as not run -----

STOPPED = """\
import time

import pytest


@pytest.mark.parametrize("i", range(40))
def test_many(i):
    assert i != 0
    time.sleep(0.05)  # the work of the test: the run stops long before all are handed out
"""


def test_the_failure_that_stopped_the_run_is_in_every_report(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_x=STOPPED)
    result = _run(inner, "-x", "-v", "--ploop-report=run.json", "--ploop-report=run.md",
                  "--ploop-report=run.html")  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    reported = dict(m.groups() for m in map(VERBOSE.match, result.outlines) if m)
    assert reported["test_x.py::test_many[0]"] == "FAILED"
    data = json.loads((inner.path / "run.json").read_text())
    tasks = {t["label"]: t["outcome"] for t in data["tasks"]}
    # Every test pytest reported, the one that stopped the run too, with its outcome.
    assert tasks == {nodeid: word.lower() for nodeid, word in reported.items()}
    assert "- **failed** `test_x.py::test_many[0]` on w" in (inner.path / "run.md").read_text()
    assert 'data-index="0"' in (inner.path / "run.html").read_text()  # its bar


def test_the_not_run_count_is_the_terminals_each_test_counted_once(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(test_x=STOPPED)
    result = _run(inner, "-x", "--ploop-report=run.json", "--ploop-report=run.md")
    not_run = [int(m.group(1)) for m in map(NOT_RUN.fullmatch, result.outlines) if m]
    assert len(not_run) == 1, result.outlines
    counts = _counts(inner.path / "run.json")
    assert counts == {**_pytest_counts(result), "not_run": not_run[0]}
    assert sum(counts.values()) == 40
    md = (inner.path / "run.md").read_text()
    passed = counts.get("passed", 0)
    assert f"| outcomes | {passed} passed, 1 failed, {not_run[0]} not run |" in md


def test_a_crashed_test_counts_as_crashed_once(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_x="import os\n\ndef test_dies():\n    os._exit(3)\n\n"
        "def test_a():\n    pass\n\ndef test_b():\n    pass\n"
    )
    result = _run(inner, "--ploop-report=run.json")
    result.assert_outcomes(passed=2, failed=1)
    assert _counts(inner.path / "run.json") == {"passed": 2, "crashed": 1}


# -- --ploop-dist=scope and file: tests, not groups ----------------------------------------

GROUPS = """\
import pytest


class TestA:
    @pytest.mark.parametrize("i", range(4))
    def test_a(self, i):
        assert i != 3


class TestB:
    @pytest.mark.parametrize("i", range(3))
    def test_b(self, i):
        pass
"""


@pytest.mark.parametrize("dist", ["scope", "file"])
def test_groups_count_their_tests(inner: pytest.Pytester, dist: str) -> None:
    inner.makepyfile(test_g=GROUPS)
    result = _run(inner, f"--ploop-dist={dist}", "--ploop-report=g.json",
                  "--ploop-report=g.md", "--ploop-report=g.html")  # fmt: skip
    result.assert_outcomes(passed=6, failed=1)
    assert _counts(inner.path / "g.json") == {"passed": 6, "failed": 1}
    assert "| outcomes | 6 passed, 1 failed |" in (inner.path / "g.md").read_text()
    assert '<div class="outcomes">7 tests: ' in (inner.path / "g.html").read_text()


# -- reports that cannot be written ----------------------------------------------------------


def test_an_unwritable_report_is_an_error_line_after_the_run(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(test_a="def test_a():\n    pass\n")
    (inner.path / "afile").write_text("")
    summary = inner.path / "nodir" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = _run(inner, "--ploop-report=afile/run.json", "--ploop-report=ok.md")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # as pytest's, for --junitxml
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "ploop: wrote ok.md",
        "ploop: error: cannot write the report afile/run.json: *File exists*: give "
        "--ploop-report a path in a folder that can be written",
        f"ploop: error: cannot append the summary to GITHUB_STEP_SUMMARY={summary}: *: set it "
        "to a file that can be written, or unset it",
        "*= 1 passed in *",
    ])  # fmt: skip
    assert (inner.path / "ok.md").is_file()


# -- files that cannot be read ---------------------------------------------------------------

BAD_FIELDS: list[tuple[Callable[[dict[str, Any]], object], str]] = [
    (lambda d: d.update(workers="2"), 'workers is "2", not an integer'),
    (lambda d: d["tasks"][1].update(start="0.1"), 'tasks[1].start is "0.1", not a number'),
    (lambda d: d["samples"][0].update(rss=None), "samples[0].rss is null, not an integer"),
    # Python's json reads NaN; the HTML report then failed on int(nan) with a traceback.
    (lambda d: d["tasks"][0].update(start=math.nan), "tasks[0].start is NaN, not a finite number"),
]
REWRITE = "write the record again with `pytest --ploop-report=RUN.json`, or correct that field"


@pytest.mark.parametrize(("spoil", "message"), BAD_FIELDS)
def test_a_field_of_the_wrong_type_is_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spoil: Callable[[dict[str, Any]], object],
    message: str,
) -> None:
    good = write_report(RunReport(known_record(), kind="pytest"), tmp_path / "good.json")
    data = json.loads(good.read_text())
    spoil(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    for args in (["report", str(bad)], ["report", "merge", str(good), str(bad)]):
        assert main(args) == 2
        assert capsys.readouterr().err == (
            f"error: {bad}: a malformed run record: {message}: {REWRITE} "
            "(`python -m pytest_ploop schema` prints the format)\n"
        )


def test_compare_with_a_field_of_the_wrong_type_is_a_usage_error(inner: pytest.Pytester) -> None:
    good = write_report(RunReport(known_record(), kind="pytest"), inner.path / "old.json")
    data = json.loads(good.read_text())
    data["tasks"][0]["start"] = "0.1"
    good.write_text(json.dumps(data))
    # Refused while pytest configures, before any worker: in this process.
    result = inner.runpytest_inprocess("--ploop-workers=2", *PLUGIN, "--ploop-compare=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        'ERROR: --ploop-compare: old.json: a malformed run record: tasks[0].start is "0.1", '
        f"not a number: {REWRITE}" in result.stderr.str()
    )


def test_a_durations_file_that_is_not_utf8_is_named_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin = tmp_path / "latin.json"
    latin.write_bytes(b"\xff\xfe{}")
    assert main(["durations", "merge", str(latin), "-o", str(tmp_path / "out.json")]) == 2
    assert capsys.readouterr().err == (
        f"error: {latin}: not a durations file (not UTF-8 text: byte 0xff at position 0): give "
        "a file written by `python -m pytest_ploop durations export`, a JSON object "
        "{test id: seconds}, or a pytest cache folder\n"
    )
    assert not (tmp_path / "out.json").exists()


# -- a shard count too large to cut ----------------------------------------------------------


@pytest.mark.parametrize("spec", ["1/100000000", "99999999999999999999/99999999999999999999"])
def test_a_shard_count_beyond_the_limit_is_a_usage_error(spec: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"at most {MAX_SHARDS:,} shards"):
        parse_shard(spec)
    assert parse_shard(f"{MAX_SHARDS}/{MAX_SHARDS}") == (MAX_SHARDS, MAX_SHARDS)


def test_a_huge_shard_count_through_pytest(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_a="def test_a():\n    pass\n")
    huge = "99999999999999999999"
    result = inner.runpytest_inprocess("--co", f"--ploop-shard={huge}/{huge}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*at most 10,000 shards (one CI job each): give a smaller N"])
