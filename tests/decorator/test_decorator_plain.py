"""The decorated function called directly, outside pytest: every case runs in workers, the
results come back in case order, and cases that did not pass raise one ``LoopError``."""

from __future__ import annotations

import json

import pytest
from decorator_support import Project

SCRIPT = """
import json
import os
import sys

import casehelp
import pytest_ploop as ploop
from pytest_ploop._parametrize import parametrize_parallel

PID = os.getpid()


@parametrize_parallel("x", range(4), workers=4)
def slow_first(x, scale=1):
    casehelp.log("case", x)
    if x == 0:  # case 0 ends last (a worker each): the results still come in case order
        casehelp.wait_until(lambda: len(casehelp.events("case")) == 4, "the other cases")
    return (scale * x, os.getpid() != PID)


@parametrize_parallel("a, b", [(1, 2), (3, 0), (5, 4), (7, -1)], ids=str)
def divide(a, b):
    if b < 0:
        os._exit(9)
    return a / b


@parametrize_parallel("n", range(3), workers=1)
def here(n):
    return os.getpid() == PID


out = {"pytest_loaded": "pytest" in sys.modules}
out["slow_first"] = slow_first(scale=10)
out["here"] = here()
try:
    divide()
except ploop.LoopError as err:
    out["message"] = str(err)
    out["results"] = err.results
    out["failures"] = [(f.index, f.kind, f.argument) for f in err.failures]
    out["types"] = [type(e).__name__ for e in err.exceptions]
try:
    slow_first(x=1)
except TypeError as err:
    out["clash"] = str(err)
print("RESULT", json.dumps(out))
"""


def test_a_direct_call_runs_every_case_and_raises_one_loop_error(project: Project) -> None:
    script = project.pytester.makepyfile(direct=SCRIPT)
    result = project.pytester.runpython(script)
    assert result.ret == 0, result.stderr.str()
    (line,) = [x for x in result.outlines if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["pytest_loaded"] is False  # the decorator works without pytest
    assert out["slow_first"] == [[0, True], [10, True], [20, True], [30, True]]
    assert out["here"] == [True, True, True]  # workers=1: in the calling process
    assert out["results"] == [0.5, None, 1.25, None]
    assert out["failures"] == [[1, "failed", "a=3, b=0"], [3, "crashed", "a=7, b=-1"]]
    assert out["types"] == ["ZeroDivisionError", "WorkerCrashed"]
    assert out["message"].splitlines()[0] == "2 of 4 cases did not pass (1 failed, 1 crashed)"
    assert "case 3-0 (failed), a=3, b=0: ZeroDivisionError" in out["message"]
    assert out["clash"] == "slow_first() runs every case of x: do not pass it to the call"


MARKS_SCRIPT = """
import json

import pytest

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel(
    "n",
    [1, pytest.param(2, marks=pytest.mark.skip), pytest.param(3, marks=pytest.mark.xfail), 4],
    workers=2,
)
def marked(n):
    if n == 3:
        raise ValueError("expected")
    return n


print("RESULT", json.dumps(marked()))
"""


def test_skip_and_xfail_marks_hold_in_a_direct_call(project: Project) -> None:
    script = project.pytester.makepyfile(marked=MARKS_SCRIPT)
    result = project.pytester.runpython(script)
    assert result.ret == 0, result.stderr.str()
    (line,) = [x for x in result.outlines if x.startswith("RESULT ")]
    assert json.loads(line.removeprefix("RESULT ")) == [1, None, None, 4]


def test_a_test_may_call_a_decorated_function(project: Project) -> None:
    project.pytester.makepyfile(
        test_calls="""
        from pytest_ploop._parametrize import parametrize_parallel


        @parametrize_parallel("x", [1, 2, 3], workers=2)
        def double(x):
            return 2 * x


        def test_uses_it():
            assert double() == [2, 4, 6]
        """
    )
    project.run().assert_outcomes(passed=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_fail_fast_leaves_the_rest_not_run_in_a_direct_call(workers: int) -> None:
    from pytest_ploop import LoopError
    from pytest_ploop._parametrize import parametrize_parallel

    @parametrize_parallel("n", range(50), workers=workers, fail_fast=True)
    def stops(n: int) -> int:
        assert n != 0
        return n

    with pytest.raises(LoopError) as info:
        stops()
    kinds = [f.kind for f in info.value.failures]
    assert kinds[0] == "failed" and info.value.failures[0].index == 0
    assert set(kinds[1:]) <= {"not_run"}
    results = info.value.results
    assert results is not None
    assert all(r is None or r == i for i, r in enumerate(results))
    # Every case has exactly one outcome: passed (its result is there) or in the failures.
    passed = {i for i, r in enumerate(results) if r is not None}
    assert len(passed) + len(kinds) == 50
    assert not passed & {f.index for f in info.value.failures}
    if workers == 1:  # in this process, in order: nothing after case 0 ran
        assert kinds.count("not_run") == 49
    # With workers, how many ran before the stop reached them depends on timing (trivial
    # cases: a whole chunk may finish first); the benchmark, not a test, measures that.
