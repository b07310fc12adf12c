"""Property: whatever the mix of tasks and settings, every task gets exactly one outcome and the
results keep their input order."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_ploop as ploop
from tests import faults

KINDS = {"ok": "passed", "slow": "passed", "raise": "failed", "crash": "crashed"}


Run = tuple[list[str], int, int | None, str, str]


@st.composite
def runs(draw: st.DrawFn) -> Run:
    workers = draw(st.integers(1, 3))
    # A crash (os._exit) in the calling process would end the test run itself: workers=1
    # runs the tasks here, so it gets every kind but that one.
    kinds = sorted(KINDS) if workers > 1 else ["ok", "raise", "slow"]
    tasks = draw(st.lists(st.sampled_from(kinds), max_size=12))
    chunksize = draw(st.none() | st.integers(1, 4))
    schedule = draw(st.sampled_from(["dynamic", "static", "guided"]))
    call = draw(st.sampled_from(["map", "imap", "imap_unordered"]))
    return tasks, workers, chunksize, schedule, call


def collect(pool: ploop.Pool, call: str, items: list[Any]) -> tuple[list[Any], dict[int, str]]:
    """Results at their input positions (``None`` where a task did not pass), and the kind of
    each failure, from the call ``call``."""
    results: list[Any] = [None] * len(items)
    try:
        if call == "map":
            results = pool.map(faults.mixed, items)
        elif call == "imap":
            # In order: a task that did not pass yields nothing; its successors come next.
            got = []
            for value in pool.imap(faults.mixed, items):
                got.append(value)
                results[value // 3] = value
            assert got == sorted(got)
        else:
            for index, value in pool.imap_unordered(faults.mixed, items, with_index=True):
                assert results[index] is None, f"task {index} yielded twice"
                results[index] = value
    except ploop.LoopError as err:
        if call == "map":
            assert err.results is not None
            results = err.results
        else:
            assert err.results is None  # streamed results are not kept
        assert [f.index for f in err.failures] == sorted(f.index for f in err.failures)
        assert len(err.exceptions) == len(err.failures)
        assert err.total == len(items)
        return results, {f.index: f.kind for f in err.failures}
    return results, {}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs())
def test_every_task_gets_exactly_one_outcome_and_results_keep_their_order(run: Run) -> None:
    tasks, workers, chunksize, schedule, call = run
    items = [(how, i * 3) for i, how in enumerate(tasks)]
    expected_kinds = {i: KINDS[how] for i, how in enumerate(tasks) if KINDS[how] != "passed"}
    with ploop.Pool(workers, chunksize=chunksize, schedule=schedule) as pool:
        results, failures = collect(pool, call, items)
        record = pool.last_run

    assert failures == expected_kinds
    passed = set(range(len(tasks))) - set(failures)
    assert results == [i * 3 if i in passed else None for i in range(len(tasks))]
    assert record is not None
    assert sum(record.counts.values()) == len(tasks)
    assert record.counts["passed"] == len(passed)
    for kind in ("failed", "crashed"):
        assert record.counts[kind] == sum(1 for k in expected_kinds.values() if k == kind)
    # Every task ran and is recorded once (a crashed task too, by the main process).
    assert sorted(record.tasks.index) == list(range(len(tasks)))
    assert {r.index for r in record.tasks if r.outcome == "passed"} == passed
