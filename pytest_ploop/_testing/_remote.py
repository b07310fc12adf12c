"""What runs in a forked worker: each test through pytest's own run-test protocol.

The worker is a fork of the main process after collection, so it holds the same session,
items and plugins. After the fork it makes the parts that must not be shared its own (the
terminal output, the capture files, the temporary directory) and then runs tasks. A task is a
group of test indices (one test with ``--ploop-dist=load``); the engine calls the runner with
the next task this worker will run (lookahead), so the last test of a group is run with the
right ``nextitem`` and fixtures are torn down exactly where a serial run tears them down.

Each test's reports and warnings are sent to the main process as soon as the test finished
(``_worker.emit``), so nothing that finished is lost if the worker dies later.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest import junitxml

from .. import _sync
from .._engine import _worker
from . import _depth, _logs, _memory, _xdist_compat
from ._reports import output_file, serialize_report, serialize_warning


class _Collector:
    """Registered in the worker: collects the running test's reports and warnings."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # Serialized when the test has ended: a hook called after a report was logged can
        # still change it (pytest_exception_interact: pytest-ruff puts its own message in),
        # and a serial run shows the report as it is at the end.
        self.reports: list[pytest.TestReport] = []
        self.warnings: list[dict[str, Any]] = []
        self.last_in_task = False
        self.retire: Callable[[], bool] | None = None  # whether to replace this worker now
        self.leaving: int | None = None  # the chunk after which this worker leaves
        # The test's hook calls (pytest_runtest_logstart, logreport, logfinish) and its
        # live-logging records, kept for the main process.
        self.logs = _logs.in_worker(config)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(report)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        # After pytest's own teardown, not around it (a wrapper's frame was in the traceback
        # of a fixture's teardown error, with --tb=native); skipped when that raised.
        # Replace this worker between tests: decided in the teardown of the last test of
        # its task, after the test ran, so that the fixtures kept for the next test (there
        # is one: the lookahead) are torn down here and their errors land in this report,
        # as a serial run tears them down before a test of another module.
        if self.last_in_task and self.retire is not None and self.retire():
            self.leaving = _worker.running_chunk()
            if nextitem is not None:
                item.session._setupstate.teardown_exact(None)

    @pytest.hookimpl(trylast=True)
    def pytest_warning_recorded(
        self, warning_message: warnings.WarningMessage, when: str, nodeid: str
    ) -> None:
        if when == "runtest":
            self.warnings.append(serialize_warning(warning_message))


