"""While a decorated test's cases run, pytest's ``faulthandler_timeout`` watchdog is paused: a
fork next to that thread makes Python 3.12+ warn that the process is multi-threaded."""

from __future__ import annotations

import os

import pytest
from decorator_support import Project

PAUSED = """
import faulthandler
import os

from pytest_ploop._testing._watchdog import paused


def test_paused():
    late = 0
    for _ in range(500):
        faulthandler.dump_traceback_later(60)  # as pytest arms it for each test
        with paused():
            late += len(os.listdir("/proc/self/task")) > 1
    assert late == 0, f"the watchdog thread was still there in {late} of 500 pauses"
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_the_watchdog_thread_has_ended_when_the_pause_begins(project: Project) -> None:
    # Its cancel returns a moment before the thread ends: here, in about 1 of 7 pauses.
    project.pytester.makepyfile(test_paused=PAUSED)
    project.run().assert_outcomes(passed=1)
