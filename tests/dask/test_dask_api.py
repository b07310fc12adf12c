"""The loop API on the Dask backend: ``ploop.map``, every ``Pool`` method and
``parametrize_parallel`` with ``backend="dask"``, ``report=``, and ``ploop.lock`` in tasks."""

from __future__ import annotations

import itertools
import json
import operator
import re
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from dask_support import hold_ploop_lock, ploop_lock_within, raise_on_odd, sleep_then_fail

import pytest_ploop as ploop
from pytest_ploop import LoopError, RemoteException
from pytest_ploop._backends._dask_sync import dask_lock
from tests import faults

# The module's cluster fixture starts spawn's resource tracker first (not a test's orphan) and,
# at the module's end, ends the thread Dask leaves behind.
pytestmark = pytest.mark.usefixtures("cluster")


def _address(backend: Any) -> str:
    return str(backend.cluster.scheduler_address)


def _overlaps(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one time."""
    events = sorted([(b, -1) for _, b in intervals] + [(a, 1) for a, _ in intervals])
    return max(itertools.accumulate(step for _, step in events))


def test_map_starts_a_local_cluster_and_closes_it(tmp_path: Path) -> None:
    # No address: a LocalCluster of 2 processes for the call (no_orphans: it is gone after).
    out = tmp_path / "run.json"
    assert ploop.map(faults.square, range(30), workers=2, backend="dask", report=out) == [
        x * x for x in range(30)
    ]
    data = json.loads(out.read_text())
    assert (data["kind"], data["start_method"], data["workers"]) == ("loop", "dask", 2)
    assert {k: n for k, n in data["counts"].items() if n} == {"passed": 30}


def test_every_pool_method_on_a_cluster_it_connects_to(backend: Any) -> None:
    with ploop.Pool(backend="dask", address=_address(backend)) as pool:
        assert pool.map(faults.square, [3, 1, 2]) == [9, 1, 4]
        assert pool.last_run is not None and pool.last_run.start_method == "dask"
        assert list(pool.imap(faults.square, iter(range(5)))) == [0, 1, 4, 9, 16]
        assert sorted(pool.imap_unordered(faults.square, range(5), with_index=True)) == [
            (i, i * i) for i in range(5)
        ]
        total = pool.map_reduce(faults.square, range(10), reduce=operator.add, initial=0)
        assert total == sum(x * x for x in range(10))
        assert pool.map(lambda x: x + 1, [1, 2], chunksize=1) == [2, 3]  # sent by value
    # The pool disconnected; the cluster it connected to runs on.
    assert len(backend.client.nthreads()) == 2
    assert ploop.map(faults.square, [4], backend="dask", address=_address(backend)) == [16]


def test_failures_are_a_loop_error_and_the_report_is_written(backend: Any, tmp_path: Path) -> None:
    paths = [tmp_path / "run.md", tmp_path / "out" / "run.html"]
    with ploop.Pool(backend="dask", address=_address(backend), report=paths) as pool:
        with pytest.raises(LoopError) as info:
            pool.map(raise_on_odd, range(6))
        record = pool.last_run
    err = info.value
    assert [f.index for f in err.failures] == [1, 3, 5]
    assert err.results == [0, None, 2, None, 4, None]
    assert "3 of 6 tasks did not pass (3 failed)" in str(err)
    assert record is not None and record.counts["failed"] == 3
    assert "ploop run" in paths[0].read_text()
    assert paths[1].read_text().startswith("<!DOCTYPE html>")


def test_fail_fast_and_imap_stopped_early(backend: Any) -> None:
    with ploop.Pool(backend="dask", address=_address(backend)) as pool:
        with pytest.raises(LoopError) as info:
            items = [(0.0, True)] + [(0.5, False)] * 50
            pool.map(sleep_then_fail, items, fail_fast=True, chunksize=1)
        err = info.value
        # The run stopped at the failure: what was in flight ran or is not_run, and most of
        # the input was never taken (the backend takes a few batches per worker at a time).
        assert [f.index for f in err.failures if f.kind == "failed"] == [0]
        assert {f.kind for f in err.failures} <= {"failed", "not_run"}
        assert err.not_consumed > 0 and err.total + err.not_consumed == 51
        before = signal.getsignal(signal.SIGINT)
        it = pool.imap(faults.square, range(10_000))
        assert next(it) == 0
        # Suspended between results, a stream leaves Ctrl-C to the program (it swallowed it).
        assert signal.getsignal(signal.SIGINT) is before
        it.close()  # the run is stopped and finished: the pool takes the next call
        assert pool.map(faults.square, [5]) == [25]


def test_bad_backend_options_fail_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="backend='spark' is not one of 'local', 'dask'"):
        ploop.map(abs, [1], backend="spark")
    with pytest.raises(ValueError, match="needs backend='dask'"):
        ploop.Pool(address="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="start_method='spawn' does not apply"):
        ploop.Pool(backend="dask", start_method="spawn")
    # Dask's Client raised on it, then held the interpreter's exit for a minute.
    for address in ["dask://127.0.0.1:8786", "http://127.0.0.1:8786"]:
        with pytest.raises(ValueError, match=re.escape("give 'tcp://127.0.0.1:8786'")):
            ploop.map(abs, [1], backend="dask", address=address)
    with ploop.Pool(2, backend="dask") as pool:  # nothing started yet: no cluster to close
        with pytest.raises(ValueError, match="start_method='fork' does not apply"):
            pool.map(abs, [1], start_method="fork")
        with pytest.raises(ValueError, match="report format"):
            pool.map(abs, [1], report="run.txt")
        assert pool._dask is None


def test_lock_and_semaphore_are_cluster_wide_in_tasks(backend: Any) -> None:
    address = _address(backend)
    free = ploop.map(hold_ploop_lock, [("api-free", 4, 0.1)] * 4, backend="dask",
                     address=address, chunksize=1)  # fmt: skip
    assert _overlaps(free) == 2  # two workers, each in its own process
    locked = ploop.map(hold_ploop_lock, [("api-db", 1, 0.05)] * 6, backend="dask",
                       address=address, chunksize=1)  # fmt: skip
    assert _overlaps(locked) == 1
    # The cluster's lock, not a file lock: held here, the tasks cannot take it.
    with dask_lock("api-held", client=backend.client), pytest.raises(LoopError) as info:
        ploop.map(ploop_lock_within, [("api-held", 0.2)] * 2, backend="dask", address=address)
    for f in info.value.failures:
        assert isinstance(f.exception, RemoteException)
        assert f.exception.type_name == "pytest_ploop.LockTimeout"


@ploop.parametrize_parallel("x", [1, 2, 3, 4], workers=2, backend="dask")
def _double_or_fail(x: int) -> int:
    assert x != 3, "three is out"
    return 2 * x


def test_parametrize_parallel_plain_call_on_dask(backend: Any) -> None:
    @ploop.parametrize_parallel("x, y", [(1, 2), (3, 4)], backend="dask", address=_address(backend))
    def add(x: int, y: int) -> int:
        return x + y

    assert add() == [3, 7]
    # No address: a local cluster for the call.
    with pytest.raises(LoopError) as info:
        _double_or_fail()
    assert info.value.results == [2, 4, None, 8]
    assert "case 3 (failed), x=3: AssertionError: three is out" in str(info.value)


def test_parametrize_parallel_checks_its_backend() -> None:
    with pytest.raises(ValueError, match="parametrize_parallel: backend='ray'"):
        ploop.parametrize_parallel("x", [1], backend="ray")
    with pytest.raises(ValueError, match="parametrize_parallel: address="):
        ploop.parametrize_parallel("x", [1], address="tcp://h:1")
