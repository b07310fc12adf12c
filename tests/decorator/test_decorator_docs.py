"""docs/parametrize.md is real: its example files run, and print what the page shows (times,
sizes, worker ids and temporary paths aside)."""

from __future__ import annotations

import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from decorator_support import RUN_TIMEOUT_S, Project

DOC = Path(__file__).resolve().parents[2] / "docs" / "parametrize.md"

# What differs from run to run: durations, speedups, shares, sizes, worker ids, temporary
# paths, and so the width of the columns they sit in.
_VOLATILE = [
    (re.compile(r"\d+\.\d+(s|x)\b"), r"*\1"),
    (re.compile(r"\b\d+%"), "*%"),
    (re.compile(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b"), "*B"),
    (re.compile(r"\bw\d+\b"), "w*"),
    (re.compile(r"PosixPath\('[^']*/(test_\w+/)"), r"PosixPath('*/\1"),
    (re.compile(r"(?<=\S) {2,}(?=\S)"), "*"),
]
# In report.xml: every decimal (seconds, speedups) and the worker ids.
_VOLATILE_XML = [
    (re.compile(r"\d+\.\d+"), "*"),
    (re.compile(r"\bw\d+\b"), "w*"),
]


def _blocks(kind: str) -> dict[str, str]:
    """The fenced blocks that follow ``<!-- kind: name -->`` in the page, by name."""
    pattern = rf"<!-- {kind}: (.+?) -->\n```[a-z]*\n(.*?)```"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, DOC.read_text(), re.S)}


def _pattern(line: str, volatile: list[tuple[re.Pattern[str], str]] = _VOLATILE) -> str:
    """A line of the page as an fnmatch pattern: literal, but for the volatile parts."""
    literal = re.sub(r"([\[\]*?])", r"[\1]", line)
    for regex, replacement in volatile:
        literal = regex.sub(replacement, literal)
    return literal


def _expected(output: str) -> list[str]:
    """The page's output from ``collected`` on (the header lines name the machine)."""
    lines = output.rstrip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if "collected" in line), 0)
    return [_pattern(line) for line in lines[start:] if line.strip()]


def _run(project: Project, command: str) -> pytest.RunResult:
    args = shlex.split(command)[1:]
    return project.pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT_S)


@pytest.fixture
def docs_project(project: Project) -> Project:
    for name, source in _blocks("file").items():
        (project.path / name).write_text(source)
    return project


@pytest.mark.parametrize("command", [c for c in _blocks("output") if c.startswith("pytest ")])
def test_the_pytest_outputs_on_the_page_are_what_it_prints(
    docs_project: Project, command: str
) -> None:
    shown = _blocks("output")[command]
    assert "OUTPUT_" not in shown, "paste the real output into docs/parametrize.md"
    result = _run(docs_project, command)
    result.stdout.fnmatch_lines(_expected(shown), consecutive=False)


@pytest.mark.parametrize("command", list(_blocks("junitxml")))
def test_the_junitxml_properties_on_the_page_are_what_it_writes(
    docs_project: Project, command: str
) -> None:
    shown = _blocks("junitxml")[command].rstrip("\n").splitlines()
    assert shown and "OUTPUT_" not in shown[0], "paste the real report.xml into the page"
    _run(docs_project, command)
    path = re.search(r"--junitxml=(\S+)", command)
    assert path, f"{command!r} names no --junitxml file"
    properties = ET.parse(docs_project.path / path.group(1)).find(".//testcase/properties")
    assert properties is not None, "the test case has no properties"
    ET.indent(properties)
    written = pytest.LineMatcher(ET.tostring(properties, encoding="unicode").splitlines())
    written.fnmatch_lines([_pattern(line, _VOLATILE_XML) for line in shown], consecutive=True)


def test_the_direct_call_on_the_page_prints_what_it_shows(docs_project: Project) -> None:
    shown = _blocks("output")["python ratio.py"]
    assert "OUTPUT_" not in shown, "paste the real output into docs/parametrize.md"
    result = docs_project.pytester.run(sys.executable, "ratio.py", timeout=RUN_TIMEOUT_S)
    assert result.ret == 0, result.stderr.str()
    assert result.stdout.str().strip() == shown.strip()
