"""What the test packages share about the processes they start: the environment an inner
pytest run must not inherit, and whether processes ended."""

from __future__ import annotations

from collections.abc import Iterable

import psutil
import pytest

# An inner run must not inherit these: the outer suite may itself run under --ploop-workers
# (or xdist), and a worker's variables would make the inner run a "worker", or cap its
# fan-out with the outer run's budget. (A test that wants one sets it.)
INNER_RUN_ENV = (
    "PLOOP_WORKER",
    "PLOOP_WORKER_COUNT",
    "PLOOP_WORKERS",
    "PLOOP_RUN_DIR",
    "PLOOP_FANOUT_BUDGET",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_ADDOPTS",
    # pytest-github-actions-annotate-failures prints annotations when this is set: on
    # GitHub's runners, into every inner run's output.
    "GITHUB_ACTIONS",
)


def clear_inner_run_env(monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """Unset :data:`INNER_RUN_ENV` (and ``extra``) for the test: inner runs start clean."""
    for var in (*INNER_RUN_ENV, *extra):
        monkeypatch.delenv(var, raising=False)


def gone(pids: Iterable[int], timeout: float = 10.0) -> bool:
    """Whether every process in ``pids`` has ended (waiting up to ``timeout`` for it; a zombie
    counts as ended: it runs nothing, and its parent reaps it)."""
    procs = []
    for pid in set(pids):
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return all(_ended(p) for p in alive)


def _ended(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True
