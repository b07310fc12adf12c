"""Fixtures for the engine's tests."""

from __future__ import annotations

from multiprocessing import resource_tracker
from typing import Any

import pytest

from pytest_ploop._engine import _transport
from pytest_ploop._engine._messages import ChunkDone


@pytest.fixture(scope="session", autouse=True)
def resource_tracker_running() -> None:
    """Start multiprocessing's resource tracker (a helper process that lives as long as this
    one) before any test, so that ``no_orphans`` does not blame the first test using spawn."""
    resource_tracker.ensure_running()


@pytest.fixture
def chunks_done(monkeypatch: pytest.MonkeyPatch) -> list[ChunkDone]:
    """Every ChunkDone the main process reads in this test, in the order it read them."""
    seen: list[ChunkDone] = []
    read = _transport.Channel.read

    def spy(channel: _transport.Channel) -> list[Any]:
        messages = read(channel)
        seen.extend(m for m in messages if isinstance(m, ChunkDone))
        return messages

    monkeypatch.setattr(_transport.Channel, "read", spy)
    return seen
