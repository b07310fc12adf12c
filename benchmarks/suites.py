"""Time whole pytest runs of generated test suites: serial, pytest-xdist and pytest-ploop.

Run it from a checkout with either of::

    python benchmarks/suites.py
    python -m benchmarks.suites --repeat 5 --json bench-suites.json

The suites, written into a temporary directory at start-up:

* ``trivial``: 3,000 parametrized tests of ``assert i * i >= 0``, at 2 workers. Only the
  per-test overhead of each runner is left to measure.
* ``sleep``: 160 tests of ``time.sleep(0.05)``, at 8 workers. The tests wait and use no CPU,
  so this suite measures how well a runner overlaps them (8.0 s of sleeping in all).
* ``cpu``: 40 tests of a pure-Python busy loop of about 0.15 s each, at 2 workers. The loop
  is calibrated at start-up and the iteration count written into the suite.
* ``skewed``: 60 tests of ``time.sleep(0.02)`` and then 4 of ``time.sleep(1.0)``, collected
  last, at 8 workers. A first-come scheduler reaches the long tests only at the end. This
  suite is run twice and the second run is timed, because ploop records test durations in
  pytest's cache and hands out the longest tests first on the next run.

The runners, each a subprocess ``python -m pytest -q -p no:cacheprovider ...`` in the
suite's directory (the skewed suite keeps the cache plugin on):

* ``serial``: plain ``pytest``;
* ``xdist``: ``pytest -n N --dist load``; on the sleep and skewed suites also
  ``--dist worksteal``, and the better of the two is xdist's figure;
* ``ploop``: ``pytest --ploop-workers=N``.

A runner's figure is the wall time of the whole command (interpreter start, collection,
workers, report), best of ``--repeat`` runs. Runs are interleaved (run 1 of each runner, then
run 2 of each, ...), so drift in machine speed is spread over all runners. Every run must
exit 0 with exactly the suite's number of passed tests; otherwise its row shows the error.

For the skewed suite every timed run gets a fresh copy of the suite directory, is run once
untimed and then timed, so neither the recorded durations nor anything else in
``.pytest_cache`` passes from one runner to another.

The sleep and skewed suites have an ideal bound (their longest test, or their total test
time over the workers). Both are also run, by ploop and serially, with empty test bodies:
what start-up, collection and reporting cost. The notes print the bound and those walls,
and the targets against xdist on these suites print their floor: the bound plus the serial
run of the empty bodies, as a ratio of xdist's wall. A pytest run cannot do much better; a
target below it is out of reach in that run, whatever the runner does.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from itertools import count
from pathlib import Path
from typing import Any

TRIVIAL_TESTS = 3000
TRIVIAL_WORKERS = 2
SLEEP_TESTS = 160
SLEEP_SECONDS = 0.05
SLEEP_WORKERS = 8
CPU_TESTS = 40
CPU_TEST_SECONDS = 0.15
CPU_WORKERS = 2
SKEWED_SHORT_TESTS = 60
SKEWED_SHORT_SECONDS = 0.02
SKEWED_LONG_TESTS = 4
SKEWED_LONG_SECONDS = 1.0
SKEWED_WORKERS = 8

RUNNER_KEYS = ("serial", "xdist", "ploop")
SUITE_NAMES = ("trivial", "sleep", "cpu", "skewed")
# Internal runners, on a suite's tests with empty bodies: what start-up, collection and
# reporting cost, for ploop and for plain pytest. Their walls are not in the table.
STARTUP = "ploop-startup"
SERIAL_STARTUP = "serial-startup"
INTERNAL = {STARTUP: "ploop", SERIAL_STARTUP: "serial"}  # internal runner -> its runner
RUN_TIMEOUT = 600.0  # seconds; a hung run is killed and reported as an error

# Variables that would change what the runs do: a ploop or pytest default taken from the
# environment, or plugin autoloading switched off (which would unload xdist and ploop).
SCRUBBED_ENV = (
    "PLOOP_WORKERS",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
)


# --- the cpu suite's busy loop --------------------------------------------------------------


def spin(iterations: int) -> int:
    """Busy-loop in pure Python for ``iterations`` steps: the cpu suite's test body.

    The generated suite gets this function's source, so the loop calibrated here is the
    one the tests run. The result is deterministic, so each test can check it.
    """
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1_000_003
    return acc


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
    # count calibrated while it is slow makes tests that are too short.
    deadline = time.perf_counter() + 0.3
    while time.perf_counter() < deadline:
        spin(10_000)
    n = 10_000
    while True:
        elapsed = _best_of(3, partial(spin, n))
        if elapsed >= 0.05:  # long enough that timer resolution and jitter do not matter
            return max(1, round(n * target / elapsed))
        n *= 2


# --- the suites -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """A generated test suite and how every runner runs it.

    ``files`` maps a path relative to the suite's directory to its text. ``passed`` is the
    number of passed tests a correct run reports. ``second_run`` (skewed) times the second
    run of a fresh copy, with the cache plugin on. ``ideal`` is the ideal bound
    max(longest test, total / workers), for the suites that report it; ``empty`` is then
    the same suite with empty test bodies, whose ploop run measures the start-up.
    """

    name: str
    workers: int
    passed: int
    files: dict[str, str]
    xdist_dists: tuple[str, ...] = ("load",)
    second_run: bool = False
    ideal: float | None = None
    empty: dict[str, str] | None = None


def _parametrized(name: str, tests: int, body: str) -> str:
    """A parametrized test function of ``tests`` cases whose body is the line ``body``."""
    return (
        f'\n\n@pytest.mark.parametrize("i", range({tests}))\n'
        f"def test_{name}(i: int) -> None:\n    {body}\n"
    )


# A pytest.ini of its own makes the suite's directory the rootdir, so no configuration is
# picked up from the directories above it.
_INI = "[pytest]\n"


def _trivial_suite() -> Suite:
    text = "import pytest\n" + _parametrized("trivial", TRIVIAL_TESTS, "assert i * i >= 0")
    files = {"pytest.ini": _INI, "test_trivial.py": text}
    return Suite("trivial", TRIVIAL_WORKERS, TRIVIAL_TESTS, files)


def _sleep_text(scale: float) -> str:
    """The sleep suite's module; ``scale=0`` gives the same tests with empty bodies."""
    body = f"time.sleep({SLEEP_SECONDS} * SCALE)"
    head = f"import time\n\nimport pytest\n\nSCALE = {scale}\n"
    return head + _parametrized("sleep", SLEEP_TESTS, body)


