"""examples/test_simulation.py passes, serially and inside a ``--ploop-workers`` run, with
every case run on workers of its fan-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from decorator_support import Project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_simulation.py"


@pytest.mark.parametrize("args", [(), ("--ploop-workers=2",)], ids=["serial", "ploop-workers"])
def test_the_simulation_example_passes(project: Project, args: tuple[str]) -> None:
    (project.path / EXAMPLE.name).write_text(EXAMPLE.read_text())
    result = project.run(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["test_simulation.py::test_sine_mode_*: 120 cases (120 passed) on * worker*"]
    )
