"""Tests against a slow service: they spend their time waiting, not computing.

``FakeService`` stands in for a database or an HTTP API: starting it takes a while, and
every request has some latency (``time.sleep``). Waiting tests like these speed up with
more workers than CPUs, such as ``--ploop-workers=8`` on a 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

STARTUP_SECONDS = 0.4
LATENCY_SECONDS = 0.05


class TransientError(Exception):
    """The service was briefly unavailable; retrying may help."""


@dataclass
class FakeService:
    """A stand-in for a slow external service, holding 100 users."""

    users: dict[int, str] = field(default_factory=dict)
    failures_left: int = 0
    requests: int = 0

    def start(self) -> None:
        time.sleep(STARTUP_SECONDS)
        self.users = {i: f"user-{i:03d}" for i in range(1, 101)}

    def stop(self) -> None:
        time.sleep(STARTUP_SECONDS / 4)

    def get_user(self, user_id: int) -> str:
        self.requests += 1
        time.sleep(LATENCY_SECONDS)
        if self.failures_left:
            self.failures_left -= 1
            raise TransientError("503 Service Unavailable")
        return self.users[user_id]

    def get_users(self, user_ids: list[int]) -> list[str]:
        self.requests += 1
        time.sleep(LATENCY_SECONDS * 2)
        return [self.users[i] for i in user_ids]


def with_retries(call: Callable[[], str], attempts: int = 3) -> str:
    """Call ``call``, retrying after a short back-off while it raises TransientError."""
    for _ in range(attempts - 1):
        try:
            return call()
        except TransientError:
            time.sleep(LATENCY_SECONDS / 2)
    return call()


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    """One service per module (per worker in a parallel run), started and stopped once."""
    svc = FakeService()
    svc.start()
    yield svc
    svc.stop()


@pytest.mark.parametrize("user_id", [1, 7, 13, 21, 42, 64, 77, 99])
def test_get_user(service: FakeService, user_id: int) -> None:
    assert service.get_user(user_id) == f"user-{user_id:03d}"
    assert service.get_user(user_id) == service.get_user(user_id)


def test_batch_request_matches_single_requests(service: FakeService) -> None:
    ids = [3, 5, 8, 13]
    before = service.requests
    batch = service.get_users(ids)
    assert service.requests == before + 1
    assert batch == [service.get_user(i) for i in ids]


def test_retries_ride_out_a_transient_error(service: FakeService) -> None:
    service.failures_left = 2
    assert with_retries(lambda: service.get_user(10)) == "user-010"


def test_unknown_user_is_a_key_error(service: FakeService) -> None:
    with pytest.raises(KeyError):
        service.get_user(1_000)
