"""Process checks the test packages share."""

from __future__ import annotations

from collections.abc import Iterable

import psutil


def gone(pids: Iterable[int], timeout: float = 10.0) -> bool:
    """Whether every process in ``pids`` has ended (waiting up to ``timeout`` for it; a zombie
    counts as ended: it runs nothing, and its parent reaps it)."""
    procs = []
    for pid in set(pids):
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return all(_ended(p) for p in alive)


def _ended(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True