class TestRunner:
    """The engine task function: ``runner(task, next_task)`` runs one group of tests."""

    ploop_lookahead = True  # the engine passes the next task this worker runs

    def __init__(
        self,
        session: pytest.Session,
        groups: list[tuple[int, ...]],
        basetemp: Path | None,
        xdist_compat: bool,
        testrun_uid: str,
    ) -> None:
        self.session = session
        self.items = session.items
        self.groups = groups
        self.basetemp = basetemp
        self.xdist_compat = xdist_compat
        self.testrun_uid = testrun_uid
        self.collector: _Collector | None = None
        self.serial_fd: int | None = None
        self.has_serial = False
        # Replace a worker after this many tests, or past this RSS, between tests; a task
        # (a group of tests) is never split: the check is after its last test.
        self.max_tests: int | None = None
        self.max_rss: int | None = None
        self.tests_run = 0
        # The calls that a test could make below pytest's run loop (measured in the main
        # process, where pytest would call the tests from), and whether this worker gave
        # back the frames that its fork left below its tests (see _depth).
        self.room_at_loop: int | None = None
        self.depth_given = False
        self.sigint: Any = None  # the main process's SIGINT handler before the run

    def __call__(self, task: int, next_task: int | None) -> int:
        group = self.groups[task]
        following = self.groups[next_task][0] if next_task is not None else None
        collector = self.collector
        assert collector is not None, "the worker was not set up"
        if collector.leaving is not None and collector.leaving != _worker.running_chunk():
            # Decided after an earlier test, and this is a new chunk's first task: the engine
            # hands this chunk and those queued here to other workers and forks a fresh one
            # in this slot. (A chunk's later tasks run here: its earlier ones would run twice.)
            _worker.leave()
        if not self.depth_given:
            # A serial run calls the protocol from pytest's run loop, with the room that the
            # main process measured there; this call has less.
            self.depth_given = True
            if self.room_at_loop is not None:
                _depth.give_back(self.room_at_loop - _depth.room())
        xml = self.session.config.stash.get(junitxml.xml_key, None)
        for k, index in enumerate(group):
            if k and _worker.stop_requested():
                # -x, --maxfail, Ctrl-C: the rest of a module or class (--ploop-dist=scope,
                # file) is not started, as no other test is; the main process counts them as
                # not run, and this worker's exit tears down what the group set up.
                return k
            _worker.set_marker(k)
            item = self.items[index]
            after = group[k + 1] if k + 1 < len(group) else following
            nextitem = self.items[after] if after is not None else None
            collector.reports, collector.warnings = [], []
            collector.logs.new_test()
            collector.last_in_task = k + 1 == len(group)
            self.tests_run += 1
            stop = None
            session = item.session
            flags = (session.shouldstop, session.shouldfail)
            recorded = len(xml.global_properties) if xml is not None else 0
            with self._exclusive_if_serial(item):
                try:
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                except (KeyboardInterrupt, pytest.exit.Exception) as exc:
                    # pytest.exit() or a KeyboardInterrupt in a test ends a serial session:
                    # the main process stops the run and ends the session the same way.
                    stop = session_stop(exc)
                except Exception:
                    # A hook (a conftest's, a plugin's) that raised: pytest's protocol does
                    # not catch it, and a serial session ends in an INTERNALERROR (exit 3).
                    stop = {"internal": traceback.format_exc()}
            if stop is None and (session.shouldstop, session.shouldfail) != flags:
                # A test or a plugin (pytest-timeout's --session-timeout) asked the session to
                # stop after this test, as -x does: the main process's session stops the run.
                stop = {"shouldstop": session.shouldstop, "shouldfail": session.shouldfail}
            peak = _memory.rss_peak()
            # record_testsuite_property() (in the test or a fixture it set up) adds to this
            # worker's copy of the --junitxml writer: the main process's writes the file.
            suite = xml.global_properties[recorded:] if xml is not None else []
            more: dict[str, Any] = {}
            if suite:
                more["props"] = (os.getpid(), suite)
            if attrs := _xml_attributes(xml, item.nodeid):
                more["attrs"] = attrs
            if live := collector.logs.take():
                more["live"] = live
            if calls := collector.logs.unusual_calls(len(collector.reports)):
                more["calls"] = calls
            reports = [serialize_report(collector.config, r) for r in collector.reports]
            _worker.emit((index, reports, collector.warnings, peak, stop, more or None))
            if stop is not None:
                _worker.leave()  # this worker's session ends too: exit hooks tear down
        return len(group)

    def _retire(self) -> bool:
        """Whether this worker ran its tests or passed its memory limit (between tests), and
        may leave (it holds no run-once value that would be torn down mid-run)."""
        if _sync.must_stay():
            return False
        if self.max_tests is not None and self.tests_run >= self.max_tests:
            return True
        return self.max_rss is not None and _memory.rss_now() > self.max_rss

    @contextlib.contextmanager
    def _exclusive_if_serial(self, item: pytest.Item) -> Iterator[None]:
        """Every test holds the run's serial lock shared; a ``ploop_serial`` test holds it
        exclusively, so it runs alone. (``flock``: the kernel releases it if the worker dies.)
        """
        from ._session import is_serial

        if self.serial_fd is None:
            yield
            return
        fcntl.flock(self.serial_fd, fcntl.LOCK_EX if is_serial(item) else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self.serial_fd, fcntl.LOCK_UN)

    # -- in the worker, after the fork ----------------------------------------------------

    def after_fork(self, wconfig: _worker.WorkerConfig) -> None:
        """Make this forked process a test worker (runs before its first task)."""
        from ..plugin import WorkerInfo

        config = self.session.config
        if self.xdist_compat:
            os.environ["PYTEST_XDIST_WORKER"] = f"gw{wconfig.index}"
            os.environ["PYTEST_XDIST_WORKER_COUNT"] = str(wconfig.count)
            os.environ["PYTEST_XDIST_TESTRUNUID"] = self.testrun_uid
            _xdist_compat.as_xdist_worker(config, wconfig.index, wconfig.count, self.testrun_uid)
        writer = _terminal_to_file(config, wconfig.worker_id)
        _leave_reporting_to_the_main_process(config)
        _label_tests_with_this_process(config)
        _testmon_saves_in_the_main_process(config)
        if config.getoption("capture", "fd") == "no":
            _prefix_output(f"[{wconfig.worker_id}] ".encode())
        _own_capture(config, wconfig.worker_id)
        # The engine's worker ignores Ctrl-C (the main process decides what it means; in a
        # process group of its own, a worker gets no terminal's Ctrl-C anyway). A test sees
        # the handler a serial run's test sees: what the main process had before the run.
        if self.sigint is not None:
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signal.SIGINT, self.sigint)
        if self.basetemp is not None:
            _own_basetemp(config, self.basetemp / wconfig.worker_id)
        if self.has_serial:
            path = os.path.join(os.environ["PLOOP_RUN_DIR"], "serial.lock")
            self.serial_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.collector = _Collector(config)
        if self.max_tests is not None or self.max_rss is not None:
            self.collector.retire = self._retire
        config.pluginmanager.register(self.collector, "ploop-worker-collector")
        if writer is not None:
            writer.keep = self.collector.logs.text
        _worker.BEFORE_EXIT.append(self.before_exit)
        factory = getattr(config, "_tmp_path_factory", None)  # after _own_basetemp
        info = WorkerInfo(wconfig.worker_id, wconfig.index, wconfig.count, factory)
        config.hook.pytest_ploop_worker_setup(config=config, worker=info)

    def before_exit(self) -> None:
        """Tear down what is still set up (a run stopped early skipped the last teardown),
        and save what coverage measured here."""
        with contextlib.suppress(BaseException):  # the run is over; its reports are in
            self.session._setupstate.teardown_exact(None)
        save_coverage()
        for stream in ("out", "err", "tw"):  # only a crashed worker's output is read
            with contextlib.suppress(KeyError, OSError):
                run_dir = os.environ["PLOOP_RUN_DIR"]
                os.unlink(output_file(run_dir, os.environ["PLOOP_WORKER"], os.getpid(), stream))


