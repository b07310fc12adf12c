"""Scheduling policies: how many tasks the next chunk gets. Pure: plain values in and out.

The main process asks the policy for a chunk size each time a worker has room. Names follow
OpenMP where they fit:

- ``static``: the input is cut into one block per worker (or blocks of ``chunksize``).
- ``dynamic`` (default): chunk sizes adapt so that a chunk takes about ``TARGET_CHUNK_S`` of
  worker time: tiny tasks go in large chunks (amortising messages), long ones one at a time.
  On an input of known length a chunk also takes a share of what remains (up to
  ``MAX_CHUNK_S`` of work), so that a long loop of tasks of some milliseconds does not pay a
  round trip to the main process per task; near the end chunks shrink so the workers finish
  together.
- ``guided``: chunks of the remaining work divided by twice the workers, shrinking to 1.

An explicit ``chunksize`` fixes the size for every policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

ScheduleName = Literal["dynamic", "static", "guided"]
SCHEDULES: tuple[ScheduleName, ...] = ("dynamic", "static", "guided")

TARGET_CHUNK_S = 0.03
# On a known input a chunk takes at least the remaining tasks over SHARE x workers, but no
# more than MAX_CHUNK_S of work: a worker that dies re-runs its chunk's finished tasks, and
# progress is counted chunk by chunk.
SHARE = 4
MAX_CHUNK_S = 0.5
TAIL_MIN_S = 0.003  # near the end, chunks shrink, but not below this much work
MAX_CHUNK = 1 << 16
# Before any task has finished, a chunk is a probe: up to PROBE_TASKS tasks (and about
# PROBE_BYTES of arguments), which the worker starts only for PROBE_BUDGET_S, in groups of
# 1, 2, 4, ... _messages.PROBE_GROUP, looking at the clock between groups; the rest come back
# to be sent again. Long tasks probe one at a time, as chunks of one did; tiny ones give a
# worker real work while the main process forks the next (a millisecond or more each).
PROBE_TASKS = 8192
PROBE_BYTES = 1 << 18
PROBE_BUDGET_S = 0.005


@dataclass(frozen=True)
class Progress:
    """What the scheduler knows when it is asked.

    Attributes:
        remaining: tasks not yet dispatched, or ``None`` when the input's length is unknown.
        workers: workers in the run.
        mean_task_s: the running mean of a task's wall time, ``None`` before any finished.
    """

    remaining: int | None
    workers: int
    mean_task_s: float | None


class Scheduler(Protocol):
    """A scheduling policy."""

    def chunk_size(self, progress: Progress) -> int:
        """How many tasks the next chunk takes (at least 1)."""
        ...


@dataclass(frozen=True)
class Fixed:
    """Chunks of a fixed size."""

    size: int

    def chunk_size(self, progress: Progress) -> int:
        return self.size


@dataclass(frozen=True)
class Static:
    """One block per worker, cut from the input's length; 64 when the length is unknown."""

    total: int | None

    def chunk_size(self, progress: Progress) -> int:
        if self.total is None:
            return 64
        return max(1, math.ceil(self.total / progress.workers))


@dataclass(frozen=True)
class Dynamic:
    """Chunks sized to take about ``target_s`` each; shrinking near the end of the input."""

    target_s: float = TARGET_CHUNK_S

    def chunk_size(self, progress: Progress) -> int:
        if progress.mean_task_s is None:
            return 1  # measure first: one task per worker tells how long a task takes
        mean = max(progress.mean_task_s, 1e-7)
        size = int(self.target_s / mean)
        if progress.remaining is not None:
            # Far from the end, a share of what remains: every message wakes the main
            # process, which takes a CPU from a worker for a moment.
            share = math.ceil(progress.remaining / (SHARE * progress.workers))
            size = max(size, min(share, int(MAX_CHUNK_S / mean)))
            # Leave every worker a share of the tail so none idles while one finishes; but
            # chunks of a few microseconds of work would cost more in messages than they save.
            tail = math.ceil(progress.remaining / (2 * progress.workers))
            floor = int(TAIL_MIN_S / mean)
            size = min(size, max(tail, floor))
        return max(1, min(size, MAX_CHUNK))


@dataclass(frozen=True)
class Guided:
    """Remaining work over twice the workers, shrinking to one task."""

    def chunk_size(self, progress: Progress) -> int:
        if progress.remaining is None:
            return Dynamic().chunk_size(progress)
        return max(1, min(MAX_CHUNK, math.ceil(progress.remaining / (2 * progress.workers))))


def probe_size(remaining: int, workers: int, arg_bytes: int) -> int:
    """How many tasks a probe chunk takes: at most ``PROBE_TASKS``, a ``SHARE``-th of each
    worker's part of the ``remaining`` tasks, and about ``PROBE_BYTES`` of arguments of
    ``arg_bytes`` each (pickled), so that large arguments are not pickled for nothing."""
    share = math.ceil(remaining / (SHARE * workers))
    return max(1, min(PROBE_TASKS, share, PROBE_BYTES // max(1, arg_bytes)))


def make_scheduler(name: str, chunksize: int | None, total: int | None) -> Scheduler:
    """Return the policy called ``name``; raise ``ValueError`` naming the choices otherwise."""
    if chunksize is not None:
        return Fixed(chunksize)
    if name == "dynamic":
        return Dynamic()
    if name == "static":
        return Static(total)
    if name == "guided":
        return Guided()
    raise ValueError(f"schedule={name!r} is not one of {', '.join(map(repr, SCHEDULES))}")


def longest_first(costs: Sequence[float]) -> list[int]:
    """Positions ordered by cost, longest first; ties keep their input order (LPT)."""
    return sorted(range(len(costs)), key=lambda i: (-costs[i], i))
