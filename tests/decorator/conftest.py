"""Fixtures for the ``parametrize_parallel`` tests (issue 4)."""

from __future__ import annotations

import pytest
from decorator_support import Project


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An inner pytest project with the ``casehelp`` module (see decorator_support)."""
    return Project(pytester, monkeypatch)
