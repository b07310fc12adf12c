"""pytest's logging under ``--ploop-workers``: live logging (``log_cli``) and the log file
(``--log-file``) get each record once, as in a serial run; so does the terminal what a
plugin writes to a worker's (``--setup-show``), through the same replay (:class:`Replay`).

pytest's live-logging handler writes each record to the terminal as it is logged, under a
``live log setup`` / ``call`` / ``teardown`` heading. In a worker, that terminal is a file
read only if the worker dies (for the crash report). So a worker's handler also keeps each
record, with the handler's phase and the number of the test's hook calls before it; the
records travel with the test's reports, and the main process hands them to its own
live-logging handler at the point of the replay where a serial run logs them. The headings,
the blank lines and the records' text come out as in a serial run; they appear when the
test's reports arrive rather than as they are logged.

A record logged by a ``pytest_runtest_logstart``, ``logreport`` or ``logfinish`` hook is
another matter: the worker calls the hook when its test runs, and the main process calls it
again when it replays the test, and logs the record there. So a worker leaves such records
(those of the thread that runs the hook, while it runs) to the main process, in live logging
and in the log file. The log file is otherwise one file that every worker writes to as well
(they inherit it, and each record is one write at the file's shared offset).

The handlers are pytest's ``LoggingPlugin.log_cli_handler`` (a ``_LiveLoggingStreamHandler``)
and ``log_file_handler``: private attributes, there is no public way to reach them.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from _pytest._io import TerminalWriter  # no public name

# The phase of an entry that is a write to the worker's terminal, not a log record.
TEXT = "ploop:terminal"
# One record kept in a worker: (the test's hook calls before it, the handler's phase, the
# record).
LiveRecord = tuple[int, str | None, dict[str, Any]]


def plugin_handler(config: pytest.Config, name: str) -> logging.Handler | None:
    """pytest's logging plugin's handler ``name`` (a private attribute: there is no public
    name for any of them)."""
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, name, None)
    return handler if isinstance(handler, logging.Handler) else None


def _handler(config: pytest.Config) -> logging.Handler | None:
    """The live-logging handler, when live logging is on (else pytest's null handler, or no
    logging plugin at all)."""
    handler = plugin_handler(config, "log_cli_handler")
    if handler is None or not hasattr(handler, "set_when") or not hasattr(handler, "stream"):
        return None
    return handler


class WorkerLogs:
    """In a worker: counts the running test's ``pytest_runtest_logstart``, ``logreport`` and
    ``logfinish`` calls and knows when one runs, in which thread; keeps the live-logging
    records for the main process, and keeps from the log file the records that such a hook
    logs (the main process logs them when it calls the hook again). A record another thread
    logs meanwhile is the worker's."""

    def __init__(self, config: pytest.Config) -> None:
        self.depth = 0
        self.thread = 0  # the thread that runs the hooks
        self.started = False  # whether this worker's first test has started
        self.records: list[LiveRecord] = []
        # The running test's hook calls, in order, each counted as it starts (a record that
        # another thread logs while it runs comes after it): "s" (pytest_runtest_logstart),
        # "r" (a report: logreport), "f" (logfinish). Usually one start, the reports, one
        # finish; pytest-rerunfailures starts and finishes each try.
        self.calls: list[str] = []
        self.logging = 0  # the thread whose record the live-logging handler writes, if any
        file = plugin_handler(config, "log_file_handler")
        if file is not None:
            file.addFilter(self)
        live = _handler(config)
        self.live = live
        if live is not None:
            # The handler's own emit still writes to the worker's terminal, a file of the
            # run: if the worker dies in a test, the test's crash report ends with what was
            # logged.
            self.write = live.emit
            live.emit = self.keep  # type: ignore[method-assign]

    def replayed(self, record: logging.LogRecord) -> bool:
        """Whether a hook that the main process calls again logged ``record``."""
        return self.depth > 0 and record.thread == self.thread

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.replayed(record)

    def keep(self, record: logging.LogRecord) -> None:
        """The live-logging handler's ``emit``: write, and keep the record."""
        self.logging = threading.get_ident()
        try:
            self.write(record)
        finally:
            self.logging = 0
        if self.replayed(record):
            return
        handler = self.live
        assert handler is not None
        when = getattr(handler, "_when", None)
        if not self.started:
            # Before this worker's first test: the phase is the main process's when it forked
            # ("collection"), which a serial run has for its first test only. None: the
            # record goes under the phase of the replay (the test before's "finish").
            when = None
        self.records.append((len(self.calls), when, _portable(handler, record)))

    def text(self, msg: str, markup: dict[str, bool]) -> None:
        """Keep what a plugin wrote to this worker's terminal during a test: ``--setup-show``
        and ``--setup-plan`` write their lines there. (Live logging's are kept as records.)
        """
        thread = threading.get_ident()
        if thread == self.logging or (self.depth > 0 and thread == self.thread):
            return  # a record's text, or written by a hook the main process calls again
        with self._locked():
            self.records.append((len(self.calls), TEXT, {"msg": msg, "markup": markup}))

    def new_test(self) -> None:
        """A test starts: what was logged since the last one (another thread's records)
        comes first in its replay."""
        self.calls = []
        with self._locked():
            if self.records:
                self.records = [(0, when, data) for _, when, data in self.records]

    def unusual_calls(self, reports: int) -> str | None:
        """The running test's hook calls, unless they are the usual ones for ``reports``
        reports (``None``)."""
        calls = "".join(self.calls)
        return None if calls == usual_calls(reports) else calls

    def take(self) -> list[LiveRecord] | None:
        """The running test's records so far (``None``: none), and start afresh."""
        with self._locked():
            records, self.records = self.records, []
        return records or None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # The handler's lock, which its emit (keep) runs under: other threads log too.
        if self.live is None:
            yield
            return
        self.live.acquire()
        try:
            yield
        finally:
            self.live.release()

    @contextlib.contextmanager
    def _inside(self, call: str) -> Iterator[None]:
        self.calls.append(call)
        self.depth += 1
        self.thread = threading.get_ident()
        try:
            yield
        finally:
            self.depth -= 1

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None]:
        self.started = True
        with self._inside("s"):
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None]:
        with self._inside("r"):
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self) -> Generator[None]:
        with self._inside("f"):
            return (yield)


