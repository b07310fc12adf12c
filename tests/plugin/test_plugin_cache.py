"""The cache across runs: ``--lf``, ``--ff`` and ``--sw`` after a parallel run behave as
after a serial one (these runs keep pytest's cache plugin on)."""

from __future__ import annotations

import pytest
from plugin_support import Project, outcomes, short_summary

SUITE = """
import time

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(12))
def test_step(i):
    ploophelp.log("ran", i)
    if i in (3, 9):
        assert False, f"failing on purpose: {i}"
    time.sleep(0.02)  # the failing tests are the quickest
"""


@pytest.fixture
def suite(project: Project) -> Project:
    project.pytester.makepyfile(test_steps=SUITE)
    return project


def _first_run(suite: Project, *args: str) -> None:
    result = suite.run(*args, cache=True)
    result.assert_outcomes(passed=10, failed=2)
    suite.clear_events()


def test_last_failed(suite: Project) -> None:
    _first_run(suite, "--ploop-workers=2")  # the failures recorded from a parallel run
    serial = suite.run("--lf", "-rA", cache=True)
    assert outcomes(serial) == {"failed": 2}
    suite.clear_events()
    parallel = suite.run("--lf", "-rA", "--ploop-workers=2", cache=True)
    assert outcomes(parallel) == outcomes(serial)
    assert short_summary(parallel) == short_summary(serial)
    assert sorted(int(e.fields[1]) for e in suite.events()) == [3, 9]


def test_failed_first_runs_the_failures_first(suite: Project) -> None:
    # The durations recorded by the first run would hand out the slowest tests first; --ff
    # asks for the failures first, and gets them: each worker's first test is one of them.
    _first_run(suite, "--ploop-workers=2")
    result = suite.run("--ff", "--ploop-workers=2", cache=True)
    result.assert_outcomes(passed=10, failed=2)
    first: dict[str, str] = {}
    for e in suite.events():
        first.setdefault(e.worker, e.fields[1])
    assert sorted(first.values()) == ["3", "9"]


def test_stepwise_resumes_from_the_failure(suite: Project) -> None:
    serial = suite.run("--sw", cache=True)
    serial.assert_outcomes(passed=3, failed=1)
    suite.clear_events()
    parallel = suite.run("--sw", "--ploop-workers=2", cache=True)
    counts = outcomes(parallel)
    assert counts["deselected"] == 3  # it starts at the test that failed
    assert "FAILED test_steps.py::test_step[3] - " in parallel.stdout.str()
    assert parallel.ret == pytest.ExitCode.INTERRUPTED == serial.ret
    assert "3" in {e.fields[1] for e in suite.events()}
    _resumes_from(suite, 3)


def _resumes_from(suite: Project, position: int) -> None:
    again = suite.run("--sw", "--co", cache=True)
    again.stdout.fnmatch_lines([f"stepwise: skipping {position} already passed items*"])


STEPWISE_RACE = """
import pytest
import ploophelp


@pytest.mark.parametrize("i", range(6))
def test_step(i):
    ploophelp.log("ran", i)
    if i == 0:
        ploophelp.wait_for("one-failed")  # test 1 fails first, then this one
        assert False, "the first failure in collection order"
    if i == 1:
        ploophelp.flag("one-failed")
        assert False, "the first failure to finish"
"""


def test_stepwise_remembers_the_first_failure_in_collection_order(project: Project) -> None:
    # Test 1 fails first and stops the run; test 0, in flight, fails after it. A serial run
    # would stop at test 0, so the next run must start at test 0, not skip it as passed.
    project.pytester.makepyfile(test_race=STEPWISE_RACE)
    result = project.run("--sw", "--ploop-workers=2", cache=True)
    assert outcomes(result)["failed"] == 2
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _resumes_from(project, 0)
