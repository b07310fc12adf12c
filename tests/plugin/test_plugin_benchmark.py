"""pytest-benchmark under ``--ploop-workers``: benchmarks run as plain tests, as under xdist.

Its measurements would stay in the workers (the main process's table and JSON stay empty),
and timings taken next to other tests mean little; pytest-benchmark switches itself off under
xdist for that reason, and the plugin does the same for ploop's workers."""

from __future__ import annotations

import json

import pytest
from plugin_support import Project

# The inner runs of the plugin tests switch pytest-benchmark off; these switch it on.
INI = "[pytest]\naddopts = -p no:hypothesispytest -p no:cov\n"

BENCHMARKS = """
import ploophelp


def test_sum(benchmark):
    ploophelp.log("benchmarked", benchmark.disabled)
    assert benchmark(sum, range(1000)) == 499500


def test_plain():
    pass
"""


def test_benchmarks_run_once_untimed_and_the_summary_says_so(project: Project) -> None:
    project.pytester.makeini(INI)
    project.pytester.makepyfile(test_bench=BENCHMARKS)
    serial = project.run("--benchmark-json=serial.json", "--benchmark-max-time=0.01")
    serial.assert_outcomes(passed=2)
    assert len(json.loads((project.pytester.path / "serial.json").read_text())["benchmarks"]) == 1
    assert [e.fields for e in project.events()] == [("benchmarked", "False")]
    project.clear_events()

    result = project.run("--ploop-workers=2", "--benchmark-json=ploop.json")
    result.assert_outcomes(passed=2)
    assert [e.fields for e in project.events()] == [("benchmarked", "True")]
    out = result.stdout.str()
    assert "Benchmarks are automatically disabled because --ploop-workers is active" in out
    assert "pytest-benchmark" in out and "Not saving anything" not in out + result.stderr.str()
    assert not (project.pytester.path / "ploop.json").exists()


def test_without_benchmarks_nothing_is_said(project: Project) -> None:
    project.pytester.makeini(INI)
    project.pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = project.run("--ploop-workers=2")
    result.assert_outcomes(passed=1)
    assert "Benchmarks are automatically disabled" not in result.stdout.str()


@pytest.mark.parametrize("option", ["--benchmark-disable", "--benchmark-skip"])
def test_benchmarks_switched_off_by_the_user_stay_so_and_nothing_is_said(
    project: Project, option: str
) -> None:
    project.pytester.makeini(INI)
    project.pytester.makepyfile(test_bench=BENCHMARKS)
    result = project.run("--ploop-workers=2", option)
    if option == "--benchmark-skip":
        result.assert_outcomes(passed=1, skipped=1)
    else:
        result.assert_outcomes(passed=2)
    assert "Benchmarks are automatically disabled" not in result.stdout.str()


def test_benchmark_only_is_a_usage_error(project: Project) -> None:
    project.pytester.makeini(INI)
    project.pytester.makepyfile(test_bench=BENCHMARKS)
    result = project.run("--ploop-workers=2", "--benchmark-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--benchmark-only*run it without --ploop-workers*"])
    assert not project.events()