def usual_calls(reports: int) -> str:
    """A test's hook calls (see ``WorkerLogs.calls``) when it has ``reports`` reports and no
    plugin made it otherwise: one start, the reports, one finish."""
    return "s" + "r" * reports + "f"


def in_worker(config: pytest.Config) -> WorkerLogs:
    """Set up this worker's logging."""
    logs = WorkerLogs(config)
    config.pluginmanager.register(logs, "ploop-worker-logs")
    return logs


def _portable(handler: logging.Handler, record: logging.LogRecord) -> dict[str, Any]:
    """The record as a dict that pickles and that ``logging.makeLogRecord`` turns back into
    a record that formats the same: the message with its arguments merged, the exception as
    text (as ``logging.handlers.SocketHandler`` sends records). An attribute that does not
    pickle (an ``extra=`` value) is sent as its ``str()``, which ``%(name)s`` shows. A
    message whose arguments do not fit is sent as it is, to fail the same way there: the
    handler prints the heading and drops the record, as in a serial run."""
    data = dict(record.__dict__)
    with contextlib.suppress(Exception):
        data["msg"] = record.getMessage()
        data["args"] = None
    if record.exc_info:
        if not record.exc_text:
            formatter = handler.formatter or logging.Formatter()
            with contextlib.suppress(Exception):
                data["exc_text"] = formatter.formatException(record.exc_info)
        data["exc_info"] = None
    data.pop("message", None)
    try:
        pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        for key, value in data.items():
            try:
                pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                data[key] = _text(value)
    return data


def _text(value: object) -> str:
    for show in (str, repr):
        with contextlib.suppress(Exception):
            return show(value)
    return f"<unprintable {type(value).__name__}>"


class Replay:
    """In the main process: prints one test's kept records through the live-logging
    handler, and what was written to the worker's terminal to this one, in the order they
    came, each at the point of the test's replay where a serial run has it: among the same
    hook calls."""

    def __init__(
        self,
        handler: logging.Handler | None,
        writer: TerminalWriter | None,
        records: list[LiveRecord] | None,
    ):
        self.handler = handler
        self.writer = writer
        self.records = records or []
        self.pos = 0

    def until(self, made: int | None) -> None:
        """Print the records logged before the worker had made ``made`` of the test's hook
        calls (``None``: all that are left)."""
        handler, records = self.handler, self.records
        while self.pos < len(records):
            before, when, data = records[self.pos]
            if made is not None and before > made:
                return
            self.pos += 1
            if when == TEXT:
                if self.writer is not None:
                    self.writer.write(data["msg"], **data["markup"])
                continue
            if handler is None:
                continue
            if when is not None and getattr(handler, "_when", None) != when:
                # pytest's runtest hooks set the phase in a serial run, and the replay calls
                # none of them.
                handler.set_when(when)  # type: ignore[attr-defined]
            handler.handle(logging.makeLogRecord(data))


_NOTHING = Replay(None, None, None)


def replay(config: pytest.Config, records: list[LiveRecord] | None) -> Replay:
    """A :class:`Replay` of ``records`` (what a worker's :class:`WorkerLogs` took for a
    test)."""
    if not records:
        return _NOTHING
    writer = getattr(config.pluginmanager.get_plugin("terminalreporter"), "_tw", None)
    return Replay(_handler(config), writer, records)


class WriteKeeper:
    """On a worker's terminal writer: each write still goes to its file, and is handed to
    ``keep`` (once the worker's :class:`WorkerLogs` exists) for the main process to show."""

    def __init__(self, writer: TerminalWriter) -> None:
        self.keep: Callable[[str, dict[str, bool]], None] | None = None
        self._write = writer.write
        writer.write = self.write  # type: ignore[method-assign]

    def write(self, msg: str, *, flush: bool = False, **markup: bool) -> None:
        if msg and self.keep is not None:
            self.keep(msg, markup)
        self._write(msg, flush=flush, **markup)
