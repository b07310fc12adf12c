"""The main process of a ``--ploop-workers`` run: it collected; workers run the tests.

    main process (collected once)                forked workers (inherit the session)
    pytest_runtestloop ── groups of test indices ─> TestRunner(task, next_task)
          ^                                           runs pytest_runtest_protocol
          └─ emitted (index, reports, warnings, live log...) ┘ per test, as soon as it finished
    replay: logstart, logreport..., logfinish, warning_recorded  (terminal, junitxml, cache,
    stepwise... act here, exactly as in a serial run)

A test whose worker died or hung gets a failed report naming the signal or the timeout, with
the worker's stack; the worker is replaced by forking the main process again, and the tests
it had queued run elsewhere.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import shutil
import signal
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest import junitxml

from .. import _sync
from .._engine import _worker
from .._engine._pool import Run, RunOptions
from .._engine._record import RunRecord, WorkerInfo
from .._engine._workers import Workers
from .._errors import PloopError, TaskTimeout, WorkerCrashed
from . import _depth, _durations, _frozen, _logs, _memory
from ._logs import LiveRecord
from ._remote import TestRunner
from ._reports import (
    deserialize_report,
    deserialize_warning,
    failed_report,
    last_output,
    trim_stack,
)
from ._settings import Settings

_STEPWISE_KEY = "cache/stepwise"  # where pytest's --sw keeps the test to resume from


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
        # The tests of each of the record's tasks (positions in session.items): every round's
        # groups, in the order _merge_record numbers them.
        self.task_groups: list[tuple[int, ...]] = []
        self.not_run: dict[int, str] = {}
        self.crashes = 0
        self.stop_message = ""
        self._orphans: list[tuple[int, ...]] = []  # tests a crash left unrun (see _run)
        self._failed: set[int] = set()  # positions of the tests that had a failed report
        # This round's tasks whose tests reported: their worker, and the main process's
        # monotonic time of their first test's start and last test's end (see _add_reported)
        self._ran: dict[int, tuple[str, float, float]] = {}
        self._peaks: dict[str, int] = {}  # worker id -> its processes' highest peak RSS
        self._froze = False
        self._first_stop: str | bool | None = None  # see _keep_first_stop
        # A test's pytest.exit() or KeyboardInterrupt (see _remote.session_stop)
        self._session_stop: dict[str, Any] | None = None
        self._junit = _JunitOrder(config)  # --junitxml's cases in the serial order
        # record_testsuite_property(): per worker process, and the most of any (see
        # _suite_properties)
        self._suite_counts: dict[int, Counter[tuple[str, str]]] = {}
        self._suite_most: Counter[tuple[str, str]] = Counter()
        _check_given_run_dir()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._junit.note(report)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """A run nested in a test of another pytest session (pytester's in-process runs)
        gives the objects it froze back to the collector: its process lives on, and their
        cycles would never be freed. A run of its own leaves them frozen until the process
        exits, which saves walking them once more."""
        if self._froze and "PYTEST_CURRENT_TEST" in os.environ:
            _frozen.thaw()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            n = session.testsfailed
            raise session.Interrupted(f"{n} error{'s' if n != 1 else ''} during collection")
        if session.config.option.collectonly or not session.items:
            return True
        room = _depth.room()  # from pytest's run loop: what a serial run's tests have
        try:
            self._run(session, room)
        finally:
            self._junit.sort(session.items)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def _run(self, session: pytest.Session, room: int) -> None:
        items = session.items
        groups = make_groups(items, self.settings.dist)
        runner = TestRunner(
            session,
            groups,
            _basetemp(session.config),
            xdist_compat=True,  # --ploop-workers refuses to run together with -n
            testrun_uid=self.testrun_uid,
        )
        runner.has_serial = any(is_serial(item) for item in items)
        runner.max_tests = self.settings.max_tasks_per_worker
        runner.max_rss = self.settings.max_worker_rss
        runner.room_at_loop = room
        runner.sigint = signal.getsignal(signal.SIGINT)  # before the run installs its own
        self._items, self._done = items, set[int]()
        # Every worker holds its fan-out budget slot before its first test (see _cases_plugin):
        # imported here, once, rather than by each worker after the fork.
        importlib.import_module("pytest_ploop._fanout")
        # The collected session (items, nodes, modules: most of this process's objects) into
        # the collector's permanent generation before the workers fork. Workers then leave
        # those pages shared instead of copying them as their collections walk the objects,
        # and nothing walks them again here: neither collections during the run, nor
        # pytest's at the end, nor the interpreter's at exit (0.3 s of a 1.5 s run of 3,000
        # small tests here). See pytest_unconfigure for when they are given back.
        _frozen.freeze()  # (gc.get_referrers and gc.get_objects still see everything)
        self._froze = True
        with _one_run_dir():
            run = self._round(session, runner, groups, self._order(session, groups))
            record = self.record = run.record
            # A worker that died in the middle of a group (--ploop-dist=scope or file, a
            # ploop_group) took the group's later tests with it: run them in another round,
            # in fresh workers, as a crashed worker's queued tests are in load mode (never the
            # test that crashed). Each round blames one more test, so this ends; so does a stop.
            offset = len(groups)
            while self._orphans and not (
                run.stop_reason or session.shouldfail or session.shouldstop
            ):
                groups, self._orphans = self._orphans, []
                for group in groups:
                    for i in group:
                        self.not_run.pop(i, None)
                run = self._round(session, runner, groups, None)
                _merge_record(record, run.record, offset)
                offset += len(groups)
        # Tests the engine never took from its input (the run stopped first) have no outcome
        # there: count them as not run too, so that the summary's number is every test that
        # got no report (it counted only those already handed to a worker).
        for i in range(len(items)):
            if i not in self._done:
                self.not_run.setdefault(i, run.stop_reason or "the run ended early")
        # What a worker needed, for the next --ploop-workers=auto (see _memory).
        sampled = (s.rss for s in record.samples)
        _memory.save_peak(self.config, [*self._peaks.values(), *sampled], self.settings.workers)
        if run.fatal is not None:  # e.g. workers that die as they start: fail, never exit 0
            session.shouldfail = str(run.fatal)
        elif self.not_run and not (run.stop_reason or session.shouldfail or session.shouldstop):
            # Tests without a report that nothing asked to leave out: never exit 0.
            session.shouldfail = f"ploop: {len(self.not_run)} tests not run"
        if run.interrupted == signal.SIGTERM:
            signal.raise_signal(signal.SIGTERM)
        if run.interrupted is not None:
            raise KeyboardInterrupt
        stop = self._session_stop
        if stop is not None:  # a test's pytest.exit() or KeyboardInterrupt, as in serial
            if "internal" in stop:
                raise WorkerInternalError(stop["internal"])
            if "exit" in stop:
                raise pytest.exit.Exception(stop["exit"], stop["returncode"])
            raise KeyboardInterrupt

    @pytest.hookimpl(trylast=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """A test's KeyboardInterrupt: pytest's closing lines name the test's line, where the
        interrupt was raised, as in a serial run (not this process's re-raise)."""
        crash = (self._session_stop or {}).get("interrupt")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        memo: Any = getattr(reporter, "_keyboardinterrupt_memo", None)
        if crash is not None and getattr(memo, "reprcrash", None) is not None:
            from _pytest._code.code import ReprFileLocation  # no public name

            with contextlib.suppress(Exception):
                memo.reprcrash = ReprFileLocation(*crash)

    def _round(
        self,
        session: pytest.Session,
        runner: TestRunner,
        groups: list[tuple[int, ...]],
        order: list[int] | None,
    ) -> Run:
        """Run ``groups`` in freshly forked workers (they inherit ``runner.groups``)."""
        runner.groups = self._groups = groups
        self.task_groups += groups
        self._ran = {}
        workers = Workers("fork")
        options = RunOptions(
            workers=min(self.settings.workers, len(groups)),
            timeout=self.settings.timeout,
            grace=self.settings.grace,
            # Adaptive chunks (several quick tests a message); a test that crashes its
            # worker leaves those before it in the chunk finished (they reported already).
            # One test a message with --ploop-max-tasks-per-worker: a chunk would overrun it.
            chunksize=1 if self.settings.max_tasks_per_worker is not None else None,
            keep_finished=True,
            order=order,
            # Workers are replaced between tests by their own decision (TestRunner), which
            # knows the tests (and keeps a worker that holds a run-once value's teardown).
            threads_per_worker=self.settings.threads_per_worker,
            # The round's workers close with it: one without tests left leaves at once (its
            # session teardown and exit overlap the others' last tests).
            retire_idle=True,
        )
        _worker.AFTER_FORK.append(runner.after_fork)
        run = None
        try:
            run = Run(workers, runner, range(len(groups)), options)
            self._drive(run, session)
        finally:
            _worker.AFTER_FORK.remove(runner.after_fork)
            if run is not None:
                run.finish()
            workers.close()
        _add_reported(run, self._ran)
        return run

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
            # --ff and --nf asked for an order (failures, or new files, first), and --sw
            # must meet the first failure in collection order (it skips what comes before
            # that failure next time): keep the order rather than hand out the longest
            # tests first, unless --ploop-schedule says so.
            asked = any(
                self.config.getoption(name, False)
                for name in ("failedfirst", "newfirst", "stepwise")
            )
            schedule = self.settings.schedule or ("lpt" if durations and not asked else "fifo")
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

    def _keep_first_stop(self, session: pytest.Session) -> None:
        """-x and --maxfail: pytest words its stop ("stopping after 1 failures") at the
        failure that reaches the limit, and again at each later one; a serial run stops
        there, and the tests in flight here finish. Keep the first wording."""
        if not session.shouldfail:
            return
        if self._first_stop is None:
            self._first_stop = session.shouldfail
        elif session.shouldfail != self._first_stop:
            session.shouldfail = self._first_stop

    def _stop_reason(self, session: pytest.Session) -> str:
        stop = self._session_stop
        if stop is not None:
            if "internal" in stop:
                return "INTERNALERROR in a worker"
            return f"pytest.exit(): {stop['exit']}" if "exit" in stop else "KeyboardInterrupt"
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
            task, wid, (index, reports, warns, peak, stop, more) = run.emitted.popleft()
            self._peaks[wid] = max(peak, self._peaks.get(wid, 0))
            more = more or {}
            if "props" in more:
                self._suite_properties(*more["props"])
            if "attrs" in more:
                self._test_attributes(self._items[index].nodeid, more["attrs"])
            if index in self._done:  # never report a test twice
                continue
            now = time.monotonic()
            ran = self._ran.get(task)
            start = now - math.fsum(r.get("duration", 0.0) for r in reports)
            self._ran[task] = (wid, ran[1] if ran else start, now)
            self._replay(index, reports, warns, more.get("live"), more.get("calls"))
            self._done.add(index)
            if stop is not None and "shouldstop" in stop:
                # Set in the worker's session: pytest stops this one after the test as it
                # would a serial run's, with the same wording, unless it is stopping already.
                session = self._items[index].session
                if not (session.shouldstop or session.shouldfail):
                    session.shouldstop = stop["shouldstop"]
                    session.shouldfail = stop["shouldfail"]
            elif stop is not None and self._session_stop is None:
                self._session_stop = stop

    def _suite_properties(self, pid: int, props: list[tuple[str, str]]) -> None:
        """Add what ``record_testsuite_property()`` recorded in worker process ``pid`` to
        the main process's ``--junitxml`` writer. A session-scoped fixture records once per
        worker what a serial run records once: a property is added as often as the worker
        that recorded it most often did."""
        xml = self.config.stash.get(junitxml.xml_key, None)
        if xml is None:
            return
        mine = self._suite_counts.setdefault(pid, Counter())
        for prop in props:
            mine[prop] += 1
            if mine[prop] > self._suite_most[prop]:
                self._suite_most[prop] += 1
                xml.global_properties.append(prop)

    def _test_attributes(self, nodeid: str, attrs: dict[str, str]) -> None:
        """Give the test's case in the main process's ``--junitxml`` writer the attributes
        ``record_xml_attribute()`` set in the worker, before its reports are replayed (they
        keep what is there, as in a serial run, where the test sets them before its call's
        report)."""
        xml = self.config.stash.get(junitxml.xml_key, None)
        if xml is not None:
            xml.node_reporter(nodeid).attrs.update(attrs)

    def _replay(
        self,
        index: int,
        reports: list[dict[str, Any]],
        warns: list[Any],
        live: list[LiveRecord] | None = None,
        calls: str | None = None,
    ) -> None:
        """Call the hooks that the worker called for the test, in its order: logstart, each
        report, logfinish (``calls``, when the worker called them otherwise: pytest-
        rerunfailures starts and finishes each try), with its live-logging records where
        they were logged among them."""
        item = self._items[index]
        ihook = item.ihook
        # The worker computed the location for its reports (``item.location`` costs a good
        # part of a quick test's replay here, to compute the same tuple again).
        location = reports[0].get("location") if reports else None
        location = tuple(location) if location else item.location
        logged = _logs.replay(self.config, live)
        sent = 0
        for made, call in enumerate(calls or _logs.usual_calls(len(reports))):
            logged.until(made)
            if call == "r":
                report = deserialize_report(self.config, reports[sent])
                sent += 1
                if report.failed:
                    self._failed.add(index)
                ihook.pytest_runtest_logreport(report=report)
                self._keep_first_stop(item.session)
            elif call == "s":
                ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=location)
            else:
                ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=location)
        logged.until(None)  # logged after them
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
                # The reason alone: the exception's text names the engine's task number,
                # which made one summary entry per test instead of one per reason.
                reason = getattr(failure.exception, "reason", None) or str(failure.exception)
                for i in pending:
                    self.not_run[i] = reason
                continue
            exc = failure.exception
            # A crash names the test it happened in (the worker's marker); an error of the
            # runner happened in the first test of the group that has no report.
            marker = getattr(exc, "marker", None)
            if marker is not None and 0 <= marker < len(group):
                blamed: int | None = group[marker]
            else:
                blamed = pending[0] if pending else None
            if blamed is None or blamed in self._done:
                continue
            # What the run's reports call a test whose worker died or was killed (pytest
            # counts it as failed, as it says); None for an error of the runner itself.
            kind: str | None = None
            if isinstance(exc, WorkerCrashed | TaskTimeout):
                kind = "timed_out" if isinstance(exc, TaskTimeout) else "crashed"
                # A test that timed out fails and the run goes on: only crashes count
                # toward --ploop-max-worker-restart (two hangs stopped a run at its limit of 1).
                self.crashes += kind == "crashed"
                text = _crash_text(exc, failure.worker)
                limit = self.settings.max_worker_rss
                over = _memory.over_limit_note(run.record.samples, failure.worker, limit)
                text += f"\n\n{over}" if over else ""
                live = {w.pid for w in run.workers.live()}
                output = last_output(os.environ[_sync.ENV], failure.worker, live)
                text += f"\n\n{output}" if output else ""
            else:  # an error of the runner itself, not of a test
                text = f"ploop: internal error while running this test:\n{failure.traceback}"
            item = self._items[blamed]
            now = time.time()
            ihook = item.ihook
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            # Its real time, not 0 s: the durations cache would hand a test that timed
            # out last on the next run, when it is the longest of all.
            start = now - _ran_for(run.record, task)
            report = failed_report(item, text, start, now)
            if kind is not None:
                report.ploop_outcome = kind  # type: ignore[attr-defined]
            ihook.pytest_runtest_logreport(report=report)
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            self._done.add(blamed)
            self._failed.add(blamed)
            rest = tuple(i for i in pending if i != blamed and i not in self._done)
            for i in rest:  # until a later round runs them (see _run)
                self.not_run[i] = f"its worker died while running {item.nodeid}"
            if rest:
                self._orphans.append(rest)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """``--sw``: stepwise remembers the last failure it saw, and the next run skips every
        test before it as passed. Failures arrive here as they finish, not in collection
        order, so that could skip a test that failed, or that the stop kept from running:
        remember the first test in collection order that did not pass instead (after
        stepwise saved its own; through the cache, whose value is a node id in pytest 8 and
        a dict in pytest 9)."""
        cache = getattr(self.config, "cache", None)
        stepwise = self.config.getoption("stepwise", False)
        if cache is None or not stepwise or self.config.getoption("stepwise_skip", False):
            return
        items = getattr(self, "_items", [])
        first = next(
            (
                item.nodeid
                for i, item in enumerate(items)
                if i in self._failed or i not in self._done
            ),
            None,
        )
        value = cache.get(_STEPWISE_KEY, None)
        last = value.get("last_failed") if isinstance(value, dict) else value
        if not self._failed or first is None or not last or last == first:
            return
        cache.set(
            _STEPWISE_KEY, {**value, "last_failed": first} if isinstance(value, dict) else first
        )

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
        if not tr.config.pluginmanager.has_plugin("pytest_ploop._report._plugin"):
            tr.write_sep("-", "ploop")  # the report plugin writes the section otherwise
            tr.write_line(f"ploop: {record.summary()}")
        if self.settings.memory_cap:
            tr.write_line(self.settings.memory_cap)
        if self.not_run:
            reasons = sorted(set(self.not_run.values()))
            tr.write_line(f"ploop: {len(self.not_run)} tests not run ({'; '.join(reasons)})")


