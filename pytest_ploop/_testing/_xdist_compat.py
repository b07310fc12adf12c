"""xdist's per-worker fixtures, for suites written for them, when xdist is not active.

Registered by the plugin after xdist's own plugin (when xdist is installed but not running),
so these definitions win.
"""

from __future__ import annotations

import os

import pytest

UID = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def worker_id() -> str:
    """``"gw0"``, ``"gw1"``... in a ``--ploop-workers`` worker; ``"master"`` in a serial run."""
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


@pytest.fixture(scope="session")
def testrun_uid(request: pytest.FixtureRequest) -> str:
    """A unique id of this test run, the same in every worker."""
    return request.config.stash[UID]
