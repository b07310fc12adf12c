"""``-x`` and ``--maxfail``: the run stops, and the summary says how many tests did not run."""

from __future__ import annotations

import pytest
from plugin_support import Project, not_run_count, outcomes, ploop_lines

TOTAL = 40
SUITE = """
import time

import pytest
import ploophelp


@pytest.mark.parametrize("i", range(40))
def test_step(i):
    ploophelp.log("ran", i)
    if i in FAILING:
        assert False, f"failing on purpose: {i}"
    time.sleep(0.05)
"""


@pytest.mark.parametrize(
    ("option", "failing", "failures"),
    [("-x", (2,), 1), ("--maxfail=2", (2, 5, 35), 2)],
)
def test_the_run_stops_and_says_how_many_did_not_run(
    project: Project, option: str, failing: tuple[int, ...], failures: int
) -> None:
    project.pytester.makepyfile(test_steps=SUITE.replace("FAILING", repr(failing)))
    result = project.run("--ploop-workers=2", option)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    counts = outcomes(result)
    ran = counts.get("passed", 0) + counts["failed"]
    assert counts["failed"] == failures
    assert ran < TOTAL - 10  # it stopped, not after running (nearly) everything
    result.stdout.fnmatch_lines([f"*stopping after {failures} failures*"])
    # Every test either reported or counted as not run: none lost, none counted twice.
    assert not_run_count(result) == TOTAL - ran
    (line,) = [line for line in ploop_lines(result) if "not run" in line]
    assert line == (f"ploop: {TOTAL - ran} tests not run (stopping after {failures} failures)")
    assert len(project.events()) == ran  # what the log shows ran was reported
