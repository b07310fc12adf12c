"""pytest's logging under ``--ploop-workers``: live logging (``log_cli``) and the log file
(``--log-file``) get each record once, as in a serial run.

pytest's live-logging handler writes each record to the terminal as it is logged, under a
``live log setup`` / ``call`` / ``teardown`` heading. In a worker, that terminal is a file
read only if the worker dies (for the crash report). So a worker's handler also keeps the
records of those three phases, each with the phase and the number of the test's reports sent
before it; they travel with the test's reports, and the main process hands them to its own
live-logging handler at the point of the replay where a serial run logs them, before the
report of their phase. The headings, the blank lines and the records' text come out as in a
serial run; they appear when the test's reports arrive rather than as they are logged.

Records of the other phases (``start``, ``logreport``, ``finish``) come from the
``pytest_runtest_log*`` hooks, which the main process calls again when it replays the test:
they are logged there, once, as in a serial run.

The log file is one file that every worker writes to as well (they inherit it, and each
record is one write at the file's shared offset), so the records of the test phases need no
help. A record logged by a ``pytest_runtest_log*`` hook is another matter: the worker calls
the hook when its test runs, and the main process calls it again when it replays the test,
so the file had it twice. A worker leaves such records to the main process.

The handlers are pytest's ``LoggingPlugin.log_cli_handler`` (a ``_LiveLoggingStreamHandler``)
and ``log_file_handler``: private attributes, there is no public way to reach them.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

# One record kept in a worker: (reports sent before it, the handler's phase, the record).
LiveRecord = tuple[int, str, dict[str, Any]]
# The phases that run in the worker only: the test's own (pytest_runtest_setup, call and
# teardown).
_TEST_PHASES = ("setup", "call", "teardown")


def _plugin_handler(config: pytest.Config, name: str) -> logging.Handler | None:
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, name, None)
    return handler if isinstance(handler, logging.Handler) else None


def _handler(config: pytest.Config) -> logging.Handler | None:
    """The live-logging handler, when live logging is on (else pytest's null handler, or no
    logging plugin at all)."""
    handler = _plugin_handler(config, "log_cli_handler")
    if handler is None or not hasattr(handler, "set_when") or not hasattr(handler, "stream"):
        return None
    return handler


class InReplayedHook:
    """In a worker: knows when a ``pytest_runtest_logstart``, ``logreport`` or ``logfinish``
    hook runs, and as a logging filter, drops the records logged meanwhile (the main process
    logs them when it calls the hook again)."""

    def __init__(self) -> None:
        self.depth = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.depth

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None]:
        with self._inside():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None]:
        with self._inside():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self) -> Generator[None]:
        with self._inside():
            return (yield)


def file_once(config: pytest.Config) -> None:
    """In a worker: the log file gets no record that a replayed hook logs here."""
    handler = _plugin_handler(config, "log_file_handler")
    if handler is not None:
        hooks = InReplayedHook()
        config.pluginmanager.register(hooks, "ploop-worker-replayed-hooks")
        handler.addFilter(hooks)


class Keeper:
    """In a worker: takes the place of the live-logging handler's ``emit`` and keeps each
    record of the running test for the main process."""

    def __init__(self, handler: logging.Handler, reports: Callable[[], int]) -> None:
        self.handler = handler
        self.reports = reports  # how many of the running test's reports were sent
        self.records: list[LiveRecord] = []
        # The handler's own emit still writes to the worker's terminal, a file of the run: if
        # the worker dies in a test, the test's crash report ends with what was logged.
        self.write = handler.emit

    def emit(self, record: logging.LogRecord) -> None:
        self.write(record)
        when = getattr(self.handler, "_when", None)
        if when in _TEST_PHASES:
            self.records.append((self.reports(), when, _portable(self.handler, record)))
        # Logged in another phase: by a pytest_runtest_logstart, logreport or logfinish hook,
        # which the main process calls again when it replays the test, and logs there.

    def take(self) -> list[LiveRecord] | None:
        """The running test's records so far (``None``: none), and start afresh."""
        records, self.records = self.records, []
        return records or None


def keep_in_worker(config: pytest.Config, reports: Callable[[], int]) -> Keeper | None:
    """Make this worker's live-logging handler keep its records (``reports()``: how many
    of the running test's reports were sent so far). ``None`` when live logging is off."""
    handler = _handler(config)
    if handler is None:
        return None
    keeper = Keeper(handler, reports)
    handler.emit = keeper.emit  # type: ignore[method-assign]
    return keeper


def _portable(handler: logging.Handler, record: logging.LogRecord) -> dict[str, Any]:
    """The record as a dict that pickles and that ``logging.makeLogRecord`` turns back into
    a record that formats the same: the message with its arguments merged, the exception as
    text (as ``logging.handlers.SocketHandler`` sends records). An attribute that does not
    pickle (an ``extra=`` value) is sent as its repr."""
    data = dict(record.__dict__)
    data["msg"] = record.getMessage()
    data["args"] = None
    if record.exc_info:
        if not record.exc_text:
            formatter = handler.formatter or logging.Formatter()
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
                data[key] = repr(value)
    return data


class Replay:
    """In the main process: prints one test's kept records through the live-logging
    handler, in the order they were logged, each at the point of the test's replay where a
    serial run logs it: before the report of the phase it was logged in."""

    def __init__(self, handler: logging.Handler | None, records: list[LiveRecord] | None):
        self.handler = handler
        self.records = records or []
        self.pos = 0

    def until(self, sent: int) -> None:
        """Print the records logged before the worker had sent ``sent`` of the test's
        reports."""
        handler, records = self.handler, self.records
        while self.pos < len(records) and handler is not None:
            before, when, data = records[self.pos]
            if before > sent:
                return
            self.pos += 1
            if getattr(handler, "_when", None) != when:
                # pytest's runtest hooks set the phase in a serial run, and the replay calls
                # none of them.
                handler.set_when(when)  # type: ignore[attr-defined]
            handler.handle(logging.makeLogRecord(data))


_NOTHING = Replay(None, None)


def replay(config: pytest.Config, records: list[LiveRecord] | None) -> Replay:
    """A :class:`Replay` of ``records`` (those a worker's :class:`Keeper` took for a test)."""
    return Replay(_handler(config), records) if records else _NOTHING
