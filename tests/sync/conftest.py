"""Fixtures for the resource-harness tests (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_support import Project, clean_env

from pytest_ploop import _sync


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An inner pytest project whose tests log what they do (see sync_support)."""
    clean_env(monkeypatch)
    return Project(pytester)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private run directory of this test's own for locks and run-once values in this
    process (``PLOOP_RUN_DIR``), and none of the values remembered from earlier tests."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv(_sync.ENV, str(path))
    monkeypatch.setattr(_sync, "_ONCE", {})
    yield path
