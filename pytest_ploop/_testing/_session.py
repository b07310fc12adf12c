"""The main process of a ``--ploop-workers`` run: it collected; workers run the tests.

    main process (collected once)                forked workers (inherit the session)
    pytest_runtestloop ── groups of test indices ─> TestRunner(task, next_task)
          ^                                           runs pytest_runtest_protocol
          └──── emitted (index, reports, warnings) ───┘ per test, as soon as it finished
    replay: logstart, logreport..., logfinish, warning_recorded  (terminal, junitxml, cache,
    stepwise... act here, exactly as in a serial run)

A test whose worker died or hung gets a failed report naming the signal or the timeout, with
the worker's stack; the worker is replaced by forking the main process again, and the tests
it had queued run elsewhere.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .._engine import _worker
from .._engine._pool import Run, RunOptions
from .._engine._record import RunRecord
from .._engine._workers import Workers
from .._errors import TaskTimeout, WorkerCrashed
from . import _durations
from ._remote import TestRunner
from ._reports import deserialize_report, deserialize_warning, failed_report
from ._settings import Settings


def make_groups(items: list[pytest.Item], dist: str) -> list[tuple[int, ...]]:
    """Tasks for the engine: one test each (``load``), or the tests of one scope together,
    in collection order. Tests marked ``ploop_group("name")`` are one task per name."""
    groups: dict[object, list[int]] = {}
    for i, item in enumerate(items):
        marker = item.get_closest_marker("ploop_group")
        key: object
        if marker is not None:
            key = ("group", marker.args[0] if marker.args else marker.kwargs.get("name"))
        elif dist == "load":
            key = i
        else:
            nodeid = item.nodeid.split("[", 1)[0]
            key = nodeid.split("::", 1)[0] if dist == "file" else nodeid.rsplit("::", 1)[0]
        groups.setdefault(key, []).append(i)
    return [tuple(g) for g in groups.values()]


def is_serial(item: pytest.Item) -> bool:
    """Whether ``item`` is marked ``ploop_serial`` (never at the same time as another test)."""
    return item.get_closest_marker("ploop_serial") is not None


class ParallelSession:
    """Registered in the main process when ``--ploop-workers`` is above 0."""

    def __init__(self, config: pytest.Config, settings: Settings, testrun_uid: str) -> None:
        self.config = config
        self.settings = settings
        self.testrun_uid = testrun_uid
        self.record: RunRecord | None = None
        self.not_run: dict[int, str] = {}
        self.crashes = 0
        self.stop_message = ""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            n = session.testsfailed
            raise session.Interrupted(f"{n} error{'s' if n != 1 else ''} during collection")
        if session.config.option.collectonly or not session.items:
            return True
        self._run(session)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def _run(self, session: pytest.Session) -> None:
        items = session.items
        groups = make_groups(items, self.settings.dist)
        runner = TestRunner(
            session,
            groups,
            _basetemp(session.config),
            xdist_compat=True,  # --ploop-workers refuses to run together with -n
            testrun_uid=self.testrun_uid,
        )
        workers = Workers("fork")
        options = RunOptions(
            workers=min(self.settings.workers, len(groups)),
            timeout=self.settings.timeout,
            grace=self.settings.grace,
            chunksize=1,
            order=self._order(session, groups),
            max_tasks_per_worker=self.settings.max_tasks_per_worker,
            max_worker_rss=self.settings.max_worker_rss,
            threads_per_worker=self.settings.threads_per_worker,
        )
        runner.has_serial = any(is_serial(item) for item in items)
        _worker.AFTER_FORK.append(runner.after_fork)
        self._groups, self._items, self._done = groups, items, set[int]()
        run = None
        try:
            run = Run(workers, runner, range(len(groups)), options)
            self._drive(run, session)
        finally:
            _worker.AFTER_FORK.remove(runner.after_fork)
            if run is not None:
                run.finish()
                self.record = run.record
            workers.close()
        if run.interrupted == signal.SIGTERM:
            signal.raise_signal(signal.SIGTERM)
        if run.interrupted is not None:
            raise KeyboardInterrupt

    def _order(self, session: pytest.Session, groups: list[tuple[int, ...]]) -> list[int] | None:
        """The order of dispatch: a plugin's, longest-first, or collection order."""
        ids = [[session.items[i].nodeid for i in g] for g in groups]
        durations = _durations.load(self.config)
        costs = _durations.group_costs(ids, durations)
        order: list[int] | None = self.config.hook.pytest_ploop_make_scheduler(
            config=self.config, groups=ids, costs=costs
        )
        if order is not None:
            if sorted(order) != list(range(len(groups))):
                raise pytest.UsageError(
                    "pytest_ploop_make_scheduler must return each group's position exactly once"
                )
        else:
            schedule = self.settings.schedule or ("lpt" if durations else "fifo")
            lpt = schedule == "lpt"
            order = _durations.longest_first(costs) if lpt else list(range(len(groups)))
        # Serial tests go last: they wait for every other test to finish (see TestRunner),
        # so the parallel part should be drained by then.
        serial = {
            g for g, group in enumerate(groups) if any(is_serial(session.items[i]) for i in group)
        }
        return [g for g in order if g not in serial] + [g for g in order if g in serial]

    def _drive(self, run: Run, session: pytest.Session) -> None:
        seen: set[int] = set()
        while True:
            self._take_reports(run)
            self._take_failures(run, seen)
            run.outcomes.ready.clear()
            if run.done:
                return
            reason = self._stop_reason(session)
            if reason:
                run.stop(reason)
            run.poll()

    def _stop_reason(self, session: pytest.Session) -> str:
        if session.shouldfail:
            return str(session.shouldfail)
        if session.shouldstop:
            return str(session.shouldstop)
        if self.crashes > self.settings.max_worker_restart:
            self.stop_message = (
                f"{self.crashes} workers crashed, more than --ploop-max-worker-restart="
                f"{self.settings.max_worker_restart}; stopping the run"
            )
            session.shouldstop = self.stop_message
            return self.stop_message
        return ""

    def _take_reports(self, run: Run) -> None:
        while run.emitted:
            _task, _wid, (index, reports, warns) = run.emitted.popleft()
            if index in self._done:  # never report a test twice
                continue
            self._replay(self._items[index], reports, warns)
            self._done.add(index)

    def _replay(self, item: pytest.Item, reports: list[dict[str, Any]], warns: list[Any]) -> None:
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for data in reports:
            ihook.pytest_runtest_logreport(report=deserialize_report(self.config, data))
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        for data in warns:
            self.config.hook.pytest_warning_recorded.call_historic(
                kwargs=dict(
                    warning_message=deserialize_warning(data),
                    when="runtest",
                    nodeid=item.nodeid,
                    location=None,
                )
            )

    def _take_failures(self, run: Run, seen: set[int]) -> None:
        for task, failure in list(run.outcomes.failures.items()):
            if task in seen:
                continue
            seen.add(task)
            group = self._groups[task]
            pending = [i for i in group if i not in self._done]
            if failure.kind == "not_run":
                for i in pending:
                    self.not_run[i] = failure.exception.args[0] if failure.exception.args else ""
                continue
            exc = failure.exception
            marker = getattr(exc, "marker", None) or 0
            blamed = group[marker] if marker < len(group) else pending[0] if pending else None
            if blamed is None or blamed in self._done:
                continue
            if isinstance(exc, WorkerCrashed | TaskTimeout):
                self.crashes += 1
                text = _crash_text(exc, failure.worker)
            else:  # an error of the runner itself, not of a test
                text = f"ploop: internal error while running this test:\n{failure.traceback}"
            item = self._items[blamed]
            now = time.time()
            ihook = item.ihook
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            ihook.pytest_runtest_logreport(report=failed_report(item, text, now, now))
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            self._done.add(blamed)
            for i in pending:
                if i != blamed and i not in self._done:
                    self.not_run[i] = f"its worker died while running {item.nodeid}"

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Any:
        # Reports arrived in the order tests finished; the summary sections (failures, -r
        # lines) list them in collection order, as a serial run does.
        position = {item.nodeid: i for i, item in enumerate(getattr(self, "_items", []))}
        for reports in terminalreporter.stats.values():
            if isinstance(reports, list):
                reports.sort(key=lambda r: position.get(getattr(r, "nodeid", ""), -1))
        result = yield
        self._write_summary(terminalreporter)
        return result

    def _write_summary(self, tr: Any) -> None:
        record = self.record
        if record is None:
            return
        tr.write_sep("-", "ploop")
        tr.write_line(f"ploop: {record.summary()}")
        if self.not_run:
            reasons = sorted(set(self.not_run.values()))
            tr.write_line(f"ploop: {len(self.not_run)} tests not run ({'; '.join(reasons)})")


