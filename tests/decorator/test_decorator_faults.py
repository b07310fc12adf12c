"""Cases that kill their worker, hang past their timeout, or stop the run with fail_fast: each
is one entry of the item's report, the other cases still run, and no process is left."""

from __future__ import annotations

import re

from decorator_support import Project, section

from tests.processes import gone

CRASH = """
import os
import signal

import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("how", ["ok1", "exit", "ok2", "kill", "ok3"], workers=2)
def test_crashes(how):
    casehelp.log("case", how)
    print(f"last words of {how}", flush=True)
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_case_that_kills_its_worker_is_reported_and_the_rest_run(project: Project) -> None:
    project.pytester.makepyfile(test_crash=CRASH)
    result = project.run()
    result.assert_outcomes(failed=1)
    assert "2 of 5 cases failed (2 crashed); 3 passed" in result.stdout.str()
    exited = section(result, "exit")
    assert re.search(r"worker w\d died while running this case \(exited with code 3\)", exited)
    assert "last words of exit" in exited  # its output, read back after the crash
    assert "killed by SIGKILL" in section(result, "kill")
    cases = project.events("case")
    assert sorted(e.fields[0] for e in cases) == ["exit", "kill", "ok1", "ok2", "ok3"]
    assert gone(e.pid for e in cases)


HANG = """
import threading

import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", range(4), workers=2, timeout=1)
def test_hangs(n):
    casehelp.log("case", n)
    if n == 1:
        print("about to hang", flush=True)
        threading.Event().wait()
"""


def test_a_hung_case_times_out_with_its_stack(project: Project) -> None:
    project.pytester.makepyfile(test_hang=HANG)
    result = project.run()
    result.assert_outcomes(failed=1)
    assert "1 of 4 cases failed (1 timed out); 3 passed" in result.stdout.str()
    hung = section(result, "1")
    assert re.search(r"this case timed out after 1s; its worker w\d was killed", hung)
    assert re.search(r'File ".*test_hang.py", line \d+ in test_hangs', hung)  # where it hung
    assert "about to hang" in hung
    cases = project.events("case")
    assert sorted(int(e.fields[0]) for e in cases) == [0, 1, 2, 3]
    assert gone(e.pid for e in cases)


FAIL_FAST = """
import casehelp

from pytest_ploop._parametrize import parametrize_parallel


@parametrize_parallel("n", range(40), workers=1, fail_fast=True)
def test_stops(n):
    casehelp.log("case", n)
    assert n != 0
"""


def test_fail_fast_stops_at_the_first_failure(project: Project) -> None:
    project.pytester.makepyfile(test_fail_fast=FAIL_FAST)
    result = project.run()
    result.assert_outcomes(failed=1)
    match = re.search(
        r"1 of 40 cases failed \(1 failed\); (\d+) not run \(fail_fast: an earlier case "
        r"failed\)(?:; (\d+) passed)?",  # (no "passed" part when none had passed)
        result.stdout.str(),
    )
    assert match, result.stdout.str()
    not_run, passed = int(match.group(1)), int(match.group(2) or 0)
    assert not_run + passed == 39
    # One worker: what ran after case 0 is what was already on its way to the worker.
    assert not_run >= 30
    assert len(project.events("case")) == 1 + passed
