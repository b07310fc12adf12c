"""A parallel run freezes the collected session in the garbage collector's permanent
generation before it forks its workers (``gc.freeze``), and gives it back when the run is
nested in another pytest session's test."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest
from plugin_support import Project


@functools.cache
def _interpreters_own() -> int:
    """What this Python keeps in the permanent generation by itself: 0, but a bare 3.12.1
    starts with 375 objects there and puts them back after ``gc.unfreeze``."""
    out = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_freeze_count())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


# Each process says how many objects it holds frozen: a test in its worker, the main
# process at the end of the session and once more as it exits.
CONFTEST = """
import atexit
import gc
import json
import os

from ploophelp import ROOT


def _write(name, value):
    with open(os.path.join(ROOT, name), "w") as f:
        json.dump(value, f)


atexit.register(lambda: _write("at_exit.json", gc.get_freeze_count()))


def pytest_sessionfinish(session):
    if "PLOOP_WORKER" not in os.environ:
        _write("session_end.json", gc.get_freeze_count())
"""

TESTS = """
import gc
import json
import os

import pytest
from ploophelp import ROOT


@pytest.mark.parametrize("i", range(4))
def test_frozen(i):
    name = f"worker-{os.environ.get('PLOOP_WORKER', 'main')}.json"
    with open(os.path.join(ROOT, name), "w") as f:
        json.dump(gc.get_freeze_count(), f)
"""


def _read(project: Project, name: str) -> int:
    value: int = json.loads((project.path / name).read_text())
    return value


@pytest.fixture
def frozen_project(project: Project) -> Project:
    project.pytester.makeconftest(CONFTEST)
    project.pytester.makepyfile(test_gc=TESTS)
    return project


def test_a_parallel_run_freezes_the_session_for_its_workers_and_its_exit(
    frozen_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # a run of its own, not nested in this test
    frozen_project.run("--ploop-workers=2").assert_outcomes(passed=4)
    workers = [_read(frozen_project, f"worker-w{i}.json") for i in range(2)]
    assert min(workers) > 1000  # inherited frozen: their collections skip the session
    assert _read(frozen_project, "session_end.json") > 1000
    assert _read(frozen_project, "at_exit.json") > 1000  # left frozen: the process ends


def test_a_nested_run_gives_the_frozen_objects_back(frozen_project: Project) -> None:
    # PYTEST_CURRENT_TEST (this test's) reaches the inner run: it is nested in a session.
    frozen_project.run("--ploop-workers=2").assert_outcomes(passed=4)
    assert _read(frozen_project, "session_end.json") > _interpreters_own() + 1000
    assert _read(frozen_project, "at_exit.json") == _interpreters_own()


def test_a_serial_run_freezes_nothing(
    frozen_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    frozen_project.run().assert_outcomes(passed=4)
    assert _read(frozen_project, "worker-main.json") == _interpreters_own()
    assert _read(frozen_project, "at_exit.json") == _interpreters_own()


# An object that only a module's globals refer to, created before the workers fork (the
# module is collected): asked for its referrers, in a test (a worker) and at the end of the
# session (the main process), the collector finds that module's dict, as in a serial run.
REFERRERS_CONFTEST = """
import gc
import json
import os

from ploophelp import ROOT


class Token:
    pass


TOKEN = Token()


def _write(name):
    with open(os.path.join(ROOT, name), "w") as f:
        json.dump(len(gc.get_referrers(TOKEN)), f)


def pytest_terminal_summary(terminalreporter):
    _write("referrers-main.json")
"""

REFERRERS_TESTS = """
import conftest


def test_referrers():
    conftest._write("referrers-worker.json")
"""


def test_a_frozen_session_still_answers_who_refers_to_an_object(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # a run of its own: it stays frozen to its end
    project.pytester.makeconftest(REFERRERS_CONFTEST)
    project.pytester.makepyfile(test_referrers=REFERRERS_TESTS)
    project.run("--ploop-workers=2").assert_outcomes(passed=1)
    assert _read(project, "referrers-worker.json") >= 1
    assert _read(project, "referrers-main.json") >= 1


GENERATOR_REFERRERS = """
import gc


class Foo:
    pass


def test_a_running_generator_does_not_refer_to_its_locals():
    # The first question about referrers in this worker (it thaws the session): the same
    # answer as the built-in function gives in a serial run. Python 3.10's generator frames
    # are objects of their own, and refer to their locals there too.
    def gen():
        obj = Foo()
        yield [type(x).__name__ for x in gc.get_referrers(obj)]

    assert next(gen()) == ([] if EXPECTS_NONE else ["frame"])
"""


def test_referrers_asked_from_a_generator_are_those_of_a_serial_run(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Python stand-in for gc.get_referrers made the calling generator a referrer of its
    # own locals (a call into Python code lets the collector see the caller's variables).
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # a run of its own: it stays frozen to its end
    expects_none = sys.version_info >= (3, 11)
    project.pytester.makepyfile(
        test_gen=GENERATOR_REFERRERS.replace("EXPECTS_NONE", str(expects_none))
    )
    project.run().assert_outcomes(passed=1)
    project.run("--ploop-workers=1").assert_outcomes(passed=1)
