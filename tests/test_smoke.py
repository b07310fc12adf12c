"""A fast end-to-end pass over both faces: the loop API and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_ploop as ploop
from tests import faults


def test_map_keeps_order_and_records_the_run() -> None:
    with ploop.Pool(workers=2) as pool:
        assert pool.map(faults.square, range(1000)) == [x * x for x in range(1000)]
        record = pool.last_run
    assert record is not None
    assert record.counts["passed"] == 1000
    assert sorted(record.tasks.index) == list(range(1000))
    assert set(record.tasks.worker_ids) <= {"w0", "w1"}


def test_every_failure_kind_is_reported_and_the_rest_pass() -> None:
    items = [("ok", 1), ("raise", 2), ("os_exit", 3), ("segfault", 4), ("ok", 5)]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2, chunksize=1)
    err = info.value
    kinds = {f.index: f.kind for f in err.failures}
    assert kinds == {1: "failed", 2: "crashed", 3: "crashed"}
    assert err.results == [1, None, None, None, 5]
    crashed = {f.index: f.exception for f in err.failures if f.kind == "crashed"}
    assert isinstance(crashed[3], ploop.WorkerCrashed)
    assert crashed[3].signal == "SIGSEGV"
    assert crashed[2].exitcode == 7


def test_a_hung_task_times_out_and_the_run_goes_on() -> None:
    items = [("ok", 1), ("hang", 2), ("ok", 3)]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=2, chunksize=1, timeout=1)
    (failure,) = info.value.failures
    assert failure.index == 1 and failure.kind == "timed_out"
    assert info.value.results == [1, None, 3]


def test_the_engine_does_not_import_pytest() -> None:
    code = (
        "import sys, pytest_ploop, pytest_ploop._engine._pool, pytest_ploop._loop;"
        "assert 'pytest' not in sys.modules, 'pytest was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_runs_a_suite_in_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_ok(i):
            assert os.environ["PLOOP_WORKER"] in ("w0", "w1")

        def test_fails():
            assert 1 == 2

        def test_crashes():
            os._exit(3)
        """
    )
    result = pytester.runpytest_subprocess("--ploop-workers=2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        ["*worker w* crashed while running this test (exited with code 3)*", "ploop: 2 workers*"]
    )
    assert result.ret == 1
