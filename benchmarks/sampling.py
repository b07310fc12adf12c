"""What the main process's resource sampling costs, as a share of wall time (target: < 2%).

Run it from a checkout with either of::

    python benchmarks/sampling.py
    python -m benchmarks.sampling --repeat 5 --json bench-sampling.json

The engine's main process samples every worker with psutil on its tick
(``_engine/_pool.py``: ``Run._tick`` calls ``_metrics.Sampler.sample`` every ``TICK_S``).
Two measurements:

* ``per tick``: ``Sampler.sample`` timed directly for 1 to 32 live worker processes (asleep,
  so that they do not take the CPU from the sampler), against the tick interval: ``cost /
  TICK_S`` is the share of the main process's time that sampling takes while a run lasts.
  It grows with the workers. Both the CPU time of the call (``time.thread_time``) and its
  wall time (``perf_counter``, which on a busy machine also counts time spent waiting for a
  CPU) are shown.
* ``in a run``: the same ``ploop.map`` loop with sampling on and off (off: ``Sampler.sample``
  replaced by a function that returns no samples), interleaved, best of ``--repeat``. In
  the runs with sampling on, every ``Sampler.sample`` call is also timed where it happens,
  so the share of the wall time spent sampling is measured in place, free of the run-to-run
  noise that the difference of two wall times carries on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # time this checkout's ploop

import pytest_ploop as ploop
from pytest_ploop._engine import _metrics, _pool

TARGET = 0.02
WORKER_COUNTS = (1, 2, 4, 8, 16, 32)
CALLS = 200
LOOP_TASKS = 300
LOOP_TASK_S = 0.01
LOOP_WORKERS = 2


def _child(stop: Any) -> None:
    stop.wait(600)


def per_tick(workers: int, calls: int = CALLS) -> dict[str, float]:
    """Seconds per ``Sampler.sample`` call over ``workers`` live processes."""
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    procs = [ctx.Process(target=_child, args=(stop,), daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        pids = {f"w{i}": p.pid for i, p in enumerate(procs) if p.pid is not None}
        sampler = _metrics.Sampler()
        sampler.sample(pids)  # the first call opens the handles, as a run's first tick does
        walls, cpus = [], []
        for _ in range(calls):
            c0, t0 = time.thread_time(), time.perf_counter()
            samples = sampler.sample(pids)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
            assert len(samples) == workers
        return {
            "workers": workers,
            "cpu_s": statistics.fmean(cpus),
            "wall_s": statistics.fmean(walls),
            "wall_median_s": statistics.median(walls),
            "share_of_tick": statistics.fmean(cpus) / _pool.TICK_S,
        }
    finally:
        stop.set()
        for p in procs:
            p.join(5)


def spin(seconds: float) -> int:
    """A task that keeps its CPU busy for ``seconds``."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def _loop() -> ploop.RunRecord:
    with ploop.Pool(workers=LOOP_WORKERS, start_method="fork") as pool:
        pool.map(spin, [LOOP_TASK_S] * LOOP_TASKS, chunksize=1)
        assert pool.last_run is not None
        return pool.last_run


def in_a_run(repeat: int) -> dict[str, Any]:
    """The loop with sampling on (timed in place) and off, interleaved."""
    real = _metrics.Sampler.sample
    spent = [0.0, 0.0]  # wall, CPU

    def timed(self: _metrics.Sampler, workers: dict[str, int]) -> list[Any]:
        c0, t0 = time.thread_time(), time.perf_counter()
        try:
            return real(self, workers)
        finally:
            spent[0] += time.perf_counter() - t0
            spent[1] += time.thread_time() - c0

    def off(self: _metrics.Sampler, workers: dict[str, int]) -> list[Any]:
        return []

    on_walls, off_walls, shares, cpu_shares, ticks = [], [], [], [], []
    for _ in range(repeat):
        for mode, patch in (("on", timed), ("off", off)):
            _metrics.Sampler.sample = patch  # type: ignore[method-assign]
            spent[:] = [0.0, 0.0]
            try:
                t0 = time.perf_counter()
                record = _loop()
                wall = time.perf_counter() - t0
            finally:
                _metrics.Sampler.sample = real  # type: ignore[method-assign]
            if mode == "on":
                on_walls.append(wall)
                shares.append(spent[0] / record.wall_s)
                cpu_shares.append(spent[1] / record.wall_s)
                ticks.append(len({s.t for s in record.samples}))
            else:
                off_walls.append(wall)
                assert not record.samples
    best_on, best_off = min(on_walls), min(off_walls)
    return {
        "tasks": LOOP_TASKS,
        "task_s": LOOP_TASK_S,
        "workers": LOOP_WORKERS,
        "wall_on_s": best_on,
        "wall_off_s": best_off,
        "difference": (best_on - best_off) / best_off,
        "share_in_place": max(shares),
        "cpu_share_in_place": max(cpu_shares),
        "ticks": max(ticks),
        "walls_on": on_walls,
        "walls_off": off_walls,
    }


def _us(s: float) -> str:
    return f"{s * 1e6:.0f} us"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the loop per mode")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    log("timing Sampler.sample ...")
    ticks = [per_tick(n) for n in WORKER_COUNTS]
    log("timing the loop with sampling on and off ...")
    run = in_a_run(args.repeat)
    # The verdict is on CPU time: the wall time of a call also counts waiting for a CPU,
    # which on a loaded machine is other processes' doing, not sampling's.
    ok = run["cpu_share_in_place"] < TARGET
    print(f"# Sampling cost ({platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, tick {_pool.TICK_S * 1000:.0f} ms)\n")  # fmt: skip
    print("| workers | one Sampler.sample call, CPU | wall (mean) | wall (median) | "
          "CPU share of a tick |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for t in ticks:
        print(f"| {t['workers']} | {_us(t['cpu_s'])} | {_us(t['wall_s'])} | "
              f"{_us(t['wall_median_s'])} | {t['share_of_tick']:.2%} |")  # fmt: skip
    print(
        f"\nIn a run ({run['tasks']} tasks of {run['task_s'] * 1000:.0f} ms on {run['workers']} "
        f"workers, best of {args.repeat}): sampling took {run['share_in_place']:.2%} of the wall "
        f"time ({run['cpu_share_in_place']:.2%} in CPU time), measured in place over "
        f"{run['ticks']} ticks; best wall {run['wall_on_s']:.3f} s with "
        f"sampling, {run['wall_off_s']:.3f} s without ({run['difference']:+.1%}: on a shared "
        "machine a difference of wall times this small is mostly noise)."
    )
    print(f"\nTarget: sampling under {TARGET:.0%} of the wall time (in CPU time): "
          f"{'met' if ok else 'NOT met'}.")  # fmt: skip
    print(f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    if args.json:
        data = {"tick_s": _pool.TICK_S, "per_tick": ticks, "in_a_run": run,
                "cpus": os.cpu_count(), "python": platform.python_version()}  # fmt: skip
        args.json.write_text(json.dumps(data, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
