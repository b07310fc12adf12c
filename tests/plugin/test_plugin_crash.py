"""A worker that dies or hangs: its test fails with a report that says why, the worker is
replaced, the other tests all run once; past ``--ploop-max-worker-restart`` the run stops."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from plugin_support import Project, alive, not_run_count, outcomes, short_summary

CRASHES = """
import ctypes
import os
import signal
import sys

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(6))
def test_before(i):
    pass


def test_exit(request):
    ploophelp.log("test_exit")
    print("stdout of test_exit")
    sys.stderr.write("last words of test_exit\\n")
    # As pytest-timeout's --timeout-method=thread does before its os._exit(1)
    request.config.get_terminal_writer().line("a plugin's last words")
    os._exit(3)


def test_segfault():
    ploophelp.log("test_segfault")
    ctypes.string_at(0)


def test_sigkill():
    ploophelp.log("test_sigkill")
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("i", range(6))
def test_after(i):
    pass
"""


def _failure_section(result: pytest.RunResult, name: str) -> str:
    text = result.stdout.str()
    match = re.search(rf"_+ {name} _+\n(.*?)(?=\n_+ \w|\n=+ )", text, re.S)
    assert match, f"no failure section for {name}"
    return match.group(1)


@pytest.mark.parametrize("dist", ["load", "file"])
def test_crashes_fail_their_test_and_the_rest_pass(project: Project, dist: str) -> None:
    project.pytester.makepyfile(test_crashes=CRASHES)
    result = project.run("--ploop-workers=2", f"--ploop-dist={dist}", "-rA")
    assert outcomes(result) == {"failed": 3, "passed": 12}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    exited = _failure_section(result, "test_exit")
    assert "exited with code 3" in exited
    # The test's output up to the crash, which its report would have carried.
    assert "last output on stdout:\nstdout of test_exit" in exited
    assert "last output on stderr:\nlast words of test_exit" in exited
    assert "last output on the terminal:\na plugin's last words" in exited
    assert "stdout of test_exit" not in _failure_section(result, "test_segfault")
    assert "a plugin's last words" not in _failure_section(result, "test_segfault")
    segfault = _failure_section(result, "test_segfault")
    assert "killed by SIGSEGV" in segfault
    assert "in test_segfault" in segfault  # faulthandler's traceback of the test
    sigkill = _failure_section(result, "test_sigkill")
    assert "killed by SIGKILL" in sigkill
    assert "Killed by the OOM killer?" in sigkill  # a SIGKILL that ploop did not send
    # Each crashing test ran once: never again on a fresh worker (no crash loop).
    assert sorted(e.fields[0] for e in project.events()) == [
        "test_exit",
        "test_segfault",
        "test_sigkill",
    ]
    assert len({e.pid for e in project.events()}) == 3  # three workers died
    # No test reported twice (a crashed worker's queued tests ran once, elsewhere).
    reported = Counter(line.split()[1] for line in short_summary(result))
    assert len(reported) == 15
    assert set(reported.values()) == {1}
    assert not_run_count(result) == 0


HANG = """
import subprocess
import sys
import threading

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(4))
def test_ok(i):
    pass


def test_hangs():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ploophelp.log("child", child.pid)
    threading.Event().wait()


@pytest.mark.parametrize("i", range(4))
def test_ok_too(i):
    pass
"""


def test_a_hung_test_times_out_and_the_run_goes_on(project: Project) -> None:
    project.pytester.makepyfile(test_hang=HANG)
    result = project.run("--ploop-workers=2", "--ploop-timeout=1")
    assert outcomes(result) == {"failed": 1, "passed": 8}
    section = _failure_section(result, "test_hangs")
    assert "timed out after 1s" in section
    assert re.search(r'File ".*test_hang\.py", line \d+ in test_hangs', section)
    (event,) = project.events()
    assert alive([int(event.fields[1])]) == []  # the test's own child was ended too


HANGS = """
import threading

import pytest


@pytest.mark.parametrize("i", range(3))
def test_hangs(i):
    threading.Event().wait()


def test_ok():
    pass