def _sleep_suite() -> Suite:
    # Sleeping tests of one length: the ideal bound is their total over the workers.
    ideal = SLEEP_TESTS * SLEEP_SECONDS / SLEEP_WORKERS
    files = {"pytest.ini": _INI, "test_sleep.py": _sleep_text(1.0)}
    empty = {"pytest.ini": _INI, "test_sleep.py": _sleep_text(0.0)}
    return Suite(
        "sleep", SLEEP_WORKERS, SLEEP_TESTS, files, ("load", "worksteal"), ideal=ideal, empty=empty
    )


def _cpu_suite(info: dict[str, Any]) -> Suite:
    """Calibrate the busy loop and record the calibration in ``info``."""
    _progress(f"cpu: calibrating a {CPU_TEST_SECONDS * 1000:.0f} ms test ...")
    iterations = calibrate(CPU_TEST_SECONDS)
    expected = spin(iterations)
    info.update(
        iterations=iterations, calibrated_test_seconds=_best_of(3, partial(spin, iterations))
    )
    head = f"import pytest\n\nITERATIONS = {iterations}\nEXPECTED = {expected}\n\n\n"
    body = "assert spin(ITERATIONS) == EXPECTED"
    text = head + inspect.getsource(spin) + _parametrized("cpu", CPU_TESTS, body)
    files = {"pytest.ini": _INI, "test_cpu.py": text}
    return Suite("cpu", CPU_WORKERS, CPU_TESTS, files)


