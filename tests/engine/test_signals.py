"""Signals to the main process, and its death: no worker and no worker's child survives.

Each test runs a script in a subprocess that maps a function over four tasks on two workers:
tasks 0 and 1 return at once; tasks 2 and 3 each start a grandchild process, write the pids
of their worker and grandchild, and block. When every pid file is there (the event), the test
signals the script and checks what it reports and that every one of those pids is gone.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # bound of every wait for an event (a loaded machine is slow, never this slow)
LONG_GRACE = 60.0

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, {root!r})
    import pytest_ploop as ploop
    from tests import faults

    OUT, START_METHOD, GRACE = sys.argv[1], sys.argv[2], float(sys.argv[3])
    IN_THREAD = sys.argv[4] == "thread"  # the pool is used from a thread, not the main one

    def task(i):
        if i < 2:
            return i
        faults.touch(f"{{OUT}}/worker-{{i}}")  # holds the worker's pid
        return faults.start_grandchild_then((f"{{OUT}}/grandchild-{{i}}", ("hang", None)))

    def main():
        with ploop.Pool(2, start_method=START_METHOD, chunksize=1, grace=GRACE) as pool:
            try:
                pool.map(task, range(4))
            except KeyboardInterrupt:
                record = pool.last_run
                passed = sorted(r.index for r in record.tasks if r.outcome == "passed")
                print(json.dumps({{"counts": dict(record.counts), "passed": passed}}))
                raise

    if __name__ == "__main__":
        if IN_THREAD:
            thread = threading.Thread(target=main)
            thread.start()
            thread.join()
        else:
            main()
    """
)


@dataclass
class Script:
    """The script's process and the processes its tasks reported."""

    proc: subprocess.Popen[bytes]
    out: Path
    pids: dict[str, psutil.Process]

    def output(self) -> str:
        return (self.out / "stdout").read_text()

    def errors(self) -> str:
        return (self.out / "stderr").read_text()

    def report(self) -> dict[str, object]:
        lines = self.output().strip().splitlines()
        assert lines, f"no report on stdout; stderr:\n{self.errors()}"
        report: dict[str, object] = json.loads(lines[-1])
        return report

    def wait(self) -> float:
        """Wait for the script to end; return the seconds it took."""
        started = time.monotonic()
        try:
            self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the script did not end within {WAIT_S:g}s; stderr:\n{self.errors()}")
        return time.monotonic() - started

    def assert_no_survivor(self, within: float) -> None:
        """Every worker and grandchild must be gone within ``within`` seconds."""
        _, alive = psutil.wait_procs(list(self.pids.values()), timeout=within)
        alive = [p for p in alive if _running(p)]
        assert not alive, {n: p.pid for n, p in self.pids.items() if p in alive}


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):  # not there yet, or being written
        return None


@pytest.fixture
def script(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Script]:
    """Start the script (``request.param`` is its start method and grace) and wait until
    tasks 2 and 3 run, each with its grandchild."""
    start_method, grace, *where = request.param
    path = tmp_path / "script.py"
    path.write_text(SCRIPT.format(root=str(ROOT)))
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(path), str(tmp_path), start_method, str(grace), *where, "main"],
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    running = Script(proc, tmp_path, {})
    try:
        names = [f"{kind}-{i}" for kind in ("worker", "grandchild") for i in (2, 3)]
        deadline = time.monotonic() + WAIT_S
        while len(running.pids) < len(names):
            assert proc.poll() is None, f"the script ended early:\n{running.errors()}"
            assert time.monotonic() < deadline, f"tasks did not start:\n{running.errors()}"
            for name in names:
                pid = _read_pid(tmp_path / name)
                if pid is not None and name not in running.pids:
                    running.pids[name] = psutil.Process(pid)
            time.sleep(0.01)  # polling for the files: a bounded wait on the event
        yield running
    finally:
        # Whatever the test found, leave nothing running.
        with contextlib.suppress(OSError):
            proc.kill()
        for p in running.pids.values():
            with contextlib.suppress(psutil.Error):
                p.kill()
        proc.wait(timeout=WAIT_S)