"""


def test_tests_that_time_out_do_not_count_toward_max_worker_restart(project: Project) -> None:
    """Each replaced a worker, and two stopped the run at a limit of one as crashes would."""
    project.pytester.makepyfile(test_hangs=HANGS)
    args = ("--ploop-workers=1", "--ploop-timeout=0.5", "--ploop-max-worker-restart=1")
    result = project.run(*args)
    assert outcomes(result) == {"failed": 3, "passed": 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "--ploop-max-worker-restart" not in result.stdout.str()


RESTARTS = """
import os

import pytest


@pytest.mark.parametrize("i", range(3))
def test_crash(i):
    os._exit(1)


@pytest.mark.parametrize("i", range(20))
def test_ok(i):
    pass
"""


def test_max_worker_restart_stops_the_run(project: Project) -> None:
    project.pytester.makepyfile(test_restarts=RESTARTS)
    result = project.run("--ploop-workers=2", "--ploop-max-worker-restart=1")
    result.stdout.fnmatch_lines(["*more than --ploop-max-worker-restart=1; stopping the run*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED  # as xdist's own limit does
    counts = outcomes(result)
    assert 2 <= counts["failed"] <= 3
    ran = counts["failed"] + counts.get("passed", 0)
    assert ran < 23
    assert not_run_count(result) == 23 - ran


MANY_QUICK = """
import os

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(400))
def test_quick(i):
    ploophelp.log("quick", i)
    if i == 250:
        os._exit(3)
"""


def test_a_crash_among_quick_tests_runs_each_test_once(project: Project) -> None:
    # Quick tests go to the workers several to a message (adaptive chunks); a crash in the
    # middle of one leaves the tests before it finished, reported, and never run again.
    project.pytester.makepyfile(test_quick=MANY_QUICK)
    result = project.run("--ploop-workers=2", "-rA")
    assert outcomes(result) == {"failed": 1, "passed": 399}
    ran = Counter(int(e.fields[1]) for e in project.events())
    assert sorted(ran) == list(range(400))
    assert set(ran.values()) == {1}
    reported = Counter(line.split()[1] for line in short_summary(result))
    assert len(reported) == 400 and set(reported.values()) == {1}
    assert "exited with code 3" in _failure_section(result, r"test_quick\[250\]")


UNSENDABLE_CONFTEST = """
import threading

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if item.name == "test_unsendable":
        report.lock = threading.Lock()  # no process can send this report
    return report
"""

UNSENDABLE = """
def test_before():
    pass


def test_unsendable():
    pass


def test_after():
    pass
"""


@pytest.mark.parametrize("dist", ["load", "file"])
def test_a_report_that_cannot_be_sent_fails_its_test_and_the_rest_run(
    project: Project, dist: str
) -> None:
    """Before, with --ploop-dist=file: the error was blamed on the group's first test, which
    had passed, so no test failed: the run said "2 tests not run" and exited 0."""
    project.pytester.makeconftest(UNSENDABLE_CONFTEST)
    project.pytester.makepyfile(test_unsendable=UNSENDABLE)
    result = project.run("--ploop-workers=2", f"--ploop-dist={dist}", "-rA")
    assert outcomes(result) == {"passed": 2, "failed": 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (failed,) = [line for line in short_summary(result) if line.startswith("FAILED")]
    assert failed.startswith("FAILED test_unsendable.py::test_unsendable - ploop: internal error")
    assert not_run_count(result) == 0


HOOK_RAISES = {
    "conftest": """
def pytest_runtest_makereport(item, call):
    if call.when == "call" and item.name == "test_hook_breaks":
        raise RuntimeError("the hook broke")
""",
    "test_hook": """
def test_hook_breaks():
    pass
""",
}


def test_a_hook_that_raises_in_a_worker_is_an_internal_error(project: Project) -> None:
    """As in a serial run: INTERNALERROR with the hook's traceback, exit status 3. It was a
    failure of the test ("ploop: internal error") and exit status 1."""
    project.pytester.makepyfile(**HOOK_RAISES)
    for args in [(), ("--ploop-workers=2",)]:
        result = project.run(*args)
        assert result.ret == pytest.ExitCode.INTERNAL_ERROR, args
        result.stdout.fnmatch_lines(
            ["INTERNALERROR>*in pytest_runtest_makereport", "INTERNALERROR>*the hook broke"]
        )
        assert "ploop: internal error" not in result.stdout.str()
