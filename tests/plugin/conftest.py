"""Fixtures for the plugin tests (issue 3): an inner project run through ``pytester``."""

from __future__ import annotations

import pytest
from plugin_support import Project


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An inner pytest project with the ``ploophelp`` module (see plugin_support)."""
    return Project(pytester, monkeypatch)
