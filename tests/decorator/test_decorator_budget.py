"""Nested parallelism is bounded: inside a ``--ploop-workers`` run, the workers running tests
and the fan-outs of decorated tests share one budget of processes, and a fan-out grows into
the slots of workers that ran out of tests."""

from __future__ import annotations

from decorator_support import Project, max_overlap

BUDGET = """
import os

import casehelp

from pytest_ploop._parametrize import parametrize_parallel


def case_pids():
    return {e[0] for e in casehelp.events("case-start")}


@parametrize_parallel("n", range(6), workers=8)
def test_fan_out(n):
    casehelp.log("case-start", n)
    # Three cases at once: only possible once the other test's worker gave its slot back.
    casehelp.wait_until(lambda: len(case_pids()) >= 3, "3 case processes")
    casehelp.log("case-end", n)


def test_other():
    casehelp.log("other-start")
    # While this test runs, the fan-out runs on its own worker's slot and the free third.
    casehelp.wait_until(lambda: len(case_pids()) >= 2, "2 case processes")
    casehelp.log("other-end")
"""


def test_workers_and_fan_outs_share_the_budget(project: Project) -> None:
    project.pytester.makepyfile(test_budget=BUDGET)
    result = project.run("--ploop-workers=2", "--ploop-fanout-budget=3")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["test_budget.py::test_fan_out: 6 cases (6 passed) on 3 workers*"])
    starts = {e.fields[0]: e for e in project.events("case-start")}
    ends = {e.fields[0]: e for e in project.events("case-end")}
    (other_start,) = project.events("other-start")
    (other_end,) = project.events("other-end")
    spans = [(starts[n].t, ends[n].t) for n in starts]
    # Never more than 3 processes busy: the cases and the other test together.
    assert max_overlap([*spans, (other_start.t, other_end.t)]) <= 3
    assert max_overlap(spans) == 3  # and the fan-out grew to the whole budget
    during_other = {e.pid for e in starts.values() if e.t < other_end.t}
    assert len(during_other) == 2


def test_without_a_ploop_run_the_fan_out_is_not_bounded_by_a_budget(project: Project) -> None:
    project.pytester.makepyfile(test_budget=BUDGET)
    result = project.run("--ploop-fanout-budget=1", "-k", "fan_out")
    result.assert_outcomes(passed=1)
    # Each case waits until three case processes have started, which a budget of 1 would
    # never allow. (Not always six processes: the workers start one by one, and one that
    # finished its case may take another before the last has started.)
    assert 3 <= len({e.pid for e in project.events("case-start")}) <= 6


def test_a_budget_that_is_not_a_number_is_a_usage_error(project: Project) -> None:
    result = project.run_inprocess("--ploop-fanout-budget=lots")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--ploop-fanout-budget='lots': give a whole number*"])
