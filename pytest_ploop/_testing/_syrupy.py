"""syrupy under ``--ploop-workers``: snapshots written, used and reported as in a serial run.

syrupy queues the snapshots a test writes and writes them when the session finishes, and it
finds unused snapshots at that moment from the assertions the tests made. Under xdist each
worker finishes its own session, writes its snapshots and publishes its report in
``config.workeroutput``; the controller merges the reports before it looks for unused
snapshots. A ploop worker never finishes a session of its own (the main process does), so
``--snapshot-update`` wrote nothing from the workers, and the main process, which made no
assertion itself, took every snapshot for unused: a passing run failed ("1 snapshot
unused"), and ``--snapshot-update`` deleted the snapshots the tests had just used.

This plugin does the xdist part of the work: each worker finishes syrupy's session when it
ends (its snapshots are written, its report is published as under xdist) and leaves the report
in a directory of the run; the main process hands the reports to syrupy before syrupy
finishes. A worker that died before it could report, after a test that asserts snapshots,
leaves its assertions unknown: unused snapshots are then neither failed nor deleted in that
run, and the summary says why.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .._engine import _worker

_KEYS = ("syrupy_report", "syrupy_write_sidecars")


def install(config: pytest.Config) -> None:
    """Register the plugin below when syrupy takes part in this run."""
    if config.pluginmanager.hasplugin("syrupy"):
        config.pluginmanager.register(_WorkerReports(), "ploop-syrupy")


def _fixtures(item: pytest.Item) -> list[str]:
    names = getattr(item, "fixturenames", None)
    return names if isinstance(names, list) else []


class _WorkerReports:
    def __init__(self) -> None:
        self.dir: Path | None = None  # made when the session starts, before the workers fork
        self.incomplete: list[str] = []
        self.owes = False  # in a worker: it ran a test that asserts snapshots

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # (syrupy's own pytest_sessionstart made its session object.)
        syrupy = getattr(session.config, "_syrupy", None)
        if syrupy is not None and not hasattr(syrupy, "add_worker_report"):
            version = getattr(sys.modules.get("syrupy"), "__version__", "")
            raise pytest.UsageError(
                f"this syrupy {version} cannot take snapshot reports from worker processes, "
                "and would take every snapshot for unused: upgrade syrupy (pip install -U "
                "syrupy) or run its tests without --ploop-workers"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="ploop-syrupy-"))

    def pytest_ploop_worker_setup(self, config: pytest.Config) -> None:
        """In a worker: finish syrupy's session when it ends."""
        if self.dir is None:
            return
        _worker.BEFORE_EXIT.append(lambda: self._finish_worker(config))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """In a worker, at its first test that asserts snapshots: say it owes a report. (A
        worker that dies before it has run one has nothing to report that matters: its death
        leaves unused snapshots checked, and a suite without snapshots is not told a word.)"""
        if self.dir is not None and not self.owes and "snapshot" in _fixtures(item):
            self.owes = True
            (self.dir / f"{os.getpid()}.owes").touch()

    def _finish_worker(self, config: pytest.Config) -> None:
        syrupy = getattr(config, "_syrupy", None)
        output = getattr(config, "workeroutput", None)
        if syrupy is None or output is None or self.dir is None:
            return
        syrupy.finish()  # writes this worker's snapshots, publishes its report in output
        path = self.dir / f"{os.getpid()}.report"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps({key: output[key] for key in _KEYS if key in output}))
        tmp.rename(path)  # the main process never reads half a report

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        """Before syrupy finishes: hand it the workers' reports (as xdist's controller
        does), or tell it to leave unused snapshots alone when a worker did not report."""
        syrupy: Any = getattr(session.config, "_syrupy", None)
        option = session.config.option
        disabled = getattr(option, "disable_unused_snapshots", None)
        if syrupy is not None and self.dir is not None:
            owing = {p.stem for p in self.dir.glob("*.owes")}
            for path in sorted(self.dir.glob("*.report")):
                output = pickle.loads(path.read_bytes())
                owing.discard(path.stem)
                if "syrupy_report" in output:
                    syrupy.add_worker_report(output["syrupy_report"])
                if output.get("syrupy_write_sidecars"):
                    syrupy.add_written_snapshot_locations(output["syrupy_write_sidecars"])
            if owing and not disabled:
                self.incomplete = sorted(owing)
                option.disable_unused_snapshots = True
        try:
            yield
        finally:
            if self.incomplete:
                option.disable_unused_snapshots = disabled
            # Under xdist the controller removes the lock files its workers' writes left.
            cleanup = getattr(syrupy, "_cleanup_write_sidecars", None)
            if cleanup is not None:
                with contextlib.suppress(Exception):
                    cleanup()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.incomplete:
            terminalreporter.write_line(
                f"ploop: unused snapshots were not checked: {len(self.incomplete)} worker "
                "process(es) ended before they could report the snapshots their tests used "
                f"(pid {', '.join(self.incomplete)})",
                yellow=True,
            )
