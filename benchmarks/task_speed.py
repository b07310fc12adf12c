"""How fast a task's own code runs inside the workers: ploop.map against multiprocessing.Pool.

``benchmarks.loops`` times whole runs: start-up, scheduling, messages and the tasks. This
benchmark leaves all of that out. Each task measures its own CPU time (``time.thread_time``)
around one call of a pure-Python kernel, and the figure for a runner is the median over every
task of every run. Run it from a checkout with::

    python -m benchmarks.task_speed --repeat 5

The kernels are small, common shapes of CPU-bound Python: an integer loop (the task of the
loops benchmark's cpu loop), a float loop, recursion, string formatting with a dict, sorting,
and instances of a small class. The same work takes the same CPU time in any process that runs
it alone on a core, so a ratio away from 1.00 is the worker's doing: what the pool runs in it
besides the task, and the state its memory is in when the task starts.

Both pools fork (``multiprocessing``'s fork context, ploop's default start method), 2 workers,
and runs of the two interleave, each round starting with the other one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.loops import (
    _positive,
    add_choices_option,
    machine_info,
    markdown_table,
    spin,
)

WORKERS = 2
TASKS = 60  # per run; 30 per worker
TASK_SECONDS = 0.010  # each kernel is calibrated to about this much CPU per call


# --- kernels --------------------------------------------------------------------------------


def float_loop(n: int) -> float:
    """Float arithmetic in a loop."""
    x = 0.0
    for i in range(n):
        x = x * 0.999 + i * 0.5
    return x


def recursion(n: int) -> int:
    """Function calls: a naive recursive Fibonacci."""
    return n if n < 2 else recursion(n - 1) + recursion(n - 2)


def strings(n: int) -> int:
    """String formatting and dict updates."""
    counts: dict[str, int] = {}
    for i in range(n):
        key = f"k{i % 1000}"
        counts[key] = counts.get(key, 0) + len(key)
    return len(counts)


def sorting(n: int) -> float:
    """Sorting lists of 1,000 floats (``n`` floats in all)."""
    x, total = 0.5, 0.0
    for _ in range(max(1, n // 1000)):
        values = []
        for _ in range(1000):
            x = (x * 9301.0 + 0.49297) % 1.0
            values.append(x)
        values.sort()
        total += values[500]
    return total


class _Point:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def objects(n: int) -> int:
    """Instances of a small class, made and dropped."""
    total = 0
    for i in range(n):
        p = _Point(i, i + 1)
        total += p.x * p.y % 7
    return total


KERNELS: dict[str, tuple[str, Callable[[int], Any], bool]] = {
    # name: (label, kernel, whether n is a recursion depth rather than a loop length)
    "int": ("int loop", spin, False),
    "float": ("float loop", float_loop, False),
    "recursion": ("recursion", recursion, True),
    "strings": ("strings and a dict", strings, False),
    "sorting": ("sorting", sorting, False),
    "objects": ("small objects", objects, False),
}


def task_cpu(job: tuple[str, int]) -> float:
    """Run kernel ``job[0]`` with ``job[1]``; return the CPU seconds that call took."""
    fn = KERNELS[job[0]][1]
    start = time.thread_time()
    fn(job[1])
    return time.thread_time() - start


def calibrate(name: str, target: float = TASK_SECONDS) -> int:
    """The argument that makes kernel ``name`` take about ``target`` CPU seconds here."""
    depth = KERNELS[name][2]
    n = 10 if depth else 1_000
    while True:
        took = min(task_cpu((name, n)) for _ in range(3))
        if took >= target:
            return n
        if depth:
            n += 1  # each step costs about 1.6x the last
        elif took >= target / 8:
            return max(1, round(n * target / took))
        else:
            n *= 4


# --- runners --------------------------------------------------------------------------------


def _run_ploop(jobs: list[tuple[str, int]]) -> list[float]:
    import pytest_ploop as ploop

    return ploop.map(task_cpu, jobs, workers=WORKERS)


def _run_mp(jobs: list[tuple[str, int]]) -> list[float]:
    pool = multiprocessing.get_context("fork").Pool(WORKERS)
    try:
        return pool.map(task_cpu, jobs)
    finally:
        pool.close()
        pool.join()


RUNNERS: dict[str, Callable[[list[tuple[str, int]]], list[float]]] = {
    "ploop.map": _run_ploop,
    "multiprocessing.Pool.map": _run_mp,
}


def measure(name: str, n: int, repeat: int) -> dict[str, list[list[float]]]:
    """Per runner, the per-task CPU seconds of each of ``repeat`` interleaved runs."""
    runs: dict[str, list[list[float]]] = {key: [] for key in RUNNERS}
    order = list(RUNNERS)
    jobs = [(name, n)] * TASKS
    for i in range(repeat):
        for key in order[i % 2 :] + order[: i % 2]:
            runs[key].append(RUNNERS[key](jobs))
    return runs


# --- output ---------------------------------------------------------------------------------


def row(name: str, n: int, runs: dict[str, list[list[float]]]) -> list[str]:
    """One table row: the kernel, both medians in ms, their ratio and its range by run."""
    ploop_runs, mp_runs = runs["ploop.map"], runs["multiprocessing.Pool.map"]
    ploop = statistics.median(t for run in ploop_runs for t in run)
    mp = statistics.median(t for run in mp_runs for t in run)
    pairs = zip(ploop_runs, mp_runs, strict=True)
    by_run = [statistics.median(a) / statistics.median(b) for a, b in pairs]
    return [
        f"{KERNELS[name][0]} ({n:,})",
        f"{ploop * 1000:.2f}",
        f"{mp * 1000:.2f}",
        f"{ploop / mp:.3f}",
        f"{min(by_run):.3f} to {max(by_run):.3f}",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. See the module docstring and benchmarks/README.md."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.task_speed",
        description="Per-task CPU of pure-Python kernels in ploop's and multiprocessing's workers.",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=5, metavar="N", help="runs per pool (default 5)"
    )
    add_choices_option(parser, "--kernels", tuple(KERNELS), "K,...", "kernels to run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Calibrate, measure every kernel in both pools, print the table."""
    args = parse_args(argv)
    info = machine_info()
    print(f"Python {info['python']} ({info['implementation']}) on {info['platform']}")
    print(f"CPUs: {info['cpu_count']} (usable: {info['usable_cpus']})")
    print()
    rows = []
    for name in args.kernels:
        n = calibrate(name)
        print(f"  .. {name}: {n:,}", file=sys.stderr, flush=True)
        rows.append(row(name, n, measure(name, n, args.repeat)))
    header = ["kernel (argument)", "ploop.map ms", "Pool.map ms", "ratio", "ratio by run"]
    print(markdown_table(header, rows, right={1, 2, 3, 4}))
    print()
    print(
        f"Median CPU time of one task, measured inside it; {TASKS} tasks per run, {WORKERS} "
        f"workers, {args.repeat} runs per pool."
    )
    print("ratio = ploop's median / Pool's; above 1.00 the task ran slower in ploop's workers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
