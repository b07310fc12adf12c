"""What one case leaves to the next and what the item makes of its cases: a case's own
``monkeypatch`` is undone when it ends (what the fixtures patched stays); several
``--ploop-case`` ids each run to their outcome; a warning whose class wants other arguments
still reaches pytest's summary; the test's own ``xfail(raises=...)`` mark holds for the
cases' failures."""

from __future__ import annotations

import pytest
from decorator_support import Project, section

# One worker runs every case, in order: what one case leaves behind, the next one meets.
MONKEYPATCH = """
import os

import casehelp

from pytest_ploop._parametrize import parametrize_parallel

SETTING = "module"


@parametrize_parallel("n", range(4), workers=1)
def test_patching(n, monkeypatch):
    casehelp.log("case", n)
    assert "PLOOP_CASE_VAR" not in os.environ, os.environ["PLOOP_CASE_VAR"]
    assert SETTING == "module", SETTING
    monkeypatch.setenv("PLOOP_CASE_VAR", str(n))
    monkeypatch.setattr(__import__(__name__), "SETTING", f"case {n}")
    assert n != 1, "case 1 fails after patching"


def test_after():
    assert "PLOOP_CASE_VAR" not in os.environ
    assert SETTING == "module"
"""


@pytest.mark.parametrize(
    "named",
    [(), ("--ploop-case=0", "--ploop-case=1", "--ploop-case=2", "--ploop-case=3")],
    ids=["workers", "here"],
)
def test_a_cases_monkeypatch_is_undone_when_it_ends(
    project: Project, named: tuple[str, ...]
) -> None:
    project.pytester.makepyfile(test_patch=MONKEYPATCH)
    result = project.run("-rA", *named)
    result.assert_outcomes(failed=1, passed=1)
    assert "1 of 4 cases failed (1 failed); 3 passed" in result.stdout.str()
    assert "case 1 fails after patching" in section(result, "1")
    cases = project.events("case")
    assert sorted(int(e.fields[0]) for e in cases) == [0, 1, 2, 3]
    assert len({e.pid for e in cases}) == 1  # one process ran them all, one after another


FIXTURE_PATCHES = """
import os

import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel

SETTING = "module"


@pytest.fixture
def configured(monkeypatch):
    monkeypatch.setenv("PLOOP_MODE", "fixture")
    monkeypatch.setattr(__import__(__name__), "SETTING", "fixture")


@parametrize_parallel("n", range(4), workers=1)
def test_cases(n, configured, monkeypatch):
    casehelp.log("case", n)
    assert (os.environ["PLOOP_MODE"], SETTING) == ("fixture", "fixture")
    monkeypatch.setenv("PLOOP_MODE", f"case {n}")
    monkeypatch.setattr(__import__(__name__), "SETTING", f"case {n}")
    monkeypatch.undo()  # the case's own patches only
    assert (os.environ["PLOOP_MODE"], SETTING) == ("fixture", "fixture")
    monkeypatch.setenv("PLOOP_MODE", f"case {n} again")
"""


def test_what_the_fixtures_patched_every_case_sees(project: Project) -> None:
    project.pytester.makepyfile(test_fixture=FIXTURE_PATCHES)
    project.run().assert_outcomes(passed=1)
    cases = project.events("case")
    assert sorted(int(e.fields[0]) for e in cases) == [0, 1, 2, 3]
    assert len({e.pid for e in cases}) == 1


OUTCOMES = """
import os

import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@pytest.fixture
def setup_pid():
    return os.getpid()


@parametrize_parallel("n", ["pass", "skip", "skip2", "xfail", "fail", "fail2"])
def test_cases(n, setup_pid):
    casehelp.log("case", n, os.getpid() == setup_pid)
    if n.startswith("skip"):
        pytest.skip(f"{n} skips itself")
    if n == "xfail":
        pytest.xfail("known to fail")
    assert not n.startswith("fail"), f"{n} fails"
"""


@pytest.mark.parametrize(
    ("named", "outcome"),
    [
        (["skip", "fail"], "failed"),
        (["xfail", "fail", "fail2"], "failed"),
        (["fail", "skip", "pass"], "failed"),
        (["skip", "pass"], "passed"),
        (["skip", "xfail"], "xfailed"),
        (["xfail", "skip"], "xfailed"),
    ],
)
def test_each_named_case_runs_to_its_outcome(
    project: Project, named: list[str], outcome: str
) -> None:
    project.pytester.makepyfile(test_outcomes=OUTCOMES)
    result = project.run_inprocess(*(f"--ploop-case={n}" for n in named))
    result.assert_outcomes(**{outcome: 1})
    ran = project.events("case")
    assert sorted(e.fields[0] for e in ran) == sorted(named)
    assert all(e.fields[1] == "True" for e in ran)  # in the test's own process
    failing = [n for n in named if n.startswith("fail")]
    for case in failing:
        assert f"{case} fails" in section(result, case)
    if failing:
        assert f"{len(failing)} of {len(named)} cases failed" in result.stdout.str()


def test_named_cases_that_all_skip_skip_the_test(project: Project) -> None:
    project.pytester.makepyfile(test_outcomes=OUTCOMES)
    result = project.run_inprocess("-rs", "--ploop-case=skip", "--ploop-case=skip2")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] test_outcomes.py:*: all 2 cases skipped: skip skips itself; skip2 *"]
    )
    assert sorted(e.fields[0] for e in project.events("case")) == ["skip", "skip2"]


