"""Memory and the worker count: how much a worker needs, how much there is, how many fit.

    worker, after each test      rss_now() / rss_peak()  ──> emitted with the test's reports
    main process, end of a run   the highest worker peak ──> pytest's cache (CACHE_KEY)
    next ``--ploop-workers=auto``  fit(cpus, per worker, available) -> the worker count,
                                   and one line saying so when memory capped it

A worker's need is the larger of its peak RSS in the last parallel run (the kernel's high-water
mark of each worker process, so a spike between two samples counts) and
``--ploop-max-worker-rss`` (a worker may grow to that before it is replaced). What is available
is ``--ploop-memory-budget`` when given, else the memory the system reports available, capped
by the cgroup's memory limit (a container's limit, which the system-wide figure ignores).

RSS counts the pages a worker still shares with the main process it was forked from: the
estimate errs on the side of fewer workers.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .._report._format import size

if TYPE_CHECKING:
    from .._engine._record import Sample

CACHE_KEY = "ploop/memory"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


# -- in a worker ----------------------------------------------------------------------------


def rss_now() -> int:
    """This process's resident memory now, in bytes (one read of ``/proc/self/statm``)."""
    try:
        with open(_STATM, "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # pragma: no cover - not Linux
        return rss_peak()


def rss_peak() -> int:
    """This process's highest resident memory so far, in bytes (a forked process starts its
    own high-water mark at the fork)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; Linux: KiB


# -- how much there is ----------------------------------------------------------------------


def _cgroup_free(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes the cgroup may still use (v2 ``memory.max`` or v1 ``limit_in_bytes``, less what
    it uses), if it has a limit."""
    pairs = [
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ]
    for limit_name, usage_name in pairs:
        try:
            limit_text = (root / limit_name).read_text().strip()
            usage = int((root / usage_name).read_text())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or not limit_text.isdigit() or int(limit_text) >= 1 << 60:
            return None  # v1 says "no limit" with a huge number
        return max(0, int(limit_text) - usage)
    return None


def available_memory() -> int:
    """Bytes of memory new workers may use: what the system reports available, capped by the
    cgroup's limit when there is one."""
    from .._engine import _metrics

    available = _metrics.available_memory()
    free = _cgroup_free()
    return available if free is None else min(available, free)


# -- how many fit ---------------------------------------------------------------------------


def fit(cpus: int, per_worker: int, available: int) -> int:
    """Workers that fit: at most ``cpus``, at most ``available // per_worker``, at least one."""
    return max(1, min(cpus, available // max(1, per_worker)))


@dataclass(frozen=True)
class Cap:
    """How ``--ploop-workers=auto`` was decided (``workers < cpus``: memory capped it)."""

    workers: int
    cpus: int
    per_worker: int
    per_worker_source: str  # what the per-worker figure is
    available: int
    available_source: str

    @property
    def capped(self) -> bool:
        return self.workers < self.cpus

    def line(self) -> str:
        """One line for the terminal: the count, and why."""
        return (
            f"ploop: --ploop-workers=auto: {self.workers} worker"
            f"{'s' if self.workers != 1 else ''}, not {self.cpus} (one per CPU): each may need "
            f"{size(self.per_worker)} ({self.per_worker_source}) and "
            f"{size(self.available)} is {self.available_source}"
        )


def cap_workers(
    config: pytest.Config, cpus: int, max_rss: int | None, budget: int | None
) -> Cap | None:
    """The worker count for ``--ploop-workers=auto``, or ``None`` when nothing says how much
    a worker needs (no run recorded its peak, no ``--ploop-max-worker-rss``)."""
    needs = []
    peak = recorded_peak(config)
    if peak is not None:
        needs.append((peak, "its peak RSS in the last run"))
    if max_rss is not None:
        needs.append((max_rss, "--ploop-max-worker-rss"))
    if not needs:
        return None
    per_worker, why = max(needs)
    if budget is not None:
        available, where = budget, "the budget (--ploop-memory-budget)"
    else:
        available, where = available_memory(), "available"
    return Cap(fit(cpus, per_worker, available), cpus, per_worker, why, available, where)


# -- what the last run needed ---------------------------------------------------------------


def recorded_peak(config: pytest.Config) -> int | None:
    """The highest peak RSS of a worker in the last parallel run, from pytest's cache."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return None
    data = cache.get(CACHE_KEY, None)
    peak = data.get("worker_peak_rss") if isinstance(data, dict) else None
    # Only a hint: a hand-edited or foreign value is ignored, never an error.
    if isinstance(peak, bool) or not isinstance(peak, int) or peak <= 0:
        return None
    return peak


def save_peak(config: pytest.Config, peaks: Iterable[int], workers: int) -> None:
    """Remember the highest of ``peaks`` (bytes, one per worker process) for the next run."""
    cache = getattr(config, "cache", None)
    peak = max((p for p in peaks if p > 0), default=0)
    if cache is None or peak <= 0:
        return
    cache.set(CACHE_KEY, {"worker_peak_rss": int(peak), "workers": workers})


def last_sampled_rss(samples: Iterable[Sample], worker: str) -> int:
    """The last RSS the main process sampled of ``worker`` (0 without a sample)."""
    rss = 0
    for s in samples:
        if s.worker == worker:
            rss = s.rss
    return rss


def over_limit_note(samples: Iterable[Sample], worker: str, limit: int | None) -> str:
    """A crash report's line when the worker was past ``--ploop-max-worker-rss`` (a worker is
    replaced between tests; one that grows past the limit in a test runs on until it ends)."""
    if limit is None:
        return ""
    rss = last_sampled_rss(samples, worker)
    if rss <= limit:
        return ""
    return (
        f"ploop: worker {worker} was over the memory limit in this test: its RSS was "
        f"{size(rss)} at the last sample, past --ploop-max-worker-rss="
        f"{size(limit)}"
    )
