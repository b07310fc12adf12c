"""Ctrl-C drains (tests in flight finish, the summary shows what ran); a second Ctrl-C or a
SIGTERM ends the run at once; no worker, nor a test's own child, outlives the run; a main
process killed outright takes its workers with it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_support import Project, alive, signal_and_wait_handled, wait_gone, wait_until

# Each test logs its worker's pid, starts a child process of its own (logged too), then
# waits for the "release" flag (bounded) and passes.
WAITING = """
import subprocess
import sys

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(10))
def test_wait(i):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        ploophelp.log("start", i, child.pid)
        ploophelp.wait_for("release")
        ploophelp.log("end", i, child.pid)
    finally:
        child.kill()
        child.wait()
"""

PROMPT_S = 10.0  # "at once": far below the 60 s grace these runs are given


@pytest.fixture
def waiting(project: Project) -> Project:
    project.pytester.makepyfile(test_waiting=WAITING)
    return project


class Running:
    """An inner run in the background, its output in a file."""

    def __init__(self, project: Project, *args: str) -> None:
        self.project = project
        self.out_path = project.path / "run.out"
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = project.popen("--ploop-workers=2", "--ploop-grace=60", *args, out=self.out)

    def wait_started(self, n: int) -> None:
        def ready() -> bool:
            starts = [e for e in self.project.events() if e.fields[0] == "start"]
            return len({e.pid for e in starts}) >= n

        wait_until(ready, f"tests started on {n} workers")

    def pids(self) -> set[int]:
        """The workers' and the tests' children's pids, as the tests logged them."""
        events = self.project.events()
        return {e.pid for e in events} | {int(e.fields[2]) for e in events}

    def wait(self, timeout: float) -> tuple[int, float]:
        t0 = time.monotonic()
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - t0

    def output(self) -> str:
        self.out.flush()
        return Path(self.out_path).read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture
def running(waiting: Project) -> Iterator[list[Running]]:
    runs: list[Running] = []
    yield runs
    for run in runs:
        run.stop()


def _start(waiting: Project, runs: list[Running], *args: str) -> Running:
    run = Running(waiting, *args)
    runs.append(run)
    run.wait_started(2)
    return run


def test_first_ctrl_c_drains_and_prints_the_summary(
    waiting: Project, running: list[Running]
) -> None:
    run = _start(waiting, running)
    signal_and_wait_handled(run.proc.pid, signal.SIGINT)
    (waiting.path / "release").touch()  # the tests in flight may now finish
    code, _ = run.wait(timeout=60)
    assert code == pytest.ExitCode.INTERRUPTED
    out = run.output()
    assert "KeyboardInterrupt" in out
    events = waiting.events()
    started = {e.fields[1] for e in events if e.fields[0] == "start"}
    ended = {e.fields[1] for e in events if e.fields[0] == "end"}
    assert started == ended  # tests in flight were let finish
    assert len(ended) == 2  # and no new ones were started
    last = out.strip().splitlines()[-1]
    assert f"{len(ended)} passed" in last
    assert "ploop: " in out
    assert wait_gone(run.pids(), timeout=5) == []


def test_second_ctrl_c_ends_the_run_at_once(waiting: Project, running: list[Running]) -> None:
    run = _start(waiting, running)
    signal_and_wait_handled(run.proc.pid, signal.SIGINT)
    os.kill(run.proc.pid, signal.SIGINT)
    code, took = run.wait(timeout=60)
    assert code == pytest.ExitCode.INTERRUPTED
    assert took < PROMPT_S  # not after the 60 s grace that one press waits for
    events = waiting.events()
    assert not [e for e in events if e.fields[0] == "end"]  # nothing was let finish
    out = run.output()
    assert "KeyboardInterrupt" in out
    assert "ploop: 10 tests not run" in out
    assert wait_gone(run.pids(), timeout=5) == []


def test_sigterm_ends_the_run_at_once(waiting: Project, running: list[Running]) -> None:
    run = _start(waiting, running)
    os.kill(run.proc.pid, signal.SIGTERM)
    code, took = run.wait(timeout=60)
    assert code == -signal.SIGTERM
    assert took < PROMPT_S
    assert wait_gone(run.pids(), timeout=5) == []


def test_a_killed_main_process_takes_its_workers_along(
    waiting: Project, running: list[Running]
) -> None:
    run = _start(waiting, running)
    workers = {e.pid for e in waiting.events()}
    assert len(workers) == 2
    assert sorted(alive(workers)) == sorted(workers)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.wait(timeout=10)
    assert wait_gone(workers, timeout=2) == []
    # The tests' own children end with their worker (it ends its process group).
    assert wait_gone(run.pids(), timeout=5) == []
