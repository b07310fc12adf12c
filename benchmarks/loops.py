"""Time the same three loops through ploop.map and four other process-pool runners.

Run it from a checkout with either of::

    python benchmarks/loops.py
    python -m benchmarks.loops --repeat 5 --json bench-loops.json

The loops:

* ``trivial``: 100,000 tasks of ``x * x`` on 2 workers, so per-task overhead is all there
  is to measure. The result is throughput (tasks/s).
* ``sleep``: 400 tasks of ``time.sleep(0.01)`` on 8 workers. These tasks wait and use no CPU,
  so this loop measures how well the runner overlaps them. Speedup = 4.0 s (the nominal
  serial time) / wall.
* ``cpu``: 200 pure-Python busy loops of about 20 ms each on 2 workers. The busy loop is
  calibrated at start-up. Speedup = serial / wall, where serial is the best time of the
  same tasks run one by one in this process. Those serial runs are interleaved with the
  runners' runs, and so are runs of the same tasks in fixed shares on forked processes with
  no pool at all (``fork, no pool``): what the machine gives with every CPU busy.

Every measurement starts a fresh pool and shuts it down, because a user pays for both.
The figure for a runner is its best wall time over ``--repeat`` runs. Runs are interleaved
(run 1 of each runner, then run 2 of each, ...), so drift in machine speed is spread over
all runners rather than hitting one, and each round starts with the next runner. Each run
starts a quarter of a second after the one before it: joblib and mpire leave the machine
busier for a moment, and the runner right after either was measured about a tenth slower on
the trivial loop (ploop.map's best of 14: 25.2 ms after ProcessPoolExecutor, 28.8 ms after
joblib). Rotating the rounds does not spread that out, since the runners keep their cyclic
order: without the pause, ploop.map ran right after mpire in almost every round, and
multiprocessing.Pool.map right after ploop.map.
Each runner's results are checked against the expected list, so a fast wrong answer is
reported as an error and not as a time.

The task functions are module-level, so they pickle by reference under ``fork`` and by
value under joblib's cloudpickle. The calibrated work is passed in as an argument rather
than kept in a global, so that workers started with ``spawn`` see it as well.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import multiprocessing
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

Task = Callable[[Any], Any]
RunFn = Callable[[Task, list[Any], int], list[Any]]

TRIVIAL_TASKS = 100_000
TRIVIAL_WORKERS = 2
SLEEP_TASKS = 400
SLEEP_SECONDS = 0.01
SLEEP_WORKERS = 8
CPU_TASKS = 200
CPU_TASK_SECONDS = 0.020
CPU_WORKERS = 2

# Pause before each timed run (see _time_once).
SETTLE_S = 0.25

TARGET_SLEEP_SPEEDUP = 7.3
TARGET_CPU_SPEEDUP = 1.85


# --- task functions: module-level so that every runner can pickle them -------------------


def square(x: int) -> int:
    """Return ``x * x``: the trivial loop's task."""
    return x * x


def sleep_task(seconds: float) -> float:
    """Sleep for ``seconds`` and return it: the sleep loop's task."""
    time.sleep(seconds)
    return seconds


def spin(iterations: int) -> int:
    """Busy-loop in pure Python for ``iterations`` steps: the cpu loop's task.

    The result is deterministic, so the runners' answers can be checked.
    """
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


# --- runners --------------------------------------------------------------------------------


def _fork() -> Any:
    # Both standard-library pools use fork explicitly. It is the Linux default up to 3.13,
    # and fixing it keeps the two comparable on 3.14+, where the default is forkserver.
    return multiprocessing.get_context("fork")


def _load_ploop() -> RunFn:
    # importlib, not `import pytest_ploop`: the package is optional here, and mypy should
    # not check it as part of the benchmark.
    ploop = importlib.import_module("pytest_ploop")
    ploop_map = getattr(ploop, "map", None)
    if not callable(ploop_map):
        raise ImportError(f"pytest_ploop at {_module_path(ploop)} has no map()")

    def run(fn: Task, items: list[Any], workers: int) -> list[Any]:
        return list(ploop_map(fn, items, workers=workers))

    return run


