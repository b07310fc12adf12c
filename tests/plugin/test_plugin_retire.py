"""A worker with no test left leaves at once: its session teardown and exit overlap the
other workers' last tests instead of adding to the run's end."""

from __future__ import annotations

from plugin_support import Project

TESTS = """
import os
import time

import psutil
import ploophelp


def test_waits_for_the_other_worker_to_leave():
    ploophelp.wait_for("other-done")
    log = os.path.join(ploophelp.ROOT, "events.log")
    (pid,) = {int(line.split("\\t")[1]) for line in open(log)}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.005)
    raise AssertionError("the worker with no test left was still there")


def test_other():
    ploophelp.log("other")
    ploophelp.flag("other-done")
"""


def test_a_worker_without_tests_left_leaves_before_the_run_ends(project: Project) -> None:
    project.pytester.makepyfile(test_retire=TESTS)
    result = project.run("--ploop-workers=2", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    (event,) = project.events()
    assert event.worker == "w1"
