"""``--ploop-case=ID``: the named cases only, one by one in the test's own process, failing as
pytest's own test would (so ``--pdb`` stops in the case); the failure report prints the
command line that does it."""

from __future__ import annotations

import sys

from decorator_support import PLUGIN, RUN_TIMEOUT_S, Project, rerun_args, section

CASES = """
import os

import pytest
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@pytest.fixture
def setup_pid():
    casehelp.log("setup", os.getpid())
    return os.getpid()


@parametrize_parallel("seed", [1, 2, 3, pytest.param(4, id="four")], workers=2)
def test_seeds(seed, setup_pid, tmp_path):
    casehelp.log("case", seed, tmp_path.name)
    assert seed % 3 != 0


def test_plain():
    casehelp.log("plain")
"""


def test_the_report_prints_a_command_that_reruns_the_case_here(project: Project) -> None:
    project.pytester.makepyfile(test_cases=CASES)
    result = project.run()
    result.assert_outcomes(failed=1, passed=1)
    args = rerun_args(section(result, "3"))
    assert args == ["test_cases.py::test_seeds", *PLUGIN, "-p", "no:cacheprovider",
                    "--ploop-case=3"]  # fmt: skip
    project.clear_events()
    again = project.pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT_S)
    again.assert_outcomes(failed=1)  # test_plain is not selected by the command
    (setup,) = project.events("setup")
    (case,) = project.events("case")
    assert case.fields == ("3", "3") and case.pid == setup.pid  # here, in its own tmp dir
    # pytest's own failure: the assertion explained, and which case it was.
    again.stdout.fnmatch_lines(["E       assert (3 % 3) != 0", "E       ploop: case 3 (seed=3)"])
    assert "cases failed" not in again.stdout.str()


def test_named_cases_run_in_order_here_and_others_are_untouched(project: Project) -> None:
    project.pytester.makepyfile(test_cases=CASES)
    result = project.run("--ploop-case=four", "--ploop-case=1")
    result.assert_outcomes(passed=2)
    (setup,) = project.events("setup")
    assert [(e.fields[0], e.pid) for e in project.events("case")] == [
        ("1", setup.pid),
        ("4", setup.pid),
    ]
    assert len(project.events("plain")) == 1  # tests without cases run as usual


def test_pdb_stops_in_the_case(project: Project) -> None:
    project.pytester.makepyfile(test_cases=CASES)
    cmd = [sys.executable, "-m", "pytest", *PLUGIN, "-p", "no:cacheprovider"]
    result = project.pytester.run(
        *cmd, "test_cases.py", "--ploop-case=3", "--pdb", stdin=b"p ('seed is', seed)\nc\n",
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*entering PDB*", "-> assert seed % 3 != 0", "*('seed is', 3)"])
    result.assert_outcomes(failed=1, passed=1)


def test_an_id_that_names_no_case_is_a_usage_error(project: Project) -> None:
    project.pytester.makepyfile(test_cases=CASES)
    result = project.run_inprocess("--ploop-case=5")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(
        ["*--ploop-case='5' names no case of the selected tests; their case ids: 1, 2, 3, four"]
    )
