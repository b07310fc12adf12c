"""Fixtures of the Dask backend tests: one real ``LocalCluster`` per module (two worker
processes, one thread each), and the suite's orphan check adapted to it.

The suite's ``no_orphans`` (tests/conftest.py) fails a test that leaves a child process. A
module-scoped cluster's workers outlive each test by design, and Dask's nanny replaces a worker
that dies (these tests kill workers on purpose): that replacement is started during a test and
belongs to the cluster. So here the per-test check exempts exactly the cluster's current worker
processes (and anything they started), and the cluster's fixture checks, when it closes the
cluster, that every process started since it opened has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

_REAP_S = 10.0
_CLUSTERS: list[Any] = []  # the DaskBackends open now (module-scoped)


def _descendants() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:  # pragma: no cover
        return {}


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:80] or p.name()
    except psutil.Error:
        return "?"


def _still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running after waiting (bounded) for them to exit."""
    _, alive = psutil.wait_procs(procs, timeout=_REAP_S)
    return [p for p in alive if _running(p)]


def _fail_and_kill(what: str, alive: list[psutil.Process]) -> None:
    names = ", ".join(f"{p.pid} {_cmd(p)}" for p in alive)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    pytest.fail(f"{what} left processes running: {names}", pytrace=False)


def _cluster_pids() -> set[int]:
    """The worker processes of the open clusters now, and what they started."""
    pids: set[int] = set()
    for backend in _CLUSTERS:
        for nanny in list(backend.cluster.workers.values()):
            pid = getattr(nanny, "pid", None)
            if pid:
                pids.add(pid)
                with contextlib.suppress(psutil.Error):
                    pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    return pids


@pytest.fixture(autouse=True)
def no_orphans(request: pytest.FixtureRequest) -> Iterator[None]:
    """The suite's check, minus the processes of this module's cluster (see the docstring)."""
    before = set(_descendants())
    yield
    exempt = _cluster_pids()
    left = [p for pid, p in _descendants().items() if pid not in before and pid not in exempt]
    if left:
        alive = _still_running(left)
        alive = [p for p in alive if p.pid not in _cluster_pids()]
        if alive:
            _fail_and_kill(request.node.nodeid, alive)


@pytest.fixture
def backend(cluster: Any) -> Any:
    """The module's Dask backend, with both its workers up (a test that killed a worker
    leaves the nanny restarting it, or Dask may have closed that nanny: see
    ``DaskBackend.restore_workers``). Dask may close a restarting worker's nanny after a
    restore found it still running: each wait is short, and the restore is made again."""
    deadline = time.monotonic() + 90
    while True:
        cluster.restore_workers()
        try:
            cluster.client.wait_for_workers(2, timeout=5)
        except (TimeoutError, asyncio.TimeoutError):  # two classes before Python 3.11
            if time.monotonic() > deadline:
                raise
            continue
        return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Dask backend on a fresh ``LocalCluster`` of 2 worker processes, closed at the end of
    the module; fails if any process or thread it started is still running after it closed."""
    from multiprocessing import resource_tracker

    from pytest_ploop._backends import open_dask

    # spawn's helper, started once per interpreter and kept until it exits: not the cluster's.
    resource_tracker.ensure_running()
    before = set(_descendants())
    threads = set(threading.enumerate())
    b = open_dask(None, workers=2)
    _CLUSTERS.append(b)
    try:
        yield b
    finally:
        _CLUSTERS.remove(b)
        b.close()
        _stop_dask_offload_thread()
    left = [p for pid, p in _descendants().items() if pid not in before]
    alive = _still_running(left) if left else []
    if alive:
        _fail_and_kill("the module's Dask cluster", alive)
    # Dask's threads notice the close on their own tick (the scheduler's "Profile" watcher
    # checks every few tens of milliseconds): each gets a bounded wait for its end.
    for t in [t for t in threading.enumerate() if t not in threads]:
        t.join(timeout=_REAP_S)
    extra = [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert not extra, f"the module's Dask cluster left threads running: {extra}"


def _stop_dask_offload_thread() -> None:
    """End the idle thread Dask keeps after its clients close.

    Later tests fork worker processes, and forking a process that has threads is unsafe
    (Python 3.12+ warns, and warnings are errors here). distributed offloads work to a
    module-level one-thread executor whose thread, once started, lives as long as the
    process; it is replaced by a fresh executor, whose thread starts when Dask next needs it.
    """
    import distributed.utils

    old = distributed.utils._offload_executor
    distributed.utils._offload_executor = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="Dask-Offload"
    )
    old.shutdown(wait=True)