def _crash_text(exc: WorkerCrashed | TaskTimeout, worker: str) -> str:
    if isinstance(exc, TaskTimeout):
        head = f"ploop: this test timed out after {exc.timeout:g}s; worker {worker} was killed"
        stack = _trim_stack(exc.stack)
        return head + (
            "\n\nstack of the worker (most recent call first):\n" + stack if stack else ""
        )
    how = f"killed by {exc.signal}" if exc.signal else f"exited with code {exc.exitcode}"
    text = f"ploop: worker {worker} crashed while running this test ({how})"
    if exc.detail:
        text += "\n\n" + _trim_stack(exc.detail)
    return text


def _trim_stack(text: str, frames: int = 12) -> str:
    """faulthandler's dump, each thread cut where the test's own frames end: what is below
    is the worker's machinery (pytest's run-test protocol, pluggy, the engine)."""
    machinery = ("/_pytest/", "/pluggy/", "/pytest_ploop/", "/multiprocessing/")
    out: list[str] = []
    kept, cut = 0, False
    for line in text.splitlines():
        if not line.startswith("  File"):
            out.append(line)
            kept, cut = 0, False
        elif cut:
            continue
        elif kept >= frames or any(part in line for part in machinery):
            out.append("  ...")
            cut = True
        else:
            out.append(line)
            kept += 1
    return "\n".join(out)


def _basetemp(config: pytest.Config) -> Path | None:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    path: Path = factory.getbasetemp()
    return path