@pytest.mark.parametrize("script", [("fork", 1.0)], indirect=True, ids=["fork"])
def test_sigint_drains_within_the_grace_then_raises_keyboardinterrupt(script: Script) -> None:
    script.proc.send_signal(signal.SIGINT)
    took = script.wait()
    assert script.proc.returncode == -signal.SIGINT, script.errors()
    assert "KeyboardInterrupt" in script.errors()
    assert took >= 1.0  # the tasks in flight had their grace
    # The tasks that finished before are reported; the two stopped ones did not run.
    assert script.report() == {"counts": {"passed": 2, "not_run": 2}, "passed": [0, 1]}
    script.assert_no_survivor(within=5)


@pytest.mark.parametrize("script", [("fork", LONG_GRACE)], indirect=True, ids=["fork"])
def test_a_second_sigint_stops_at_once(script: Script) -> None:
    # Two signals sent back to back may reach the process as one (a pending signal is not
    # queued twice): send again until the script ends, which must be long before the grace.
    started = time.monotonic()
    while script.proc.poll() is None and time.monotonic() - started < WAIT_S:
        script.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            script.proc.wait(timeout=0.2)
    assert time.monotonic() - started < LONG_GRACE / 2
    assert script.proc.returncode == -signal.SIGINT, script.errors()
    assert script.report() == {"counts": {"passed": 2, "not_run": 2}, "passed": [0, 1]}
    script.assert_no_survivor(within=5)


@pytest.mark.parametrize("script", [("fork", LONG_GRACE)], indirect=True, ids=["fork"])
def test_sigterm_terminates_at_once_and_the_process_ends_by_sigterm(script: Script) -> None:
    script.proc.send_signal(signal.SIGTERM)
    took = script.wait()
    assert took < LONG_GRACE / 2
    assert script.proc.returncode == -signal.SIGTERM, script.errors()
    script.assert_no_survivor(within=5)


@pytest.mark.parametrize(
    "script",
    [
        *((method, LONG_GRACE) for method in ("fork", "spawn", "forkserver")),
        ("fork", LONG_GRACE, "thread"),
        ("spawn", LONG_GRACE, "thread"),
    ],
    indirect=True,
    ids=["fork", "spawn", "forkserver", "fork-from-a-thread", "spawn-from-a-thread"],
)
def test_workers_and_their_children_end_when_the_main_process_is_killed(script: Script) -> None:
    script.proc.kill()
    script.wait()
    # The kernel tells each worker its parent died (a worker started by a thread other than
    # the main one looks for its parent itself); the worker ends its process group.
    script.assert_no_survivor(within=3)


IGNORING_SCRIPT = textwrap.dedent(
    """
    import json, signal, sys
    sys.path.insert(0, {root!r})
    import pytest_ploop as ploop
    from tests import faults

    OUT = sys.argv[1]

    def task(i):
        if i >= 2:
            faults.touch(f"{{OUT}}/running-{{i}}")
            faults.wait_for_path(f"{{OUT}}/release")
        return i

    if __name__ == "__main__":
        # As a background job of a script, or under nohup: the process ignores them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps(ploop.map(task, range(4), workers=2, chunksize=1)))
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    """
)


def test_signals_the_process_ignores_are_ignored_by_the_run(tmp_path: Path) -> None:
    """Before, the run installed its handlers anyway: the first SIGINT stopped it (not run,
    KeyboardInterrupt), where the same loop without workers went on."""
    path = tmp_path / "script.py"
    path.write_text(IGNORING_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.Popen(
        [sys.executable, str(path), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not all((tmp_path / f"running-{i}").exists() for i in (2, 3)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "tasks 2 and 3 did not start"
            time.sleep(0.01)  # polling for the files: a bounded wait on the event
        # An ignored signal is discarded when it is sent: once kill() returned, it is gone.
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        (tmp_path / "release").touch()
        out, err = proc.communicate(timeout=WAIT_S)
    finally:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(timeout=WAIT_S)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().splitlines()[-1]) == [0, 1, 2, 3]
