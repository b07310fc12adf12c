"""Issue 7: ``ploop.lock`` and ``ploop.semaphore`` across the workers of a run.

Inner tests meet at a barrier first, so that every worker contends at the same moment; what
they log inside a critical section is logged while holding it (after acquiring, before
releasing), so the logged spans lie within the real ones.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sync_support import Project, max_concurrency

import pytest_ploop as ploop

COUNTING = """
import os
import time

import pytest
from conftest import ROOT, barrier, log, wait_count


@pytest.mark.parametrize("n", range(12))
def test_count(n, ploop_lock):
    barrier(4)
    log("want", str(n))
    with ploop_lock("counter"):
        log("enter", str(n))
        wait_count("want", 4)  # the first holder holds on until every worker asks
        path = os.path.join(ROOT, "counter.txt")
        value = 0
        if os.path.exists(path):
            with open(path) as f:
                value = int(f.read())
        time.sleep(0.01)  # a read-modify-write slow enough to lose updates without the lock
        with open(path, "w") as f:
            f.write(str(value + 1))
        log("exit", str(n))
"""


def test_a_lock_excludes_the_other_workers(project: Project) -> None:
    project.pytester.makepyfile(test_count=COUNTING)
    project.run("--ploop-workers=4").assert_outcomes(passed=12)

    assert (project.path / "counter.txt").read_text() == "12"  # no update lost
    inside = project.events("enter", "exit")
    assert [e.kind for e in inside] == ["enter", "exit"] * 12  # never two inside
    assert all(a.name == b.name for a, b in zip(inside[::2], inside[1::2], strict=True))
    assert len({e.worker for e in inside}) == 4
    # It was contended: tests asked before another let go, and got it only after.
    spans = project.intervals("enter", "exit")
    waited = [
        w.name
        for w in project.events("want")
        for s in spans.values()
        if s.name != w.name and w.t < s.end < spans[w.name].start
    ]
    assert len(set(waited)) >= 3


SEMAPHORE = """
import time

import pytest
from conftest import barrier, log, wait_count


@pytest.mark.parametrize("n", range(12))
def test_gpu(n, ploop_semaphore):
    barrier(4)
    with ploop_semaphore("gpu", 2):
        log("enter", str(n))
        wait_count("enter", 2)  # the first two hold on until both are in
        time.sleep(0.02)  # the work that holds a slot
        log("exit", str(n))
"""


def test_a_semaphore_admits_at_most_its_slots(project: Project) -> None:
    project.pytester.makepyfile(test_gpu=SEMAPHORE)
    project.run("--ploop-workers=4").assert_outcomes(passed=12)
    spans = project.intervals("enter", "exit")
    assert len(spans) == 12
    assert max_concurrency(spans.values()) == 2  # two at once, never three


HOLDER = """
import pytest
from conftest import log, signal, wait_for

import pytest_ploop as ploop


def test_holder():
    with {acquire}:
        signal("held")
        wait_for("asked")


def test_asker():
    wait_for("held")
    try:
        with pytest.raises(ploop.LockTimeout) as info:
            with {acquire_timeout}:
                pass
    finally:
        signal("asked")
    log("timeout", str(info.value))
"""


@pytest.mark.parametrize(
    ("acquire", "acquire_timeout"),
    [
        ('ploop.lock("db")', 'ploop.lock("db", timeout=0.2)'),
        ('ploop.semaphore("db", 1)', 'ploop.semaphore("db", 1, timeout=0.2)'),
    ],
    ids=["lock", "semaphore"],
)
def test_a_timeout_names_the_holders_worker_and_test(
    project: Project, acquire: str, acquire_timeout: str
) -> None:
    project.pytester.makepyfile(
        test_hold=HOLDER.format(acquire=acquire, acquire_timeout=acquire_timeout)
    )
    project.run("--ploop-workers=2").assert_outcomes(passed=2)
    (timeout,) = project.events("timeout")
    holder = project.intervals()["test_hold.py::test_holder"]
    assert timeout.worker != holder.worker
    assert "could not acquire 'db' within 0.2s; it is held by " in timeout.name
    assert f"worker {holder.worker} (pid {holder.pid})" in timeout.name
    assert "test_hold.py::test_holder" in timeout.name


CRASH = """
import os

from conftest import log, signal, wait_for

import pytest_ploop as ploop


def test_crash():
    with {acquire}:
        signal("held")
        os._exit(3)


def test_next():
    wait_for("held")
    with {acquire_timeout}:
        log("got", "it")
"""


@pytest.mark.parametrize(
    ("acquire", "acquire_timeout"),
    [
        ('ploop.lock("res")', 'ploop.lock("res", timeout=20)'),
        ('ploop.semaphore("res", 1)', 'ploop.semaphore("res", 1, timeout=20)'),
    ],
    ids=["lock", "semaphore"],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_lock_held_by_a_crashed_worker_is_released(
    project: Project, acquire: str, acquire_timeout: str, workers: str
) -> None:
    project.pytester.makepyfile(
        test_crash=CRASH.format(acquire=acquire, acquire_timeout=acquire_timeout)
    )
    result = project.run(f"--ploop-workers={workers}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*worker w* crashed while running this test (exited with code 3)"])
    (got,) = project.events("got")
    (crashed,) = (e for e in project.events("start") if e.name.endswith("test_crash"))
    assert got.pid != crashed.pid


def _increment(path: Path) -> int:
    value = int(path.read_text())
    time.sleep(0.002)  # a slow read-modify-write: unlocked, updates would be lost
    path.write_text(str(value + 1))
    return os.getpid()


def test_a_lock_guards_a_loop_body_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLOOP_RUN_DIR", raising=False)  # the run makes its own
    counter = tmp_path / "counter"
    counter.write_text("0")
    locked = ploop.lock("counter")(_increment)  # a decorator as well
    pids = ploop.map(lambda _: locked(counter), range(40), workers=4, chunksize=1)
    assert counter.read_text() == "40"
    assert len(set(pids)) > 1


@pytest.mark.parametrize("slots", [0, -1, 1.5, True, "2"])
def test_a_semaphore_needs_whole_slots(slots: object) -> None:
    with pytest.raises(ValueError, match="must be a whole number of at least 1"):
        ploop.semaphore("x", slots)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_lock_needs_a_name(name: object, run_dir: Path) -> None:
    with pytest.raises(TypeError, match="name must be a non-empty string"), ploop.lock(name):  # type: ignore[arg-type]
        pass


def test_locks_with_odd_names_are_distinct(run_dir: Path) -> None:
    with ploop.lock("a/b"), ploop.lock("a_b"), ploop.lock("x" * 200), ploop.lock("x" * 201):
        pass  # four different locks: none waits for another
    assert all(p.parent == run_dir for p in run_dir.iterdir())
