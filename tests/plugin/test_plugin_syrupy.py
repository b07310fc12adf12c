"""syrupy under ``--ploop-workers``: snapshots are written, used, reported and deleted as in a
serial run (before, ``--snapshot-update`` deleted the snapshots the workers' tests used)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_support import INI, Project, outcomes

pytest.importorskip("syrupy")

MODULE = """
import pytest


@pytest.mark.parametrize("i", range(6))
def test_value(snapshot, i):
    assert {"module": __name__, "i": i, "squares": [i * k for k in range(3)]} == snapshot


class TestText:
    def test_text(self, snapshot):
        assert f"text of {__name__}" == snapshot
"""

CRASH = """
import os


def test_crashes_its_worker(snapshot):
    os._exit(3)
"""


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("__snapshots__/*"))
        if p.is_file()
    }


def _report(result: pytest.RunResult) -> list[str]:
    """syrupy's summary section: from its header to pytest's last line."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "snapshot report summary" in line)
    return [line for line in lines[start + 1 : -1] if not line.startswith(("ploop:", "---"))]


def test_snapshots_are_written_used_and_deleted_as_in_a_serial_run(project: Project) -> None:
    project.pytester.makeini(INI.replace(" -p no:syrupy", ""))
    for name in ("test_alpha", "test_beta"):
        project.pytester.makepyfile(**{name: MODULE})
    modes: dict[str, tuple[str, ...]] = {"serial": (), "ploop": ("--ploop-workers=2",)}

    trees, reports = {}, {}
    for mode, args in modes.items():
        for path in project.path.rglob("__snapshots__/*"):
            path.unlink()
        result = project.run("--snapshot-update", *args)
        assert result.ret == 0 and outcomes(result) == {"passed": 14}
        trees[mode], reports[mode] = _tree(project.path), _report(result)
    # Before: the workers' snapshots were never written.
    assert trees["ploop"] == trees["serial"] and len(trees["serial"]) == 2
    assert reports["ploop"] == reports["serial"] == ["14 snapshots generated."]
    written = trees["serial"]

    for mode, args in modes.items():
        result = project.run(*args)  # before: "14 snapshots unused", exit 1
        assert result.ret == 0, result.stdout.str()
        reports[mode] = _report(result)
    assert reports["ploop"] == reports["serial"] == ["14 snapshots passed."]

    # Three tests gone: their snapshots are unused; the others are used.
    project.pytester.makepyfile(test_beta=MODULE.replace("range(6)", "range(3)"))
    for mode, args in modes.items():
        result = project.run(*args)
        assert result.ret == 1  # syrupy fails a run with unused snapshots
        reports[mode] = _report(result)
    assert reports["ploop"] == reports["serial"]
    assert reports["serial"][0] == "11 snapshots passed. 3 snapshots unused."
    for mode, args in modes.items():
        (project.path / "__snapshots__" / "test_beta.ambr").write_text(
            written["__snapshots__/test_beta.ambr"]
        )
        result = project.run("--snapshot-update", *args)
        assert result.ret == 0
        trees[mode], reports[mode] = _tree(project.path), _report(result)
    # Before: --snapshot-update deleted all 14, used or not.
    assert trees["ploop"] == trees["serial"]
    assert (
        trees["serial"]["__snapshots__/test_alpha.ambr"] == written["__snapshots__/test_alpha.ambr"]
    )
    assert (
        reports["ploop"][0]
        == reports["serial"][0]
        == "11 snapshots passed. 3 unused snapshots deleted."
    )


def test_a_worker_that_died_before_reporting_deletes_nothing(project: Project) -> None:
    project.pytester.makeini(INI.replace(" -p no:syrupy", ""))
    project.pytester.makepyfile(test_alpha=MODULE, test_crash=CRASH)
    project.run("--snapshot-update", "--deselect=test_crash.py").assert_outcomes(passed=7)
    written = _tree(project.path)
    project.pytester.makepyfile(test_alpha=MODULE.replace("range(6)", "range(3)"))

    result = project.run("--snapshot-update", "--ploop-workers=2")
    assert outcomes(result) == {"passed": 4, "failed": 1}
    # The crashed worker's tests used snapshots nobody knows of now: none is taken for unused.
    assert _tree(project.path) == written
    assert "deleted" not in "\n".join(_report(result))
    (line,) = [line for line in result.outlines if "unused snapshots were not checked" in line]
    assert "1 worker process(es) ended before they could report" in line


PLAIN_CRASH = """
import os


def test_plain():
    pass


def test_crashes_its_worker():
    os._exit(3)
"""


def test_a_suite_without_snapshot_tests_is_not_told_of_snapshots(project: Project) -> None:
    """Before: with syrupy installed, a crash in any suite switched unused-snapshot detection
    off and said so, in a run that had no snapshot at all."""
    project.pytester.makeini(INI.replace(" -p no:syrupy", ""))
    project.pytester.makepyfile(test_plain=PLAIN_CRASH)
    result = project.run("--ploop-workers=2")
    assert outcomes(result) == {"passed": 1, "failed": 1}
    text = result.stdout.str()
    assert "exited with code 3" in text
    assert "unused snapshots were not checked" not in text
    assert "Unused snapshot detection is disabled" not in text
