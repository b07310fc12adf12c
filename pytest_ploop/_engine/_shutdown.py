"""The termination ladder and process-tree kill.

Ending a worker means ending everything it started: the worker leads its own process group,
so one ``killpg`` reaches it and the children that stayed in the group; children that left the
group are found with psutil *before* the worker dies (afterwards they are re-parented and lost
from the tree) and signalled one by one.

Ladder: SIGTERM to every tree at once, wait up to ``wait_s`` for the workers' sentinels,
SIGKILL to whatever is left, then reap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from typing import Protocol

from . import _metrics


class _Proc(Protocol):
    @property
    def pid(self) -> int | None: ...
    @property
    def sentinel(self) -> int: ...
    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def kill_group(pid: int) -> None:
    """SIGKILL what is left of the process group ``pid`` led (a worker that already exited)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def terminate(procs: Sequence[_Proc], wait_s: float = 1.0, *, first: int = signal.SIGTERM) -> None:
    """End ``procs`` and all their descendants: ``first`` signal, wait, SIGKILL, reap."""
    pids = [p.pid for p in procs if p.pid is not None]
    trees = [d for pid in pids for d in _metrics.descendants(pid)]
    for pid in pids:
        _signal_group(pid, first)
    _metrics.kill_all(trees, first)
    deadline = time.monotonic() + wait_s
    pending = [p for p in procs if p.is_alive()]
    while pending and (left := deadline - time.monotonic()) > 0:
        wait([p.sentinel for p in pending], timeout=left)
        pending = [p for p in pending if p.is_alive()]
    for p in pending:
        if p.pid is not None:
            _signal_group(p.pid, signal.SIGKILL)
    for pid in pids:
        kill_group(pid)
    _metrics.kill_all(_metrics.alive(trees), signal.SIGKILL)
    for p in procs:
        p.join(timeout=5)
