"""The pytest plugin (entry point ``pytest11``, name ``ploop``).

``pytest --ploop-workers=N`` (or ``auto``) collects once and runs the tests in N forked worker
processes; reports, exit code and summaries are those of a serial run. Without the option the
plugin stays out of the way.
"""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import _here, hookspecs
from ._testing import _durations, _watchdog, _xdist_compat
from ._testing._settings import Settings, add_options, read_settings, workers_asked

# The engine, the loop API and the locks (filelock) are imported when a run or a test uses
# them: this plugin is loaded by every pytest run where pytest-ploop is installed.
if TYPE_CHECKING:
    from . import _sync

__all__ = ["WorkerInfo"]

# The decorator's options (--ploop-case) and the reports' (--ploop-report).
pytest_plugins = ["pytest_ploop._testing._cases_plugin", "pytest_ploop._report._plugin"]

_SESSION_NAME = "ploop-session"


@dataclass(frozen=True)
class WorkerInfo:
    """Which worker this is: ``id`` (``"w0"``, or ``"main"`` outside a parallel run),
    ``index`` (0-based) and ``count`` (the workers in the run), and :attr:`tmp_path`, a
    directory of this worker's own.

    Example:
        >>> def test_port(ploop_worker):
        ...     port = 8000 + ploop_worker.index  # no two workers share a port
    """

    id: str
    index: int
    count: int
    tmp_factory: pytest.TempPathFactory | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def tmp_path(self) -> Path:
        """A temporary directory of this worker process's own (``<basetemp>/w0/ploop-w0`` in
        a worker, ``<basetemp>/ploop-main`` in a serial run), made on first use and shared
        by every test this process runs. It is kept and removed as ``tmp_path`` directories
        are (``tmp_path_retention_policy``, ``tmp_path_retention_count``). A worker that
        replaces a crashed or recycled one gets a new, empty directory.

        Raises:
            PloopError: pytest's ``tmpdir`` plugin is disabled (``-p no:tmpdir``).
        """
        if self.tmp_factory is None:
            from ._errors import PloopError

            raise PloopError("ploop_worker.tmp_path needs pytest's tmpdir plugin")
        path = self.tmp_factory.getbasetemp() / f"ploop-{self.id}"
        path.mkdir(mode=0o700, exist_ok=True)
        return path


_UID = _xdist_compat.UID


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # Before any plugin configures: what they start in this process, the workers fork from.
    if workers_asked(config) and not getattr(config.option, "numprocesses", None):
        _xdist_compat.rerunfailures_without_server()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    _xdist_compat.restore()
    config.addinivalue_line(
        "markers",
        "ploop_serial: with --ploop-workers, run this test alone, after the parallel part",
    )
    config.addinivalue_line(
        "markers",
        "ploop_group(name): with --ploop-workers, run the tests of one group on one worker, "
        "in order",
    )
    settings = read_settings(config)
    config.stash[_UID] = uuid.uuid4().hex
    _watchdog.install(config)
    if not _xdist_active(config):
        # Registered after xdist's own plugin (when installed), so these fixtures win.
        config.pluginmanager.register(_xdist_compat, "ploop-xdist-compat")
    # A worker never configures (it is a fork of the configured main process): a pytest
    # configured while PLOOP_WORKER is set is one that a test ran, as a subprocess or in
    # process, and it is a run of its own. (Checking PLOOP_WORKER here ran those serially,
    # unsharded and unrecorded whatever their options.)
    recorder = _durations.DurationRecorder(config, sharded=settings.shard is not None)
    config.pluginmanager.register(recorder, "ploop-durations")
    if settings.shard is not None:
        config.pluginmanager.register(_ShardSelector(settings), "ploop-shard")
    # Only a pytest.main() inside a worker's own process keeps its tests in that process.
    if settings.workers <= 0 or _here.in_worker():
        return
    if config.getoption("usepdb", False) or config.getoption("trace", False):
        raise pytest.UsageError(
            "--pdb and --trace need the tests in this process: rerun without --ploop-workers "
            "(or with --ploop-workers=0)"
        )
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("use either -n (pytest-xdist) or --ploop-workers, not both")
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        raise pytest.UsageError("--ploop-workers needs a platform with fork()")
    from ._testing import _benchmark, _syrupy
    from ._testing._session import ParallelSession

    _benchmark.install(config)
    _syrupy.install(config)
    config.pluginmanager.register(
        ParallelSession(config, settings, config.stash[_UID]), _SESSION_NAME
    )


def _xdist_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")


@pytest.fixture(scope="session")
def ploop_worker(request: pytest.FixtureRequest) -> WorkerInfo:
    """This worker's id, index, the worker count (``("main", 0, 1)`` in a serial run) and
    ``tmp_path``, a temporary directory of this worker's own."""
    factory = getattr(request.config, "_tmp_path_factory", None)
    wid = os.environ.get("PLOOP_WORKER")
    if not wid or not _here.in_worker():
        return WorkerInfo("main", 0, 1, factory)
    count = int(os.environ.get("PLOOP_WORKER_COUNT", "1"))
    return WorkerInfo(wid, int(wid.lstrip("w")), count, factory)


@pytest.fixture(scope="session")
def ploop_lock() -> type[_sync.lock]:
    """``ploop.lock``: ``with ploop_lock("db", timeout=10): ...`` holds across all workers."""
    from . import _sync

    return _sync.lock


@pytest.fixture(scope="session")
def ploop_semaphore() -> type[_sync.semaphore]:
    """``ploop.semaphore``: ``with ploop_semaphore("gpu", 2): ...`` across all workers."""
    from . import _sync

    return _sync.semaphore


class _ShardSelector:
    """``--ploop-shard=K/N``: keep the K-th of N duration-balanced shards, deselect the rest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        from ._testing._session import make_groups

        assert self.settings.shard is not None
        k, n = self.settings.shard
        groups = make_groups(items, self.settings.dist)
        ids = [[items[i].nodeid for i in g] for g in groups]
        costs = _durations.group_costs(ids, _durations.load(config))
        keep = {i for g in _durations.shard(costs, n)[k - 1] for i in groups[g]}
        selected = [item for i, item in enumerate(items) if i in keep]
        deselected = [item for i, item in enumerate(items) if i not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = selected
