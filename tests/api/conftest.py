"""Fixtures for the loop API's tests."""

from __future__ import annotations

from multiprocessing import forkserver, resource_tracker

import pytest


@pytest.fixture(scope="session", autouse=True)
def multiprocessing_helpers_running() -> None:
    """Start multiprocessing's resource tracker and fork server (helper processes that live as
    long as this one) before any test, so that ``no_orphans`` does not blame the first test
    using spawn or forkserver."""
    resource_tracker.ensure_running()
    forkserver.ensure_running()