def _xml_attributes(xml: Any, nodeid: str) -> dict[str, str]:
    """What ``record_xml_attribute()`` set for the test ``nodeid`` in this worker's copy of
    the ``--junitxml`` writer (the main process's writes the file), taken out of it."""
    if xml is None:
        return {}
    reporter = xml.node_reporter(nodeid)  # (its key is a NodeId in pytest 9, a str before)
    for key in [k for k, r in xml.node_reporters.items() if r is reporter]:
        del xml.node_reporters[key]
    with contextlib.suppress(ValueError):
        xml.node_reporters_ordered.remove(reporter)
    return dict(reporter.attrs)


def _terminal_to_file(config: pytest.Config, worker_id: str) -> _logs.WriteKeeper | None:
    """The main process reports; a worker's terminal writer writes to a file of the run
    directory, read only if the worker dies (``_reports.last_output``): what a plugin wrote
    there before ending the process (pytest-timeout's stacks, with ``--timeout-method=thread``)
    then reaches the crash report. (``_tw`` is the reporter's writer;
    ``config.get_terminal_writer()`` returns it.)

    So does the reporter that live logging writes to, when a plugin (pytest-sugar,
    pytest-relaxed) put a reporter of its own in pytest's place after the logging plugin had
    taken pytest's: the worker wrote each record to the real terminal."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    live = getattr(config.pluginmanager.get_plugin("logging-plugin"), "log_cli_handler", None)
    reporters: list[Any] = [
        r for r in (reporter, getattr(live, "stream", None)) if hasattr(r, "_tw")
    ]
    if reporters:
        from _pytest._io import TerminalWriter

        run_dir = os.environ.get("PLOOP_RUN_DIR")
        path = output_file(run_dir, worker_id, os.getpid(), "tw") if run_dir else os.devnull
        # Line-buffered: a plugin that ends the process with os._exit() loses nothing.
        writer = TerminalWriter(open(path, "w", buffering=1))  # noqa: SIM115
        # What the worker writes for the main process to show (an assertion's explanation,
        # with its diff highlighted) is marked up as the main process's terminal is.
        writer.hasmarkup = reporters[0]._tw.hasmarkup
        writer.code_highlight = reporters[0]._tw.code_highlight
        for each in reporters:
            each._tw = writer
        return _logs.WriteKeeper(writer)
    return None


# Plugins that only report: each test's reports reach them in the main process, which replays
# them. In a worker they would see every report a second time, for nothing.
_MAIN_ONLY = ("ploop-durations", "ploop-report-outcomes", "ploop-cases-reporter")
# Other plugins' report writers, by (module, class), that a plugin registers only where there
# is no ``config.workerinput`` when it configures, so that xdist's workers never have them;
# ploop's workers are forked after the main process configured, and inherit them. pytest-html
# rewrites a report's extras in place: what a worker's copy had encoded, the main process's
# encoded again (a text extra's content became the base64 of its own data URI). The others
# write what the main process writes again when it replays the test.
_MAIN_ONLY_TYPES = (
    ("pytest_html.basereport", "BaseReport"),
    # pytest-reportlog and the GitHub Actions annotations: a worker's copy wrote each record,
    # or printed each annotation, a second time.
    ("pytest_reportlog.plugin", "ReportLogPlugin"),
    ("pytest_github_actions_annotate_failures.plugin", "_AnnotateErrors"),
    ("pytest_github_actions_annotate_failures.plugin", "_AnnotateWarnings"),
    # pytest's --junitxml writer: it stays in the worker's stash, where
    # record_testsuite_property() and record_xml_attribute() record into it, but its copy of
    # each test's case was dropped at the test's teardown report, with the attributes the
    # test set (the main process's writer, which writes the file, never had them).
    ("_pytest.junitxml", "LogXML"),
)


class _QuietReporter:
    """Stands in for the terminal reporter in a worker: its attributes (for plugins that read
    them, ``config.get_terminal_writer()``), none of its hooks, which cost a good part of a
    quick test's time in the worker to report to nobody."""

    def __init__(self, reporter: object) -> None:
        object.__setattr__(self, "_reporter", reporter)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("pytest_"):
            raise AttributeError(name)
        return getattr(self._reporter, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._reporter, name, value)


