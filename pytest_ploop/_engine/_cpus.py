"""How many CPUs this process may really use: affinity and cgroup CPU quota."""

from __future__ import annotations

import math
import os
from pathlib import Path

# The processes a ploop run and its fan-outs may use at once (see ``pytest_ploop._fanout``).
BUDGET_ENV = "PLOOP_FANOUT_BUDGET"


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), if one is set."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def resolve_workers(workers: int | str | None, default: int = 0) -> int:
    """Turn a ``workers`` option into a count; raise ``ValueError`` with the fix otherwise.

    ``None`` means ``default`` (or the available CPUs when that is 0); ``"auto"`` means the
    available CPUs.
    """
    if workers is None:
        return default or available_cpus()
    if isinstance(workers, str):
        if workers.strip().lower() == "auto":
            return available_cpus()
        try:
            workers = int(workers)
        except ValueError:
            raise ValueError(
                f"workers={workers!r} is not a whole number or 'auto'; "
                "pass a count such as workers=4, or workers='auto' for the CPUs available"
            ) from None
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers={workers!r} must be an int or 'auto'")
    if workers < 1:
        raise ValueError(
            f"workers={workers} must be at least 1 (use workers=1 to run in this process)"
        )
    return workers
