"""``-x`` and ``--maxfail``: the run stops, and the summary says how many tests did not run."""

from __future__ import annotations

import pytest
from plugin_support import Project, not_run_count, outcomes, ploop_lines

TOTAL = 40
SUITE = """
import time

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(40))
def test_step(i):
    ploophelp.log("ran", i)
    if i in FAILING:
        assert False, f"failing on purpose: {i}"
    time.sleep(0.05)
"""


@pytest.mark.parametrize(
    ("option", "failing", "failures"),
    [("-x", (2,), 1), ("--maxfail=2", (2, 5, 35), 2)],
)
def test_the_run_stops_and_says_how_many_did_not_run(
    project: Project, option: str, failing: tuple[int, ...], failures: int
) -> None:
    project.pytester.makepyfile(test_steps=SUITE.replace("FAILING", repr(failing)))
    result = project.run("--ploop-workers=2", option)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    counts = outcomes(result)
    ran = counts.get("passed", 0) + counts["failed"]
    assert counts["failed"] == failures
    assert ran < TOTAL - 10  # it stopped, not after running (nearly) everything
    result.stdout.fnmatch_lines([f"*stopping after {failures} failures*"])
    # Every test either reported or counted as not run: none lost, none counted twice.
    assert not_run_count(result) == TOTAL - ran
    (line,) = [line for line in ploop_lines(result) if "not run" in line]
    assert line == (f"ploop: {TOTAL - ran} tests not run (stopping after {failures} failures)")
    assert len(project.events()) == ran  # what the log shows ran was reported


BOTH_IN_FLIGHT = """
import ploophelp


def test_a():
    ploophelp.flag("a")
    ploophelp.wait_for("b")
    assert False


def test_b():
    ploophelp.flag("b")
    ploophelp.wait_for("a")
    assert False


def test_c():
    pass
"""


def test_failures_in_flight_do_not_reword_the_stop(project: Project) -> None:
    # -x stops at the first failure; a test in flight on the other worker then fails too.
    # pytest words the stop again at each failure ("stopping after 2 failures"); a serial
    # run says 1, and so does this one.
    project.pytester.makepyfile(test_both=BOTH_IN_FLIGHT)
    result = project.run("--ploop-workers=2", "-x", "-p", "no:randomly")
    assert outcomes(result)["failed"] == 2
    result.stdout.fnmatch_lines(["*! stopping after 1 failures !*"])
    assert "stopping after 2 failures" not in result.stdout.str()


ENDS_THE_SESSION = """
import pytest

import ploophelp


@pytest.fixture(scope="module")
def resource():
    yield
    ploophelp.log("torn down")


def test_ends(resource):
    ploophelp.flag("ending")
    ENDING


def test_later(resource):
    pass
"""

# In a module of its own, which --ploop-dist=file hands to the other worker: test_later stays
# behind test_ends on its worker. (Handed out test by test, test_later could start on the
# other worker, after test_other saw the flag, before the stop reached that worker.)
ELSEWHERE = """
import ploophelp


def test_other():
    ploophelp.wait_for("ending")
"""


@pytest.mark.parametrize(
    ("ending", "code", "lines"),
    [
        (
            'pytest.exit("database is down", returncode=3)',
            3,
            ["*! _pytest.outcomes.Exit: database is down !*"],
        ),
        (
            "raise KeyboardInterrupt",
            pytest.ExitCode.INTERRUPTED,
            ["*! KeyboardInterrupt !*", "*test_ends.py:14: KeyboardInterrupt"],
        ),
    ],
    ids=["pytest.exit", "KeyboardInterrupt"],
)
def test_a_test_that_ends_the_session_ends_the_run(
    project: Project, ending: str, code: int, lines: list[str]
) -> None:
    # As in a serial run: the session ends with the test's exit code and closing lines,
    # and the module's fixtures are torn down. Tests in flight elsewhere finish; no other
    # test starts, and none fails for the worker that ended.
    project.pytester.makepyfile(
        test_ends=ENDS_THE_SESSION.replace("ENDING", ending), test_zother=ELSEWHERE
    )
    serial = project.run("-p", "no:randomly")
    assert serial.ret == code
    serial.stdout.fnmatch_lines(lines)
    project.clear_events()
    result = project.run("--ploop-workers=2", "--ploop-dist=file", "-p", "no:randomly")
    assert result.ret == code
    result.stdout.fnmatch_lines(lines)
    counts = outcomes(result)
    assert counts.get("failed", 0) == 0 and counts.get("errors", 0) == 0, counts
    assert counts.get("passed", 0) <= 1  # test_other, in flight on the other worker
    assert [e.fields for e in project.events()] == [("torn down",)]
    assert "internal error" not in result.stdout.str()


