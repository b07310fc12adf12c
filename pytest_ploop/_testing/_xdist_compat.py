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
