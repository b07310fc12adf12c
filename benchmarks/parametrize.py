"""Time one expensive parametrized test: ``@ploop.parametrize_parallel`` on two workers
against its peers, each measured in the same run.

Run it from a checkout with either of::

    python benchmarks/parametrize.py            # about a minute and a half on 2 cores
    python benchmarks/parametrize.py --quick    # one round of 100 cases: a smoke test
    python -m benchmarks.parametrize --repeat 5 --json bench-parametrize.json

The test body is the busy loop of ``benchmarks/suites.py`` (``spin``), calibrated at start-up
to about 15 ms of CPU, and there are 200 cases (3 s of CPU in all). Generated suites in a
temporary directory hold the same body, each as its runner would have it:

* ``decorated``: ``@ploop.parametrize_parallel("i", range(200), workers=2)``: one test item
  whose cases run in two forked workers;
* ``plain``: ``@pytest.mark.parametrize("i", range(200))``: 200 test items;
* ``multiprocessing``, ``joblib``, ``mpire``: one test that maps the body over the 200 cases
  with that library's pool of two workers (``multiprocessing`` and ``mpire`` fork, joblib
  uses its default loky backend) and checks every result.

The runners, each a whole ``python -m pytest -q -p no:cacheprovider ...`` run in a subprocess
(interpreter start, collection and report included, as a user waits for them), interleaved
over ``--repeat`` rounds, best of the rounds:

* ``decorated``: plain ``pytest`` on the decorated suite (the fan-out is the decorator's);
* ``serial``: plain ``pytest`` on the plain suite;
* ``xdist``: ``pytest -n 2`` on the plain suite;
* ``multiprocessing``, ``joblib``, ``mpire``: plain ``pytest`` on that library's suite.
  A peer whose library is not installed shows as such.

``ploop / peer`` is the decorated run's wall over the peer's: below 1.00 the decorated test
was faster. Every run must exit 0 with the suite's number of passed tests (1 or 200), else its
row shows the error. The pool peers give one pass or fail for all the cases; they are here for
the cost of the processes, not as equals in what a failure report says.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/; the checkout goes first so that
# ``benchmarks.suites`` imports either way.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from functools import partial  # noqa: E402

from benchmarks.suites import (  # noqa: E402
    Result,
    Suite,
    Variant,
    _best_of,
    _positive,
    _print_header,
    _progress,
    _ratio,
    _run,
    _warm_up,
    calibrate,
    check_output,
    find_missing,
    machine_info,
    markdown_table,
    pytest_command,
    spin,
    write_suite,
)

CASES = 200
QUICK_CASES = 100
CASE_SECONDS = 0.015
WORKERS = 2

_INI = "[pytest]\n"  # the suite's directory is its rootdir: no configuration from above
_HEAD = "import pytest\n\nimport pytest_ploop as ploop\n\nITERATIONS = {n}\nEXPECTED = {e}\n\n\n"
_DECORATED = """

@ploop.parametrize_parallel("i", range({cases}), workers={workers})
def test_case(i: int) -> None:
    assert spin(ITERATIONS) == EXPECTED
"""
_PLAIN = """

@pytest.mark.parametrize("i", range({cases}))
def test_case(i: int) -> None:
    assert spin(ITERATIONS) == EXPECTED
"""
# The pool suites: one test, the loop inside it. multiprocessing forks explicitly (the Linux
# default up to 3.13; forkserver from 3.14), as the decorator's workers do; close + join is
# the graceful shutdown a user would write, and a cost the others pay too.
_MULTIPROCESSING = """

def test_case() -> None:
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool({workers})
    try:
        results = pool.map(spin, [ITERATIONS] * {cases})
    finally:
        pool.close()
        pool.join()
    assert results == [EXPECTED] * {cases}
"""
_JOBLIB = """

def test_case() -> None:
    from joblib import Parallel, delayed

    results = Parallel(n_jobs={workers})(delayed(spin)(ITERATIONS) for _ in range({cases}))
    assert results == [EXPECTED] * {cases}
"""
_MPIRE = """

def test_case() -> None:
    from mpire import WorkerPool

    with WorkerPool(n_jobs={workers}, start_method="fork") as pool:
        results = pool.map(spin, [ITERATIONS] * {cases})
    assert results == [EXPECTED] * {cases}
"""


@dataclass(frozen=True)
class Runner:
    """A runner: its key, the suite it runs, its pytest arguments, its label in the table and
    the module it needs (empty: nothing beyond pytest and pytest-ploop)."""

    key: str
    suite: str
    args: tuple[str, ...]
    label: str
    needs: str = ""


RUNNERS = (
    Runner("decorated", "decorated", (), f"@ploop.parametrize_parallel(workers={WORKERS})"),
    Runner("serial", "plain", (), "pytest.mark.parametrize, serial"),
    Runner("xdist", "plain", ("-n", str(WORKERS)), f"pytest.mark.parametrize, pytest -n {WORKERS}"),
    Runner(
        "multiprocessing", "multiprocessing", (), f"one test, multiprocessing.Pool({WORKERS}).map"
    ),
    Runner("joblib", "joblib", (), f"one test, joblib.Parallel(n_jobs={WORKERS})", "joblib"),
    Runner("mpire", "mpire", (), f"one test, mpire.WorkerPool(n_jobs={WORKERS}).map", "mpire"),
)
_BY_KEY = {r.key: r for r in RUNNERS}


def build_suites(cases: int, iterations: int) -> dict[str, Suite]:
    """Every runner's suite, the same body in each."""
    head = _HEAD.format(n=iterations, e=spin(iterations)) + inspect.getsource(spin)
    bodies = {
        "decorated": (_DECORATED, 1),
        "plain": (_PLAIN, cases),
        "multiprocessing": (_MULTIPROCESSING, 1),
        "joblib": (_JOBLIB, 1),
        "mpire": (_MPIRE, 1),
    }
    return {
        name: Suite(
            name,
            WORKERS,
            passed,
            {"pytest.ini": _INI, "test_it.py": head + body.format(cases=cases, workers=WORKERS)},
        )
        for name, (body, passed) in bodies.items()
    }