SIGINT_IN_A_TEST = """
import signal

import pytest


def test_handler():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_raises():
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
"""


def test_a_test_sees_the_sigint_handler_of_a_serial_run(project: Project) -> None:
    # A worker ignores SIGINT while it sets up (the main process decides what Ctrl-C means);
    # the tests get Python's handler back, as in a serial run (code under test that raises
    # SIGINT to check its own KeyboardInterrupt handling).
    project.pytester.makepyfile(test_sigint=SIGINT_IN_A_TEST)
    project.run().assert_outcomes(passed=2)
    project.run("--ploop-workers=2").assert_outcomes(passed=2)


STOPS_THE_SESSION = """
import ploophelp


def test_stops(request):
    if ploophelp.worker() != "main":
        ploophelp.wait_for("other started")  # in flight on the other worker
    ploophelp.flag("stopping")
    request.session.FLAG = "stopped by the suite's plugin"


def test_other():
    ploophelp.flag("other started")
    ploophelp.wait_for("stopping")


def test_later():
    ploophelp.log("later ran")
"""


@pytest.mark.parametrize(
    ("flag", "code"),
    [("shouldstop", pytest.ExitCode.INTERRUPTED), ("shouldfail", pytest.ExitCode.TESTS_FAILED)],
)
def test_a_session_stopped_in_a_worker_stops_the_run(
    project: Project, flag: str, code: int
) -> None:
    # A test or a plugin that sets session.shouldstop or shouldfail in a worker (as
    # pytest-timeout's --session-timeout does) stops the run as it stops a serial one: no
    # later test starts, and the session ends with the same closing line and exit code.
    project.pytester.makepyfile(test_stops=STOPS_THE_SESSION.replace("FLAG", flag))
    line = "*! *stopped by the suite's plugin !*"
    serial = project.run("-p", "no:randomly")
    assert serial.ret == code
    serial.stdout.fnmatch_lines([line])
    project.clear_events()
    result = project.run("--ploop-workers=2", "-p", "no:randomly")
    assert result.ret == code
    result.stdout.fnmatch_lines([line])
    assert outcomes(result) == {"passed": 2}  # test_other was in flight on the other worker
    assert not_run_count(result) == 1
    assert project.events() == []  # test_later never started


GROUP_AFTER_THE_STOP = {
    "conftest": """
import os

import pytest
import ploophelp


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    if report.failed and ploophelp.worker() == "main":
        ploophelp.flag("stopped")  # the main process has seen the failure: -x stops the run
""",
    "test_a": """
import ploophelp


def test_a1():
    ploophelp.wait_for("b_started")


def test_a2():
    assert False
""",
    "test_b": """
import pytest
import ploophelp


def test_b0():
    ploophelp.flag("b_started")
    ploophelp.wait_for("stopped")


@pytest.mark.parametrize("i", range(20))
def test_b(i):
    ploophelp.log("ran", i)
""",
}


@pytest.mark.parametrize("dist", ["scope", "file"])
def test_a_module_in_flight_at_the_stop_starts_no_further_test(project: Project, dist: str) -> None:
    """A worker ran its whole module (or class) after -x stopped the run: the 20 tests of
    test_b that follow test_b0, which waits until the main process has seen the failure."""
    project.pytester.makepyfile(**GROUP_AFTER_THE_STOP)
    result = project.run("--ploop-workers=2", f"--ploop-dist={dist}", "-x", "-p", "no:randomly")
    assert outcomes(result) == {"failed": 1, "passed": 2}
    assert project.events() == []  # no test_b[i] ran
    assert not_run_count(result) == 20
