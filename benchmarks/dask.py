"""Time ploop.map on the local backend against the Dask backend, on the loops of loops.py.

Run it from a checkout, with Dask installed (``pip install -e '.[dask]'``)::

    python benchmarks/dask.py
    python -m benchmarks.dask --repeat 5 --loops sleep,cpu --json bench-dask.json

The loops are those of ``benchmarks/loops.py``, with the same task functions: ``trivial``
(100,000 x ``x * x``, 2 workers), ``sleep`` (400 x 10 ms, 8 workers) and ``cpu`` (200 x a
~20 ms pure-Python busy loop, 2 workers). Each loop runs on:

* ``local map``: ``ploop.map(fn, items, workers=W)``: worker processes forked for the call,
  start-up and shutdown included (what loops.py times);
* ``local pool``: a ``ploop.Pool(W)`` kept across calls, after one warm-up call;
* ``dask warm``: a Dask ``LocalCluster`` of W one-thread worker processes, kept across calls,
  after one warm-up call (the workers' first call imports pytest-ploop and the task's module);
* ``dask cold``: the same, with the cluster's start and close inside the timing.

``ratio`` is the ``local map`` wall over the runner's wall: below 1.00 the runner is slower.
Expect Dask to be slower on one machine (its scheduler, nannies and TCP stand in for a pipe);
what it buys is more machines.

Until ``ploop.Pool`` takes ``backend="dask"``, the Dask runs go through the backend's run
object directly, with the loop API's own options (a small driver below); afterwards through
``ploop.Pool(workers=W, backend="dask")``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Run as a script, sys.path[0] is benchmarks/, where this file would shadow the real `dask`
# package (here, and in the Dask workers, which inherit sys.path). The checkout goes first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.loops import (  # noqa: E402
    CPU_TASK_SECONDS,
    CPU_TASKS,
    CPU_WORKERS,
    SLEEP_SECONDS,
    SLEEP_TASKS,
    SLEEP_WORKERS,
    TRIVIAL_TASKS,
    TRIVIAL_WORKERS,
    calibrate,
    sleep_task,
    spin,
    square,
)

LOOPS = ("trivial", "sleep", "cpu")
MapFn = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class DaskSession:
    """A Dask LocalCluster of ``workers`` one-thread processes, and a ``map`` on it."""

    def __init__(self, workers: int) -> None:
        import pytest_ploop as ploop

        if "backend" in inspect.signature(ploop.Pool).parameters:
            pool = ploop.Pool(workers, backend="dask")
            self.map: MapFn = pool.map
            self._close = pool.close
            pool.map(abs, [1])  # the cluster starts on the first call
            return
        from pytest_ploop._backends import open_dask
        from pytest_ploop._engine._pool import RunOptions

        backend = open_dask(None, workers)

        def run(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
            run = backend.run(fn, items, RunOptions(workers=workers))
            try:
                run.run_to_end()
            finally:
                run.finish()
            if run.outcomes.failures or run.fatal is not None:
                raise RuntimeError(f"the Dask run did not pass: {run.outcomes.counts}")
            results: list[Any] = [None] * run.consumed
            for batch in run.outcomes.ready:
                for i, v in zip(batch.indices, batch.values, strict=True):
                    results[i] = v
            return results

        self.map = run
        self._close = backend.close

    def close(self) -> None:
        """Close the cluster."""
        self._close()


def _timed(fn: Callable[[], list[Any]], expected: list[Any]) -> float:
    start = time.perf_counter()
    got = fn()
    wall = time.perf_counter() - start
    if got != expected:
        raise AssertionError("wrong results")
    return wall


def measure(
    fn: Callable[[Any], Any], items: list[Any], expected: list[Any], workers: int, repeat: int
) -> dict[str, float]:
    """Best wall of each runner over ``repeat`` runs (``dask cold``: one run)."""
    import pytest_ploop as ploop

    walls: dict[str, float] = {}
    _progress("  local map ...")
    walls["local map"] = min(
        _timed(lambda: ploop.map(fn, items, workers=workers), expected) for _ in range(repeat)
    )
    _progress("  local pool ...")
    with ploop.Pool(workers) as pool:
        pool.map(fn, items)
        walls["local pool"] = min(
            _timed(lambda: pool.map(fn, items), expected) for _ in range(repeat)
        )
    _progress("  dask warm ...")
    session = DaskSession(workers)
    try:
        session.map(fn, items)
        walls["dask warm"] = min(
            _timed(lambda: session.map(fn, items), expected) for _ in range(repeat)
        )
    finally:
        session.close()
    _progress("  dask cold ...")
    start = time.perf_counter()
    session = DaskSession(workers)
    try:
        got = session.map(fn, items)
    finally:
        session.close()
    walls["dask cold"] = time.perf_counter() - start
    if got != expected:
        raise AssertionError("wrong results")
    return walls


def run_loop(name: str, repeat: int, info: dict[str, Any]) -> dict[str, Any]:
    """Measure loop ``name``; return its walls and what a figure is relative to."""
    _progress(f"{name}:")
    if name == "trivial":
        items: list[Any] = list(range(TRIVIAL_TASKS))
        walls = measure(square, items, [x * x for x in items], TRIVIAL_WORKERS, repeat)
        return {"workers": TRIVIAL_WORKERS, "walls": walls, "tasks": len(items)}
    if name == "sleep":
        items = [SLEEP_SECONDS] * SLEEP_TASKS
        walls = measure(sleep_task, items, items, SLEEP_WORKERS, repeat)
        return {"workers": SLEEP_WORKERS, "walls": walls, "serial": SLEEP_TASKS * SLEEP_SECONDS}
    iterations = calibrate(CPU_TASK_SECONDS)
    items = [iterations] * CPU_TASKS
    expected = [spin(iterations)] * CPU_TASKS
    _progress("  serial ...")
    serial = min(_timed(partial(lambda: [spin(x) for x in items]), expected) for _ in range(2))
    info["cpu_task_seconds"] = serial / CPU_TASKS
    walls = measure(spin, items, expected, CPU_WORKERS, repeat)
    return {"workers": CPU_WORKERS, "walls": walls, "serial": serial}


def table(results: dict[str, dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| loop    | runner     | wall (s) | throughput / speedup | ratio vs local map |",
        "|---------|------------|---------:|---------------------:|-------------------:|",
    ]
    for name, r in results.items():
        base = r["walls"]["local map"]
        for runner, wall in r["walls"].items():
            if "serial" in r:
                figure = f"{r['serial'] / wall:.2f}x speedup"
            else:
                figure = f"{r['tasks'] / wall:,.0f} tasks/s"
            lines.append(
                f"| {name:<7} | {runner:<10} | {wall:8.3f} | {figure:>20} | {base / wall:18.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the loops, print the table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per runner (best is kept)")
    parser.add_argument("--loops", default=",".join(LOOPS), help="any of trivial,sleep,cpu")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    loops = [name for name in args.loops.split(",") if name]
    unknown = set(loops) - set(LOOPS)
    if unknown:
        parser.error(f"unknown loops: {', '.join(sorted(unknown))}")
    import distributed

    import pytest_ploop

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "distributed": distributed.__version__,
        "pytest_ploop": str(Path(pytest_ploop.__file__).parent),
    }
    results = {name: run_loop(name, max(1, args.repeat), info) for name in loops}
    print(f"Python {info['python']} on {info['platform']}; {info['cpus']} usable CPUs")
    print(f"distributed {info['distributed']}; pytest_ploop from {info['pytest_ploop']}")
    print(f"best of {args.repeat} runs (dask cold: one run)\n")
    print(table(results))
    print(
        "\nratio = local map's wall / runner's wall; below 1.00 the runner was slower.\n"
        f"trivial: {TRIVIAL_TASKS:,} x x*x, {TRIVIAL_WORKERS} workers.\n"
        f"sleep: {SLEEP_TASKS} x sleep({SLEEP_SECONDS}), {SLEEP_WORKERS} workers; "
        f"speedup = {SLEEP_TASKS * SLEEP_SECONDS:.1f} s nominal serial / wall.\n"
        f"cpu: {CPU_TASKS} x spin, "
        f"{info.get('cpu_task_seconds', 0) * 1000:.1f} ms each serially, {CPU_WORKERS} workers; "
        "speedup = serial in-process wall / wall."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