def _load_mp() -> RunFn:
    def run(fn: Task, items: list[Any], workers: int) -> list[Any]:
        pool = _fork().Pool(workers)
        try:
            return list(pool.map(fn, items))
        finally:
            # close + join is the graceful shutdown a user would write. The pool's own
            # __exit__ calls terminate(), which would leave that cost out.
            pool.close()
            pool.join()

    return run


def _load_futures() -> RunFn:
    def run(fn: Task, items: list[Any], workers: int) -> list[Any]:
        # The chunksize rule multiprocessing.Pool.map uses by default.
        chunksize = max(1, math.ceil(len(items) / (4 * workers)))
        with ProcessPoolExecutor(workers, mp_context=_fork()) as pool:
            return list(pool.map(fn, items, chunksize=chunksize))

    return run


def _load_joblib() -> RunFn:
    joblib = importlib.import_module("joblib")
    loky = importlib.import_module("joblib.externals.loky")

    def run(fn: Task, items: list[Any], workers: int) -> list[Any]:
        try:
            return list(joblib.Parallel(n_jobs=workers)(joblib.delayed(fn)(x) for x in items))
        finally:
            # loky keeps its workers alive for the next Parallel call. Without this, every
            # run after the first would skip the start-up the other runners pay for.
            # reuse=True returns the live executor rather than building a new one.
            loky.get_reusable_executor(reuse=True).shutdown(wait=True)

    return run


def _load_mpire() -> RunFn:
    mpire = importlib.import_module("mpire")

    def run(fn: Task, items: list[Any], workers: int) -> list[Any]:
        # map() stops and joins the workers itself when keep_alive is False (the default).
        with mpire.WorkerPool(n_jobs=workers) as pool:
            return list(pool.map(fn, items))

    return run


@dataclass(frozen=True)
class Runner:
    """A runner under test: its ``--runners`` key, its label, and how to load it.

    ``load`` imports the library outside the timed region and raises ImportError when the
    library is not installed.
    """

    key: str
    label: str
    load: Callable[[], RunFn]


RUNNERS = (
    Runner("ploop", "ploop.map", _load_ploop),
    Runner("mp", "multiprocessing.Pool.map", _load_mp),
    Runner("futures", "ProcessPoolExecutor.map", _load_futures),
    Runner("joblib", "joblib.Parallel", _load_joblib),
    Runner("mpire", "mpire.WorkerPool.map", _load_mpire),
)
RUNNER_KEYS = tuple(r.key for r in RUNNERS)
LOOP_NAMES = ("trivial", "sleep", "cpu")


# --- loops and measurement ------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """One loop, run the same way by every runner.

    ``baseline`` is the key of the runner that the ratio column compares against.
    ``serial_seconds`` is a nominal serial time (sleep). With ``measure_serial`` (cpu), a
    serial in-process run is timed in the same rounds as the runners, and its best wall is
    the serial time. A loop with neither (trivial) reports throughput rather than speedup.
    """

    name: str
    fn: Task
    items: list[Any]
    workers: int
    expected: list[Any]
    baseline: str
    serial_seconds: float | None = None
    measure_serial: bool = False

    @property
    def reports_speedup(self) -> bool:
        """Whether the loop reports speedup (True) or throughput (False)."""
        return self.serial_seconds is not None or self.measure_serial


@dataclass
class Result:
    """What one runner did on one loop. ``status`` is "ok", "not installed" or "error"."""

    loop: str
    runner: str
    label: str
    status: str = "ok"
    detail: str = ""
    walls: list[float] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        """The best (lowest) wall time, or None if the runner did not complete a run."""
        return min(self.walls) if self.status == "ok" and self.walls else None


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Run ``fn`` ``repeat`` times and return the lowest wall time."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(target: float) -> int:
    """Return the ``spin`` iteration count that takes about ``target`` seconds here."""
    # Spin for a moment first: a CPU that has been idle may clock up only once busy, and a
    # count calibrated while it is slow makes tasks that are too short.
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        spin(10_000)
    n = 1_000
    while True:
        elapsed = _best_of(3, partial(spin, n))
        if elapsed >= 0.05:  # long enough that timer resolution and jitter do not matter
            return max(1, round(n * target / elapsed))
        n *= 2


def _run_serial(fn: Task, items: list[Any], workers: int) -> list[Any]:
    """Run the tasks one by one in this process: the cpu loop's reference."""
    return [fn(x) for x in items]


