"""fail_fast: the first failure stops dispatching; tasks in flight get the grace period."""

from __future__ import annotations

import pickle
import socket
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import pytest

import pytest_ploop as ploop
from pytest_ploop._engine import _transport, _worker
from pytest_ploop._engine._messages import (
    SLOT_SIZE,
    Cancel,
    Chunk,
    ChunkDone,
    Function,
    Stop,
)
from pytest_ploop._engine._pool import Run, RunOptions, State
from pytest_ploop._engine._workers import Workers
from tests import faults

FAIL_FAST = "fail_fast: an earlier task failed"


def passed_values(run: Run) -> dict[int, Any]:
    """The result of each task of ``run`` that passed, by index."""
    return {
        index: value
        for batch in run.outcomes.ready
        for pos, (index, value) in enumerate(zip(batch.indices, batch.values, strict=True))
        if pos not in batch.failed
    }


def test_fail_fast_drains_in_flight_tasks_then_terminates_what_still_runs(tmp_path: Path) -> None:
    """Three workers, one task each running and one queued behind it. Task 2 fails first;
    task 0 is let finish only once the run is draining (it finishes within the grace); task 1
    hangs past the grace and is terminated. The queued tasks never start (but the failing
    task's own worker may have started its next one before the main process heard of the
    failure), and the rest of the input is never taken.

    The test drives the run's event loop itself, to act on the event "the run is draining".
    """
    a, b, release = (str(tmp_path / name) for name in ("a", "b", "release"))
    items: list[list[tuple[Any, ...]]] = [
        [("touch", a), ("wait", release), ("return", "zero")],
        [("touch", b), ("hang",)],
        [("wait", a), ("wait", b), ("raise", "first failure")],
    ]
    items += [[("return", i)] for i in range(3, 40)]
    grace = 1.0
    workers = Workers("fork")
    options = RunOptions(workers=3, chunksize=1, fail_fast=True, grace=grace)
    run = Run(workers, faults.steps, items, options)
    draining_since = None
    try:
        while not run.done:
            run.poll()
            if draining_since is None and run.state is State.DRAINING:
                draining_since = time.monotonic()
                faults.touch(release)
    finally:
        run.finish()
        workers.close()
    assert draining_since is not None
    assert time.monotonic() - draining_since >= grace  # the hung task had its grace
    failures = run.outcomes.failures
    values = passed_values(run)
    passed = set(values)

    assert failures[2].kind == "failed" and str(failures[2].exception) == "first failure"
    assert 0 in passed and values[0] == "zero"  # in flight, it finished within the grace
    hung = failures[1].exception
    assert failures[1].kind == "not_run" and isinstance(hung, ploop.TaskNotRun)
    assert hung.reason == f"{FAIL_FAST}; still running after the {grace:g}s grace, terminated"
    assert failures[3].kind == "not_run"  # queued behind task 0: cancelled, never started
    assert failures[4].kind == "not_run"  # queued behind the hung task
    # Every task taken has exactly one outcome; nothing else was dispatched after the stop.
    assert passed.isdisjoint(failures)
    assert passed | set(failures) == set(range(run.consumed))
    assert passed <= {0, 5}, passed  # task 5: queued behind the failing task, a race
    others = [failures[i] for i in failures if i not in (1, 2)]
    assert all(f.kind == "not_run" and f.exception.reason == FAIL_FAST for f in others)  # type: ignore[attr-defined]
    assert run.consumed < len(items)
    assert run.not_consumed == len(items) - run.consumed
    assert run.record.counts == {"passed": len(passed), "failed": 1, "not_run": len(others) + 1}


def test_fail_fast_ends_as_soon_as_the_tasks_in_flight_are_done() -> None:
    # No task outlives the failure: the run does not wait for the grace.
    items = [("raise", 0)] + [("ok", i) for i in range(1, 200)]
    started = time.monotonic()
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2, fail_fast=True, grace=60)
    assert time.monotonic() - started < 30
    err = info.value
    assert err.failures[0].index == 0 and err.failures[0].kind == "failed"
    assert all(f.kind == "not_run" for f in err.failures[1:])
    assert err.total + (err.not_consumed or 0) == len(items)


def test_fail_fast_after_a_crash_says_which_tasks_had_run_before_it() -> None:
    # Tasks 0 to 4 finished in the chunk whose task 5 then killed its worker: their results
    # died with it, and the stop came before they could run again. Their not_run reason says
    # they had run (one of them may have failed there; nobody can know); 6 and 7 never ran.
    items = [("ok", i) for i in range(40)]
    items[5] = ("os_exit", 5)
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2, chunksize=8, fail_fast=True)
    by_index = {f.index: f for f in info.value.failures}
    assert by_index[5].kind == "crashed"
    lost = "(it had run on w0, which died in task 5 before reporting it)"
    for i in range(5):
        assert by_index[i].kind == "not_run"
        assert str(by_index[i].exception) == f"task {i} was not run: {FAIL_FAST} {lost}"
    for i in (6, 7):
        assert str(by_index[i].exception) == f"task {i} was not run: {FAIL_FAST}"


def test_without_fail_fast_every_task_runs() -> None:
    items = [("raise", 0)] + [("ok", i) for i in range(1, 50)]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2, chunksize=3)
    assert [f.index for f in info.value.failures] == [0]
    assert info.value.results == [None, *range(1, 50)]


def test_fail_fast_in_the_calling_process_stops_at_the_first_failure() -> None:
    consumed: list[int] = []

    def items() -> Any:
        for i in range(100):
            consumed.append(i)
            yield ("raise" if i == 3 else "ok", i)

    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items(), workers=1, fail_fast=True)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(3, "failed")]
    assert err.results == [0, 1, 2, None]
    assert consumed == [0, 1, 2, 3]


# -- the worker's side of a stop, driven over a real socket ----------------------------------


def _serve(sock: socket.socket) -> threading.Thread:
    """Run a worker's loop on ``sock`` in a thread of this process (no process needed to
    check what it does with the messages it is sent)."""
    config = _worker.WorkerConfig("w0", 0, 1, 0, "", forked=False)
    slot: list[float] = [0.0] * SLOT_SIZE
    thread = threading.Thread(target=_worker._Loop(sock, slot, config).run, daemon=True)
    thread.start()
    return thread


def _chunk(job: int, seq: int, args: list[Any]) -> Chunk:
    return Chunk(job, seq, range(seq * 10, seq * 10 + len(args)), pickle.dumps(args))


def test_a_worker_skips_a_queued_chunk_when_a_cancel_follows_it() -> None:
    """A Cancel that arrives behind a chunk the worker has not started cancels that chunk:
    the main process sent the chunk before it stopped the run."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        thread = _serve(theirs)
        job = 1
        _transport.send(ours, Function(job, pickle.dumps(faults.square)))
        _transport.send(ours, _chunk(job, 1, [2, 3]))
        first = _transport.recv(ours)
        assert isinstance(first, ChunkDone) and pickle.loads(first.values) == [4, 9]
        # The next chunk and the Cancel reach the worker together, chunk first.
        ours.sendall(_transport.encode(_chunk(job, 2, [4, 5])) + _transport.encode(Cancel(job)))
        second = _transport.recv(ours)
        _transport.send(ours, Stop())
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(second, ChunkDone) and second.seq == 2
    assert second.skipped == 2 and len(second.ends) == 0  # neither task started
    assert second.ends == array("d")
