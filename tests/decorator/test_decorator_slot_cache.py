"""A process without a budget slot of its own finds that out once, not before every test."""

from __future__ import annotations

import pytest

from pytest_ploop import _fanout


def test_a_process_without_a_slot_does_not_look_again_until_its_environment_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looks: list[object] = []
    real = _fanout.Slots.from_env

    def counted() -> _fanout.Slots | None:
        looks.append(None)
        return real()

    monkeypatch.setattr(_fanout.Slots, "from_env", staticmethod(counted))
    monkeypatch.setattr(_fanout, "_SLOTLESS", None)
    monkeypatch.delenv("PLOOP_WORKER", raising=False)
    for _ in range(3):
        _fanout.hold_worker_slot()
    assert len(looks) == 1  # reading the CPU quota each time cost a test 0.1 ms
    monkeypatch.setenv(_fanout.BUDGET_ENV, "3")
    _fanout.hold_worker_slot()
    assert len(looks) == 2  # another budget: look again
    assert _fanout._OWN is None
