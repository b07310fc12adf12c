"""The Dask backend's failures: errors, a killed worker, fail-fast, timeout, Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytest.importorskip("distributed")

import dask
from dask_support import (
    close_worker_once,
    dask_map,
    exit_on,
    raise_on_odd,
    results_of,
    sleep_then_fail,
    start,
)

from pytest_ploop import (
    LoopError,
    RemoteTraceback,
    TaskNotRun,
    TaskTimeout,
    WorkerCrashed,
)
from tests import faults


def test_errors_are_collected_with_their_tracebacks(backend) -> None:
    with pytest.raises(LoopError) as info:
        dask_map(backend, raise_on_odd, range(10))
    err = info.value
    assert [f.index for f in err.failures] == [1, 3, 5, 7, 9]
    assert {f.kind for f in err.failures} == {"failed"}
    assert err.results == [0, None, 2, None, 4, None, 6, None, 8, None]
    assert "5 of 10 tasks did not pass (5 failed)" in str(err)
    for f in err.failures:
        assert isinstance(f.exception, ValueError)
        assert str(f.exception) == f"odd: {f.index}"
        cause = f.exception.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "dask_support.py" in cause.text and "in raise_on_odd" in cause.text
        assert "_dask_task.py" not in cause.text  # ploop's frames are cut
        assert f.worker in ("dask-0", "dask-1")


def test_unpicklable_argument_and_result_fail_their_task_only(backend) -> None:
    with pytest.raises(LoopError) as info:
        dask_map(backend, faults.identity, [1, faults.Unpicklable(), 3])
    assert [f.index for f in info.value.failures] == [1]
    assert "cannot be pickled" in str(info.value.failures[0].exception)
    assert info.value.results == [1, None, 3]
    with pytest.raises(LoopError) as info:
        dask_map(backend, faults.return_unpicklable, [1])
    assert "refuses to be pickled" in str(info.value.failures[0].exception)


def test_a_killed_worker_crashes_its_task_and_the_run_goes_on(backend) -> None:
    items = [(i, 3) for i in range(12)]
    with pytest.raises(LoopError) as info:
        dask_map(backend, exit_on, items, chunksize=1)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(3, "crashed")]
    crash = err.failures[0].exception
    assert isinstance(crash, WorkerCrashed)
    assert "the Dask worker running it died" in str(crash) and "attempt 1" in str(crash)
    assert err.results == [i if i != 3 else None for i in range(12)]
    assert err.run.record.counts["crashed"] == 1
    assert [r.outcome for r in err.run.record.tasks if r.index == 3] == ["crashed"]


def test_a_task_whose_worker_dask_closed_runs_again_and_is_not_blamed(backend, tmp_path) -> None:
    # A worker that Dask closes (its cluster scales down or restarts it, its nanny closes it)
    # fails its running task as though the task had killed it. The worker logs its close
    # first: the task was blamed as crashed before; now it runs again elsewhere.
    marker = str(tmp_path / "closed")
    items = [(i, marker if i == 3 else "") for i in range(8)]
    results, run = dask_map(backend, close_worker_once, items, chunksize=1)
    assert results == list(range(8))
    assert os.path.exists(marker)  # the close did happen
    assert run.outcomes.counts["passed"] == 8


def test_a_worker_killed_in_a_batch_isolates_the_culprit(backend) -> None:
    # Tiny tasks travel in batches: the dead batch's tasks are run again in parts (a part
    # that dies again is split again) and their attempts counted.
    items = [(i, 500) for i in range(2000)]
    with pytest.raises(LoopError) as info:
        dask_map(backend, exit_on, items)
    err = info.value
    assert [(f.index, f.kind) for f in err.failures] == [(500, "crashed")]
    attempts = err.run.attempts
    assert attempts[500] >= 2
    assert f"attempt {attempts[500]}" in str(err.failures[0].exception)
    assert err.results[:500] == list(range(500)) and err.results[501:] == list(range(501, 2000))
    assert all(n >= 2 for n in attempts.values())


def test_tasks_to_run_again_go_out_while_a_stream_holds_back(backend) -> None:
    # A stream takes no more input while its consumer is max_ahead tasks behind. The tasks of
    # a batch whose worker died, to be run again, were held back too, and an ordered consumer
    # waiting for the first of them never advanced: the run waited for ever.
    run = start(backend, exit_on, [(i, 1) for i in range(5)], chunksize=5, max_ahead=5)
    try:
        # The consumer waits for task 0, which is to run again: run.delivered stays 0.
        deadline = time.monotonic() + 60
        while not run.done and time.monotonic() < deadline:
            run.poll()
        assert run.done, f"held back for 60 s: {run.outcomes.counts}"
    finally:
        run.finish()
    assert [(f.index, f.kind) for f in run.outcomes.failures.values()] == [(1, "crashed")]
    assert results_of(run) == [0, None, 2, 3, 4]


def test_a_worker_whose_nanny_dask_closed_is_started_again(backend) -> None:
    # Dask closes the nanny of a worker that has not come back lost-worker-timeout after it
    # died; with 15 s, a worker that tasks kill again and again can be caught restarting.
    # Here the timeout is shorter than any restart: the cluster loses that worker for good.
    pid = sorted(backend.client.run(os.getpid).values())[0]

    def alone() -> bool:
        return len(backend.cluster.workers) == len(backend.workers_info()) == 1

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0.01s"}):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not alone():  # Dask closes the nanny in its own time
            assert time.monotonic() < deadline, "Dask never closed the dead worker's nanny"
            time.sleep(0.05)
    # Runs bring the cluster back to its two workers (and run meanwhile). A new worker can
    # be refused while the closed nanny's last one still holds its name: a later tick, or
    # the next run, tries again.
    deadline = time.monotonic() + 60
    # (The scheduler can still list the closed nanny's worker while the new nanny failed to
    # start: both counts must be back.)
    while len(backend.workers_info()) < 2 or len(backend.cluster.workers) < 2:
        assert time.monotonic() < deadline, "the runs never brought the cluster back to 2"
        results, _ = dask_map(backend, faults.sleep_then, [(0.05, i) for i in range(20)])
        assert results == list(range(20))
    backend.client.wait_for_workers(2, timeout=60)
    assert len(backend.cluster.workers) == 2


def test_fail_fast_cancels_what_is_pending(backend) -> None:
    # Tasks 0 and 1 run on the two workers, 2 and 3 wait (two batches in flight per worker
    # thread), the rest are not taken from the input yet. When 0 fails, its worker may start
    # the next task before the run is told (a task that started runs to its end); the task
    # waiting behind the 1 s task cannot have started, so it is cancelled.
    items = [(0.1, True)] + [(1.0, False)] * 39
    with pytest.raises(LoopError) as info:
        dask_map(backend, sleep_then_fail, items, fail_fast=True, chunksize=1)
    err = info.value
    assert err.run.record.wall_s < 3.0  # the run did not go on
    assert [(f.index, f.kind) for f in err.failures if f.kind != "not_run"] == [(0, "failed")]
    not_run = {f.index: f.exception for f in err.failures if f.kind == "not_run"}
    assert {2, 3} & set(not_run)  # a future cancelled before it could start
    assert all(isinstance(e, TaskNotRun) and "fail_fast" in e.reason for e in not_run.values())
    for i in (1, 2, 3):  # each ran to its end, or never started
        assert (err.results[i] == 1.0) != (i in not_run)
    assert err.total == 4 and err.not_consumed == 36
    assert "36 further input items were not taken" in str(err)


def test_timeout_marks_the_overdue_task_and_stops_the_run(backend) -> None:
    items = [(0.02, 0), (3.0, 1)] + [(0.02, i) for i in range(2, 30)]
    with pytest.raises(LoopError) as info:
        dask_map(backend, faults.sleep_then, items, timeout=0.5, chunksize=1)
    err = info.value
    assert err.run.record.wall_s < 2.5, err.run.record.wall_s  # not waiting for the 3 s task
    timed_out = [f for f in err.failures if f.kind == "timed_out"]
    assert [f.index for f in timed_out] == [1]
    exc = timed_out[0].exception
    assert isinstance(exc, TaskTimeout) and exc.timeout == 0.5
    assert "in sleep_then" in exc.stack and "cannot be interrupted" in str(exc)
    assert {f.kind for f in err.failures} <= {"timed_out", "not_run"}
    assert err.results[0] == 0
    rows = [r for r in err.run.record.tasks if r.index == 1]
    assert rows and rows[0].outcome == "timed_out" and rows[0].wall_s > 0.45
    # The overdue task cannot be interrupted; this cluster was started by ploop, so its worker
    # was restarted after the run, and the next run does not wait behind the task.
    assert err.run.record.worker_info[timed_out[0].worker].restarts == 0  # during the run
    started = time.monotonic()
    assert dask_map(backend, faults.square, [1, 2, 3, 4], chunksize=1)[0] == [1, 4, 9, 16]
    assert time.monotonic() - started < 2.0


def test_ctrl_c_cancels_the_run_and_leaves_the_cluster_usable(backend) -> None:
    run = start(backend, faults.sleep_then, [(0.2, i) for i in range(40)], chunksize=1)
    try:
        deadline = time.monotonic() + 10
        while run.outcomes.settled < 2 and time.monotonic() < deadline:
            run.poll()
        os.kill(os.getpid(), signal.SIGINT)  # the run's handler is installed: it only records
        run.run_to_end()
    finally:
        run.finish()
    assert run.interrupted == signal.SIGINT
    assert run.outcomes.counts["not_run"] > 0
    reasons = {f.exception.reason for f in run.outcomes.failures.values()}
    assert all("Ctrl-C" in r for r in reasons)
    assert run.outcomes.settled == run.consumed < 40
    assert results_of(run)[0] == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert dask_map(backend, faults.square, range(5))[0] == [0, 1, 4, 9, 16]


def test_a_signal_the_process_ignores_is_ignored_by_the_run(backend) -> None:
    """Before, the run pointed an ignored SIGINT at its own handler: a Ctrl-C that the
    program chose to ignore (nohup, a background job) stopped the loop, as it does not
    without workers (nor on the local backend)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run = start(backend, faults.sleep_then, [(0.05, i) for i in range(8)], chunksize=1)
        try:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            run.run_to_end()
        finally:
            run.finish()
        assert run.interrupted is None
        assert results_of(run) == list(range(8))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