FAIL_FAST = """
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", [1, 2, 3], fail_fast=True)
def test_cases(n):
    casehelp.log("case", n)
    assert n != 2
"""


def test_with_fail_fast_the_named_cases_after_a_failure_are_not_run(project: Project) -> None:
    project.pytester.makepyfile(test_ff=FAIL_FAST)
    result = project.run_inprocess("--ploop-case=1", "--ploop-case=2", "--ploop-case=3")
    result.assert_outcomes(failed=1)
    assert (
        "1 of 3 cases failed (1 failed); 1 not run (fail_fast: an earlier case failed); 1 passed"
        in result.stdout.str()
    )
    assert [e.fields[0] for e in project.events("case")] == ["1", "2"]


WARNINGS = """
import warnings

from pytest_ploop._parametrize import parametrize_parallel


class DataWarning(UserWarning):
    def __init__(self, column, detail):
        super().__init__(f"column {column}: {detail}")
        self.column = column


@parametrize_parallel("n", [1, 2], workers=2)
def test_warns(n):
    class LocalWarning(UserWarning):
        pass

    warnings.warn(DataWarning(f"c{n}", "has NaN"))
    warnings.warn(LocalWarning(f"local {n}"))
"""


def test_a_warning_keeps_its_class_and_message(project: Project) -> None:
    project.pytester.makepyfile(test_warnings=WARNINGS)
    result = project.run()
    result.assert_outcomes(passed=1, warnings=4)
    local = "UserWarning: test_warnings.test_warns.<locals>.LocalWarning: local"
    result.stdout.fnmatch_lines(
        [f"*DataWarning: column c{n}: has NaN" for n in (1, 2)] + [f"*{local} {n}" for n in (1, 2)],
        consecutive=False,
    )


ITEM_XFAIL = """
import os

import pytest

from pytest_ploop._parametrize import parametrize_parallel


@pytest.mark.xfail(raises=ValueError, reason="parser bug")
@parametrize_parallel("n", [1, 2, 3])
def test_expected(n):
    if n != 3:
        raise ValueError(n)


@pytest.mark.xfail(raises=(KeyError, OSError), strict=True, reason="lookups")
@parametrize_parallel("n", [1, 2])
def test_expected_tuple(n):
    raise (KeyError if n == 1 else FileNotFoundError)(n)


@pytest.mark.xfail(raises=ValueError, reason="parser bug")
@parametrize_parallel("n", [1, 2])
def test_other_error(n):
    raise (ValueError if n == 1 else TypeError)(n)


# Its cases are not 1 and 2: --ploop-case=1 must not run a crash in pytest's own process.
@pytest.mark.xfail(raises=ValueError, reason="parser bug")
@parametrize_parallel("how", ["raise", "exit"])
def test_crash(how):
    if how == "exit":
        os._exit(3)
    raise ValueError(how)


@pytest.mark.xfail(reason="anything")
@parametrize_parallel("n", [1, 2])
def test_no_raises(n):
    assert n == 1


@pytest.mark.xfail(raises=ValueError, strict=True, reason="fixed")
@parametrize_parallel("n", [1, 2])
def test_strict_all_pass(n):
    pass
"""


@pytest.mark.parametrize(
    ("named", "crash"),
    [
        ((), "FAILED test_item.py::test_crash - Failed: 2 of 2 cases failed (1 failed, 1 c*"),
        (
            ("--ploop-case=1", "--ploop-case=2"),
            "SKIPPED [[]1[]] test_item.py:*: no case of it is named by --ploop-case",
        ),
    ],
    ids=["workers", "here"],
)
def test_the_tests_xfail_raises_mark_judges_the_failing_cases(
    project: Project, named: tuple[str, ...], crash: str
) -> None:
    project.pytester.makepyfile(test_item=ITEM_XFAIL)
    result = project.run("-rA", *named)
    for line in [
        "XFAIL test_item.py::test_expected - parser bug",
        "XFAIL test_item.py::test_expected_tuple - lookups",
        "XFAIL test_item.py::test_no_raises - anything",
        "FAILED test_item.py::test_other_error - Failed: 2 of 2 cases failed (2 failed)",
        "FAILED test_item.py::test_strict_all_pass - [[]XPASS(strict)[]] fixed",
        crash,
    ]:
        result.stdout.fnmatch_lines([line])
    assert result.parseoutcomes()["xfailed"] == 3
    assert result.parseoutcomes()["failed"] == 2 + (not named)


STOPS = """
import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("how", ["ctrl-c", "exit", "after"])
def test_cases(how):
    casehelp.log("case", how)
    if how == "ctrl-c":
        raise KeyboardInterrupt
    if how == "exit":
        pytest.exit("stop here", returncode=3)
"""


@pytest.mark.parametrize(("first", "ret"), [("ctrl-c", 2), ("exit", 3)])
def test_a_named_case_that_stops_the_session_stops_it(
    project: Project, first: str, ret: int
) -> None:
    project.pytester.makepyfile(test_stops=STOPS)
    result = project.run(f"--ploop-case={first}", "--ploop-case=after")
    assert result.ret == ret  # not one failed case among others
    assert [e.fields[0] for e in project.events("case")] == [first]
