"""What the fan-out bought, where a run's reports show it: ``--junitxml`` properties of the
decorated test, and a line per decorated test in the ``-v`` ``ploop`` section."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from decorator_support import Project

from pytest_ploop._report._terminal import fanout_lines

SUITE = """
from pytest_ploop import parametrize_parallel


@parametrize_parallel("n", range(8), workers=2)
def test_fanned(n):
    assert sum(range(20_000 * (n + 1))) >= 0


@parametrize_parallel("n", [1, 2], workers=2)
def test_half(n):
    assert n == 1


def test_plain():
    pass
"""


def _properties(path: str, name: str) -> dict[str, str]:
    root = ET.parse(path).getroot()
    (case,) = [c for c in root.iter("testcase") if c.get("name") == name]
    return {p.get("name") or "": p.get("value") or "" for p in case.iter("property")}


@pytest.mark.parametrize("args", [(), ("--ploop-workers=2",)], ids=["serial", "ploop-workers"])
def test_junitxml_has_the_cases_timings_as_properties(project: Project, args: tuple[str]) -> None:
    project.pytester.makepyfile(test_suite=SUITE)
    result = project.run("--junitxml=out.xml", "--ploop-fanout-budget=4", *args)
    result.assert_outcomes(passed=2, failed=1)
    props = _properties(str(project.path / "out.xml"), "test_fanned")
    assert props["ploop_cases"] == "8" and props["ploop_workers"] == "2"
    wall, serial = float(props["ploop_wall_s"]), float(props["ploop_serial_s"])
    assert wall > 0 and serial > 0
    assert float(props["ploop_speedup"]) == pytest.approx(serial / wall, rel=0.01)
    assert json.loads(props["ploop_counts"]) == {"passed": 8}
    assert json.loads(props["ploop_case[3]"])["outcome"] == "passed"
    half = _properties(str(project.path / "out.xml"), "test_half")
    assert json.loads(half["ploop_counts"]) == {"failed": 1, "passed": 1}
    assert "ploop_cases" not in _properties(str(project.path / "out.xml"), "test_plain")


def test_the_verbose_ploop_section_has_a_line_per_decorated_test(project: Project) -> None:
    project.pytester.makepyfile(test_suite=SUITE)
    result = project.run("--ploop-workers=2", "--ploop-fanout-budget=4", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- ploop -*",
            "ploop: 2 workers, *",
            "  parametrize_parallel tests (cases on workers of their own):",
            "    test_suite.py::test_fanned: 8 cases on 2 workers, *s of cases in *s -> *x",
            "    test_suite.py::test_half: 2 cases on 2 workers, *s of cases in *s -> *x",
        ]
    )
    quiet = project.run("--ploop-workers=2", "--ploop-fanout-budget=4")
    assert "parametrize_parallel tests" not in quiet.stdout.str()  # only with -v


def test_fanout_lines() -> None:
    fanouts = {
        "t.py::test_x": {"cases": 500, "workers": 8, "wall_s": 6.2, "serial_s": 41.0,
                         "speedup": 6.613},
        "t.py::test_one": {"cases": 1, "workers": 1, "wall_s": 0.5, "serial_s": 0.4,
                           "speedup": 0.8},
        "t.py::test_skipped": {"cases": 3, "workers": 0, "wall_s": 0, "serial_s": 0,
                               "speedup": None},
    }  # fmt: skip
    assert fanout_lines(fanouts) == [
        "  parametrize_parallel tests (cases on workers of their own):",
        # In node id order, whatever order the reports came in.
        "    t.py::test_one: 1 case on 1 worker, 0.40s of cases in 0.50s -> 0.80x",
        "    t.py::test_x: 500 cases on 8 workers, 41.0s of cases in 6.2s -> 6.6x",
    ]
    assert fanout_lines({}) == []
