"""Scheduling policies: plain values in, chunk sizes out. No processes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_ploop._engine._schedule import (
    MAX_CHUNK,
    MAX_CHUNK_S,
    PROBE_BYTES,
    PROBE_TASKS,
    SCHEDULES,
    SHARE,
    TAIL_MIN_S,
    TARGET_CHUNK_S,
    Dynamic,
    Fixed,
    Guided,
    Progress,
    Static,
    longest_first,
    make_scheduler,
    probe_size,
)


def drain(
    policy: Dynamic | Guided | Static | Fixed, total: int, workers: int, mean: float = 0.001
) -> list[int]:
    """The chunk sizes a policy hands out for ``total`` tasks of ``mean`` seconds, as the main
    process asks for them (the last chunk is cut to what is left)."""
    sizes: list[int] = []
    left = total
    while left:
        size = min(left, policy.chunk_size(Progress(left, workers, mean)))
        sizes.append(size)
        left -= size
    return sizes


# -- fixed and static ----------------------------------------------------------------------------


def test_fixed_gives_its_size_whatever_it_knows() -> None:
    policy = Fixed(7)
    for progress in (Progress(None, 1, None), Progress(3, 8, 10.0), Progress(10**6, 2, 1e-6)):
        assert policy.chunk_size(progress) == 7


@pytest.mark.parametrize(
    ("total", "workers", "expected"), [(100, 4, 25), (10, 4, 3), (3, 8, 1), (1, 1, 1), (0, 2, 1)]
)
def test_static_cuts_one_block_per_worker(total: int, workers: int, expected: int) -> None:
    assert Static(total).chunk_size(Progress(total, workers, None)) == expected


def test_static_blocks_cover_the_input_in_at_most_one_block_per_worker() -> None:
    for total in range(1, 60):
        for workers in range(1, 7):
            sizes = drain(Static(total), total, workers)
            assert sum(sizes) == total
            assert len(sizes) <= workers


def test_static_of_an_input_of_unknown_length_uses_blocks_of_64() -> None:
    assert Static(None).chunk_size(Progress(None, 4, None)) == 64


# -- dynamic ---------------------------------------------------------------------------------


def test_dynamic_measures_first_with_one_task() -> None:
    assert Dynamic().chunk_size(Progress(10_000, 4, None)) == 1
    assert Dynamic().chunk_size(Progress(None, 4, None)) == 1


def test_dynamic_sizes_a_chunk_to_take_the_target_time() -> None:
    # Tasks of 1 ms, far from the end: a chunk takes about TARGET_CHUNK_S.
    for mean in (0.001, 0.0001, 1e-5):
        size = Dynamic().chunk_size(Progress(None, 4, mean))
        assert abs(size * mean - TARGET_CHUNK_S) <= mean  # a chunk's worth of work
    assert abs(Dynamic(target_s=0.1).chunk_size(Progress(None, 4, 0.001)) - 100) <= 1


def test_dynamic_sends_long_tasks_one_at_a_time() -> None:
    assert Dynamic().chunk_size(Progress(10_000, 4, 2.0)) == 1
    assert Dynamic().chunk_size(Progress(None, 4, TARGET_CHUNK_S * 3)) == 1


def test_dynamic_chunks_are_capped_for_tiny_tasks() -> None:
    assert Dynamic().chunk_size(Progress(None, 2, 1e-9)) == MAX_CHUNK
    assert Dynamic().chunk_size(Progress(None, 2, 0.0)) == MAX_CHUNK


def test_dynamic_shrinks_chunks_near_the_end_so_workers_finish_together() -> None:
    policy = Dynamic()
    far = policy.chunk_size(Progress(100_000, 4, 0.0001))
    near = policy.chunk_size(Progress(800, 4, 0.0001))
    assert far > near == math.ceil(800 / (2 * 4))


def test_dynamic_gives_a_share_of_a_long_input_to_each_chunk() -> None:
    # 200 tasks of 20 ms on 2 workers: one task per chunk would meet the target time, but
    # each chunk costs a round trip; a chunk takes the remaining tasks over SHARE x workers.
    assert Dynamic().chunk_size(Progress(200, 2, 0.02)) == math.ceil(200 / (SHARE * 2))
    # ... but never more than MAX_CHUNK_S of work.
    assert Dynamic().chunk_size(Progress(10_000, 2, 0.02)) == int(MAX_CHUNK_S / 0.02)
    # Tasks longer than MAX_CHUNK_S still go one at a time; an input of unknown length gets
    # no share.
    assert Dynamic().chunk_size(Progress(10_000, 2, MAX_CHUNK_S * 2)) == 1
    assert Dynamic().chunk_size(Progress(None, 2, 0.02)) == 1
    # The whole loop: 29 chunks rather than 200, ending with chunks of one task.
    sizes = drain(Dynamic(), 200, 2, mean=0.02)
    assert len(sizes) == 29 and sizes[-4:] == [1, 1, 1, 1]


def test_dynamic_tail_chunks_keep_a_floor_of_work() -> None:
    # 10 tiny tasks left on 4 workers: a share of the tail would be 2 tasks, but chunks of a
    # few microseconds cost more in messages than they save; the floor is TAIL_MIN_S of work.
    mean = 1e-6
    size = Dynamic().chunk_size(Progress(10_000, 4, mean))
    assert size > math.ceil(10_000 / (2 * 4))
    assert abs(size * mean - TAIL_MIN_S) <= mean


def test_dynamic_hands_out_every_task_of_a_known_input() -> None:
    sizes = drain(Dynamic(), 1000, 4)
    assert sum(sizes) == 1000
    assert sizes[0] == math.ceil(1000 / (SHARE * 4))
    assert sizes == sorted(sizes, reverse=True)  # the chunks shrink towards the end
    assert sizes[-1] * 0.001 <= TARGET_CHUNK_S


# -- guided ----------------------------------------------------------------------------------


def test_guided_gives_the_remaining_work_over_twice_the_workers() -> None:
    assert Guided().chunk_size(Progress(100, 4, None)) == 13
    assert Guided().chunk_size(Progress(1, 4, None)) == 1
    assert Guided().chunk_size(Progress(10**9, 1, None)) == MAX_CHUNK


def test_guided_chunks_shrink_to_one() -> None:
    sizes = drain(Guided(), 200, 3)
    assert sum(sizes) == 200
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == math.ceil(200 / 6)
    assert sizes[-1] == 1


def test_guided_on_an_input_of_unknown_length_adapts_like_dynamic() -> None:
    for mean in (None, 0.001, 5.0):
        progress = Progress(None, 2, mean)
        assert Guided().chunk_size(progress) == Dynamic().chunk_size(progress)


# -- every policy ----------------------------------------------------------------------------

progress_values = st.builds(
    Progress,
    remaining=st.none() | st.integers(0, 10**7),
    workers=st.integers(1, 256),
    mean_task_s=st.none() | st.floats(0, 1e4, allow_nan=False),
)


@given(progress=progress_values, total=st.none() | st.integers(0, 10**7))
def test_every_policy_gives_a_chunk_of_at_least_one_and_at_most_the_cap(
    progress: Progress, total: int | None
) -> None:
    for policy in (Dynamic(), Guided(), Static(total)):
        size = policy.chunk_size(progress)
        assert isinstance(size, int)
        assert 1 <= size <= max(MAX_CHUNK, math.ceil((total or 0) / progress.workers))


# -- choosing a policy -----------------------------------------------------------------------


def test_make_scheduler_names_each_policy() -> None:
    assert make_scheduler("dynamic", None, 10) == Dynamic()
    assert make_scheduler("static", None, 10) == Static(10)
    assert make_scheduler("guided", None, None) == Guided()
    assert set(SCHEDULES) == {"dynamic", "static", "guided"}


@pytest.mark.parametrize("name", [*SCHEDULES, "anything"])
def test_an_explicit_chunksize_wins_over_the_policy(name: str) -> None:
    assert make_scheduler(name, 5, 100) == Fixed(5)


def test_an_unknown_policy_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"schedule='nope' is not one of 'dynamic', 'static'"):
        make_scheduler("nope", None, 10)


# -- longest first ---------------------------------------------------------------------------


def test_longest_first_orders_by_cost_and_keeps_ties_in_input_order() -> None:
    assert longest_first([1.0, 5.0, 3.0, 5.0, 0.0]) == [1, 3, 2, 0, 4]
    assert longest_first([]) == []
    assert longest_first([2.0, 2.0, 2.0]) == [0, 1, 2]


@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=50))
def test_longest_first_is_a_permutation_with_costs_not_increasing(costs: list[float]) -> None:
    order = longest_first(costs)
    assert sorted(order) == list(range(len(costs)))
    ordered = [costs[i] for i in order]
    assert ordered == sorted(costs, reverse=True)


@pytest.mark.parametrize(
    ("remaining", "workers", "arg_bytes", "expected"),
    [
        (100_000, 2, 5, PROBE_TASKS),  # tiny arguments, a long input: the cap
        (60, 2, 5, 8),  # a short input: a quarter of each worker's part
        (100_000, 2, PROBE_BYTES // 10, 10),  # large arguments: about PROBE_BYTES of them
        (100_000, 2, 1 << 62, 1),  # an argument that cannot be pickled: alone
        (1, 8, 5, 1),
    ],
)
def test_a_probe_takes_a_bounded_number_of_tasks(
    remaining: int, workers: int, arg_bytes: int, expected: int
) -> None:
    assert probe_size(remaining, workers, arg_bytes) == expected
