"""What a failing case printed and logged is in its section of the report, as pytest shows
a test's captured output and ``Captured log call``; ``caplog`` holds the running case's
records; ``--show-capture`` picks the sections, as for any test."""

from __future__ import annotations

import pytest
from decorator_support import Project, section

LOGS = """
import logging
import os
import sys

from pytest_ploop import parametrize_parallel

log = logging.getLogger("sim")


@parametrize_parallel("n", range(6), workers=2)
def test_logs(n, caplog):
    log.info("info of case %d", n)
    log.warning("warning of case %d", n)
    print(f"stdout of case {n}")
    print(f"stderr of case {n}", file=sys.stderr)
    # Six cases on at most three processes (two workers, one replacement): some worker
    # runs several, and caplog still holds the running case's records only.
    assert {r.args for r in caplog.records} == {(n,)}
    assert caplog.records[-1].getMessage() == f"warning of case {n}"
    if n == 4:
        os._exit(3)
    assert n != 1
"""


def test_a_failing_case_shows_its_output_and_its_log(project: Project) -> None:
    project.pytester.makepyfile(test_logs=LOGS)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 6 cases failed (1 failed, 1 crashed); 4 passed*"])
    failed = section(result, "1")
    assert "E       assert 1 != 1" in failed
    assert "stdout of case 1" in failed and "stderr of case 1" in failed
    # pytest's format and level: WARNING is the root logger's level unless --log-level says.
    assert "-- captured log --" in failed
    assert "WARNING  sim:test_logs.py:13 warning of case 1" in failed
    assert "info of case 1" not in failed
    crashed = section(result, "4")  # the log of a case whose worker died is kept too
    assert "exited with code 3" in crashed
    assert "WARNING  sim:test_logs.py:13 warning of case 4" in crashed
    assert "stdout of case 4" in crashed
    text = result.stdout.str()
    for passing in (0, 2, 3, 5):  # passing cases stay quiet
        assert f"of case {passing}" not in text


def test_the_log_level_of_the_run_applies_to_the_cases(project: Project) -> None:
    project.pytester.makepyfile(test_logs=LOGS)
    result = project.run("--log-level=INFO")
    result.assert_outcomes(failed=1)
    failed = section(result, "1")
    assert "INFO     sim:test_logs.py:12 info of case 1" in failed
    assert "WARNING  sim:test_logs.py:13 warning of case 1" in failed


@pytest.mark.parametrize(
    ("show", "shown"),
    [("no", set()), ("log", {"log"}), ("stdout", {"stdout"}), ("all", {"stdout", "stderr", "log"})],
)
def test_show_capture_picks_the_sections(project: Project, show: str, shown: set[str]) -> None:
    project.pytester.makepyfile(test_logs=LOGS)
    result = project.run(f"--show-capture={show}")
    result.assert_outcomes(failed=1)
    failed = section(result, "1")
    for name in ("stdout", "stderr", "log"):
        assert (f" captured {name} " in failed) == (name in shown), (name, failed)


def test_with_dash_s_the_log_is_still_captured(project: Project) -> None:
    project.pytester.makepyfile(test_logs=LOGS)
    result = project.run("-s")
    result.assert_outcomes(failed=1)
    failed = section(result, "1")
    assert "WARNING  sim:test_logs.py:13 warning of case 1" in failed
    assert " captured stdout " not in failed  # -s: the output went to the terminal
    assert "stdout of case 1" in result.stdout.str()
