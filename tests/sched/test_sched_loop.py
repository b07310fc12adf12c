"""Issue 6, the loop API: ``schedule="lpt"`` with ``cost=`` a function or an earlier record.

Two workers: each worker runs the chunks it was sent in the order they were sent, so the
order of dispatch shows in the run record as each worker's tasks sorted by start time.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import pytest_ploop as ploop
from pytest_ploop._engine._workers import Workers
from pytest_ploop._loop import _costs

COSTS = [1.0, 5.0, 3.0, 8.0, 2.0, 7.0, 4.0, 6.0]


def _wait(seconds: float) -> float:
    time.sleep(seconds)  # the work itself: durations to measure, not synchronisation
    return seconds


def _per_worker(record: ploop.RunRecord) -> dict[str, list[int]]:
    """Each worker's task indices in the order they started."""
    rows = sorted(record.tasks, key=lambda r: r.start)
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row.worker, []).append(row.index)
    return out


def _assert_dispatched_in(order: list[int], record: ploop.RunRecord) -> None:
    per_worker = _per_worker(record)
    assert len(per_worker) == 2
    assert {tasks[0] for tasks in per_worker.values()} == set(order[:2])
    for tasks in per_worker.values():
        positions = [order.index(i) for i in tasks]
        assert positions == sorted(positions), (order, per_worker)
    assert sorted(i for tasks in per_worker.values() for i in tasks) == sorted(order)


def test_lpt_hands_out_the_costliest_items_first() -> None:
    with ploop.Pool(workers=2) as pool:
        results = pool.map(lambda x: x * 10, COSTS, schedule="lpt", cost=lambda x: x)
        record = pool.last_run
    assert results == [x * 10 for x in COSTS]  # results stay in input order
    assert record is not None
    _assert_dispatched_in([3, 5, 7, 1, 6, 2, 4, 0], record)


def test_without_lpt_items_go_out_in_input_order() -> None:
    with ploop.Pool(workers=2) as pool:
        pool.map(lambda x: x, COSTS)
        record = pool.last_run
    assert record is not None
    _assert_dispatched_in(list(range(len(COSTS))), record)


def test_lpt_takes_the_costs_from_an_earlier_run() -> None:
    items = [0.005, 0.06, 0.02, 0.1, 0.04]
    with ploop.Pool(workers=2) as pool:
        assert pool.map(_wait, items) == items
        earlier = pool.last_run
        assert earlier is not None
        measured = {row.index: row.wall_s for row in earlier.tasks}
        assert all(measured[i] >= items[i] for i in range(len(items)))
        assert pool.map(_wait, items, schedule="lpt", cost=earlier) == items
        record = pool.last_run
    assert record is not None
    _assert_dispatched_in(sorted(range(len(items)), key=lambda i: -measured[i]), record)


def test_lpt_consumes_a_generator_and_streams_in_input_order() -> None:
    with ploop.Pool(workers=2, schedule="lpt", cost=lambda x: x) as pool:
        assert list(pool.imap(lambda x: -x, (x for x in COSTS))) == [-x for x in COSTS]
        record = pool.last_run
    assert record is not None
    _assert_dispatched_in([3, 5, 7, 1, 6, 2, 4, 0], record)


def test_lpt_with_one_worker_runs_in_this_process() -> None:
    pids = ploop.map(lambda _: os.getpid(), [1, 2], workers=1, schedule="lpt", cost=float)
    assert pids == [os.getpid()] * 2


def test_costs_from_a_shorter_record_count_new_items_as_the_median() -> None:
    with ploop.Pool(workers=2) as pool:
        pool.map(_wait, [0.03, 0.0, 0.01])
        earlier = pool.last_run
    assert earlier is not None
    costs = _costs(earlier, [None] * 5)
    assert costs[0] > costs[2] > costs[1]
    assert costs[3] == costs[4] == costs[2]  # the median of the three known


@pytest.mark.parametrize(
    "call",
    [
        lambda: ploop.map(abs, [1], workers=2, schedule="lpt"),
        lambda: ploop.Pool(workers=2, schedule="lpt"),
        lambda: ploop.Pool(workers=2).map(abs, [1], schedule="lpt"),
    ],
    ids=["map", "Pool", "per-call"],
)
def test_lpt_without_a_cost_says_what_to_pass(call: Any) -> None:
    with pytest.raises(ValueError, match=r"schedule='lpt' \(longest first\) needs cost="):
        call()


def _no_workers(*args: object) -> None:
    raise AssertionError("a worker was started")


def test_an_unknown_schedule_names_lpt_among_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Workers, "start", _no_workers)  # nothing to run before the check
    message = "schedule='longest' is not one of 'dynamic', 'static', 'guided', 'lpt'"
    with pytest.raises(ValueError, match=message):
        ploop.map(abs, [1], workers=2, schedule="longest")
    with pytest.raises(ValueError, match="start_method='thread' is not one of 'fork'"):
        ploop.map(abs, [1], workers=2, start_method="thread")


def test_a_cost_function_that_fails_raises_before_any_worker_starts() -> None:
    with pytest.raises(ZeroDivisionError):
        ploop.map(abs, [1, 0], workers=2, schedule="lpt", cost=lambda x: 1 / x)
