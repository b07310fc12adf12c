"""The Dask backend on a real LocalCluster: results, batching and the run record."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("distributed")

from dask_support import dask_map, pid_after, start

from tests import faults


def test_import_pytest_ploop_imports_no_dask() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest_ploop, pytest_ploop._backends
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        print(loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_results_in_input_order(backend) -> None:
    assert dask_map(backend, faults.square, [3, 1, 2])[0] == [9, 1, 4]
    assert dask_map(backend, faults.square, range(50))[0] == [x * x for x in range(50)]
    assert dask_map(backend, faults.square, (x for x in range(7)))[0] == [x * x for x in range(7)]
    assert dask_map(backend, faults.square, [])[0] == []


def test_lambda_and_closure(backend) -> None:
    k = 3
    assert dask_map(backend, lambda x: x * k, [1, 2])[0] == [3, 6]


def test_tiny_tasks_run_in_batches(backend) -> None:
    n = 20_000
    results, run = dask_map(backend, faults.square, range(n))
    assert results == [x * x for x in range(n)]
    # Far fewer Dask tasks than loop tasks: the batches grew with the measured task time.
    assert len(run._by_key) == 0
    batches = next(run._seqs) - 1
    assert batches < n / 50, batches


def test_record_counts_worker_ids_and_times(backend) -> None:
    pids = set(backend.client.run(os.getpid).values())
    results, run = dask_map(backend, pid_after, [0.03] * 40)
    record = run.record
    assert set(results) <= pids
    assert record.start_method == "dask"
    assert record.workers == 2
    assert record.counts["passed"] == 40 and sum(record.counts.values()) == 40
    assert sorted(record.tasks.index) == list(range(40))
    assert set(record.tasks.worker_ids) == {"dask-0", "dask-1"}
    # Every task lies inside the run, on this process's monotonic clock, and took its 30 ms.
    for row in record.tasks:
        assert record.started <= row.start < row.end <= record.ended
        assert 0.029 < row.wall_s < 0.5
    # Each lane's tasks do not overlap (one thread per worker).
    for wid in record.tasks.worker_ids:
        rows = sorted((r for r in record.tasks if r.worker == wid), key=lambda r: r.start)
        assert all(a.end <= b.start + 1e-3 for a, b in itertools.pairwise(rows))
    info = record.worker_info
    assert set(info) == {"dask-0", "dask-1"}
    assert sum(i.tasks for i in info.values()) == 40
    assert {p for i in info.values() for p in i.pids} == pids
    # The two lanes ran at the same time (no speedup figure: CI machines are shared).
    lanes = [[r for r in record.tasks if r.worker == w] for w in ("dask-0", "dask-1")]
    assert any(a.start < b.end and b.start < a.end for a in lanes[0] for b in lanes[1])


def test_samples_from_worker_metrics(backend) -> None:
    _, run = dask_map(backend, pid_after, [0.05] * 50)  # > 1 s: a sample tick after the start
    samples = run.record.samples
    assert samples
    assert {s.worker for s in samples} <= {"dask-0", "dask-1"}
    assert all(s.rss > 0 and run.record.started <= s.t <= run.record.ended for s in samples)


def test_streaming_respects_max_ahead(backend) -> None:
    run = start(backend, faults.square, range(300), max_ahead=10)
    seen = []
    try:
        while not run.done or run.outcomes.ready:
            while run.outcomes.ready:
                batch = run.outcomes.ready.popleft()
                seen.extend(batch.values)
                assert run.consumed - run.delivered <= 10
            run.delivered = len(seen)
            run.poll()
    finally:
        run.finish()
    assert sorted(seen) == [x * x for x in range(300)]


def test_longest_first_order(backend) -> None:
    items = [0.01, 0.2, 0.01, 0.1]
    results, run = dask_map(backend, faults.sleep_then, [(s, i) for i, s in enumerate(items)],
                            order=[1, 3, 0, 2])  # fmt: skip
    assert results == [0, 1, 2, 3]
    first = min(run.record.tasks, key=lambda r: r.start)
    assert first.index in (1, 3)


def test_a_start_names_the_batches_that_finished_on_its_worker_before_it(backend) -> None:
    """A worker reports a finished task to the scheduler in a batched message, which a batch
    that kills the worker right after can take along: the scheduler then reports the
    finished batch as lost with the worker too. Each start announcement names the batches of
    the run that finished in that worker process since its last one, so the client knows."""
    from pytest_ploop._backends._dask_task import TOPIC

    run = start(backend, faults.sleep_then, [(0.01, i) for i in range(12)], chunksize=1)
    try:
        run.run_to_end()
    finally:
        run.finish()
    events = [msg for _, msg in backend.client.get_events(TOPIC) if msg["token"] == run.token]
    assert len(events) == 12
    finished_before: dict[str, set[int]] = {}
    named: list[int] = []
    for msg in events:
        ran_here = finished_before.setdefault(msg["worker"], set())
        assert set(msg["finished"]) <= ran_here  # only batches that ran on this worker
        named += msg["finished"]
        ran_here.add(msg["seq"])
    # Every batch but the last on each worker is named by the next start there, once.
    assert sorted(named) == sorted(set(named))
    assert len(named) == 12 - len(finished_before)
