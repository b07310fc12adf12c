"""Collecting exactly one outcome per task, and turning failures into exceptions."""

from __future__ import annotations

import pickle
import reprlib
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import (
    FailureKind,
    RemoteException,
    RemoteTraceback,
    TaskFailure,
    TaskNotRun,
)
from ._messages import Failure, safe_str

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


def bounded_repr(value: Any) -> str:
    """``repr(value)``, cut to a readable length, never raising."""
    try:
        return _repr.repr(value)
    except Exception:
        return f"<{type(value).__name__} whose repr() failed>"


def rebuild(failure: Failure) -> BaseException:
    """The worker's exception in this process, with its remote traceback as ``__cause__``."""
    exc: BaseException | None = None
    if failure.exc is not None:
        try:
            exc = pickle.loads(failure.exc)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteException(failure.type_name, failure.message)
    exc.__cause__ = RemoteTraceback(failure.traceback)
    return exc


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` on every supported Python."""
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        notes = []
        try:
            exc.__notes__ = notes  # type: ignore[attr-defined]
        except AttributeError:
            return
    notes.append(note)


@dataclass
class Ready:
    """A batch of finished tasks: ``values[i]`` is the result of ``indices[i]`` when it passed."""

    indices: Sequence[int]
    values: list[Any]
    failed: frozenset[int] = frozenset()  # positions in the batch that did not pass


@dataclass
class Outcomes:
    """Exactly one outcome per task: passed values in batches, failures by index."""

    ready: deque[Ready] = field(default_factory=deque)
    failures: dict[int, TaskFailure] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    settled: int = 0

    def passed(self, indices: Sequence[int], values: list[Any], failed: frozenset[int]) -> None:
        """Record a batch; positions in ``failed`` must already have a failure recorded."""
        self.ready.append(Ready(indices, values, failed))
        n_ok = len(indices) - len(failed)
        self.counts["passed"] += n_ok
        self.settled += n_ok

    def fail(
        self,
        index: int,
        kind: FailureKind,
        argument: Any,
        exc: BaseException,
        traceback: str,
        worker: str = "",
    ) -> TaskFailure:
        """Record that task ``index`` did not pass."""
        if index in self.failures:  # pragma: no cover - an engine bug, never a user's
            raise AssertionError(f"task {index} got a second outcome ({kind})")
        if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt: cannot be grouped
            inner = exc
            exc = RemoteException(f"{type(inner).__qualname__}", safe_str(inner))
            exc.__cause__ = inner
        where = f", on {worker}" if worker else ""
        add_note(exc, f"ploop: task {index}, argument {argument}{where}")
        record = TaskFailure(index, kind, argument, traceback, exc, worker)
        self.failures[index] = record
        self.counts[kind] += 1
        self.settled += 1
        return record

    def not_run(self, index: int, argument: Any, reason: str) -> None:
        """Record that task ``index`` never ran, and why."""
        exc = TaskNotRun(index, reason)
        self.fail(index, "not_run", argument, exc, str(exc))


def failure_message(failures: Sequence[TaskFailure], total: int, not_consumed: int | None) -> str:
    """``3 of 200 tasks did not pass (2 failed, 1 crashed): task 4 failed: ...``."""
    kinds = Counter(f.kind for f in failures)
    parts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items())
    lines = [f"{len(failures)} of {total} tasks did not pass ({parts})"]
    for f in failures[:10]:
        text = safe_str(f.exception)
        first = text.splitlines()[0] if text else ""
        name = type(f.exception).__name__
        lines.append(f"  task {f.index} ({f.kind}), argument {f.argument}: {name}: {first}")
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more (see .failures)")
    if not_consumed:
        lines.append(f"  {not_consumed} further input items were not taken (the run stopped)")
    return "\n".join(lines)
