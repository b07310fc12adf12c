"""Longest first: a run records each case's duration in the pytest cache, and the next run
hands out the longest cases first (unless ``schedule`` says otherwise)."""

from __future__ import annotations

import json

from decorator_support import Project

CASES = """
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("name", ["a", "b", "c", "d"], workers=1)
def test_default(name):
    casehelp.log("case", name)


@parametrize_parallel("name", ["a", "b", "c", "d"], workers=1, schedule="dynamic")
def test_in_order(name):
    casehelp.log("case", name)
"""


def test_recorded_durations_put_the_longest_cases_first(project: Project) -> None:
    project.pytester.makepyfile(test_cases=CASES)
    project.run(cache=True).assert_outcomes(passed=2)
    assert [e.fields[0] for e in project.events("case")] == list("abcd" * 2)
    recorded = sorted((project.path / ".pytest_cache/v/ploop/cases").iterdir())
    assert len(recorded) == 2  # one entry per test
    for path in recorded:
        durations = json.loads(path.read_text())
        assert sorted(durations) == list("abcd")
        assert all(seconds > 0 for seconds in durations.values())
        path.write_text(json.dumps({"a": 0.1, "b": 3.0, "c": 2.0, "d": 0.5}))
    project.clear_events()
    project.run(cache=True).assert_outcomes(passed=2)
    assert [e.fields[0] for e in project.events("case")] == list("bcda") + list("abcd")


SCHEDULES = """
import casehelp
from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", range(9), workers=2, schedule="static")
def test_static(n):
    casehelp.log("static", n)


@parametrize_parallel("n", range(9), workers=2, schedule="guided")
def test_guided(n):
    casehelp.log("guided", n)


@parametrize_parallel("n", range(9), workers=2, schedule="lpt")
def test_lpt(n):
    casehelp.log("lpt", n)
"""


def test_every_schedule_runs_every_case(project: Project) -> None:
    project.pytester.makepyfile(test_sched=SCHEDULES)
    project.run().assert_outcomes(passed=3)
    for schedule in ("static", "guided", "lpt"):
        assert sorted(int(e.fields[0]) for e in project.events(schedule)) == list(range(9))
