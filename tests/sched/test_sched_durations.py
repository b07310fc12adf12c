"""Issue 6: the pure parts (costs, LPT shards, parsing) and merging duration files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sched_support import Project

from pytest_ploop._testing._durations import group_costs, merge_files, parse_shard, shard

costs_lists = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=60)


@given(costs=costs_lists, count=st.integers(min_value=1, max_value=8))
def test_shard_is_a_partition_within_the_greedy_bound(costs: list[float], count: int) -> None:
    shards = shard(costs, count)
    assert len(shards) == count
    assert sorted(i for s in shards for i in s) == list(range(len(costs)))
    for s in shards:
        assert s == sorted(s)
    if costs:  # list scheduling: no shard exceeds the mean load by more than one task
        loads = [sum(costs[i] for i in s) for s in shards]
        assert max(loads) <= sum(costs) / count + max(costs) + 1e-6
    assert shard(list(costs), count) == shards  # deterministic


def test_group_costs_sum_a_group_and_count_unknown_tests_as_the_median() -> None:
    durations = {"a": 1.0, "b": 2.0, "c": 9.0}
    assert group_costs([["a", "b"], ["c"], ["new"], ["new", "a"]], durations) == [
        3.0,
        9.0,
        2.0,
        3.0,
    ]
    assert group_costs([["x"], ["y", "z"]], {}) == [1.0, 2.0]  # nothing known: 1 s each


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("3/4", (3, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_merge_files_round_trips_and_later_files_win(tmp_path: Path) -> None:
    one = {"t.py::test_a": 1.5, "t.py::test_b[x-1]": 0.000123}
    two = {"t.py::test_b[x-1]": 2.0, "u.py::Test::test_c": 3.25}
    first = _write(tmp_path / "one.json", one)
    second = _write(tmp_path / "two.json", two)
    assert merge_files([first]) == one
    assert merge_files([first, second]) == one | two
    assert merge_files([second, first]) == two | one
    merged = _write(tmp_path / "merged.json", merge_files([first, second]))
    assert merge_files([merged]) == one | two


def test_merge_files_reads_a_cache_folder_and_refuses_other_json(tmp_path: Path) -> None:
    cache = tmp_path / "job1" / ".pytest_cache"
    _write(cache / "v" / "ploop" / "durations", {"t.py::test_a": 1.0})
    assert merge_files([cache]) == {"t.py::test_a": 1.0}
    with pytest.raises(ValueError, match="not a durations file"):
        merge_files([_write(tmp_path / "list.json", [1, 2])])


def test_shard_caches_merge_into_the_durations_of_the_whole_suite(
    project: Project, tmp_path: Path
) -> None:
    """Two CI jobs each run one shard of the suite in their own checkout; their caches merge
    into the durations of every test, and a later run balances its shards by them."""
    project.pytester.makepyfile(
        test_s="""
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_t(n):
            pass
        """
    )
    caches = []
    for k in (1, 2):
        job = tmp_path / f"job{k}"
        shutil.copytree(project.path, job, ignore=shutil.ignore_patterns("runpytest-*"))
        result = project.pytester.runpytest_subprocess(
            f"--rootdir={job}", str(job), f"--ploop-shard={k}/2", "--ploop-workers=2"
        )
        result.assert_outcomes(passed=3, deselected=3)
        caches.append(job / ".pytest_cache")

    per_job = [merge_files([c]) for c in caches]
    assert len(per_job[0]) == len(per_job[1]) == 3
    merged = merge_files(caches)
    assert merged == per_job[0] | per_job[1]
    assert sorted(merged) == sorted(f"test_s.py::test_t[{n}]" for n in range(6))

    # Into the next run's cache: read back as written, and the next split follows it.
    project.write_durations(merged)
    assert merge_files([project.path / ".pytest_cache"]) == merged
    ids = project.collected()
    first = shard(group_costs([[i] for i in ids], merged), 2)[0]
    assert project.collected("--ploop-shard=1/2") == [ids[p] for p in first]


@pytest.mark.parametrize(
    "data",
    [
        {"test_one.py::test_one": None},
        {"test_one.py::test_one": "slow"},
        {"test_one.py::test_one": {"s": 1}},
        [1, 2, 3],
    ],
    ids=["null", "text", "object", "list"],
)
def test_a_damaged_durations_cache_is_ignored(project: Project, data: object) -> None:
    """Read when the order is made and when the run's durations are saved: neither fails."""
    project.pytester.makepyfile(test_one="def test_one(): pass\ndef test_two(): pass")
    project.durations_file.parent.mkdir(parents=True)
    project.durations_file.write_text(json.dumps(data))
    result = project.run("--ploop-workers=1")
    result.assert_outcomes(passed=2)
    assert set(project.read_durations()) >= {"test_one.py::test_one", "test_one.py::test_two"}
