"""Resource sampling and process-tree discovery with psutil (the only module importing it)."""

from __future__ import annotations

import contextlib
import time

import psutil

from ._record import Sample


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` (its children, theirs, ...); empty if it is gone."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The ones of ``procs`` that still run (zombies count as gone)."""
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def kill_all(procs: list[psutil.Process], sig: int) -> None:
    """Send ``sig`` to each process, ignoring those already gone."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def available_memory() -> int:
    """Bytes of memory available to new work."""
    return int(psutil.virtual_memory().available)


class Sampler:
    """Reads workers' CPU, memory and I/O; keeps the psutil handles between readings."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, workers: dict[str, int]) -> list[Sample]:
        """One :class:`Sample` per live worker (``{worker id: pid}``)."""
        now = time.monotonic()
        out = []
        for wid, pid in workers.items():
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = self._procs[pid] = psutil.Process(pid)
                    proc.cpu_percent()  # the first reading only starts the interval
                except psutil.Error:
                    continue
            try:
                with proc.oneshot():
                    cpu = proc.cpu_percent()
                    rss = proc.memory_info().rss
                    io = proc.io_counters() if hasattr(proc, "io_counters") else None
                    ctx = proc.num_ctx_switches()
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            out.append(
                Sample(
                    now,
                    wid,
                    pid,
                    cpu,
                    rss,
                    io.read_bytes if io else 0,
                    io.write_bytes if io else 0,
                    ctx.voluntary + ctx.involuntary,
                    0,
                )
            )
        return out

    def forget(self, pid: int) -> None:
        """Drop the handle of a worker that ended."""
        self._procs.pop(pid, None)
