"""Test durations: recorded in pytest's cache after every run, used to hand out the longest
tests first and to cut a suite into shards of equal duration.

Pure functions here (ordering and sharding take plain values), and one small plugin object
that records durations.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .._engine._schedule import longest_first

__all__ = ["group_costs", "longest_first", "merge_files", "parse_shard", "shard"]

CACHE_KEY = "ploop/durations"


def group_costs(groups: Sequence[Sequence[str]], durations: Mapping[str, float]) -> list[float]:
    """The cost of each group of node ids: the sum of their recorded durations, a test with
    none counting as the median of the known ones (or 1 s when none is known)."""
    known = [d for d in durations.values() if d >= 0]
    default = statistics.median(known) if known else 1.0
    return [sum(durations.get(nodeid, default) for nodeid in group) for group in groups]


def shard(costs: Sequence[float], count: int) -> list[list[int]]:
    """Cut positions into ``count`` shards of near-equal total cost (greedy LPT: each, longest
    first, to the least-loaded shard). Deterministic for the same costs; every position is
    in exactly one shard; each shard lists its positions in collection order."""
    loads = [0.0] * count
    shards: list[list[int]] = [[] for _ in range(count)]
    for i in longest_first(costs):
        target = min(range(count), key=lambda s: (loads[s], len(shards[s]), s))
        shards[target].append(i)
        loads[target] += costs[i]
    return [sorted(s) for s in shards]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; ``UsageError`` naming the fix otherwise."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k = n = 0
    if not (n >= 1 and 1 <= k <= n):
        raise pytest.UsageError(
            f"--ploop-shard={text!r}: give K/N with 1 <= K <= N, such as --ploop-shard=1/4"
        )
    return k, n


def load(config: pytest.Config) -> dict[str, float]:
    """Durations recorded by earlier runs (empty without the cache plugin)."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return {}
    data = cache.get(CACHE_KEY, {})
    if not isinstance(data, dict):
        return {}
    # The cache is only a hint: an entry that is not a finite, non-negative number (a
    # hand-edited or foreign file) is skipped; float(None) here was an INTERNALERROR.
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    }


def merge_files(paths: Sequence[Path]) -> dict[str, float]:
    """Merge duration files (or ``.pytest_cache`` folders): later files win per test."""
    merged: dict[str, float] = {}
    for path in paths:
        if path.is_dir():
            path = path / "v" / CACHE_KEY
        data: Any = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a durations file (a JSON object of test ids)")
        merged.update({str(k): float(v) for k, v in data.items()})
    return merged


class DurationRecorder:
    """Sums each test's setup, call and teardown time; saves them in the cache at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.seen: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seen[report.nodeid] = self.seen.get(report.nodeid, 0.0) + report.duration

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.seen:
            return
        durations = load(self.config)
        durations.update({k: round(v, 6) for k, v in self.seen.items() if math.isfinite(v)})
        cache.set(CACHE_KEY, durations)