SERIAL = Runner("serial", "serial (in-process)", lambda: _run_serial)


def _run_forked(fn: Task, items: list[Any], workers: int) -> list[Any]:
    """The cpu loop's other reference: the tasks in fixed shares on forked processes, no pool.

    Each of ``workers`` forked processes runs its contiguous share of the items and sends
    its results back once, through a pipe: no scheduling, no per-task messages. It shows
    what the machine gives when all its CPUs are busy (on a shared host, less than
    ``workers`` x); a pool that balances its tasks can beat it when one CPU runs slower.
    """
    bounds = [len(items) * k // workers for k in range(workers + 1)]
    children = []
    for k in range(workers):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(read_fd)
                data = pickle.dumps([fn(x) for x in items[bounds[k] : bounds[k + 1]]])
                with os.fdopen(write_fd, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        children.append((pid, read_fd))
    results: list[Any] = []
    failed = []
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        if status or not data:
            failed.append(pid)
        else:
            results += pickle.loads(data)
    if failed:
        raise RuntimeError(f"forked processes {failed} failed")
    return results


FORKED = Runner("fork", "fork, no pool (fixed halves)", lambda: _run_forked)


def _trivial_loop() -> Loop:
    items = list(range(TRIVIAL_TASKS))
    return Loop("trivial", square, items, TRIVIAL_WORKERS, [x * x for x in items], "mp")


def _sleep_loop() -> Loop:
    items = [SLEEP_SECONDS] * SLEEP_TASKS
    serial = SLEEP_TASKS * SLEEP_SECONDS  # nominal: what the tasks would take one by one
    return Loop("sleep", sleep_task, items, SLEEP_WORKERS, items, "ploop", serial)


def _cpu_loop(info: dict[str, Any]) -> Loop:
    """Calibrate the task and record the calibration in ``info``."""
    _progress(f"cpu: calibrating a {CPU_TASK_SECONDS * 1000:.0f} ms task ...")
    iterations = calibrate(CPU_TASK_SECONDS)
    info.update(
        iterations=iterations, calibrated_task_seconds=_best_of(5, partial(spin, iterations))
    )
    items = [iterations] * CPU_TASKS
    expected = [spin(iterations)] * CPU_TASKS
    return Loop("cpu", spin, items, CPU_WORKERS, expected, "ploop", measure_serial=True)


def build_loop(name: str, info: dict[str, Any]) -> Loop:
    """Build the loop called ``name``; for ``cpu``, record the calibration in ``info``."""
    if name == "trivial":
        return _trivial_loop()
    if name == "sleep":
        return _sleep_loop()
    return _cpu_loop(info)


def _time_once(run: RunFn, loop: Loop) -> float:
    """Time one run, pool start-up and shutdown included. Raise if the answer is wrong.

    It starts ``SETTLE_S`` after the run before it: a runner that leaves work behind slows
    the one after it (see the module docstring).
    """
    gc.collect()
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    result = run(loop.fn, loop.items, loop.workers)
    wall = time.perf_counter() - start
    if result != loop.expected:
        raise ValueError(f"wrong results ({len(result)} items, expected {len(loop.expected)})")
    return wall


def measure_loop(
    loop: Loop, runners: Sequence[Runner], loaded: dict[str, RunFn | str], repeat: int
) -> list[Result]:
    """Run ``loop`` ``repeat`` times through every runner, interleaving the runners.

    ``loaded`` maps a runner key to its run function, or to the reason it is unavailable.
    A runner that raises is recorded as an error and is not run again on this loop. With
    ``loop.measure_serial``, the serial references run in the rounds too. Round ``i`` starts
    with the ``i``-th runner and goes round, so that no runner always runs first.
    """
    if loop.measure_serial:
        runners = [SERIAL, FORKED, *runners]
        loaded = {SERIAL.key: _run_serial, FORKED.key: _run_forked, **loaded}
    results = {r.key: Result(loop.name, r.key, r.label) for r in runners}
    for key, run in loaded.items():
        if isinstance(run, str):
            results[key].status, results[key].detail = "not installed", run
    for i in range(1, repeat + 1):
        # Each round starts one runner later: whoever runs first in a round follows the
        # previous round's last runner (here mpire, or joblib and its process tree), and was
        # measured slower for it (ploop.map's best, same code: 30.2 ms first, 25.8 ms second).
        shift = (i - 1) % len(runners)
        for runner in [*runners[shift:], *runners[:shift]]:
            res, run = results[runner.key], loaded[runner.key]
            if res.status != "ok" or isinstance(run, str):
                continue
            try:
                res.walls.append(_time_once(run, loop))
            except Exception as exc:  # a benchmark reports a broken runner and carries on
                res.status, res.detail = "error", f"{type(exc).__name__}: {exc}"
                _progress(f"{loop.name}: {runner.label}: {res.detail}")
                continue
            _progress(f"{loop.name}: {runner.label} run {i}/{repeat}: {res.walls[-1]:.3f} s")
    return list(results.values())


# --- figures, table, targets ----------------------------------------------------------------


def serial_reference(loop: Loop, results: Sequence[Result]) -> float | None:
    """The serial time that speedups divide: nominal, or the serial run's best wall."""
    if loop.serial_seconds is not None:
        return loop.serial_seconds
    return next((r.best for r in results if r.runner == SERIAL.key), None)


def figures(
    loop: Loop, result: Result, baseline: Result | None, serial: float | None
) -> dict[str, float | None]:
    """Compute a result's figures: best wall, throughput, speedup and ratio.

    speedup = ``serial`` / best wall. ratio = baseline's best wall / this runner's best
    wall, so a ratio above 1 means this runner beat the baseline. On the trivial loop, the
    ratio equals the throughput ratio.
    """
    wall = result.best
    base = baseline.best if baseline is not None else None
    return {
        "wall": wall,
        "throughput": len(loop.items) / wall if wall else None,
        "speedup": serial / wall if wall and serial and loop.reports_speedup else None,
        "ratio": base / wall if wall and base else None,
    }


def _row(loop: Loop, result: Result, figs: dict[str, float | None]) -> list[str]:
    if result.status != "ok" or figs["wall"] is None:
        detail = result.status if result.status == "not installed" else result.detail
        return [loop.name, result.label, "-", detail or result.status, "-"]
    if not loop.reports_speedup:
        measure = f"{figs['throughput']:,.0f} tasks/s"
    else:
        measure = f"{figs['speedup']:.2f}x speedup"
    ratio = f"{figs['ratio']:.2f} vs {loop.baseline}" if figs["ratio"] else "n/a"
    return [loop.name, result.label, f"{figs['wall']:.3f}", measure, ratio]


def markdown_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Format ``rows`` as an aligned Markdown table. Columns in ``right`` are right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w) for i, c, w in zip(count(), cells, widths)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(widths)
    )
    return "\n".join([line(header), rule + "|", *map(line, rows)])


