"""Resource sampling and process-tree discovery with psutil (the only module importing it)."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

from ._record import Sample


def _below(pid: int) -> list[int]:
    """The pids of every process below ``pid``, from each thread's ``children`` file in
    /proc: a read per process, where psutil's ``children()`` reads every process's
    status on the machine (a tick samples each worker ten times a second). Where the
    kernel has no such files, psutil's way."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            threads = os.listdir(f"/proc/{parent}/task")
            kids = [
                int(k)
                for t in threads
                for k in _read_text(f"/proc/{parent}/task/{t}/children").split()
            ]
        except FileNotFoundError:
            if parent == pid and os.path.exists(f"/proc/{pid}/task/{pid}"):
                return [p.pid for p in descendants(pid)]  # no children files here
            continue  # gone
        except OSError:
            continue
        found += kids
        todo += kids
    return found


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


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
    """Reads workers' CPU, memory and I/O, each with its child processes' (a test's server,
    a build it runs); keeps the psutil handles between readings."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._below: dict[int, list[int]] = {}  # worker pid -> its descendants last seen

    def sample(self, workers: dict[str, int]) -> list[Sample]:
        """One :class:`Sample` per live worker (``{worker id: pid}``): the sums over the
        worker and every process below it, and how many those are."""
        now = time.monotonic()
        out = []
        seen: set[int] = set()
        for wid, pid in workers.items():
            tree = [pid, *_below(pid)]
            seen.update(tree)
            self._below[pid] = tree[1:]
            readings = [r for p in tree if (r := self._read(p)) is not None]
            if not readings or readings[0][0] != pid:
                continue  # the worker itself is gone
            columns = list(zip(*readings, strict=True))[1:]
            cpu, rss, read, written, ctx = (sum(column) for column in columns)
            out.append(Sample(now, wid, pid, cpu, rss, read, written, ctx, len(readings) - 1))
        for gone in self._procs.keys() - seen:  # ended (a pid reused later is a new process)
            del self._procs[gone]
        return out

    def _read(self, pid: int) -> tuple[int, float, int, int, int, int] | None:
        """``(pid, cpu %, rss, read bytes, written bytes, context switches)``, or ``None``
        when the process is gone."""
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent()  # the first reading only starts the interval
            with proc.oneshot():
                cpu = proc.cpu_percent()
                rss = proc.memory_info().rss
                io = proc.io_counters() if hasattr(proc, "io_counters") else None
                ctx = proc.num_ctx_switches()
        except psutil.Error:
            self._procs.pop(pid, None)
            return None
        read, written = (io.read_bytes, io.write_bytes) if io else (0, 0)
        return pid, cpu, rss, read, written, ctx.voluntary + ctx.involuntary

    def forget(self, pid: int) -> list[psutil.Process]:
        """Drop the handle of a worker that ended; return those of the processes below it
        at the last sample, which may outlive it (one a test started in a session of its
        own is out of the worker's process group, and reparented once the worker died)."""
        self._procs.pop(pid, None)
        return [p for d in self._below.pop(pid, []) if (p := self._procs.get(d)) is not None]
