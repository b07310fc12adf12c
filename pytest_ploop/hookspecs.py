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
