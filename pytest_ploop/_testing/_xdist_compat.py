"""xdist's per-worker fixtures, for suites written for them, when xdist is not active.

Registered by the plugin after xdist's own plugin (when xdist is installed but not running),
so these definitions win. A worker also gets xdist's ``config.workerinput``
(:func:`as_xdist_worker`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

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


def as_xdist_worker(config: pytest.Config, index: int, count: int, testrun_uid: str) -> None:
    """Give this forked worker's config what an xdist worker's has: ``config.workerinput``,
    with xdist's own keys, and an empty ``config.workeroutput``.

    Suites and plugins read the worker's id there to give each worker a resource of its own
    (``getattr(request.config, "workerinput", {}).get("workerid", "master")``, and
    ``xdist.get_xdist_worker_id()``): pytest-django names its test databases by it, and
    without it every worker created and dropped the same one. Plugins that look at it when
    they configure never see it (workers are forked after the main process configured).
    """
    config.workerinput = {  # type: ignore[attr-defined]
        "workerid": f"gw{index}",
        "workercount": count,
        "testrunuid": testrun_uid,
        "mainargv": list(sys.argv),
    }
    # What a plugin leaves for the controller at the end (syrupy's report: see _syrupy).
    config.workeroutput = {}  # type: ignore[attr-defined]
    _rerunfailures_reports_its_reruns()


def _rerunfailures_reports_its_reruns() -> None:
    """pytest-rerunfailures takes a worker (``config.workerinput``) without pytest-xdist
    installed for one of pytest-xdist < 1.20, whose workers ended at their first report, and
    then leaves each rerun unreported (no ``R``, no ``rerun`` in the summary). A ploop worker
    reports every one, as the serial run does."""
    module: Any = sys.modules.get("pytest_rerunfailures")
    check = getattr(module, "works_with_current_xdist", None)
    if check is not None and not check():
        module.works_with_current_xdist = lambda: True


# pytest-rerunfailures' database server, while this run stops it from starting (see below).
_SERVER: dict[str, Any] = {}


def rerunfailures_without_server() -> None:
    """With pytest-xdist installed, pytest-rerunfailures starts a thread in the main process
    when it configures: a server through which xdist's workers share their rerun counts.
    ploop's workers are forked from that process, which Python 3.12+ warns against at every
    fork ("This process is multi-threaded, use of fork() may lead to deadlocks in the
    child"), and they could not reach the thread anyway. Called before the plugins configure
    in a ``--ploop-workers`` run: pytest-rerunfailures then makes the in-process database it
    uses when xdist is not installed, and starts no thread. Undone by :func:`restore`."""
    module: Any = sys.modules.get("pytest_rerunfailures")
    server = getattr(module, "ServerStatusDB", None)
    plain = getattr(module, "StatusDB", None)
    if isinstance(server, type) and isinstance(plain, type) and not _SERVER:
        _SERVER["class"] = server
        module.ServerStatusDB = plain


def restore() -> None:
    """Give pytest-rerunfailures its server class back, once the plugins are configured (an
    xdist run in the same process, ``pytester``'s, would need it)."""
    server = _SERVER.pop("class", None)
    module: Any = sys.modules.get("pytest_rerunfailures")
    if server is not None and module is not None:
        module.ServerStatusDB = server
