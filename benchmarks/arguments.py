"""Time handing large arguments to the workers: ploop.map and four other process-pool runners.

Run it from a checkout with either of::

    python benchmarks/arguments.py
    python -m benchmarks.arguments --repeat 5 --arrays 32 --mb 8

The loop: ``--arrays`` numpy arrays of ``--mb`` MiB each (32 of 8 MiB by default), one task
each, on 2 workers. The task reads the array's first and last element and returns their sum,
so handing the arrays over is all there is to measure. Each array holds its own position, so
a runner that hands a task the wrong array gets a wrong answer, and the run is reported as
an error rather than a time.

The runners are those of ``benchmarks.loops``, run the same way: a fresh pool for every run,
start-up and shutdown included, runs interleaved, the best wall of ``--repeat``. They differ
in how an argument travels. ``multiprocessing.Pool.map``, ``ProcessPoolExecutor.map`` and mpire
pickle it in the main process and unpickle it in a worker. joblib writes an array of 1 MB or
more to a memory-mapped file once and sends the workers its name. ``ploop.map`` under fork
sends nothing: its workers are forked for the call and take the arrays from their own copy of
the list (``docs/loops.md``, "How arguments reach the workers").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python benchmarks/arguments.py: import the package next to us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.loops import (
    RUNNER_KEYS,
    RUNNERS,
    Loop,
    _positive,
    _prefer_checkout,
    _print_header,
    add_choices_option,
    figures,
    load_runners,
    machine_info,
    markdown_table,
    measure_loop,
)

WORKERS = 2
ARRAYS = 32
MIB = 8


def ends(a: np.ndarray[Any, Any]) -> float:
    """Return the sum of the array's first and last element: the task."""
    return float(a[0] + a[-1])


def build(arrays: int, mib: int) -> Loop:
    """The loop: ``arrays`` arrays of ``mib`` MiB, array ``i`` filled with ``i``."""
    n = mib * (1 << 20) // 8
    items = [np.full(n, float(i)) for i in range(arrays)]
    expected = [2.0 * i for i in range(arrays)]
    return Loop("arguments", ends, items, WORKERS, expected, "mp")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. See the module docstring and benchmarks/README.md."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.arguments",
        description="Time handing large numpy arrays to process-pool workers.",
    )
    parser.add_argument("--repeat", type=_positive, default=3, metavar="N",
                        help="runs per runner; the best is reported (default 3)")  # fmt: skip
    parser.add_argument("--arrays", type=_positive, default=ARRAYS, metavar="N",
                        help=f"arrays, one task each (default {ARRAYS})")  # fmt: skip
    parser.add_argument("--mb", type=_positive, default=MIB, metavar="MIB",
                        help=f"size of each array in MiB (default {MIB})")  # fmt: skip
    add_choices_option(parser, "--runners", RUNNER_KEYS, "R,...", "runners to time")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    args = parse_args(argv)
    _prefer_checkout()
    runners = [r for r in RUNNERS if r.key in args.runners]
    loaded = load_runners(runners)
    _print_header(machine_info(), loaded, args.repeat)
    loop = build(args.arrays, args.mb)
    total_mib = args.arrays * args.mb
    results = measure_loop(loop, runners, loaded, args.repeat)
    by_key = {r.runner: r for r in results}
    rows = []
    for res in results:
        figs = figures(loop, res, by_key.get(loop.baseline), None)
        wall = figs["wall"]
        if res.status != "ok" or wall is None:
            rows.append([res.label, "-", res.detail or res.status, "-"])
            continue
        ratio = f"{figs['ratio']:.2f} vs mp" if figs["ratio"] else "n/a"
        rows.append([res.label, f"{wall:.3f}", f"{total_mib / wall:,.0f} MiB/s", ratio])
    header = ["runner", "wall (s)", "arguments handed over", "ratio"]
    print(markdown_table(header, rows, right={1, 2}))
    print()
    print("ratio = multiprocessing.Pool.map's wall / runner's wall; above 1.00 the runner")
    print("beat it.")
    print(
        f"{args.arrays} tasks, each given a numpy array of {args.mb} MiB ({total_mib:,} MiB in "
        f"all), {WORKERS} workers; the task reads two elements."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