def _leave_reporting_to_the_main_process(config: pytest.Config) -> None:
    manager = config.pluginmanager
    for name in _MAIN_ONLY:
        plugin = manager.get_plugin(name)
        if plugin is not None:
            manager.unregister(plugin)
    types = tuple(
        cls
        for module, name in _MAIN_ONLY_TYPES
        if isinstance(cls := getattr(sys.modules.get(module), name, None), type)
    )
    if types:
        for plugin in manager.get_plugins():
            if isinstance(plugin, types):
                manager.unregister(plugin)
    reporter = manager.get_plugin("terminalreporter")
    if reporter is not None and not isinstance(reporter, _QuietReporter):
        manager.unregister(reporter)
        manager.register(_QuietReporter(reporter), "terminalreporter")


def _label_tests_with_this_process(config: pytest.Config) -> None:
    """allure-pytest labels each test with the process and thread that ran it (``thread``:
    ``<pid>-MainThread``), read once when it configured: in the main process, before the
    workers forked. Every test of a run was labelled with the main process, and Allure's
    timeline drew the tests that ran at the same time on top of each other. A worker's tests
    carry its own pid, as an xdist worker's do."""
    listener = getattr(sys.modules.get("allure_pytest.listener"), "AllureListener", None)
    tag = getattr(sys.modules.get("allure_commons.utils"), "thread_tag", None)
    if not isinstance(listener, type) or not callable(tag):
        return
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, listener) and hasattr(plugin, "_thread"):
            plugin._thread = tag()


def _testmon_saves_in_the_main_process(config: pytest.Config) -> None:
    """pytest-testmon reads its role once, when it configures: a worker (xdist's) leaves the
    saving of each test's fingerprints to the main process, which gets them with the test's
    reports. A ploop worker, forked after that, took itself for a serial run and wrote them
    to testmon's database itself, through the SQLite connection of the main process (which
    SQLite says not to use after a fork), and the main process wrote them again."""
    collect = config.pluginmanager.get_plugin("TestmonCollect")
    if getattr(collect, "_running_as", None) == "single":
        collect._running_as = "worker"  # type: ignore[union-attr]


def session_stop(exc: BaseException) -> dict[str, Any]:
    """What ends the session, as data: ``pytest.exit()``'s message and return code, or a
    KeyboardInterrupt's place (``path:line: KeyboardInterrupt``, which pytest prints).
    (A session whose ``shouldstop`` or ``shouldfail`` a test set is sent as those two
    values, by ``TestRunner.__call__``.)"""
    if isinstance(exc, pytest.exit.Exception):
        return {"exit": exc.msg, "returncode": exc.returncode}
    crash: tuple[str, int, str] | None = None
    with contextlib.suppress(Exception):
        where = pytest.ExceptionInfo.from_exception(exc).getrepr().reprcrash
        if where is not None:
            crash = (where.path, where.lineno, where.message)
    return {"interrupt": crash}