def _target(
    loop: str, text: str, ploop: dict[str, float | None] | None, value: str, goal: float | None
) -> dict[str, Any]:
    """Check one target: ploop's figure ``value`` on ``loop`` must reach ``goal``.

    ``met`` is None, with the reason in ``why``, when either side was not measured.
    """
    measured = ploop.get(value) if ploop else None
    why = ""
    if ploop is None:
        why = "loop or ploop runner not selected"
    elif measured is None:
        why = "ploop.map not installed or failed; see the table"
    elif goal is None:
        why = "multiprocessing.Pool.map not measured"
    met = None if why else measured is not None and goal is not None and measured >= goal
    return {
        "loop": loop,
        "target": text,
        "measured": measured,
        "goal": goal,
        "met": met,
        "why": why,
    }


def targets(figs: dict[tuple[str, str], dict[str, float | None]]) -> list[dict[str, Any]]:
    """Check the issue's targets for ploop against the figures measured on this machine."""
    mp = figs.get(("trivial", "mp"))
    return [
        _target(
            "trivial",
            "ploop.map throughput >= multiprocessing.Pool.map's",
            figs.get(("trivial", "ploop")),
            "throughput",
            mp["throughput"] if mp else None,
        ),
        _target(
            "sleep",
            f"ploop.map speedup >= {TARGET_SLEEP_SPEEDUP}x with {SLEEP_WORKERS} workers",
            figs.get(("sleep", "ploop")),
            "speedup",
            TARGET_SLEEP_SPEEDUP,
        ),
        _target(
            "cpu",
            f"ploop.map speedup >= {TARGET_CPU_SPEEDUP}x with {CPU_WORKERS} workers",
            figs.get(("cpu", "ploop")),
            "speedup",
            TARGET_CPU_SPEEDUP,
        ),
    ]