def _skewed_text(scale: float) -> str:
    """The skewed suite's module; ``scale=0`` gives the same tests with empty bodies."""
    short = f"time.sleep({SKEWED_SHORT_SECONDS} * SCALE)"
    long = f"time.sleep({SKEWED_LONG_SECONDS} * SCALE)"
    return (
        f"import time\n\nimport pytest\n\nSCALE = {scale}\n"
        + _parametrized("short", SKEWED_SHORT_TESTS, short)
        + _parametrized("long", SKEWED_LONG_TESTS, long)
    )


def _skewed_suite() -> Suite:
    total = SKEWED_SHORT_TESTS * SKEWED_SHORT_SECONDS + SKEWED_LONG_TESTS * SKEWED_LONG_SECONDS
    ideal = max(SKEWED_LONG_SECONDS, total / SKEWED_WORKERS)
    files = {"pytest.ini": _INI, "test_skewed.py": _skewed_text(1.0)}
    empty = {"pytest.ini": _INI, "test_skewed.py": _skewed_text(0.0)}
    tests = SKEWED_SHORT_TESTS + SKEWED_LONG_TESTS
    return Suite(
        "skewed",
        SKEWED_WORKERS,
        tests,
        files,
        ("load", "worksteal"),
        second_run=True,
        ideal=ideal,
        empty=empty,
    )


def _startup_suite(suite: Suite) -> Suite:
    """``suite`` with empty test bodies: what start-up and reporting cost on it."""
    assert suite.empty is not None
    name = f"{suite.name}-empty"  # its own directory
    return Suite(name, suite.workers, suite.passed, suite.empty, second_run=suite.second_run)


def build_suite(name: str, info: dict[str, Any]) -> Suite:
    """Build the suite called ``name``; for ``cpu``, record the calibration in ``info``."""
    if name == "trivial":
        return _trivial_suite()
    if name == "sleep":
        return _sleep_suite()
    if name == "cpu":
        return _cpu_suite(info)
    return _skewed_suite()


