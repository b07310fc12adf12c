"""The loop API's calls: map, Pool.map/imap/imap_unordered/map_reduce, and the run record."""

from __future__ import annotations

import inspect
import io
import itertools
import operator
import os
import pdb
import signal
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:
    from exceptiongroup import ExceptionGroup

import pytest_ploop as ploop
from tests import faults


def scrambled(tmp_path: Path, n: int = 6) -> list[list[tuple[Any, ...]]]:
    """Tasks for two workers, one task a chunk, that finish out of input order: task 0 waits
    until the last task (which runs on the other worker, after task 1) has started. Their
    results are ``"r0"``, ``"r1"``, ..."""
    done = str(tmp_path / "last-done")
    items: list[list[tuple[Any, ...]]] = [[("return", f"r{i}")] for i in range(n)]
    items[0] = [("wait", done), ("return", "r0")]
    items[-1] = [("touch", done), ("return", f"r{n - 1}")]
    return items


def gone(pids: list[int]) -> bool:
    """Whether none of ``pids`` runs any more (a zombie counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def worker_pids(record: ploop.RunRecord | None) -> list[int]:
    assert record is not None
    return [pid for info in record.worker_info.values() for pid in info.pids]


# -- map -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [list, tuple, iter, lambda r: (x for x in r)])
def test_map_returns_every_result_in_input_order(make: Any) -> None:
    assert ploop.map(faults.square, make(range(500)), workers=2) == [x * x for x in range(500)]


def test_map_keeps_input_order_when_tasks_finish_out_of_order(tmp_path: Path) -> None:
    items = scrambled(tmp_path)
    results = ploop.map(faults.steps, items, workers=2, chunksize=1)
    assert results == [f"r{i}" for i in range(len(items))]


def test_map_of_an_empty_input_is_empty_and_starts_no_worker() -> None:
    with ploop.Pool(2) as pool:
        assert pool.map(faults.square, []) == []
        assert pool.map(faults.square, iter(())) == []
        assert pool.last_run is not None
        assert sum(pool.last_run.counts.values()) == 0
        assert worker_pids(pool.last_run) == []


def test_map_raises_one_loop_error_listing_every_failure() -> None:
    items = [("ok", 0), ("raise", 1), ("ok", 2), ("raise", 3), ("ok", 4)]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2)
    err = info.value
    assert isinstance(err, ExceptionGroup) and isinstance(err, ploop.PloopError)
    assert [(f.index, f.kind) for f in err.failures] == [(1, "failed"), (3, "failed")]
    assert [type(e) for e in err.exceptions] == [ValueError, ValueError]
    assert err.results == [0, None, 2, None, 4]
    assert str(err).splitlines()[0] == "2 of 5 tasks did not pass (2 failed)"
    assert "task 3 (failed), argument ('raise', 3): ValueError: failing on purpose: 3" in str(err)
    assert err.failures[0].argument == "('raise', 1)"
    assert "ValueError: failing on purpose: 1" in err.failures[0].traceback
    assert type(err).__module__ == "pytest_ploop"
    # A split by kind keeps the failure records of its part.
    part, rest = err.split(lambda e: str(e) == "failing on purpose: 3")
    assert isinstance(part, ploop.LoopError) and isinstance(rest, ploop.LoopError)
    assert [f.index for f in part.failures] == [3]
    assert [f.index for f in rest.failures] == [1]
    assert part.results == err.results


# -- streaming -------------------------------------------------------------------------------


def test_imap_yields_in_input_order_as_results_arrive(tmp_path: Path) -> None:
    with ploop.Pool(2, chunksize=1) as pool:
        got = list(pool.imap(faults.steps, scrambled(tmp_path)))
    assert got == [f"r{i}" for i in range(6)]


def test_imap_unordered_yields_each_result_as_its_task_finishes(tmp_path: Path) -> None:
    items = scrambled(tmp_path)
    with ploop.Pool(2, chunksize=1) as pool:
        got = list(pool.imap_unordered(faults.steps, items, with_index=True))
        (tmp_path / "again").mkdir()
        values = list(pool.imap_unordered(faults.steps, scrambled(tmp_path / "again")))
    assert sorted(got) == [(i, f"r{i}") for i in range(len(items))]
    # Task 0 finishes only after the last task started, so after task 1 was sent back from the
    # other worker: it cannot come first (imap would yield it first).
    order = [i for i, _ in got]
    assert order[0] != 0 and order.index(0) > order.index(1), order
    assert sorted(values) == [f"r{i}" for i in range(len(items))]


def test_streaming_calls_raise_the_loop_error_after_the_last_result() -> None:
    items = [("ok", 0), ("raise", 1), ("ok", 2)]
    with ploop.Pool(2, chunksize=1) as pool:
        got: list[Any] = []
        with pytest.raises(ploop.LoopError) as info:
            got.extend(pool.imap(faults.fail_on, items))
        assert got == [0, 2]  # a task that did not pass yields nothing
        assert [f.index for f in info.value.failures] == [1]
        pairs: list[Any] = []
        with pytest.raises(ploop.LoopError):
            pairs.extend(pool.imap_unordered(faults.fail_on, items, with_index=True))
        assert sorted(pairs) == [(0, 0), (2, 2)]


def test_imap_consumes_its_input_lazily_and_stops_when_the_caller_stops() -> None:
    taken = 0

    def ten_million() -> Iterator[int]:
        nonlocal taken
        for i in range(10**7):
            taken += 1
            yield i

    with ploop.Pool(2) as pool:
        results = pool.imap(faults.square, ten_million())
        first = list(itertools.islice(results, 10))
        assert isinstance(results, Generator)
        results.close()  # the caller stops iterating
        record = pool.last_run
        assert first == [x * x for x in range(10)]
        assert taken <= 100_000, taken  # a bounded read-ahead, not the whole input
        assert record is not None and sum(record.counts.values()) == taken
    assert gone(worker_pids(record))


def test_an_imap_never_iterated_leaves_no_run_behind() -> None:
    with ploop.Pool(2) as pool:
        pool.imap(faults.square, range(1000))  # dropped at once
        pool.imap_unordered(faults.square, range(1000))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert pool.last_run is None  # nothing ran
        assert pool.map(faults.square, range(3)) == [0, 1, 4]


def test_a_pool_runs_one_streaming_call_at_a_time() -> None:
    with ploop.Pool(2) as pool:
        first = pool.imap(faults.square, range(100))
        assert next(first) == 0
        second = pool.imap(faults.square, range(5))
        with pytest.raises(ploop.PloopError, match="still running another call"):
            next(second)
        with pytest.raises(ploop.PloopError, match="still running another call"):
            pool.map(faults.square, range(5))
        assert list(first) == [x * x for x in range(1, 100)]  # undisturbed
        assert pool.map(faults.square, range(5)) == [0, 1, 4, 9, 16]  # and then free
        assert list(pool.imap(faults.square, range(3))) == [0, 1, 4]


# -- map_reduce ------------------------------------------------------------------------------


def test_map_reduce_folds_in_input_order(tmp_path: Path) -> None:
    with ploop.Pool(2, chunksize=1) as pool:
        # String concatenation does not commute: the order of the fold shows.
        folded = pool.map_reduce(faults.steps, scrambled(tmp_path), reduce=operator.add, initial="")
    assert folded == "r0r1r2r3r4r5"


def test_map_reduce_without_initial_starts_with_the_first_result() -> None:
    with ploop.Pool(2) as pool:
        assert pool.map_reduce(faults.square, [1, 2, 3], reduce=operator.sub) == 1 - 4 - 9
        assert pool.map_reduce(faults.square, [5], reduce=operator.sub) == 25


def test_map_reduce_of_an_empty_input() -> None:
    with ploop.Pool(2) as pool:
        assert pool.map_reduce(faults.square, [], reduce=operator.add, initial=42) == 42
        with pytest.raises(TypeError, match="empty input with no initial value"):
            pool.map_reduce(faults.square, [], reduce=operator.add)


def test_map_reduce_raises_the_loop_error_of_a_failing_task() -> None:
    with ploop.Pool(2) as pool, pytest.raises(ploop.LoopError) as info:
        pool.map_reduce(faults.fail_on, [("ok", 1), ("raise", 2)], reduce=operator.add)
    assert [f.index for f in info.value.failures] == [1]


# -- the run record --------------------------------------------------------------------------


def test_last_run_records_every_task_and_the_run(tmp_path: Path) -> None:
    items = [(0.1, i) for i in range(6)]  # tasks that take 0.1 s each (a sleep: the workload)
    with ploop.Pool(2, chunksize=1) as pool:
        assert pool.last_run is None
        assert pool.map(faults.sleep_then, items) == list(range(6))
        record = pool.last_run
    assert record is not None
    assert (record.workers, record.start_method) == (2, "fork")
    assert record.counts == {"passed": 6}
    rows = sorted(record.tasks, key=lambda r: r.index)
    assert [r.index for r in rows] == list(range(6))
    assert {r.worker for r in rows} <= {"w0", "w1"}
    assert all(r.outcome == "passed" and r.start <= r.end and r.wall_s >= 0.1 for r in rows)
    assert all(r.cpu_s >= 0 for r in rows)
    assert record.serial_s == pytest.approx(sum(r.wall_s for r in rows))
    assert record.serial_s >= 0.6
    # Two workers: the wall time is at least half the work, and at least the longest task.
    assert record.wall_s >= max(record.serial_s / 2, record.critical_path_s)
    assert record.speedup == pytest.approx(record.serial_s / record.wall_s)
    assert record.efficiency == pytest.approx(record.speedup / 2)
    assert sum(info.tasks for info in record.worker_info.values()) == 6
    assert record.to_dict()["counts"]["passed"] == 6


def test_last_run_is_kept_when_the_call_raises() -> None:
    with ploop.Pool(2) as pool:
        with pytest.raises(ploop.LoopError):
            pool.map(faults.fail_on, [("ok", 1), ("os_exit", 2), ("raise", 3)], chunksize=1)
        record = pool.last_run
    assert record is not None
    assert record.counts == {"passed": 1, "crashed": 1, "failed": 1}
    outcomes = {r.index: r.outcome for r in record.tasks}
    assert outcomes == {0: "passed", 1: "crashed", 2: "failed"}


# -- workers=1: the same run in the calling process -------------------------------------------


def _pid(x: int) -> int:
    return os.getpid()


def test_workers_1_runs_in_the_calling_process() -> None:
    with ploop.Pool(1) as pool:
        assert pool.map(_pid, range(5)) == [os.getpid()] * 5
        record = pool.last_run
    assert record is not None
    assert (record.workers, record.start_method) == (1, "inline")
    assert {r.worker for r in record.tasks} == {"main"}
    assert record.counts == {"passed": 5}


def test_workers_1_runs_the_task_under_the_callers_frames_so_pdb_can_step_in() -> None:
    def task(x: int) -> str:
        # A debugger session in the task, driven by scripted commands.
        out = io.StringIO()
        pdb.Pdb(stdin=io.StringIO("p x * 7\nc\n"), stdout=out, nosigint=True).set_trace()
        assert any(f.function == test_name for f in inspect.stack())
        return out.getvalue()

    test_name = inspect.currentframe().f_code.co_name  # type: ignore[union-attr]
    tracer = sys.gettrace()  # pdb's continue drops the trace function (coverage's, if any)
    try:
        (output,) = ploop.map(task, [3], workers=1)
    finally:
        sys.settrace(tracer)
    assert "21" in output


def test_workers_1_reports_failures_as_workers_do() -> None:
    items = [("ok", 0), ("raise", 1), ("exit", 2), ("ok", 3)]
    shapes = []
    for workers in (1, 2):
        with pytest.raises(ploop.LoopError) as info:
            ploop.map(faults.fail_on, items, workers=workers)
        err = info.value
        shapes.append(
            (
                str(err).splitlines()[0],
                [(f.index, f.kind, type(f.exception).__name__) for f in err.failures],
                err.results,
                err.total,
            )
        )
        notes = getattr(err.failures[0].exception, "__notes__", [])
        assert notes[0].startswith("ploop: task 1, argument ('raise', 1), on ")
    assert shapes[0] == shapes[1]
    assert shapes[0][1] == [(1, "failed", "ValueError"), (2, "failed", "RemoteException")]


def test_workers_1_enforces_the_timeout() -> None:
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.sleep_then, [(0, 1), (30, 2), (0, 3)], workers=1, timeout=0.3)
    assert [(f.index, f.kind) for f in info.value.failures] == [(1, "timed_out")]
    assert isinstance(info.value.failures[0].exception, ploop.TaskTimeout)
    assert info.value.results == [1, None, 3]


# -- workers="auto", and a Pool across calls -------------------------------------------------


@pytest.mark.parametrize("workers", ["auto", "AUTO", None])
def test_workers_auto_uses_the_cpus_this_process_may_use(workers: str | None) -> None:
    with ploop.Pool(workers) as pool:
        assert pool.map(faults.square, range(20)) == [x * x for x in range(20)]
        record = pool.last_run
    assert record is not None
    assert record.workers == ploop.available_cpus() == len(os.sched_getaffinity(0))


def test_a_pool_goes_on_after_a_crash_and_calls_override_its_options() -> None:
    with ploop.Pool(2, chunksize=1) as pool:
        with pytest.raises(ploop.LoopError):
            pool.map(faults.fail_on, [("segfault", 0), ("ok", 1)])
        assert pool.map(faults.square, range(10)) == [x * x for x in range(10)]
        assert pool.map(_pid, range(3), workers=1) == [os.getpid()] * 3
        assert pool.last_run is not None and pool.last_run.workers == 1
        assert pool.map(faults.square, range(4), start_method="spawn") == [0, 1, 4, 9]
        assert pool.last_run is not None and pool.last_run.start_method == "spawn"
        with pytest.raises(TypeError, match=r"unknown option\(s\): color"):
            pool.map(faults.square, range(3), color=True)
    with pytest.raises(ValueError, match="this Pool is closed"):
        pool.map(faults.square, range(3))


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_run_the_same_loop(start_method: str) -> None:
    items = [("ok", 0), ("os_exit", 1), ("raise", 2), ("ok", 3)]
    with ploop.Pool(2, start_method=start_method, chunksize=1) as pool:
        assert pool.map(faults.square, range(5)) == [0, 1, 4, 9, 16]
        with pytest.raises(ploop.LoopError) as info:
            pool.map(faults.fail_on, items)
        assert pool.last_run is not None and pool.last_run.start_method == start_method
    assert [(f.index, f.kind) for f in info.value.failures] == [(1, "crashed"), (2, "failed")]
    assert info.value.results == [0, None, None, 3]
    assert os.getpid() not in set(ploop.map(_pid, range(4), workers=2, start_method=start_method))


def test_a_pool_reuses_its_workers_across_calls() -> None:
    with ploop.Pool(2, chunksize=1) as pool:
        first = set(pool.map(_pid, range(8)))
        second = set(pool.map(_pid, range(8)))
    assert first == second and len(first) <= 2 and os.getpid() not in first
