"""Fixtures for the scheduling and sharding tests (issue 6)."""

from __future__ import annotations

import pytest
from sched_support import Project, clean_env


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An inner pytest project whose tests log their start and end (see sched_support)."""
    clean_env(monkeypatch)
    return Project(pytester)
