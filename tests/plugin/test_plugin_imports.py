"""The plugin is loaded by every pytest run where pytest-ploop is installed: without
``--ploop-workers`` it imports neither the engine, nor the loop API, nor filelock, and the
package's public names are imported on first use."""

from __future__ import annotations

import subprocess
import sys

from plugin_support import Project

# Modules a run without --ploop-workers must not import (each of them, or what it imports,
# cost milliseconds at every pytest start).
HEAVY = (
    "pytest_ploop._loop",
    "pytest_ploop._fanout",
    "pytest_ploop._parametrize",
    "pytest_ploop._sync",
    "pytest_ploop._engine._pool",
    "pytest_ploop._engine._worker",
    "pytest_ploop._backends",
    "pytest_ploop._testing._cases",
    "pytest_ploop._testing._session",
    "filelock",
)

TESTS = f"""
import sys


def test_nothing_heavy_is_imported():
    assert [m for m in {HEAVY!r} if m in sys.modules] == []
"""

DECORATED = """
import sys

from pytest_ploop import parametrize_parallel


@parametrize_parallel("n", range(3), workers=2)
def test_cases(n):
    assert n < 3


def test_the_decorator_brought_its_machinery():
    assert "pytest_ploop._fanout" in sys.modules
"""


def test_a_serial_run_imports_nothing_of_the_engine(project: Project) -> None:
    project.pytester.makepyfile(test_light=TESTS)
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_a_decorated_test_still_runs_its_cases_in_a_serial_run(project: Project) -> None:
    project.pytester.makepyfile(test_decorated=DECORATED)
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["test_decorated.py::test_cases: 3 cases (3 passed)*"])


def test_the_package_imports_its_public_names_on_first_use() -> None:
    code = (
        "import sys, pytest_ploop as ploop\n"
        "assert 'pytest_ploop._loop' not in sys.modules\n"
        "assert set(ploop.__all__) <= set(dir(ploop))\n"
        "assert ploop.map(abs, [-1, 2], workers=1) == [1, 2]\n"
        "assert 'pytest_ploop._loop' in sys.modules\n"
        "from pytest_ploop import *\n"
        "assert LoopError is ploop.LoopError and Pool is ploop.Pool\n"
        "try:\n"
        "    ploop.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
