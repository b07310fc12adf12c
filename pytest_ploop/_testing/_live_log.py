"""Live logging (``log_cli``) under ``--ploop-workers``: printed as in a serial run.

pytest's live-logging handler writes each record to the terminal as it is logged, under a
``live log setup`` / ``call`` / ``teardown`` heading. In a worker, that terminal is a file
nobody reads. So a worker's handler keeps the records of those three phases instead, each
with the phase and the number of the test's reports sent before it; they travel with the
test's reports, and the main process hands them to its own live-logging handler at the
point of the replay where a serial run logs them, before the report of their phase. The
headings, the blank lines and the records' text come out as in a serial run; they appear
when the test's reports arrive rather than as they are logged.

Records of the other phases (``start``, ``logreport``, ``finish``) come from the
``pytest_runtest_log*`` hooks, which the main process calls again when it replays the test:
they are logged there, once, as in a serial run.

The handler is pytest's ``_LiveLoggingStreamHandler`` (``LoggingPlugin.log_cli_handler``, a
private attribute; there is no public way to reach it).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

import pytest

# One record kept in a worker: (reports sent before it, the handler's phase, the record).
LiveRecord = tuple[int, str, dict[str, Any]]
# The phases that run in the worker only: the test's own (pytest_runtest_setup, call and
# teardown).
_TEST_PHASES = ("setup", "call", "teardown")


def _handler(config: pytest.Config) -> logging.Handler | None:
    """The live-logging handler, when live logging is on (else pytest's null handler, or no
    logging plugin at all)."""
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, "log_cli_handler", None)
    if handler is None or not hasattr(handler, "set_when") or not hasattr(handler, "stream"):
        return None
    return handler if isinstance(handler, logging.Handler) else None


class Keeper:
    """In a worker: takes the place of the live-logging handler's ``emit`` and keeps what it
    would have written, for the running test."""

    def __init__(self, handler: logging.Handler, reports: Callable[[], int]) -> None:
        self.handler = handler
        self.reports = reports  # how many of the running test's reports were sent
        self.records: list[LiveRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
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


def replay(config: pytest.Config, records: list[LiveRecord] | None) -> Replay:
    """A :class:`Replay` of ``records`` (those a worker's :class:`Keeper` took for a test)."""
    return Replay(_handler(config) if records else None, records)
