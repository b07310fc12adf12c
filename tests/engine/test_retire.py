"""``ploop.map`` closes its workers when it returns: a worker with nothing left to do is told
to stop at once, and exits while the others finish their last tasks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import pytest_ploop as ploop
from tests import faults


def _exits(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` (a sibling: this process cannot wait for it) exits within
    ``seconds``: its /proc entry is read until it is a zombie or gone."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.005)
    return False


def task(x: tuple[str, str, float]) -> Any:
    """``("touch", path, _)``: write this worker's pid to ``path``. ``("outlive", path, s)``
    and ``("outlive-then-crash", path, s)``: wait up to ``s`` seconds for the worker that
    wrote ``path`` to exit, return whether it did (or end this worker once it did)."""
    how, path, seconds = x
    if how == "touch":
        faults.touch(path)
        return None
    faults.wait_for_path(path)
    exited = _exits(int(Path(path).read_text()), seconds)
    if how == "outlive-then-crash" and exited:
        os._exit(3)
    return exited


def test_a_worker_with_nothing_left_exits_before_the_call_ends(tmp_path: Path) -> None:
    path = str(tmp_path / "pid")
    results = ploop.map(task, [("outlive", path, 30.0), ("touch", path, 0)], workers=2, chunksize=1)
    assert results == [True, None]


def test_a_pool_keeps_its_idle_workers_for_the_next_call(tmp_path: Path) -> None:
    path = str(tmp_path / "pid")
    with ploop.Pool(workers=2, chunksize=1) as pool:
        pool.map(faults.square, [1, 2])
        pids = {t.worker: t for t in pool.last_run.tasks}
        assert len(pids) == 2
        results = pool.map(task, [("touch", path, 0), ("outlive", path, 1.0)])
    # The worker that wrote the pid was still there a second later: it waits for the next call.
    assert results == [None, False]


def test_a_crash_after_another_worker_left_is_replaced_and_the_rest_runs(tmp_path: Path) -> None:
    path = str(tmp_path / "pid")
    items = [
        ("outlive-then-crash", path, 30.0),
        ("touch", path, 0),
        ("touch", str(tmp_path / "c"), 0),
    ]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(task, items, workers=2, chunksize=1)
    (failure,) = info.value.failures
    assert (failure.index, failure.kind) == (0, "crashed")
    assert info.value.results[1:] == [None, None]
    assert (tmp_path / "c").exists()  # queued behind the crash, it ran on a new worker


def _count(directory: str, name: str) -> int:
    """Append a line to ``directory/name``; return how many it has now."""
    path = Path(directory, name)
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


def shared(x: tuple[str, str]) -> int:
    """``b`` computes the run-once value (a count of computations) and says it is done;
    ``a`` waits for that, gives ``b``'s worker a second to leave, then asks for the value."""
    how, tmp = x
    pid_path = os.path.join(tmp, "pid")
    if how == "a":
        faults.wait_for_path(pid_path)
        _exits(int(Path(pid_path).read_text()), 1.0)
    value: int = ploop.run_once(
        "value", lambda: _count(tmp, "computed"), teardown=lambda _: _count(tmp, "torn")
    )
    if how == "b":
        faults.touch(pid_path)
    return value


def test_a_worker_that_holds_a_run_once_value_stays_until_the_call_ends(tmp_path: Path) -> None:
    """Leaving, the value's only user would tear it down, and the next task would compute
    it again."""
    results = ploop.map(
        shared, [("a", str(tmp_path)), ("b", str(tmp_path))], workers=2, chunksize=1
    )
    assert results == [1, 1]
    assert len((tmp_path / "computed").read_text().splitlines()) == 1
    assert len((tmp_path / "torn").read_text().splitlines()) == 1


class _ExitWitness:
    """A result whose unpickling, in the main process, waits up to ``seconds`` for the worker
    that returned it to exit, and gives whether it did."""

    def __init__(self, pid: int, seconds: float) -> None:
        self.pid, self.seconds = pid, seconds

    def __reduce__(self) -> Any:
        return _exits, (self.pid, self.seconds)


def exit_witness(seconds: float) -> _ExitWitness:
    return _ExitWitness(os.getpid(), seconds)


def test_a_busy_worker_leaves_after_its_last_chunk_without_waiting_to_be_told() -> None:
    """Once no work is left, a busy worker is told to stop after what it holds: it exits as
    soon as it has sent its last results, while the main process still reads them. (It
    waited for a Stop that the main process sent only after reading them.)"""
    assert ploop.map(exit_witness, [10.0], workers=2) == [True]
