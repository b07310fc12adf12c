"""docs/parametrize.md is real: its example files run, and print what the page shows (times,
worker ids and temporary paths aside)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from decorator_support import RUN_TIMEOUT_S, Project

DOC = Path(__file__).resolve().parents[2] / "docs" / "parametrize.md"

# Until pytest_ploop exports parametrize_parallel and loads its plugin (two lines in
# __init__.py and plugin.py), the inner runs get both here; afterwards this changes nothing.
SHIM = """\
import pytest_ploop
from pytest_ploop import _parametrize

if not hasattr(pytest_ploop, "parametrize_parallel"):
    pytest_ploop.parametrize_parallel = _parametrize.parametrize_parallel
"""
CONFTEST = SHIM + 'pytest_plugins = ["pytest_ploop._testing._cases_plugin"]\n'

# What differs from run to run: durations, speedups, worker ids, temporary paths.
_VOLATILE = [
    (re.compile(r"\d+\.\d+(s|x)\b"), r"*\1"),
    (re.compile(r"\bw\d+\b"), "w*"),
    (re.compile(r"PosixPath\('[^']*/(test_\w+/)"), r"PosixPath('*/\1"),
]


def _blocks(kind: str) -> dict[str, str]:
    """The fenced blocks that follow ``<!-- kind: name -->`` in the page, by name."""
    pattern = rf"<!-- {kind}: (.+?) -->\n```[a-z]*\n(.*?)```"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, DOC.read_text(), re.S)}


def _pattern(line: str) -> str:
    """A line of the page as an fnmatch pattern: literal, but for the volatile parts."""
    literal = re.sub(r"([\[\]*?])", r"[\1]", line)
    for regex, replacement in _VOLATILE:
        literal = regex.sub(replacement, literal)
    return literal


def _expected(output: str) -> list[str]:
    """The page's output from ``collected`` on (the header lines name the machine)."""
    lines = output.rstrip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("collected")), 0)
    return [_pattern(line) for line in lines[start:] if line.strip()]


@pytest.fixture
def docs_project(project: Project) -> Project:
    for name, source in _blocks("file").items():
        (project.path / name).write_text(source)
    project.pytester.makeconftest(CONFTEST)
    return project


@pytest.mark.parametrize("command", [c for c in _blocks("output") if c.startswith("pytest ")])
def test_the_pytest_outputs_on_the_page_are_what_it_prints(
    docs_project: Project, command: str
) -> None:
    shown = _blocks("output")[command]
    assert "OUTPUT_" not in shown, "paste the real output into docs/parametrize.md"
    args = shlex.split(command)[1:]
    result = docs_project.pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT_S)
    result.stdout.fnmatch_lines(_expected(shown), consecutive=False)


def test_the_direct_call_on_the_page_prints_what_it_shows(docs_project: Project) -> None:
    shown = _blocks("output")["python ratio.py"]
    assert "OUTPUT_" not in shown, "paste the real output into docs/parametrize.md"
    run = SHIM + "import runpy\nrunpy.run_path('ratio.py', run_name='__main__')\n"
    result = docs_project.pytester.run(sys.executable, "-c", run, timeout=RUN_TIMEOUT_S)
    assert result.ret == 0, result.stderr.str()
    assert result.stdout.str().strip() == shown.strip()
