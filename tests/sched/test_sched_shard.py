"""Issue 6: ``--ploop-shard=K/N`` cuts a suite into N shards, one per CI job.

Durations are written straight into the project's cache, so no test needs to sleep, and the
shards are read from ``--co`` (collection starts no worker, so it runs in process).
"""

from __future__ import annotations

import json
import random

import pytest
from sched_support import Project, ids_of

from pytest_ploop._testing._durations_merge import read_cache

FILES = 4
PER_FILE = 12


@pytest.fixture
def suite(project: Project) -> list[str]:
    """48 tests in 4 files, in collection order."""
    for f in range(FILES):
        project.pytester.makepyfile(
            **{
                f"test_f{f}": f"""
                import pytest

                @pytest.mark.parametrize("n", range({PER_FILE}))
                def test_t(n):
                    pass
                """
            }
        )
    return [i for f in range(FILES) for i in ids_of(f"test_f{f}.py::test_t", range(PER_FILE))]


def _skewed(ids: list[str], seed: int) -> dict[str, float]:
    """Durations from 10 ms to 4 s, a few long tests among many short ones."""
    rng = random.Random(seed)
    return {i: round(rng.choice((0.01, 0.05, 0.2, 0.5, 1.0, 4.0)), 6) for i in ids}


def _shards(project: Project, n: int, *args: str) -> list[list[str]]:
    return [project.collected(f"--ploop-shard={k}/{n}", *args) for k in range(1, n + 1)]


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("durations", ["recorded", "none"])
def test_shards_partition_the_suite(
    project: Project, suite: list[str], n: int, durations: str
) -> None:
    if durations == "recorded":
        project.write_durations(_skewed(suite, seed=n))
    assert project.collected() == suite
    shards = _shards(project, n)
    assert sorted(t for shard in shards for t in shard) == sorted(suite)  # each test once
    for shard in shards:
        assert shard  # 48 tests: no shard is empty
        assert shard == [t for t in suite if t in shard]  # in collection order
    if durations == "none":  # balanced by count
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("n", [2, 3, 4])
def test_shards_are_balanced_within_ten_percent_of_the_ideal(
    project: Project, suite: list[str], n: int
) -> None:
    durations = _skewed(suite, seed=1)
    project.write_durations(durations)
    ideal = sum(durations.values()) / n
    assert max(durations.values()) < ideal  # a suite that can be balanced
    loads = [sum(durations[t] for t in shard) for shard in _shards(project, n)]
    assert max(loads) <= 1.10 * ideal, (loads, ideal)
    assert min(loads) >= 0.90 * ideal, (loads, ideal)


def test_a_shard_is_the_same_in_every_job(
    project: Project, suite: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every CI job computes the split itself: with the same durations it must be the same
    split in a fresh interpreter, whatever the hash seed."""
    project.write_durations(_skewed(suite, seed=3))
    expected = project.collected("--ploop-shard=2/3")
    for seed in ("0", "1"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        result = project.pytester.runpytest_subprocess("--co", "-q", "--ploop-shard=2/3")
        got = [line for line in result.outlines if "::" in line and " " not in line]
        assert got == expected


def test_shards_keep_files_whole_with_dist_file(project: Project, suite: list[str]) -> None:
    project.write_durations(_skewed(suite, seed=4))
    shards = _shards(project, 2, "--ploop-dist=file")
    files = [{t.split("::")[0] for t in shard} for shard in shards]
    assert files[0].isdisjoint(files[1])
    assert sum(len(s) for s in shards) == len(suite)


def test_a_shard_runs_on_workers_and_records_its_durations(
    project: Project, suite: list[str]
) -> None:
    mine = project.collected("--ploop-shard=1/2")
    result = project.run("--ploop-shard=1/2", "--ploop-workers=2")
    result.assert_outcomes(passed=len(mine), deselected=len(suite) - len(mine))
    ran = [e for e in project.events() if e.kind == "start"]
    assert sorted(e.nodeid for e in ran) == sorted(mine)
    assert {e.worker for e in ran} == {"w0", "w1"}
    # Beside the durations the cut read (none yet), where durations export finds them.
    assert not project.durations_file.exists()
    assert set(read_cache(project.path / ".pytest_cache")) == set(mine)


def test_shards_run_one_after_another_in_one_checkout_run_each_test_once(
    project: Project, suite: list[str]
) -> None:
    """Each shard's run wrote its durations where the next shard's cut read them: the next
    cut differed, and the three shards lost tests and ran others twice. An unsharded run
    then folds what the shards measured into the durations the next cut reads."""
    project.write_durations(_skewed(suite, seed=7))
    ran: list[str] = []
    for k in (1, 2, 3):
        mine = project.collected(f"--ploop-shard={k}/3")
        result = project.run(f"--ploop-shard={k}/3", "--ploop-workers=2")
        result.assert_outcomes(passed=len(mine), deselected=len(suite) - len(mine))
        ran += [e.nodeid for e in project.events() if e.kind == "start"]
    assert sorted(ran) == sorted(suite)
    assert project.read_durations() == _skewed(suite, seed=7)  # what every cut read
    measured = {t: m.seconds for t, m in read_cache(project.path / ".pytest_cache").items()}
    assert set(measured) == set(suite) and max(measured.values()) < 1.0  # (skewed: up to 4 s)
    project.run("--ploop-workers=2", "-k", "test_f0").assert_outcomes(passed=12, deselected=36)
    after = project.read_durations()
    assert {t: after[t] for t in suite[12:]} == {t: measured[t] for t in suite[12:]}
    assert json.loads((project.durations_file.parent / "durations-shards").read_text()) is None


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3", "-1/2"])
def test_a_bad_shard_is_a_usage_error(project: Project, text: str) -> None:
    project.pytester.makepyfile(test_one="def test_one(): pass")
    result = project.pytester.runpytest_inprocess(f"--ploop-shard={text}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--ploop-shard={text!r}: give K/N with 1 <= K <= N*"])