class WorkerInternalError(Exception):
    """A hook that raised while a worker ran a test, with the worker's traceback: raised in
    the main session, it ends in pytest's INTERNALERROR and exit status 3, as the hook's
    exception does in a serial run."""

    def __str__(self) -> str:
        return f"in a worker:\n{self.args[0]}".rstrip()


@contextlib.contextmanager
def _one_run_dir() -> Iterator[None]:
    """One run directory (locks, run-once values) for every round of the run: without one
    given in ``PLOOP_RUN_DIR``, the engine makes one per set of workers, so a second round
    would not see the first one's values."""
    if os.environ.get(_sync.ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="ploop-run-")
    os.environ[_sync.ENV] = path
    try:
        yield
    finally:
        os.environ.pop(_sync.ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def _merge_record(into: RunRecord, more: RunRecord, offset: int) -> None:
    """Fold a later round's record into the first one's: one record, one summary for the
    run. The later round's task numbers start at ``offset``, so that none is counted twice."""
    for row in more.tasks:
        failed = None if row.outcome == "passed" else {0: row.outcome}
        ends = array("d", (row.end,))
        into.tasks.add((row.index + offset,), row.worker, row.start, ends, (row.cpu_s,), failed)
    into.ended = more.ended
    into.counts.update(more.counts)
    into.samples.extend(more.samples)
    for wid, info in more.worker_info.items():
        mine = into.worker_info.setdefault(wid, WorkerInfo(wid))
        mine.pids += info.pids
        mine.restarts += info.restarts
        mine.tasks += info.tasks
        mine.busy_s += info.busy_s


def _add_reported(run: Run, ran: dict[int, tuple[str, float, float]]) -> None:
    """Give the record a row for each task of ``ran`` (task -> worker, start, end) that has
    none. A worker leaves the run at once when a test stops the session (-x, --maxfail,
    pytest.exit()), and a worker that dies takes its chunk's results with it: the engine
    records no row then, and counts the tasks not run (or, for those a dead worker had
    finished, passed), though their tests ran and were reported. The record says what the
    reports said: the times are those this process saw; the CPU time was not measured."""
    record = run.record
    recorded = set(record.tasks.index)
    for task, (wid, start, end) in sorted(ran.items()):
        if task in recorded:
            continue
        record.tasks.add((task,), wid, start, array("d", (end,)), (0.0,))
        failure = run.outcomes.failures.get(task)
        if failure is not None and failure.kind == "not_run":
            record.counts["not_run"] -= 1
            record.counts["passed"] += 1
        info = record.worker_info.setdefault(wid, WorkerInfo(wid))
        info.tasks += 1
        info.busy_s += end - start


def _ran_for(record: RunRecord, task: int) -> float:
    """Seconds the engine saw ``task`` run before its worker died or was killed."""
    tasks = record.tasks
    for i in range(len(tasks) - 1, -1, -1):
        if tasks.index[i] == task:
            return max(0.0, tasks.end[i] - tasks.start[i])
    return 0.0


def _check_given_run_dir() -> None:
    """A ``PLOOP_RUN_DIR`` given from outside holds the workers' locks (the serial tests'
    too) and run-once values, which are unpickled from there: refuse it before any worker
    writes in it unless it is private to this user, rather than fail only the tests that
    take a lock."""
    given = os.environ.get(_sync.ENV)
    if given:
        try:
            _sync.check_private(Path(given))
        except PloopError as exc:
            raise pytest.UsageError(str(exc)) from None


def _crash_text(exc: WorkerCrashed | TaskTimeout, worker: str) -> str:
    if isinstance(exc, TaskTimeout):
        head = f"ploop: this test timed out after {exc.timeout:g}s; worker {worker} was killed"
        stack = trim_stack(exc.stack)
        return head + (
            "\n\nstack of the worker (most recent call first):\n" + stack if stack else ""
        )
    how = f"killed by {exc.signal}" if exc.signal else f"exited with code {exc.exitcode}"
    text = f"ploop: worker {worker} crashed while running this test ({how})"
    if exc.detail:
        text += "\n\n" + trim_stack(exc.detail)
    return text


def _basetemp(config: pytest.Config) -> Path | None:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    path: Path = factory.getbasetemp()
    return path


class _JunitOrder:
    """Puts ``--junitxml``'s test cases in the order a serial run writes them, the order of
    ``session.items``, rather than the order they finished in.

    pytest's junitxml plugin lists a test's case when the test's first report arrives, and
    keeps nothing of a finished case but its XML; so each new case is noted with the node
    id of the report that made it (this hook runs after the plugin's), and the list is
    sorted when the run ends, before the plugin writes the file. Collection errors, reported
    before any test, stay first."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cases: list[Any] | None = None
        self.looked = False  # for the plugin's list, at the first report
        self.seen = 0
        self.nodeid_of: dict[int, str] = {}  # id() of a case -> its test's node id

    def note(self, report: pytest.TestReport) -> None:
        """After the junitxml plugin saw ``report``: name the cases it added for it."""
        if not self.looked:
            self.looked = True
            with contextlib.suppress(ImportError):
                from _pytest.junitxml import xml_key  # no public name

                xml = self.config.stash.get(xml_key, None)
                cases = getattr(xml, "node_reporters_ordered", None)
                self.cases = cases if isinstance(cases, list) else None
        if self.cases is None:
            return
        for case in self.cases[self.seen :]:
            self.nodeid_of[id(case)] = report.nodeid
        self.seen = len(self.cases)

    def sort(self, items: list[pytest.Item]) -> None:
        if self.cases is None:
            return
        position = {item.nodeid: i for i, item in enumerate(items)}
        nodeid_of = self.nodeid_of
        self.cases.sort(key=lambda case: position.get(nodeid_of.get(id(case), ""), -1))