def write_suite(suite: Suite, directory: Path) -> Path:
    """Write ``suite``'s files into ``directory``/``suite.name`` and return that path."""
    root = directory / suite.name
    for relative, text in suite.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --- running pytest -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way a runner runs a suite: ``name`` is the xdist ``--dist`` mode or empty."""

    runner: str
    name: str
    args: tuple[str, ...]


def variants(runner: str, suite: Suite) -> list[Variant]:
    """The command-line variants ``runner`` is timed with on ``suite``."""
    n = str(suite.workers)
    if runner == "serial":
        return [Variant(runner, "", ())]
    if runner == "xdist":
        return [Variant(runner, d, ("-n", n, "--dist", d)) for d in suite.xdist_dists]
    return [Variant(runner, "", (f"--ploop-workers={n}",))]


def runner_label(runner: str, suite: Suite, best: str = "") -> str:
    """The table's name for ``runner`` on ``suite``; ``best`` is xdist's winning --dist."""
    if runner in INTERNAL:
        return f"{runner_label(INTERNAL[runner], suite)}, empty test bodies"
    if runner == "serial":
        return "pytest (serial)"
    if runner == "ploop":
        return f"pytest --ploop-workers={suite.workers}"
    if len(suite.xdist_dists) == 1:
        return f"pytest -n {suite.workers}"
    modes = "/".join(suite.xdist_dists)
    return f"pytest -n {suite.workers} --dist {best or '?'} (best of {modes})"


def pytest_command(suite: Suite, variant: Variant) -> list[str]:
    """The full command line of one run."""
    # -p no:randomly keeps collection order (the skewed suite's long tests come last) if
    # pytest-randomly is installed; without it, the option is ignored.
    cache = () if suite.second_run else ("-p", "no:cacheprovider")
    return [sys.executable, "-m", "pytest", "-q", *cache, "-p", "no:randomly", *variant.args]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}


def _run(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``command`` in ``cwd``; return its exit code and its output (stdout + stderr).

    The run gets its own process group. If it outlives RUN_TIMEOUT, the whole group
    (workers included) is terminated, then killed, and TimeoutError is raised.
    """
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
                proc.communicate(timeout=wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        raise TimeoutError(f"still running after {RUN_TIMEOUT:.0f} s; killed") from None
    return proc.returncode, out


_PASSED = re.compile(r"(\d+) passed")


def check_output(suite: Suite, code: int, out: str) -> None:
    """Raise ValueError unless the run exited 0 and passed exactly ``suite.passed`` tests."""
    lines = [line for line in out.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "(no output)"
    match = _PASSED.search(last)
    passed = int(match.group(1)) if match else 0
    if code != 0 or passed != suite.passed or re.search(r"failed|error", last):
        raise ValueError(f"exit {code}, expected {suite.passed} passed; last line: {last}")


def _ploop_line(out: str) -> str:
    """ploop's own summary line (``ploop: N workers, ... speedup``), or empty."""
    found = [ln for ln in out.splitlines() if ln.startswith("ploop:") and "speedup" in ln]
    return found[-1] if found else ""


def time_run(suite: Suite, variant: Variant, directory: Path, scratch: Path) -> tuple[float, str]:
    """Time one run of ``suite`` in ``directory``; return the wall and ploop's summary line.

    With ``suite.second_run``, the suite is copied into a fresh directory under
    ``scratch``, run once untimed (the run that records durations), and then timed.
    Raises ValueError when a run does not pass exactly the suite's tests.
    """
    command = pytest_command(suite, variant)
    if suite.second_run:
        directory = Path(
            shutil.copytree(directory, tempfile.mkdtemp(dir=scratch), dirs_exist_ok=True)
        )
        check_output(suite, *_run(command, directory))
    start = time.perf_counter()
    code, out = _run(command, directory)
    wall = time.perf_counter() - start
    check_output(suite, code, out)
    if suite.second_run:
        shutil.rmtree(directory, ignore_errors=True)
    return wall, _ploop_line(out)


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Result:
    """What one runner variant did on one suite. ``status`` is "ok", "not installed" or
    "error"; ``ploop_line`` is ploop's summary line from the best run."""

    suite: str
    runner: str
    variant: str
    status: str = "ok"
    detail: str = ""
    walls: list[float] = field(default_factory=list)
    ploop_line: str = ""

    @property
    def best(self) -> float | None:
        """The best (lowest) wall time, or None if the variant did not complete a run."""
        return min(self.walls) if self.status == "ok" and self.walls else None

    def record(self, wall: float, ploop_line: str) -> None:
        """Add one run's wall; keep ploop's summary line if this run is the best so far."""
        if not self.walls or wall < min(self.walls):
            self.ploop_line = ploop_line
        self.walls.append(wall)


Job = tuple[Suite, Path, Variant, Result]


def _jobs(suite: Suite, runners: Sequence[str], root: Path) -> list[Job]:
    """Every (suite, directory, variant, result) to time in one round, suites written."""
    home = write_suite(suite, root)
    jobs = [
        (suite, home, v, Result(suite.name, runner, v.name))
        for runner in runners
        for v in variants(runner, suite)
    ]
    if suite.ideal is not None:
        startup = _startup_suite(suite)
        directory = write_suite(startup, root)
        for internal, runner in INTERNAL.items():
            if runner in runners:
                args = variants(runner, startup)[0].args
                result = Result(suite.name, internal, "")
                jobs.append((startup, directory, Variant(internal, "", args), result))
    return jobs


def _warm_up(directory: Path) -> None:
    # One untimed collection, so that the first timed run does not pay alone for reading
    # the files from disk and writing the rewritten test modules' bytecode.
    _run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
        directory,
    )


def measure_suite(
    suite: Suite, runners: Sequence[str], missing: dict[str, str], repeat: int, root: Path
) -> list[Result]:
    """Time ``suite`` ``repeat`` times with every runner variant, interleaving them.

    ``missing`` maps a runner that cannot run to the reason. A variant whose run fails is
    recorded as an error and is not run again on this suite.
    """
    jobs = _jobs(suite, runners, root)
    for _, _, variant, res in jobs:
        runner = INTERNAL.get(variant.runner, variant.runner)
        if runner in missing:
            res.status, res.detail = "not installed", missing[runner]
    for directory in {job[1] for job in jobs}:
        _warm_up(directory)
    scratch = Path(tempfile.mkdtemp(prefix=f"{suite.name}-runs-", dir=root))
    for i in range(1, repeat + 1):
        for job_suite, directory, variant, res in jobs:
            if res.status != "ok":
                continue
            name = " ".join([variant.runner, variant.name]).strip()
            try:
                res.record(*time_run(job_suite, variant, directory, scratch))
            except (ValueError, TimeoutError, OSError) as exc:
                res.status, res.detail = "error", f"{type(exc).__name__}: {exc}"
                _progress(f"{suite.name}: {name}: {res.detail}")
                continue
            _progress(f"{suite.name}: {name} run {i}/{repeat}: {res.walls[-1]:.3f} s")
    return [job[3] for job in jobs]


# --- figures, table, targets ----------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A runner's figures on one suite: its best variant's wall and the two ratios.

    ``vs_xdist`` = wall / xdist's best wall and ``vs_serial`` = wall / serial's wall, so
    below 1.00 the runner was faster. None where a side was not measured.
    """

    suite: str
    runner: str
    label: str
    status: str
    detail: str
    wall: float | None
    vs_xdist: float | None = None
    vs_serial: float | None = None
    ploop_line: str = ""


def _combine(suite: Suite, runner: str, results: Sequence[Result]) -> Figure:
    """One runner's figure: its best variant, or the first failure if none completed."""
    done = [r for r in results if r.best is not None]
    if not done:
        first = results[0]
        label = runner_label(runner, suite)
        return Figure(suite.name, runner, label, first.status, first.detail, None)
    best = min(done, key=lambda r: r.best or math.inf)
    label = runner_label(runner, suite, best.variant)
    return Figure(suite.name, runner, label, "ok", "", best.best, ploop_line=best.ploop_line)


def _ratio(wall: float | None, base: float | None) -> float | None:
    return wall / base if wall is not None and base else None


def figures(suite: Suite, results: Sequence[Result]) -> list[Figure]:
    """Each runner's figure on ``suite``, in the order the runners were given."""
    order = list(dict.fromkeys(r.runner for r in results))
    combined = {k: _combine(suite, k, [r for r in results if r.runner == k]) for k in order}
    xdist = combined["xdist"].wall if "xdist" in combined else None
    serial = combined["serial"].wall if "serial" in combined else None
    return [
        replace(f, vs_xdist=_ratio(f.wall, xdist), vs_serial=_ratio(f.wall, serial))
        for f in combined.values()
    ]


def _row(fig: Figure) -> list[str]:
    if fig.wall is None:
        detail = fig.status if fig.status == "not installed" else fig.detail
        return [fig.suite, fig.label, "-", detail or fig.status, "-"]

    def ratio(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "n/a"

    return [fig.suite, fig.label, f"{fig.wall:.3f}", ratio(fig.vs_xdist), ratio(fig.vs_serial)]


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


@dataclass(frozen=True)
class Goal:
    """A target from the issues: ploop's ``figure`` on ``suite`` against ``goal``.

    ``figure`` is "vs_xdist" or "vs_serial" (ploop's ratios), "speedup" (serial wall /
    ploop's wall) or "vs_bound" (ploop's wall / (ideal bound + start-up)). ``needs`` is the
    other runner the figure depends on. ``at_most`` says whether ``goal`` is an upper bound.
    """

    suite: str
    text: str
    needs: str
    figure: str
    goal: float
    at_most: bool = True


# Issue 3 (the plugin) and issue 6 (duration-aware scheduling), on a 2-core machine.
GOALS = (
    Goal("trivial", "wall <= 0.6x xdist's (-n 2)", "xdist", "vs_xdist", 0.6),
    Goal("trivial", "never slower than serial", "serial", "vs_serial", 1.0),
    Goal("sleep", "wall <= 0.5x xdist's best (-n 8)", "xdist", "vs_xdist", 0.5),
    Goal("cpu", "speedup >= 1.85x over serial (2 workers)", "serial", "speedup", 1.85, False),
    Goal("skewed", "wall <= 0.5x xdist's best (-n 8), second run", "xdist", "vs_xdist", 0.5),
    Goal("skewed", "wall <= 1.2x (ideal bound + start-up)", STARTUP, "vs_bound", 1.2),
)


@dataclass(frozen=True)
class Target:
    """A goal checked in this run. ``measured`` is None, with the reason in ``why``, when a
    side was not measured. ``floor`` is, for a goal against xdist on a suite with an ideal
    bound, that bound plus what plain pytest spends on the suite besides the test bodies
    (its serial run of the same tests with empty bodies), over xdist's wall."""

    goal: Goal
    measured: float | None
    why: str = ""
    floor: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the goal is met, or None when it was not measured."""
        if self.measured is None:
            return None
        if self.goal.at_most:
            return self.measured <= self.goal.goal
        return self.measured >= self.goal.goal


Figures = dict[tuple[str, str], Figure]


def _missing(figs: Figures, suite: str, runners: Sequence[str]) -> str:
    """Why a target on ``suite`` cannot be checked, or "" when ``runners`` all have walls."""
    if not any(key[0] == suite for key in figs):
        return "suite not selected"
    for runner in runners:
        fig = figs.get((suite, runner))
        if fig is None:
            return f"runner {INTERNAL.get(runner, runner)} not selected"
        if fig.wall is None:
            return f"{fig.label}: {fig.status}; see the table"
    return ""


def _measure(goal: Goal, figs: Figures, ideal: float | None) -> float | None:
    """ploop's figure for ``goal``; the runners it needs have walls (see _missing)."""
    ploop = figs[(goal.suite, "ploop")]
    if goal.figure == "speedup":
        return 1 / ploop.vs_serial if ploop.vs_serial else None
    if goal.figure == "vs_bound":
        startup = figs[(goal.suite, STARTUP)].wall
        if ploop.wall is None or startup is None or ideal is None:
            return None
        return ploop.wall / (ideal + startup)
    return ploop.vs_xdist if goal.figure == "vs_xdist" else ploop.vs_serial


def floor(figs: Figures, suite: str, ideal: float | None) -> float | None:
    """The suite's ideal bound plus plain pytest's start-up, in seconds, when both exist."""
    startup = figs.get((suite, SERIAL_STARTUP))
    if ideal is None or startup is None or startup.wall is None:
        return None
    return ideal + startup.wall


def targets(figs: Figures, suites: Sequence[Suite]) -> list[Target]:
    """Check the targets of issues 3 and 6 against the figures measured in this run."""
    ideals = {s.name: s.ideal for s in suites}
    found = []
    for goal in GOALS:
        why = _missing(figs, goal.suite, ("ploop", goal.needs))
        measured = None if why else _measure(goal, figs, ideals.get(goal.suite))
        lowest = floor(figs, goal.suite, ideals.get(goal.suite))
        xdist = figs.get((goal.suite, "xdist"))
        ratio = None
        if goal.figure == "vs_xdist" and lowest is not None and xdist and xdist.wall:
            ratio = lowest / xdist.wall
        found.append(Target(goal, measured, why, ratio))
    return found


def _format_target(t: Target) -> str:
    head = f"{t.goal.suite}: ploop {t.goal.text}"
    if t.met is None:
        return f"  [not measured] {head} ({t.why})"
    unit = "" if t.goal.at_most else "x"
    got = f"{t.measured:.2f}{unit} vs {t.goal.goal:.2f}{unit}"
    if t.floor is not None:
        got += f"; floor {t.floor:.2f}"
        if t.floor > t.goal.goal:
            got += ", above the goal"
    return f"  [{'met' if t.met else 'NOT MET'}] {head} ({got})"


# --- environment and command line -----------------------------------------------------------


def _dist_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def find_missing(runners: Sequence[str]) -> dict[str, str]:
    """Map each runner whose plugin is not importable to why; serial always runs."""
    modules = {"xdist": ("xdist", "pytest-xdist"), "ploop": ("pytest_ploop", "pytest-ploop")}
    missing = {}
    for runner in runners:
        module, dist = modules.get(runner, ("", ""))
        if module and importlib.util.find_spec(module) is None:
            missing[runner] = f"{dist} not installed for {sys.executable}"
    return missing


def machine_info() -> dict[str, Any]:
    """Describe the machine, its load, and the versions the figures came from."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "load_average": load,
        "versions": {d: _dist_version(d) for d in ("pytest", "pytest-xdist", "pytest-ploop")},
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line. See the module docstring and benchmarks/README.md."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suites",
        description="Time serial pytest, pytest-xdist and pytest-ploop on generated suites.",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        metavar="N",
        help="runs per runner and suite; the best is reported (default 3)",
    )
    parser.add_argument(
        "--suites",
        type=_csv(SUITE_NAMES),
        default=list(SUITE_NAMES),
        metavar="S,...",
        help=f"suites to run (default {','.join(SUITE_NAMES)})",
    )
    parser.add_argument(
        "--runners",
        type=_csv(RUNNER_KEYS),
        default=list(RUNNER_KEYS),
        metavar="R,...",
        help=f"runners to time (default {','.join(RUNNER_KEYS)})",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the raw figures to PATH as JSON"
    )
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _print_header(info: dict[str, Any], repeat: int) -> None:
    print(f"Python {info['python']} ({info['implementation']}) on {info['platform']}")
    load = info["load_average"]
    busy = f"; load average {load[0]:.2f} at start" if load else ""
    print(f"CPUs: {info['cpu_count']} (usable: {info['usable_cpus']}){busy}; best of {repeat} runs")
    print(", ".join(f"{d} {v or 'not installed'}" for d, v in info["versions"].items()))
    print()


def _walls(results: Sequence[Result], suite: str) -> str:
    """xdist's wall per --dist mode on ``suite``, such as "load 1.234 s, worksteal 1.111 s"."""
    parts = [
        f"{r.variant} {r.best:.3f} s" if r.best is not None else f"{r.variant} {r.status}"
        for r in results
        if r.suite == suite and r.runner == "xdist"
    ]
    return f"; xdist --dist {', '.join(parts)}" if len(parts) > 1 else ""


def _describe(suite: Suite, cpu: dict[str, Any]) -> str:
    """One line on what ``suite`` is, for the notes under the table."""
    w = f"{suite.workers} workers"
    if suite.name == "trivial":
        return f"trivial: {TRIVIAL_TESTS:,} tests of `assert i * i >= 0`, {w}"
    if suite.name == "sleep":
        total = SLEEP_TESTS * SLEEP_SECONDS
        return f"sleep: {SLEEP_TESTS} x sleep({SLEEP_SECONDS}) = {total:.1f} s in all, {w}"
    if suite.name == "cpu":
        each = cpu["calibrated_test_seconds"] * 1000
        return (
            f"cpu: {CPU_TESTS} tests of spin({cpu['iterations']:,}), {each:.0f} ms each here, {w}"
        )
    short = f"{SKEWED_SHORT_TESTS} x sleep({SKEWED_SHORT_SECONDS})"
    long = f"{SKEWED_LONG_TESTS} x sleep({SKEWED_LONG_SECONDS})"
    return f"skewed: {short} then {long}, {w}, second run of a fresh copy"


def _print_notes(
    suites: Sequence[Suite], results: Sequence[Result], figs: Figures, cpu: dict[str, Any]
) -> None:
    print()
    print("ratio = runner's wall / the other runner's wall; below 1.00 the runner was faster.")
    for suite in suites:
        print(f"{_describe(suite, cpu)}{_walls(results, suite.name)}.")
        if suite.ideal is not None:
            _print_bound(suite, figs)
    lines = [
        f"  {f.suite}: {f.ploop_line}"
        for f in figs.values()
        if f.runner == "ploop" and f.ploop_line
    ]
    if lines:
        print("ploop's own summary of its best run:")
        print("\n".join(lines))


def _print_bound(suite: Suite, figs: Figures) -> None:
    if suite.name == "skewed":
        total = SKEWED_SHORT_TESTS * SKEWED_SHORT_SECONDS + SKEWED_LONG_TESTS * SKEWED_LONG_SECONDS
        how = f"max({SKEWED_LONG_SECONDS:.3f} s longest, {total:.3f} s total / {suite.workers})"
    else:
        how = f"{SLEEP_TESTS * SLEEP_SECONDS:.3f} s total / {suite.workers}"
    text = f"{suite.name}: ideal bound = {how} = {suite.ideal:.3f} s"
    startups = []
    for internal, runner in INTERNAL.items():
        fig = figs.get((suite.name, internal))
        if fig is not None and fig.wall is not None:
            startups.append(f"{fig.wall:.3f} s for {runner}")
    if startups:
        text += f"; start-up (the same tests with empty bodies) = {', '.join(startups)}"
    lowest = floor(figs, suite.name, suite.ideal)
    if lowest is not None:
        text += f"; floor (ideal bound + serial start-up) = {lowest:.3f} s"
    print(text + ".")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the targets, and write JSON if asked."""
    args = parse_args(argv)
    runners = [r for r in RUNNER_KEYS if r in args.runners]
    missing = find_missing(runners)
    info = machine_info()
    _print_header(info, args.repeat)

    cpu_info: dict[str, Any] = {}
    suites = [build_suite(name, cpu_info) for name in SUITE_NAMES if name in args.suites]
    results: list[Result] = []
    figs: Figures = {}
    with tempfile.TemporaryDirectory(prefix="ploop-suites-") as tmp:
        for suite in suites:
            found = measure_suite(suite, runners, missing, args.repeat, Path(tmp))
            results += found
            figs.update({(f.suite, f.runner): f for f in figures(suite, found)})

    rows = [_row(f) for f in figs.values() if f.runner not in INTERNAL]
    header = ["suite", "runner", "wall (s)", "ratio vs xdist", "ratio vs serial"]
    print(markdown_table(header, rows, right={2, 3, 4}))
    _print_notes(suites, results, figs, cpu_info)
    found_targets = targets(figs, suites)
    print("\nIssue targets on this machine:")
    print("\n".join(_format_target(t) for t in found_targets))

    if args.json is not None:
        report = {
            "machine": info,
            "repeat": args.repeat,
            "cpu_calibration": cpu_info,
            "suites": {
                s.name: {"tests": s.passed, "workers": s.workers, "ideal": s.ideal} for s in suites
            },
            "results": [asdict(r) | {"best": r.best} for r in results],
            "figures": [asdict(f) for f in figs.values()],
            "targets": [
                asdict(t.goal)
                | {"measured": t.measured, "met": t.met, "why": t.why, "floor": t.floor}
                for t in found_targets
            ],
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nRaw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
