"""Report writers and logs in workers: pytest-html's extras and a log record's process name read
as in a serial run."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from plugin_support import INI, Project

pytest.importorskip("pytest_html")

EXTRAS = """
import json
import logging
import multiprocessing

import pytest
import ploophelp
from pytest_html import extras as ex


@pytest.mark.parametrize("i", range(4))
def test_extras(extras, i):
    extras.append(ex.text(f"text {i}", name="text"))
    extras.append(ex.json({"i": i}, name="json"))
    extras.append(ex.url(f"https://example.org/{i}", name="url"))
    record = logging.LogRecord("name", logging.INFO, __file__, 1, "message", None, None)
    ploophelp.log(record.processName, multiprocessing.current_process().name)
"""


def _extras(report: Path) -> dict[str, list[tuple[str, str]]]:
    """Each test's extras in the report's data: (name, content), data URIs decoded, asset
    files read."""
    text = report.read_text()
    blob: dict[str, Any] = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', text)[1]))
    out = {}
    for nodeid, rows in blob["tests"].items():
        found = []
        for row in rows:
            for extra in row["extras"]:
                content = extra["content"]
                if content.startswith("data:"):
                    content = base64.b64decode(content.split(",", 1)[1]).decode()
                elif content.startswith("assets/"):
                    content = (report.parent / content).read_text()
                found.append((extra["name"], content))
        out[nodeid] = found
    return out


@pytest.mark.parametrize("contained", [True, False], ids=["self-contained", "assets"])
def test_extras_and_log_records_read_as_in_a_serial_run(project: Project, contained: bool) -> None:
    project.pytester.makeini(INI.replace(" -p no:html", ""))
    project.pytester.makepyfile(test_extras=EXTRAS)
    args = ["--html=report.html"] + (["--self-contained-html"] if contained else [])

    project.run(*args).assert_outcomes(passed=4)
    serial = _extras(project.path / "report.html")
    assert serial["test_extras.py::test_extras[2]"][:2] == [
        ("text", "text 2"),
        ("json", '{"i": 2}'),
    ]
    assert {e.fields for e in project.events()} == {("MainProcess", "MainProcess")}
    project.clear_events()

    project.run(*args, "--ploop-workers=2").assert_outcomes(passed=4)
    # Before: the worker's copy of pytest-html encoded each text and json extra, and the main
    # process encoded the result again.
    assert _extras(project.path / "report.html") == serial
    # Before: "ploop-w0", the engine's name of the worker process.
    assert {e.fields for e in project.events()} == {("MainProcess", "MainProcess")}
