"""Time one expensive parametrized test three ways: ``@ploop.parametrize_parallel`` with two
workers, ``pytest.mark.parametrize`` run serially, and ``pytest.mark.parametrize`` under
``pytest -n 2`` (pytest-xdist).

Run it from a checkout with either of::

    python benchmarks/parametrize.py
    python -m benchmarks.parametrize --repeat 5 --json bench-parametrize.json

The test body is the busy loop of ``benchmarks/suites.py`` (``spin``), calibrated at start-up
to about 15 ms of CPU, and there are 200 cases (3 s of CPU in all). Two generated suites in
a temporary directory hold the same body:

* ``decorated``: ``@ploop.parametrize_parallel("i", range(200), workers=2)``: one test item
  whose cases run in two forked workers;
* ``plain``: ``@pytest.mark.parametrize("i", range(200))``: 200 test items.

The runners, each a whole ``python -m pytest -q -p no:cacheprovider ...`` run in a subprocess
(interpreter start, collection and report included, as a user waits for them), interleaved
over ``--repeat`` rounds, best of the rounds:

* ``decorated``: plain ``pytest`` on the decorated suite (the fan-out is the decorator's);
* ``serial``: plain ``pytest`` on the plain suite;
* ``xdist``: ``pytest -n 2`` on the plain suite.

``ratio`` is the decorated run's wall over the runner's: below 1.00 the decorated test was
faster. Every run must exit 0 with the suite's number of passed tests (1 or 200), else its
row shows the error.
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
import inspect  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402
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
CASE_SECONDS = 0.015
WORKERS = 2
RUNNERS = ("decorated", "serial", "xdist")

_INI = "[pytest]\n"  # the suite's directory is its rootdir: no configuration from above
_HEAD = "import pytest\n\nimport pytest_ploop as ploop\n\nITERATIONS = {n}\nEXPECTED = {e}\n\n\n"
_DECORATED = (
    '\n\n@ploop.parametrize_parallel("i", range({cases}), workers={workers})\n'
    "def test_case(i: int) -> None:\n    assert spin(ITERATIONS) == EXPECTED\n"
)
_PLAIN = (
    '\n\n@pytest.mark.parametrize("i", range({cases}))\n'
    "def test_case(i: int) -> None:\n    assert spin(ITERATIONS) == EXPECTED\n"
)


def build_suites(cases: int, iterations: int) -> dict[str, Suite]:
    """The decorated and the plain suite, the same body in each."""
    head = _HEAD.format(n=iterations, e=spin(iterations)) + inspect.getsource(spin)
    decorated = head + _DECORATED.format(cases=cases, workers=WORKERS)
    plain = head + _PLAIN.format(cases=cases)
    return {
        "decorated": Suite("decorated", WORKERS, 1, {"pytest.ini": _INI, "test_it.py": decorated}),
        "plain": Suite("plain", WORKERS, cases, {"pytest.ini": _INI, "test_it.py": plain}),
    }


def runner_variant(runner: str) -> tuple[str, Variant, str]:
    """The suite a runner runs, its variant (extra arguments) and its label in the table."""
    if runner == "decorated":
        label = f"@ploop.parametrize_parallel(workers={WORKERS})"
        return "decorated", Variant(runner, "", ()), label
    if runner == "serial":
        return "plain", Variant(runner, "", ()), "pytest.mark.parametrize, serial"
    label = f"pytest.mark.parametrize, pytest -n {WORKERS}"
    return "plain", Variant(runner, "load", ("-n", str(WORKERS))), label


_CASES_LINE = re.compile(r"^\S+::test_case: .*speedup$", re.M)


def time_once(suite: Suite, variant: Variant, directory: Path) -> tuple[float, str]:
    """One timed run: its wall, and the decorated test's ``ploop cases`` line (or empty).
    Raises ValueError unless the run passed exactly the suite's tests."""
    start = time.perf_counter()
    code, out = _run(pytest_command(suite, variant), directory)
    wall = time.perf_counter() - start
    check_output(suite, code, out)
    found = _CASES_LINE.findall(out)
    return wall, found[-1] if found else ""


def measure(
    suites: dict[str, Suite], missing: dict[str, str], repeat: int, root: Path
) -> list[Result]:
    """Time every runner ``repeat`` times, interleaved (round 1 of each, then round 2...)."""
    homes = {name: write_suite(s, root) for name, s in suites.items()}
    for home in homes.values():
        _warm_up(home)
    results = {r: Result("parametrize", r, "") for r in RUNNERS}
    for res in results.values():
        if res.runner in missing:
            res.status, res.detail = "not installed", missing[res.runner]
    for i in range(1, repeat + 1):
        for runner, res in results.items():
            if res.status != "ok":
                continue
            name, variant, _ = runner_variant(runner)
            try:
                res.record(*time_once(suites[name], variant, homes[name]))
            except (ValueError, TimeoutError, OSError) as exc:
                res.status, res.detail = "error", f"{type(exc).__name__}: {exc}"
                _progress(f"{runner}: {res.detail}")
                continue
            _progress(f"{runner} run {i}/{repeat}: {res.walls[-1]:.3f} s")
    return list(results.values())


def table(results: Sequence[Result]) -> str:
    """Walls, and the decorated run's wall over each runner's."""
    decorated = next((r.best for r in results if r.runner == "decorated"), None)
    rows = []
    for res in results:
        label = runner_variant(res.runner)[2]
        if res.best is None:
            rows.append([label, "-", res.detail or res.status])
            continue
        ratio = _ratio(decorated, res.best)
        rows.append([label, f"{res.best:.3f}", f"{ratio:.2f}" if ratio is not None else "n/a"])
    header = ["runner", "wall (s)", "ratio decorated / runner"]
    return markdown_table(header, rows, right={1, 2})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.parametrize",
        description="Time parametrize_parallel against serial pytest and pytest -n 2.",
    )
    parser.add_argument(
        "--repeat", type=_positive, default=3, metavar="N",
        help="runs per runner; the best is reported (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--cases", type=_positive, default=CASES, metavar="N",
        help=f"cases of the test (default {CASES})",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the raw figures to PATH as JSON"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; write JSON if asked."""
    args = parse_args(argv)
    info = machine_info()
    _print_header(info, args.repeat)
    missing = find_missing(["xdist", "ploop"])
    if "ploop" in missing:
        missing["decorated"] = missing["ploop"]
    _progress(f"calibrating a {CASE_SECONDS * 1000:.0f} ms case ...")
    iterations = calibrate(CASE_SECONDS)
    each = _best_of(3, partial(spin, iterations))
    suites = build_suites(args.cases, iterations)
    with tempfile.TemporaryDirectory(prefix="ploop-parametrize-") as tmp:
        results = measure(suites, missing, args.repeat, Path(tmp))
    print(table(results))
    print()
    print("ratio = the decorated run's wall / the runner's wall; below 1.00 it was faster.")
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