def _format_target(t: dict[str, Any]) -> str:
    if t["met"] is None:
        return f"  [not measured] {t['loop']}: {t['target']} ({t['why']})"
    unit = " tasks/s" if t["loop"] == "trivial" else "x"
    fmt = "{:,.0f}" if t["loop"] == "trivial" else "{:.2f}"
    got = f"{fmt.format(t['measured'])}{unit} vs {fmt.format(t['goal'])}{unit}"
    return f"  [{'met' if t['met'] else 'NOT MET'}] {t['loop']}: {t['target']} ({got})"


# --- environment and command line -----------------------------------------------------------


def _module_path(module: object) -> str:
    path = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
    return str(path)


def _prefer_checkout() -> None:
    """Put this checkout first on sys.path, so that ``pytest_ploop`` is the one next to us.

    ``python -m benchmarks.loops`` from the repository root already does this. For
    ``python benchmarks/loops.py``, sys.path[0] would be benchmarks/ instead.
    """
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def load_runners(runners: Sequence[Runner]) -> dict[str, RunFn | str]:
    """Import each runner's library. Map its key to a run function or to why it is missing."""
    loaded: dict[str, RunFn | str] = {}
    for runner in runners:
        try:
            loaded[runner.key] = runner.load()
        except ImportError as exc:
            loaded[runner.key] = f"not installed ({exc})"
    return loaded


