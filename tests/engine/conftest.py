"""Fixtures for the engine's tests."""

from __future__ import annotations

from multiprocessing import resource_tracker

import pytest


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running() -> None:
    """Start multiprocessing's resource tracker (a helper process that lives as long as this
    one) before any test, so that ``no_orphans`` does not blame the first test using spawn."""
    resource_tracker.ensure_running()
