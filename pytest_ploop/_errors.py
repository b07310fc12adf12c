"""The project's exceptions: one base class, and the aggregate raised for a loop.

Every exception here shows as ``pytest_ploop.<Name>`` in tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    from builtins import ExceptionGroup
else:  # pragma: no cover - version dependent
    from exceptiongroup import ExceptionGroup

__all__ = [
    "FailureKind",
    "LockTimeout",
    "LoopError",
    "PloopError",
    "RemoteException",
    "RemoteTraceback",
    "TaskFailure",
    "TaskNotRun",
    "TaskTimeout",
    "WorkerCrashed",
]

FailureKind = Literal["failed", "crashed", "timed_out", "not_run"]


class PloopError(Exception):
    """Base class of every error pytest-ploop raises itself.

    Example:
        >>> try:
        ...     raise PloopError("workers must be at least 1")
        ... except PloopError as exc:
        ...     print(exc)
        workers must be at least 1
    """


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process.

    It is attached as ``__cause__`` of the exception re-raised in the main process, so the
    traceback a user sees shows where the worker failed.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip()


class RemoteException(PloopError):
    """Stands in for a worker's exception that could not be pickled back to the main process.

    Attributes:
        type_name: the qualified name of the original exception's type.
        message: ``str()`` of the original exception.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message


class WorkerCrashed(PloopError):
    """The worker process running a task died before the task finished.

    Attributes:
        index: the task's position in the input.
        exitcode: the worker's exit status, or ``None`` when it was ended by a signal.
        signal: the name of the signal that ended it (``"SIGSEGV"``, ``"SIGKILL"``), or ``None``.
        detail: extra text: the worker's last stack dump, a hint such as the OOM killer.
        marker: the last number the task wrote to its worker's slot, if any (the pytest
            plugin writes which test of a group was running).
    """

    def __init__(
        self, index: int, exitcode: int | None, signal: str | None, detail: str = ""
    ) -> None:
        how = f"killed by {signal}" if signal else f"exited with code {exitcode}"
        text = f"task {index}: the worker running it died ({how})"
        if detail:
            text += f"\n{detail}"
        super().__init__(text)
        self.index = index
        self.exitcode = exitcode
        self.signal = signal
        self.detail = detail
        self.marker: int | None = None


class TaskTimeout(PloopError):
    """A task ran longer than its ``timeout``; its worker was killed.

    Attributes:
        index: the task's position in the input.
        timeout: the limit in seconds.
        stack: the worker's stack when it was stopped, where Python could dump one.
        marker: as for :class:`WorkerCrashed`.
    """

    def __init__(self, index: int, timeout: float, stack: str = "") -> None:
        text = f"task {index} timed out after {timeout:g}s; its worker was killed"
        if stack:
            text += f"\nstack of the worker when it was stopped:\n{stack.rstrip()}"
        super().__init__(text)
        self.index = index
        self.timeout = timeout
        self.stack = stack
        self.marker: int | None = None


class TaskNotRun(PloopError):
    """A task was never run (or was stopped before it finished), and why.

    Attributes:
        index: the task's position in the input.
        reason: why it did not run, such as ``"fail_fast"`` or ``"interrupted"``.
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"task {index} was not run: {reason}")
        self.index = index
        self.reason = reason


class LockTimeout(PloopError):
    """A lock or semaphore was not acquired within its timeout.

    Attributes:
        name: the lock's name.
        timeout: the seconds waited.
        holder: who holds it: worker, pid and test, as far as known.
    """

    def __init__(self, name: str, timeout: float, holder: str) -> None:
        super().__init__(f"could not acquire {name!r} within {timeout:g}s; it is held by {holder}")
        self.name = name
        self.timeout = timeout
        self.holder = holder


@dataclass(frozen=True)
class TaskFailure:
    """One task that did not pass.

    Attributes:
        index: its position in the input.
        kind: ``"failed"``, ``"crashed"``, ``"timed_out"`` or ``"not_run"``.
        argument: a bounded ``repr`` of the task's argument.
        traceback: the worker-side traceback text (or the crash/timeout description).
        exception: the exception that stands for it in the :class:`LoopError`.
        worker: the id of the worker it ran on (``""`` when it never reached one).
    """

    index: int
    kind: FailureKind
    argument: str
    traceback: str
    exception: Exception
    worker: str = ""


class LoopError(ExceptionGroup, PloopError):
    """Raised when any task of a loop did not pass; holds one exception per such task.

    It is an ``ExceptionGroup``, so ``except*`` works on the kinds of failure inside.

    Attributes:
        failures: one :class:`TaskFailure` per task that did not pass, in input order.
        results: the results of the tasks that passed at their input positions (``None`` at
            the others), so finished work is never lost; ``None`` for streaming calls.
        total: how many tasks were taken from the input.
        not_consumed: input items never taken because the run stopped early (``None`` when
            the input's length is unknown).

    Example:
        >>> import pytest_ploop as ploop
        >>> def inverse(x):
        ...     return 1 / x
        >>> try:
        ...     ploop.map(inverse, [1, 0, 2], workers=1)
        ... except ploop.LoopError as err:
        ...     print(err.failures[0].index, err.results)
        1 [1.0, None, 0.5]
    """

    failures: list[TaskFailure]
    results: list[Any] | None
    total: int
    not_consumed: int | None

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *args: Any,
        **kwargs: Any,
    ) -> LoopError:
        return super().__new__(cls, message, exceptions)

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        failures: Sequence[TaskFailure] = (),
        results: list[Any] | None = None,
        total: int = 0,
        not_consumed: int | None = 0,
    ) -> None:
        super().__init__(message, exceptions)
        self.failures = list(failures)
        self.results = results
        self.total = total
        self.not_consumed = not_consumed

    def __str__(self) -> str:
        return self.message  # the message already counts the tasks; no "(N sub-exceptions)"

    def derive(self, excs: Sequence[Exception]) -> LoopError:  # type: ignore[override]
        wanted = {id(e) for e in excs}
        kept = [f for f in self.failures if id(f.exception) in wanted]
        return LoopError(
            self.message,
            excs,
            failures=kept,
            results=self.results,
            total=self.total,
            not_consumed=self.not_consumed,
        )


for _cls in (
    PloopError,
    RemoteTraceback,
    RemoteException,
    WorkerCrashed,
    TaskTimeout,
    TaskNotRun,
    TaskFailure,
    LoopError,
    LockTimeout,
):
    _cls.__module__ = "pytest_ploop"
