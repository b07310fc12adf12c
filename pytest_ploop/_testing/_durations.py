"""Test durations: recorded in pytest's cache after every run, used to hand out the longest
tests first and to cut a suite into shards of equal duration.

Pure functions here (ordering and sharding take plain values), and one small plugin object
that records durations. Exporting and merging the files of several shards is in
``_durations_merge``.
"""

from __future__ import annotations

import heapq
import math
import statistics
import time
from collections.abc import Mapping, Sequence

import pytest

from .._engine._schedule import longest_first
from ._durations_merge import (
    CACHE_KEY,
    RECORDED_KEY,
    SCHEMA,
    SHARD_KEY,
    Measurement,
    measurement_of,
    merge,
    merge_files,
    seconds_of,
)

__all__ = ["group_costs", "longest_first", "merge_files", "parse_shard", "shard"]


def group_costs(groups: Sequence[Sequence[str]], durations: Mapping[str, float]) -> list[float]:
    """The cost of each group of node ids: the sum of their recorded durations, a test with
    none counting as the median of the known ones (or 1 s when none is known)."""
    known = [d for d in durations.values() if d >= 0]
    default = statistics.median(known) if known else 1.0
    return [sum(durations.get(nodeid, default) for nodeid in group) for group in groups]


MAX_SHARDS = 10_000  # far more than the jobs of any CI matrix (GitHub's: 256)


def shard(costs: Sequence[float], count: int) -> list[list[int]]:
    """Cut positions into ``count`` shards of near-equal total cost (greedy LPT: each, longest
    first, to the least-loaded shard, ties to the one with fewer positions, then the first).
    Deterministic for the same costs; every position is in exactly one shard; each shard
    lists its positions in collection order."""
    # The least-loaded shard from a heap: n log(count) rather than n * count. The first
    # positions each go to a shard of their own, in order (an empty shard wins every tie), so
    # shards past the number of positions stay empty and the heap holds only the others.
    used = min(count, len(costs))
    shards: list[list[int]] = [[] for _ in range(count)]
    heap = [(0.0, 0, s) for s in range(used)]
    for i in longest_first(costs):
        load, n, target = heapq.heappop(heap)
        shards[target].append(i)
        heapq.heappush(heap, (load + costs[i], n + 1, target))
    return [sorted(s) for s in shards]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; ``UsageError`` naming the fix otherwise (N is at most
    :data:`MAX_SHARDS`)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k = n = 0
    if not (n >= 1 and 1 <= k <= n):
        raise pytest.UsageError(
            f"--ploop-shard={text!r}: give K/N with 1 <= K <= N, such as --ploop-shard=1/4"
        )
    if n > MAX_SHARDS:
        raise pytest.UsageError(
            f"--ploop-shard={text!r}: at most {MAX_SHARDS:,} shards (one CI job each): give "
            "a smaller N"
        )
    return k, n


def load(config: pytest.Config, key: str = CACHE_KEY) -> dict[str, float]:
    """Durations recorded by earlier runs (empty without the cache plugin); with
    ``key=RECORDED_KEY``, when each was measured."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return {}
    data = cache.get(key, {})
    if not isinstance(data, dict):
        return {}
    # The cache is only a hint: an entry that is not a finite, non-negative number (a
    # hand-edited or foreign file) is skipped; float(None) here was an INTERNALERROR.
    return {str(k): v for k, v in ((k, seconds_of(v)) for k, v in data.items()) if v is not None}


def _sharded(cache: pytest.Cache) -> dict[str, Measurement]:
    """What sharded runs measured (see :class:`DurationRecorder`); empty when nothing, or
    when the value is not theirs (only a hint, as the durations are)."""
    data = cache.get(SHARD_KEY, None)
    tests = data.get("tests") if isinstance(data, dict) else None
    if not isinstance(tests, dict):
        return {}
    return {str(t): m for t, e in tests.items() if (m := measurement_of(e)) is not None}


class DurationRecorder:
    """Sums each test's setup, call and teardown time; saves them in the cache at the end,
    with when they were measured.

    The tests this run did not measure keep their earlier durations (another shard's, or
    deselected ones), unless this run shows that they no longer exist: when it collected the
    whole suite (see :meth:`collected_everything`), entries for tests it neither collected nor
    deselected are dropped.

    A ``sharded`` run keeps what it measured apart (``SHARD_KEY``): the durations a shard's cut
    reads do not change until every shard of the suite ran. Shards run one after another in
    one checkout cut from what the first one read; each cut from what the one before wrote
    lost tests and ran others twice. ``durations export`` carries both; ``durations merge
    --into`` and an unsharded run fold them into the durations the next cut reads.
    """

    def __init__(self, config: pytest.Config, sharded: bool = False) -> None:
        self.config = config
        self.sharded = sharded
        self.seen: dict[str, float] = {}
        self.deselected: set[str] = set()
        self.collect_errors = False

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seen[report.nodeid] = self.seen.get(report.nodeid, 0.0) + report.duration

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        # Not every item is a test: pytest-testmon deselects with a stand-in that has no id.
        ids = (getattr(item, "nodeid", None) for item in items)
        self.deselected.update(nodeid for nodeid in ids if isinstance(nodeid, str))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.seen:
            return
        now = round(time.time(), 3)
        fresh = {
            nodeid: Measurement(round(seconds, 6), now)
            for nodeid, seconds in self.seen.items()
            if math.isfinite(seconds)
        }
        if self.sharded:
            kept = merge([_sharded(cache), fresh])
            tests = {k: {"seconds": m.seconds, "recorded": m.recorded} for k, m in kept.items()}
            cache.set(SHARD_KEY, {"schema": SCHEMA, "tests": tests})
            return
        recorded = load(self.config, RECORDED_KEY)
        earlier = {k: Measurement(v, recorded.get(k, 0.0)) for k, v in load(self.config).items()}
        durations = merge([earlier, _sharded(cache), fresh])
        if self.collected_everything(exitstatus):
            existing = {item.nodeid for item in session.items} | self.deselected
            durations = {k: m for k, m in durations.items() if k in existing}
        cache.set(CACHE_KEY, {k: m.seconds for k, m in durations.items()})
        cache.set(RECORDED_KEY, {k: m.recorded for k, m in durations.items() if m.recorded})
        cache.set(SHARD_KEY, None)  # folded in

    def collected_everything(self, exitstatus: int) -> bool:
        """Whether this run collected every test of the project: no paths or node ids given
        (the ``testpaths``, or the root folder), nothing left out by ``--ignore`` or ``--lf``,
        no collection error, not interrupted. Deselected tests were collected (a shard's run
        counts: it collects everything and deselects the other shards)."""
        config = self.config
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            return False
        if (
            config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR
            and config.invocation_params.dir != config.rootpath
        ):
            return False
        narrowed = any(config.getoption(name, None) for name in ("ignore", "ignore_glob", "lf"))
        return not (narrowed or self.collect_errors or exitstatus == pytest.ExitCode.INTERRUPTED)
