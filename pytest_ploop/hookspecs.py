"""Hooks that pytest-ploop adds to pytest; implement them in a conftest.py or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .plugin import WorkerInfo


@pytest.hookspec
def pytest_ploop_worker_setup(config: pytest.Config, worker: WorkerInfo) -> None:
    """Called in each worker process right after it started (``--ploop-workers``), before it
    runs a test: the place for per-worker resources (a database named after ``worker.id``).

    Args:
        config: the pytest config, as the main process had it when it collected.
        worker: this worker's id, index and the worker count.
    """


@pytest.hookspec(firstresult=True)
def pytest_ploop_make_scheduler(
    config: pytest.Config, groups: list[list[str]], costs: list[float]
) -> list[int] | None:
    """Return the order in which the groups of tests are handed to workers, as positions in
    ``groups`` (each position exactly once), or ``None`` to leave it to ploop.

    Args:
        config: the pytest config.
        groups: the node ids of each group (one test each with ``--ploop-dist=load``).
        costs: each group's expected seconds, from the durations of earlier runs.
    """
