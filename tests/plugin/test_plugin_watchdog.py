"""pytest's ``faulthandler_timeout`` watchdog is a thread, armed around each test. A test that
forks workers (``ploop.map``, a ``Pool``) pauses it for the forks, so that the process is
single-threaded when it forks (Python 3.12+ warns otherwise), and arms it again after the run.

The inner tests record, at every fork, how many threads the process has (``/proc``), through
``os.register_at_fork``: the count itself, on any Python version, not the warning."""

from __future__ import annotations

import os

import pytest
from plugin_support import Project

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="counts threads in /proc"
)

TESTS = """
import os

import pytest

import pytest_ploop as ploop

FORKS = []


def _threads():
    return len(os.listdir("/proc/self/task"))


os.register_at_fork(before=lambda: FORKS.append(_threads()))


def square(x):
    return x * x


def test_map():
    FORKS.clear()
    assert _threads() == 2  # this thread and the watchdog
    assert ploop.map(square, range(40), workers=2) == [x * x for x in range(40)]
    assert FORKS and set(FORKS) == {1}, FORKS
    assert _threads() == 2  # armed again


def test_pool_between_runs():
    FORKS.clear()
    with ploop.Pool(workers=2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
        assert _threads() == 2
        assert pool.map_reduce(square, range(10), reduce=lambda a, b: a + b, initial=0) == 285
        assert _threads() == 2
    assert FORKS and set(FORKS) == {1}, FORKS
    assert _threads() == 2


def test_a_crashed_worker_is_replaced_without_the_watchdog():
    FORKS.clear()
    with pytest.raises(ploop.LoopError):
        ploop.map(os._exit, [0, 3], workers=1 + 1)
    assert len(FORKS) >= 2 and set(FORKS) == {1}, FORKS
    assert _threads() == 2
"""


@pytest.mark.parametrize("mode", [(), ("--ploop-workers=2",)], ids=["serial", "ploop-workers"])
def test_a_test_forks_workers_with_the_watchdog_paused_and_then_armed_again(
    project: Project, mode: tuple[str, ...]
) -> None:
    project.pytester.makepyfile(test_forks=TESTS)
    result = project.run(*mode)
    result.assert_outcomes(passed=3)
    assert "multi-threaded" not in result.stdout.str()  # Python 3.12+'s warning


def test_without_a_timeout_nothing_is_paused(project: Project) -> None:
    project.pytester.makeini("[pytest]\naddopts = -p no:hypothesispytest -p no:rerunfailures\n")
    project.pytester.makepyfile(
        test_forks="""
        import os

        import pytest_ploop as ploop
        from pytest_ploop._engine import _forking


        def test_map():
            assert _forking.BEFORE_FORK == []
            assert len(os.listdir("/proc/self/task")) == 1
            assert ploop.map(abs, [-1, -2], workers=2) == [1, 2]
        """
    )
    project.run().assert_outcomes(passed=1)


def test_with_faulthandler_disabled_nothing_is_paused(project: Project) -> None:
    project.pytester.makepyfile(
        test_forks="""
        import pytest_ploop as ploop


        def test_map():
            assert ploop.map(abs, [-1, -2], workers=2) == [1, 2]
        """
    )
    project.run("-p", "no:faulthandler").assert_outcomes(passed=1)