def _own_capture(config: pytest.Config, worker_id: str) -> None:
    """Give this worker's global capture files of its own, keeping its objects.

    The capture's files were opened by the main process and are shared with every fork:
    workers reading and truncating them would take each other's output. Its objects stay,
    as in a serial run, where ``sys.stdout`` is one object for the whole session: code that
    kept a reference to it at import (``from sys import stdout``, a logging handler made at
    import) writes to the capture, not to a closed copy of the main process's.
    """
    capman = config.pluginmanager.get_plugin("capturemanager")
    capturing = getattr(capman, "_global_capturing", None)
    if capturing is None:
        return
    if config.getoption("capture", "fd") == "fd":
        _capture_to_files(capturing, worker_id)
    else:  # sys, tee-sys: in-memory buffers, copied by the fork; empty this worker's copy
        for stream in ("out", "err"):
            buffer: Any = getattr(getattr(capturing, stream, None), "tmpfile", None)
            with contextlib.suppress(AttributeError, OSError, ValueError):
                buffer.seek(0)
                buffer.truncate()


def _capture_to_files(capturing: Any, worker_id: str) -> None:
    """Point this worker's captured stdout and stderr (fd 1 and 2) at files of its own:
    files of the run directory, named after the worker, where there is one (if the worker
    dies in a test, the main process reads the test's last output there for the crash
    report: ``_reports.last_output``), else anonymous temporary files.

    pytest truncates the files after each test phase, so they hold the running phase's
    output. The capture keeps its file objects: their descriptors are pointed at the new
    files (``dup2``), and so are fd 1 and 2 while the capture is on.
    """
    run_dir = os.environ.get("PLOOP_RUN_DIR")
    for stream in ("out", "err"):
        capture: Any = getattr(capturing, stream, None)
        with contextlib.suppress(AttributeError, OSError, ValueError):
            tmp = capture.tmpfile.fileno()
            if run_dir:
                path = output_file(run_dir, worker_id, os.getpid(), stream)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, tmp)
                os.close(fd)
            else:
                with tempfile.TemporaryFile() as file:
                    os.dup2(file.fileno(), tmp)
            if capture._state == "started":
                os.dup2(tmp, capture.targetfd)


def _own_basetemp(config: pytest.Config, path: Path) -> None:
    # tmp_path and tmp_path_factory stay unique per worker: each gets <basetemp>/<worker id>.
    # A worker that replaces a crashed or recycled one gets <basetemp>/<worker id>-1, -2...:
    # pytest empties a given basetemp that exists, which took the directories of the tests
    # the earlier process ran (a failed test's, that the retention policy keeps).
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        n = 0
        fresh = path
        while fresh.exists():  # one process per worker slot at a time: no race
            n += 1
            fresh = path.with_name(f"{path.name}-{n}")
        factory._given_basetemp = fresh
        factory._basetemp = None


def _prefix_output(prefix: bytes) -> None:
    """``-s``: this worker's output reaches the terminal line by line, prefixed with its id,
    stdout on stdout and stderr on stderr.

    A small child process does the prefixing (a thread would make every ``os.fork`` in the
    tests warn on Python 3.12+): it reads two pipes that are now the worker's stdout and
    stderr, and ends when the worker and the processes its tests started are gone.
    """
    import select
    import signal

    pipes = [os.pipe() for _ in range(2)]  # (read, write) for stdout, for stderr
    terminals = [os.dup(1), os.dup(2)]
    if os.fork() == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            for _, write_fd in pipes:
                os.close(write_fd)
            reads = [read_fd for read_fd, _ in pipes]
            out = dict(zip(reads, terminals, strict=True))
            pending = dict.fromkeys(out, b"")
            while out:
                for fd in select.select(list(out), [], [])[0]:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        if pending[fd]:
                            os.write(out[fd], prefix + pending[fd] + b"\n")
                        del out[fd]
                        continue
                    *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    if lines:
                        os.write(out[fd], b"".join(prefix + line + b"\n" for line in lines))
        finally:
            os._exit(0)
    for (read_fd, write_fd), target in zip(pipes, (1, 2), strict=True):
        os.close(read_fd)
        os.dup2(write_fd, target)
        os.close(write_fd)
    for terminal in terminals:
        os.close(terminal)


def save_coverage() -> None:
    """Save the coverage this worker measured (pytest-cov, coverage.py), under a file name of
    its own: the main process's combine step picks it up with the others."""
    import sys

    coverage = sys.modules.get("coverage")
    if coverage is None or (cov := coverage.Coverage.current()) is None:
        return
    with contextlib.suppress(Exception):
        cov.stop()
        data = cov.get_data()
        mine = coverage.CoverageData(
            basename=data.base_filename(), suffix=f"ploop.{os.getpid()}.{os.urandom(3).hex()}"
        )
        mine.update(data)
        mine.write()