def machine_info() -> dict[str, Any]:
    """Describe the machine and the library versions the figures came from."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for dist in ("pytest-ploop", "joblib", "mpire"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "versions": versions,
    }


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or 'empty list'}; choose from {','.join(choices)}"
            )
        return names

    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_choices_option(
    parser: argparse.ArgumentParser, flag: str, choices: Sequence[str], metavar: str, what: str
) -> None:
    """Add ``flag``: a comma-separated list of some of ``choices``, all of them by default."""
    parser.add_argument(
        flag,
        type=_csv(choices),
        default=list(choices),
        metavar=metavar,
        help=f"{what} (default {','.join(choices)})",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. See the module docstring and benchmarks/README.md."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loops",
        description="Time ploop.map against other process pools on three loops.",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        metavar="N",
        help="runs per runner and loop; the best is reported (default 3)",
    )
    add_choices_option(parser, "--loops", LOOP_NAMES, "L,...", "loops to run")
    add_choices_option(parser, "--runners", RUNNER_KEYS, "R,...", "runners to time")
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the raw figures to PATH as JSON"
    )
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _print_header(info: dict[str, Any], loaded: dict[str, RunFn | str], repeat: int) -> None:
    print(f"Python {info['python']} ({info['implementation']}) on {info['platform']}")
    print(f"CPUs: {info['cpu_count']} (usable: {info['usable_cpus']}); best of {repeat} runs")
    usable = info["usable_cpus"] or info["cpu_count"] or 1
    if usable < CPU_WORKERS:
        print(f"note: fewer usable CPUs than the cpu loop's {CPU_WORKERS} workers; its speedups")
        print(f"      cannot reach {CPU_WORKERS}x here, and its target cannot be met.")
    ploop = sys.modules.get("pytest_ploop")
    if ploop is not None and not isinstance(loaded.get("ploop", ""), str):
        print(f"pytest_ploop: {_module_path(ploop)}")
    print()


def _print_notes(loops: Sequence[Loop], cpu: dict[str, Any]) -> None:
    print()
    print("ratio = baseline's wall / runner's wall; above 1.00 the runner beat the baseline.")
    for loop in loops:
        if loop.name == "trivial":
            print(f"trivial: {TRIVIAL_TASKS:,} tasks of x*x, {TRIVIAL_WORKERS} workers.")
        elif loop.name == "sleep":
            print(
                f"sleep: {SLEEP_TASKS} x sleep({SLEEP_SECONDS}), {SLEEP_WORKERS} workers; "
                f"speedup = {loop.serial_seconds:.1f} s nominal serial / wall."
            )
        else:
            serial = cpu.get("serial_seconds")
            per_task = f"{serial / CPU_TASKS * 1000:.1f} ms" if serial else "?"
            print(
                f"cpu: {CPU_TASKS} tasks of spin({cpu['iterations']:,}), {per_task} each "
                f"serially, {CPU_WORKERS} workers; speedup = serial (in-process) wall / wall."
            )
            print(
                f"     fork, no pool: {CPU_WORKERS} forked processes, each running a fixed "
                "share in one go (no pool, no per-task messages)."
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the targets, and write JSON if asked."""
    args = parse_args(argv)
    _prefer_checkout()
    runners = [r for r in RUNNERS if r.key in args.runners]
    loaded = load_runners(runners)
    info = machine_info()
    _print_header(info, loaded, args.repeat)

    cpu_info: dict[str, Any] = {}
    loops = [build_loop(name, cpu_info) for name in LOOP_NAMES if name in args.loops]
    all_figs: dict[tuple[str, str], dict[str, float | None]] = {}
    rows, raw = [], []
    for loop in loops:
        results = measure_loop(loop, runners, loaded, args.repeat)
        by_key = {r.runner: r for r in results}
        serial = serial_reference(loop, results)
        if loop.measure_serial:
            cpu_info["serial_seconds"] = serial
        for res in results:
            figs = figures(loop, res, by_key.get(loop.baseline), serial)
            all_figs[(loop.name, res.runner)] = figs
            rows.append(_row(loop, res, figs))
            raw.append(
                {
                    "loop": loop.name,
                    "runner": res.runner,
                    "label": res.label,
                    "status": res.status,
                    "detail": res.detail,
                    "walls": res.walls,
                    **figs,
                }
            )

    header = ["loop", "runner", "wall (s)", "throughput / speedup", "ratio"]
    print(markdown_table(header, rows, right={2, 3}))
    _print_notes(loops, cpu_info)
    found = targets(all_figs)
    print("\nIssue targets on this machine:")
    print("\n".join(_format_target(t) for t in found))

    if args.json is not None:
        report = {
            "machine": info,
            "repeat": args.repeat,
            "cpu_calibration": cpu_info,
            "results": raw,
            "targets": found,
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nRaw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
