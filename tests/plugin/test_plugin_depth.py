"""A test in a worker has the stack a serial run's test has: the frames the fork left below
it (the main process's run loop) do not count against the recursion limit, and the limit
reads and sets as in a serial run."""

from __future__ import annotations

from plugin_support import Project

RECURSES = """
import sys

import ploophelp


def room():
    def down(n):
        try:
            return down(n + 1)
        except RecursionError:
            return n

    return down(0)


def test_room():
    ploophelp.log("room", sys.getrecursionlimit(), room())


def test_lowered_limit():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(old - 700)
    try:
        ploophelp.log("lowered", sys.getrecursionlimit(), room())
    finally:
        sys.setrecursionlimit(old)
    assert sys.getrecursionlimit() == old


def test_invalid_limit():
    try:
        sys.setrecursionlimit(0)
    except ValueError as exc:
        ploophelp.log("invalid", exc)
"""


def test_a_worker_recurses_as_deep_as_a_serial_run(project: Project) -> None:
    project.pytester.makepyfile(test_recurses=RECURSES)
    project.run("-p", "no:randomly").assert_outcomes(passed=3)
    serial = sorted(event.fields for event in project.events())
    assert [kind for kind, *_ in serial] == ["invalid", "lowered", "room"]
    project.clear_events()
    project.run("-p", "no:randomly", "--ploop-workers=2").assert_outcomes(passed=3)
    assert {event.worker for event in project.events()} <= {"w0", "w1"}
    assert sorted(event.fields for event in project.events()) == serial
