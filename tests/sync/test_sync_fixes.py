"""Run-once teardowns, nested and timed locks, and the harness under pytest-xdist: cases a
tester found wrong (a teardown run twice or never, a deadlock at the end of a run, values of
two fixtures mixed up, a nested lock that hangs, locks that did not exclude under ``-n``)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sync_support import Project

import pytest_ploop as ploop

# A process that uses a run-once value with a teardown, told what to do on its stdin: "ask"
# prints must_stay()'s answer; the end of its input ends it normally (its exit hook decides
# whether it is the last user, and tears the value down if so).
USER = """
import sys

from pytest_ploop import _sync

log, name = sys.argv[1:]


def teardown(value):
    with open(log, "a") as f:
        f.write(f"teardown {value} in {name}\\n")


_sync.run_once("server", lambda: "url", teardown=teardown)
print("ready", flush=True)
for line in sys.stdin:
    print(_sync.must_stay(), flush=True)
"""


class _User:
    def __init__(self, name: str, log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", USER, str(log), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._answer() == "ready"  # it uses the value from now on

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def must_stay(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write("ask\n")
        self.proc.stdin.flush()
        return self._answer()

    def end(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def test_asking_whether_to_stay_keeps_this_process_a_user(run_dir: Path) -> None:
    """B's answer ("no: A uses the value too") must leave B a user: A, asking next, is not
    the last, and only the last of the two to end tears the value down."""
    log = run_dir.parent / "teardowns.log"
    users = {name: _User(name, log) for name in "AB"}
    try:
        assert users["B"].must_stay() == "False"
        assert users["A"].must_stay() == "False"
        assert users["A"].end() == 0
        assert not log.exists()  # B still uses it
        assert users["B"].end() == 0
    finally:
        for user in users.values():
            with user.proc:  # closes its pipes, waits for it
                user.proc.kill()
    assert log.read_text().splitlines() == ["teardown url in B"]


TWO_GENERATORS = """
import pytest
from conftest import barrier, log

import pytest_ploop as ploop


def _value(name):
    barrier(2)  # the other fixture is being set up too, by the other worker
    log("setup", name)
    yield name
    log("teardown", name)


@pytest.fixture(scope="session")
@ploop.once
def x():
    yield from _value("x")


@pytest.fixture(scope="session")
@ploop.once
def y():
    yield from _value("y")


def test_x_first(x):
    pass


def test_y_first(y):
    pass


@pytest.mark.parametrize("n", range(4))
def test_both(x, y, n):
    assert (x, y) == ("x", "y")
"""


def test_two_generator_values_set_up_by_two_workers_are_both_torn_down(
    project: Project,
) -> None:
    """Each creator uses the other's value: at the end each waits for the other to let go of
    its value, which it must do before waiting for its own (else neither ends)."""
    project.pytester.makepyfile(test_two=TWO_GENERATORS)
    project.run("--ploop-workers=2", "--ploop-schedule=fifo").assert_outcomes(passed=6)
    setups = {e.name: e.pid for e in project.events("setup")}
    teardowns = [(e.name, e.pid) for e in project.events("teardown")]
    assert setups.keys() == {"x", "y"}
    assert setups["x"] != setups["y"]  # two creators
    assert sorted(teardowns) == sorted(setups.items())  # each once, by its creator
    last_test = max(e.t for e in project.events("end"))
    assert all(e.t > last_test for e in project.events("teardown"))


CRASHING_CREATOR = """
import os

import pytest
from conftest import log

import pytest_ploop as ploop


@pytest.fixture(scope="session")
@ploop.once
def database():
    log("setup", "database")
    yield "db"
    log("teardown", "database")


def test_crash(database):
    os._exit(3)  # the worker that set the value up dies, and its teardown with it


@pytest.mark.parametrize("n", range(3))
def test_after(database, n):
    assert database == "db"
"""


def test_after_its_creator_crashed_a_generator_value_is_set_up_again_and_torn_down(
    project: Project,
) -> None:
    project.pytester.makepyfile(test_crash=CRASHING_CREATOR)
    result = project.run("--ploop-workers=1", "--ploop-schedule=fifo")
    result.assert_outcomes(passed=3, failed=1)
    first, second = project.events("setup")
    (teardown,) = project.events("teardown")
    assert first.pid != second.pid
    assert teardown.pid == second.pid  # the new creator owns the teardown


SERVICE = """
import pytest

import pytest_ploop as ploop


@pytest.fixture(scope="session")
@ploop.once
def service_url():
    return "http://{name}.local"
"""

USES_SERVICE = """
import pytest


@pytest.mark.parametrize("n", range(2))
def test_service(service_url, n):
    assert service_url == "http://{name}.local"