def find_unavailable() -> dict[str, str]:
    """Map each runner that cannot run here to why."""
    missing = find_missing(["xdist", "ploop"])
    unavailable = {k: v for k, v in missing.items() if k in _BY_KEY}
    for runner in RUNNERS:
        if "ploop" in missing and runner.suite == "decorated":
            unavailable[runner.key] = missing["ploop"]
        if runner.needs and importlib.util.find_spec(runner.needs) is None:
            unavailable[runner.key] = f"{runner.needs} not installed for {sys.executable}"
    return unavailable


_CASES_LINE = re.compile(r"^\S+::test_case: .*speedup$", re.M)


def time_once(suite: Suite, runner: Runner, directory: Path) -> tuple[float, str]:
    """One timed run: its wall, and the decorated test's ``ploop cases`` line (or empty).
    Raises ValueError unless the run passed exactly the suite's tests."""
    start = time.perf_counter()
    code, out = _run(pytest_command(suite, Variant(runner.key, "", runner.args)), directory)
    wall = time.perf_counter() - start
    check_output(suite, code, out)
    found = _CASES_LINE.findall(out)
    return wall, found[-1] if found else ""


def measure(
    suites: dict[str, Suite], unavailable: dict[str, str], repeat: int, root: Path
) -> list[Result]:
    """Time every runner ``repeat`` times, interleaved (round 1 of each, then round 2...)."""
    homes = {name: write_suite(s, root) for name, s in suites.items()}
    for home in homes.values():
        _warm_up(home)
    results = {r.key: Result("parametrize", r.key, "") for r in RUNNERS}
    for key, res in results.items():
        if key in unavailable:
            res.status, res.detail = "not installed", unavailable[key]
    for i in range(1, repeat + 1):
        for runner in RUNNERS:
            res = results[runner.key]
            if res.status != "ok":
                continue
            try:
                res.record(*time_once(suites[runner.suite], runner, homes[runner.suite]))
            except (ValueError, TimeoutError, OSError) as exc:
                res.status, res.detail = "error", f"{type(exc).__name__}: {exc}"
                _progress(f"{runner.key}: {res.detail}")
                continue
            _progress(f"{runner.key} run {i}/{repeat}: {res.walls[-1]:.3f} s")
    return list(results.values())


def table(results: Sequence[Result]) -> str:
    """Walls, and the decorated run's wall over each peer's."""
    decorated = next((r.best for r in results if r.runner == "decorated"), None)
    rows = []
    for res in results:
        label = _BY_KEY[res.runner].label
        if res.best is None:
            rows.append([label, "-", res.detail or res.status])
            continue
        ratio = _ratio(decorated, res.best)
        rows.append([label, f"{res.best:.3f}", f"{ratio:.2f}" if ratio is not None else "n/a"])
    return markdown_table(["runner", "wall (s)", "ploop / peer"], rows, right={1, 2})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.parametrize",
        description=(
            "Time parametrize_parallel against serial pytest, pytest -n 2, and one test "
            "looping with multiprocessing, joblib or mpire."
        ),
    )
    parser.add_argument(
        "--repeat", type=_positive, default=None, metavar="N",
        help="runs per runner; the best is reported (default 3, 1 with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--cases", type=_positive, default=None, metavar="N",
        help=f"cases of the test (default {CASES}, {QUICK_CASES} with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help=f"one round of {QUICK_CASES} cases: checks every runner works, in about 20 s",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the raw figures to PATH as JSON"
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.cases is None:
        args.cases = QUICK_CASES if args.quick else CASES
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; write JSON if asked."""
    args = parse_args(argv)
    info = machine_info()
    _print_header(info, args.repeat)
    unavailable = find_unavailable()
    _progress(f"calibrating a {CASE_SECONDS * 1000:.0f} ms case ...")
    iterations = calibrate(CASE_SECONDS)
    each = _best_of(3, partial(spin, iterations))
    suites = build_suites(args.cases, iterations)
    with tempfile.TemporaryDirectory(prefix="ploop-parametrize-") as tmp:
        results = measure(suites, unavailable, args.repeat, Path(tmp))
    print(table(results))
    print()
    print("ploop / peer = the decorated run's wall / the peer's wall; below 1.00 it was faster.")
    print(
        f"The test: {args.cases} cases of spin({iterations:,}), {each * 1000:.1f} ms each here "
        f"({args.cases * each:.2f} s of CPU in all), {WORKERS} workers; whole pytest runs."
    )
    line = next((r.ploop_line for r in results if r.runner == "decorated"), "")
    if line:
        print(f"The decorated test's own line (best run): {line}")
    if args.json is not None:
        report = {
            "machine": info,
            "repeat": args.repeat,
            "cases": args.cases,
            "iterations": iterations,
            "case_seconds": each,
            "results": [asdict(r) | {"best": r.best} for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nRaw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
