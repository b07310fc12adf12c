"""``workers=1``: the same run, in the calling process, so a debugger works on the tasks.

Outcomes, errors and the run record are those of a run on workers; what cannot happen in one
process is said here: no pickling (arguments and results are passed as they are), and a crash
ends the calling process itself. A ``timeout`` is enforced with SIGALRM when the run is on the
main thread (a task stuck in C code that does not return to Python cannot be interrupted).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from array import array
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from .._errors import TaskTimeout
from ._outcomes import Outcomes, bounded_repr
from ._pool import RunOptions, length_of
from ._record import RunRecord, WorkerInfo

_SLICE_S = 0.02  # a poll runs tasks for about this long, then returns to its caller


class _Alarm(BaseException):
    """Raised by SIGALRM inside an overdue task (a BaseException: tasks rarely catch it)."""


class InlineRun:
    """A run with the same interface as ``_pool.Run``, executing in this process."""

    def __init__(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        options: RunOptions,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.fn = fn
        self.options = options
        self.total = length_of(items)
        self.it: Iterator[Any] = iter(items)
        self.outcomes = Outcomes()
        self.record = RunRecord(1, "inline", time.monotonic())
        self.record.worker_info["main"] = WorkerInfo("main")
        self.progress = progress
        self.fatal: BaseException | None = None
        self.interrupted: int | None = None
        self.consumed = 0
        self.delivered = 0
        self.exhausted = False
        self.done = False
        self.stop_reason = ""
        self._alarm = options.timeout is not None and (
            threading.current_thread() is threading.main_thread()
        )

    @property
    def not_consumed(self) -> int | None:
        if self.total is None:
            return 0 if self.exhausted else None
        return self.total - self.consumed

    def begin(self) -> None:
        """Nothing to do before the first poll: it takes the first tasks."""

    def poll(self, timeout: float = 0.0) -> None:
        """Run tasks for a short slice of time."""
        deadline = time.monotonic() + _SLICE_S
        while not self.done and time.monotonic() < deadline:
            ahead = self.options.max_ahead
            if ahead is not None and self.consumed - self.delivered >= ahead:
                return
            try:
                arg = next(self.it)
            except StopIteration:
                self.exhausted = self.done = True
                break
            self._one(self.consumed, arg)
            self.consumed += 1
        if self.progress is not None:
            self.progress(self.outcomes.settled, self.total)

    def _one(self, index: int, arg: Any) -> None:
        info = self.record.worker_info["main"]
        c0, t0 = time.process_time(), time.monotonic()
        kind = None
        try:
            with self._deadline():
                value = self.fn(arg)
        except _Alarm:
            assert self.options.timeout is not None
            exc: BaseException = TaskTimeout(index, self.options.timeout, traceback.format_exc())
            kind = "timed_out"
        except KeyboardInterrupt:
            self.interrupted = signal.SIGINT
            self.outcomes.not_run(index, bounded_repr(arg), "interrupted (Ctrl-C)")
            self._stop("interrupted (Ctrl-C)")
            return
        except BaseException as e:  # SystemExit fails the task too
            exc, kind = e, "failed"
        t1 = time.monotonic()
        failed = {0: kind} if kind else None
        self.record.tasks.add((index,), "main", t0, array("d", (t1,)),
                              (time.process_time() - c0,), failed)  # fmt: skip
        info.tasks += 1
        info.busy_s += t1 - t0
        if kind is None:
            self.outcomes.passed((index,), [value], frozenset())
            return
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.outcomes.fail(index, kind, bounded_repr(arg), exc, text, "main")  # type: ignore[arg-type]
        if self.options.fail_fast:
            self._stop("fail_fast: an earlier task failed")

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[None]:
        if not self._alarm:
            yield
            return
        assert self.options.timeout is not None

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            raise _Alarm

        # The caller's own timer (pytest-timeout's signal method, a watchdog) goes on: one
        # due before the task's deadline is left to fire with its own handler; a later one
        # is set again afterwards, less the time the task took. (It was cancelled.)
        started = time.monotonic()
        before, interval = signal.getitimer(signal.ITIMER_REAL)
        if before and before <= self.options.timeout:
            yield
            return
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.options.timeout)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            if before:
                left = before - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.done = True

    def run_to_end(self) -> None:
        while not self.done:
            self.poll()

    def abort(self, reason: str) -> None:
        self._stop(reason)

    def finish(self) -> None:
        self.done = True
        self.record.ended = time.monotonic()
        self.record.counts = self.outcomes.counts.copy()
