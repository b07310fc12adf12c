"""Shared fixtures for the example suite, and a line in pytest's header saying what it is.

Run the suite with ``pytest --ploop-workers=auto examples/`` from the repository root (or
serially with ``pytest examples/``). The project's own ``pytest`` run does not collect it:
``testpaths`` in pyproject.toml names only ``tests``.
"""

from __future__ import annotations

import random

import pytest


def pytest_report_header(config: pytest.Config) -> str:
    return (
        "examples: a demo suite of hashing, number crunching and simulated I/O; "
        "compare `pytest examples/` with `pytest --ploop-workers=auto examples/`"
    )


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A random generator seeded from the test's id: the same numbers in every run, on
    every worker, whatever order the tests run in."""
    return random.Random(request.node.nodeid)
