"""One item, its cases in worker processes, one report: failures with pytest's assertion
explanations and their output, skipped and xfailed cases counted, timings for the reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from decorator_support import Project, section

FAILING = """
import sys

from pytest_ploop._parametrize import parametrize_parallel


def square(x):
    return x * x


@parametrize_parallel("seed", range(6), workers=2)
def test_squares(seed):
    print(f"stdout of case {seed}")
    print(f"stderr of case {seed}", file=sys.stderr)
    assert square(seed) == seed * seed + (seed in (3, 5))


def test_plain():
    pass
"""


def test_failing_cases_make_one_report(project: Project) -> None:
    project.pytester.makepyfile(test_failing=FAILING)
    result = project.run("-rA")
    result.assert_outcomes(failed=1, passed=1)
    text = result.stdout.str()
    assert "2 of 6 cases failed (2 failed); 4 passed" in text
    assert text.count("_ test_squares _") == 1  # one report for the item
    three = section(result, "3")
    assert "parameters: seed=3" in three
    # pytest's own rendering: the test's source, and the rewritten assertion's explanation.
    assert ">       assert square(seed) == seed * seed + (seed in (3, 5))" in three
    assert "E       assert 9 == ((3 * 3) + 3 in (3, 5))" in three
    assert "E        +  where 9 = square(3)" in three
    assert "test_failing.py:14: AssertionError" in three
    assert "stdout of case 3" in three and "stderr of case 3" in three
    assert "stdout of case 5" in section(result, "5")
    for passing in (0, 1, 2, 4):  # passing cases stay quiet
        assert f"case {passing}" not in text
    result.stdout.fnmatch_lines(["FAILED test_failing.py::test_squares - *2 of 6 cases failed*"])


FIXTURES = """
import os

import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@pytest.fixture(scope="module")
def resource():
    casehelp.log("setup", "module")
    return {"items": [1, 2, 3]}


@pytest.fixture
def per_test(tmp_path):
    casehelp.log("setup", "function")
    return tmp_path


@parametrize_parallel("n", range(4), workers=2)
def test_fan_out(n, resource, per_test, tmp_path):
    casehelp.log("case", n, tmp_path, resource["items"])
    (tmp_path / "mine").write_text(str(n))
    # Both workers are busy at once: two different processes reach this point.
    casehelp.wait_until(lambda: len({e[0] for e in casehelp.events("case")}) >= 2, "2 workers")
"""


def test_fixtures_set_up_once_and_inherited_each_case_its_tmp_path(project: Project) -> None:
    project.pytester.makepyfile(test_fixtures=FIXTURES)
    project.run().assert_outcomes(passed=1)
    setups = project.events("setup")
    assert sorted(e.fields[0] for e in setups) == ["function", "module"]
    item_pid = setups[0].pid
    cases = project.events("case")
    assert sorted(int(e.fields[0]) for e in cases) == [0, 1, 2, 3]
    pids = {e.pid for e in cases}
    assert item_pid not in pids and len(pids) == 2  # forked after the fixtures were set up
    assert {e.fields[2] for e in cases} == {"[1, 2, 3]"}  # the fixture's value, inherited
    dirs = [e.fields[1] for e in cases]
    assert len(set(dirs)) == 4  # one per case, inside the test's own tmp_path
    parents = {d.rsplit("/", 1)[0] for d in dirs}
    assert len(parents) == 1 and parents.pop().endswith("test_fan_out0")
    assert sorted(d.rsplit("/", 1)[1] for d in dirs) == ["0", "1", "2", "3"]


MARKS = """
import sys

import pytest

from pytest_ploop._parametrize import parametrize_parallel

CASES = [
    1,
    pytest.param(2, marks=pytest.mark.skip(reason="not today")),
    pytest.param(3, marks=pytest.mark.skipif("sys.platform != 'no such'", reason="by string")),
    pytest.param(4, marks=pytest.mark.xfail(raises=ZeroDivisionError, reason="known bug")),
    pytest.param(5, marks=pytest.mark.xfail(run=False, reason="would hang")),
    6,
    pytest.param(7, id="seven"),
]


@parametrize_parallel("n", CASES, workers=2)
def test_marks(n):
    if n == 4:
        1 / 0
    if n == 6:
        pytest.skip("skipped from inside")


STRICT = pytest.mark.xfail(reason="passes", strict=True)


@parametrize_parallel("n", [pytest.param(1, marks=STRICT), 2])
def test_strict(n):
    pass


@parametrize_parallel("n", [pytest.param(1, marks=pytest.mark.xfail(raises=KeyError)), 2])
def test_wrong_exception(n):
    if n == 1:
        raise ValueError("not the expected one")


@parametrize_parallel("n", [pytest.param(1, marks=pytest.mark.skip(reason="all of them"))])
def test_all_skipped(n):
    pass
"""


def test_skipped_and_xfailed_cases_are_counted(project: Project) -> None:
    project.pytester.makepyfile(test_marks=MARKS)
    result = project.run("-rA")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        ["test_marks.py::test_marks: 7 cases (2 passed, 2 xfailed, 3 skipped) on 2 workers*"]
    )
    assert "1 of 2 cases failed (1 failed); 1 passed" in text  # strict: an XPASS fails
    assert "[XPASS(strict)] passes" in section(result, "1")
    assert "ValueError: not the expected one" in text
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_marks.py:*: 1 case skipped: all of them"])


TIMINGS = """
import json

import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", ["a", "b", "c"], workers=2)
def test_timed(n):
    pass
"""

REPORT_HOOK = """
import json
import os

import casehelp


def pytest_runtest_logreport(report):
    data = getattr(report, "ploop_cases", None)
    if data is not None and not os.environ.get("PLOOP_WORKER"):  # the main process's view
        casehelp.log("report", json.dumps(data))
"""


@pytest.mark.parametrize("workers", ["0", "2"], ids=["serial-run", "ploop-workers"])
def test_timings_reach_the_report_and_junitxml(project: Project, workers: str) -> None:
    project.pytester.makepyfile(test_timings=TIMINGS)
    project.pytester.makeconftest(REPORT_HOOK)
    project.run(f"--ploop-workers={workers}", "--junitxml=out.xml").assert_outcomes(passed=1)
    (event,) = project.events("report")  # in the main process, also from a ploop worker
    data = json.loads(event.fields[0])
    assert data["cases"] == 3 and data["counts"] == {"passed": 3} and data["workers"] == 2
    assert [c["id"] for c in data["per_case"]] == ["a", "b", "c"]
    assert all(c["seconds"] > 0 and c["worker"] in ("w0", "w1") for c in data["per_case"])
    # It adds up: the sum of the cases' figures as written, not the rounded sum of their times.
    assert data["serial_s"] == round(sum(c["seconds"] for c in data["per_case"]), 6)
    case = ET.parse(project.path / "out.xml").getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["ploop_cases"] == "3" and props["ploop_workers"] == "2"
    assert json.loads(props["ploop_case[b]"] or "")["outcome"] == "passed"


WARNS = """
import warnings

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", range(4), workers=2)
def test_warns(n):
    warnings.warn(UserWarning(f"careful with {n % 2}"))
"""


def test_warnings_of_cases_reach_the_summary_once_each(project: Project) -> None:
    project.pytester.makepyfile(test_warns=WARNS)
    result = project.run()
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(["*UserWarning: careful with 0", "*UserWarning: careful with 1"])