"""


def test_once_fixtures_of_one_name_in_two_conftest_files_are_two_values(
    project: Project,
) -> None:
    for name in ("api", "web"):
        folder = project.path / name
        folder.mkdir()
        (folder / "conftest.py").write_text(SERVICE.format(name=name))
        (folder / f"test_{name}.py").write_text(USES_SERVICE.format(name=name))
    project.run("--ploop-workers=2").assert_outcomes(passed=4)
    project.run().assert_outcomes(passed=4)  # serial: one process asks for both


LOCKS = pytest.mark.parametrize("kind", ["lock", "semaphore"])


def _make(kind: str, timeout: Any = None) -> AbstractContextManager[object]:
    """``ploop.lock("db")`` or a semaphore of one slot."""
    if kind == "lock":
        return ploop.lock("db", timeout=timeout)
    return ploop.semaphore("db", 1, timeout=timeout)


@LOCKS
def test_taking_a_lock_this_thread_holds_fails_at_once_with_the_fix(
    run_dir: Path, kind: str
) -> None:
    with _make(kind):
        # (timeout: before the fix, the semaphore would wait for itself up to it)
        with pytest.raises(ploop.PloopError) as info, _make(kind, timeout=2):
            pass
        assert str(info.value) == (
            f"ploop.{kind}('db') is already held by this thread, and it is not reentrant: "
            "taking it again inside would wait for itself. Hold it once, around the outer "
            "block, and let the code inside run without taking it again"
        )
        # Another thread is not refused: it waits, as another process would.
        outcome: list[BaseException] = []

        def other() -> None:
            try:
                with _make(kind, timeout=0):
                    pass
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert [type(e) for e in outcome] == [ploop.LockTimeout]
    with _make(kind, timeout=0):  # the refusal left the outer hold to be released as usual
        pass


@LOCKS
@pytest.mark.parametrize("timeout", [-1, -0.5, math.nan, "5", True])
def test_a_timeout_that_is_not_seconds_is_refused(run_dir: Path, kind: str, timeout: Any) -> None:
    with pytest.raises(ValueError) as info:
        _make(kind, timeout)
    assert str(info.value) == (
        f"timeout={timeout!r} must be a number of seconds of at least 0 (0: do not wait), "
        "or None to wait as long as it takes"
    )


@LOCKS
@pytest.mark.parametrize("timeout", [None, 0, 1.5, math.inf])
def test_no_timeout_or_seconds_are_taken(run_dir: Path, kind: str, timeout: Any) -> None:
    with _make(kind, timeout):
        pass


XDIST_HOLDER = """
import os
import time

import pytest

import pytest_ploop as ploop

ROOT = os.path.dirname(os.path.abspath(__file__))


def flag(name):
    open(os.path.join(ROOT, name), "w").close()


def wait_for(name):
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(ROOT, name)):
        assert time.monotonic() < deadline, f"gave up waiting for {name}"
        time.sleep(0.002)


@pytest.fixture(scope="session")
def token():
    def teardown(value):
        with open(os.path.join(ROOT, "teardowns.log"), "a") as f:
            f.write(f"{value}\\n")

    return ploop.run_once("token", lambda: os.urandom(8).hex(), teardown=teardown)
"""

XDIST_A = """
from conftest import flag, wait_for

import pytest_ploop as ploop


def test_holds(token):
    with ploop.lock("db"):
        flag("a-holds")
        wait_for("b-tried")  # B tries while A holds it
    flag(f"token-a-{token}")
"""

XDIST_B = """
import pytest
from conftest import flag, wait_for

import pytest_ploop as ploop


def test_tries(token):
    wait_for("a-holds")
    try:
        with pytest.raises(ploop.LockTimeout, match="test_a.py::test_holds"):
            with ploop.lock("db", timeout=0):
                pass
    finally:
        flag("b-tried")
    flag(f"token-b-{token}")
"""


def test_under_xdist_the_workers_of_a_run_share_locks_and_values(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each xdist worker is a pytest session of its own: they must still meet in one run
    directory (left behind by none)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    # Only the two plugins this needs: xdist's workers start as fresh interpreters.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project.pytester.makeconftest(XDIST_HOLDER)
    project.pytester.makepyfile(test_a=XDIST_A, test_b=XDIST_B)
    result = project.run("-p", "xdist.plugin", "-p", "pytest_ploop.plugin", "-n", "2")
    result.assert_outcomes(passed=2)  # (on one worker, the first would wait for the second)
    (token_a,) = (p.name[len("token-a-") :] for p in project.path.glob("token-a-*"))
    (token_b,) = (p.name[len("token-b-") :] for p in project.path.glob("token-b-*"))
    assert token_a == token_b  # computed once, shared
    assert (project.path / "teardowns.log").read_text().splitlines() == [token_a]
    assert list(tmp.glob("ploop-*")) == []
