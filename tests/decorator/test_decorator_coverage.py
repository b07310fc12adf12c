"""Coverage (pytest-cov) counts the lines that cases ran in the fan-out's workers: in a
serial run and inside a ``--ploop-workers`` run, the same as ``pytest.mark.parametrize``."""

from __future__ import annotations

import re

import pytest
from decorator_support import INI, Project

PACKAGE = """
def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


def never_called():
    return "not covered"
"""

DECORATED = """
import covered

from pytest_ploop import parametrize_parallel


@parametrize_parallel("x", [-2, -1, 1, 2], workers=2)
def test_sign(x):
    assert covered.sign(x) in (-1, 1)
"""


@pytest.mark.parametrize("args", [(), ("--ploop-workers=2",)], ids=["serial", "ploop-workers"])
def test_lines_run_by_cases_in_workers_are_covered(project: Project, args: tuple[str]) -> None:
    project.pytester.makeini(INI.replace(" -p no:cov", ""))
    project.pytester.makepyfile(covered=PACKAGE, test_covered=DECORATED)
    result = project.run("--cov=covered", "--cov-report=term-missing", *args)
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if line.startswith("covered.py")]
    # sign()'s branches for x > 0 and x < 0 ran only in the fan-out's workers: their data
    # lost would show lines 2 to 5 as missing too.
    assert len(lines) == 1 and re.search(r"covered\.py\s+8\s+2\s+75%\s+6, 10$", lines[0]), lines
    assert not list(project.path.glob(".coverage.*"))  # the workers' files were combined
