"""Messages between the main process and its workers: frozen dataclasses, and
:func:`safe_str` for the text of a :class:`Failure`.

Every message crosses a socket as one frame (see ``_transport``): a header of lengths, the
message pickled, and its large ``bytes`` field, if any, out of band. Payloads that a user
supplies (the function, arguments, results, exceptions) travel as bytes pickled separately,
so that a payload that cannot be pickled or unpickled fails its own task and never the
message that carries it.

This module is imported by the worker: standard library only.
"""

from __future__ import annotations

import enum
from array import array
from dataclasses import dataclass


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's ``__str__`` raises: one task's odd
    exception must cost neither its own report nor the call's report of every task."""
    try:
        return str(exc)
    except Exception:
        return "<str() of the exception failed>"


class Phase(enum.IntEnum):
    """What a worker is doing, as it writes to its shared status slot."""

    IDLE = 0
    RUNNING = 1  # running the task named in the slot
    SENDING = 2  # pickling and sending a chunk's results
    LOADING = 3  # unpickling a chunk's arguments or a function
    BATCH = 4  # running a batch chunk: which task runs is not written (see Chunk.batch)


# Positions in the worker's shared status slot (a ``RawArray('d', SLOT_SIZE)``).
SLOT_INDEX = 0  # index of the task running now
SLOT_START = 1  # time.monotonic() when it started
SLOT_PHASE = 2  # a Phase
SLOT_SEQ = 3  # sequence number of the chunk being worked on
SLOT_MARKER = 4  # a number the task may write (the plugin: which test of a group runs)
SLOT_SIZE = 5


# -- main process -> worker -------------------------------------------------------------


# A probe chunk (Chunk.budget) runs its tasks in groups of up to this many, with the slot
# naming each group's first task: a worker that dies in one re-runs at most this many tasks
# one by one to find the culprit.
PROBE_GROUP = 64


@dataclass(frozen=True)
class Function:
    """Load the function of job ``job``: from ``payload`` (pickled), or, when ``payload`` is
    ``None``, from the functions the worker inherited when it was forked."""

    job: int
    payload: bytes | None


@dataclass(frozen=True)
class Chunk:
    """Run the function of ``job`` on each argument; ``args`` is the pickled list of them, or
    ``None`` when the worker holds the input (``_worker.INHERITED_ITEMS``) and ``indices``
    name the items to take from it."""

    job: int
    seq: int
    indices: range | tuple[int, ...]
    args: bytes | None
    batch: bool = False  # tiny tasks: run back to back, timed per chunk (see _worker)
    # A probe (task times still unknown, see _worker._Loop._run_batch): start tasks for this
    # many seconds at most and report the rest as skipped, to be sent again. 0: not a probe.
    budget: float = 0.0


@dataclass(frozen=True)
class Cancel:
    """Run no more tasks of ``job``: report the ones not started as skipped."""

    job: int


@dataclass(frozen=True)
class NoMore:
    """No task of ``job`` follows what was sent: a lookahead function may finish."""

    job: int


@dataclass(frozen=True)
class Stop:
    """Finish and exit. With ``unless_needed`` (a run whose workers end with it, and no work is
    left for this one), the worker first runs the chunks it holds, and one that holds a
    run-once value others may still ask for stays until the plain Stop that closes the
    workers."""

    unless_needed: bool = False


# -- worker -> main process -------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A task's exception, as much of it as can cross the process boundary.

    ``where`` is ``"argument"``, ``"run"`` or ``"result"``: which step of the task failed.
    ``exc`` is the pickled exception when it survived a pickling round trip, else ``None``.
    """

    type_name: str
    message: str
    traceback: str
    where: str
    exc: bytes | None = None


@dataclass(frozen=True)
class ChunkDone:
    """The results of a chunk's tasks, in the chunk's order.

    ``values`` is the pickled list of results (``None`` where the task failed or did not run).
    The first ``len(ends)`` tasks ran; the rest were skipped after a :class:`Cancel`.
    Times are ``time.monotonic()`` seconds: the first task started at ``start``, and each
    later one when the one before it ended. ``cpu`` is seconds of CPU per task that ran, or
    one figure for all of them, which the main process shares equally among them (a chunk of
    tiny tasks measures once: per task, the array cost more to send than the results).
    """

    job: int
    seq: int
    values: bytes
    failures: dict[int, Failure]
    start: float
    ends: array[float]
    cpu: array[float]
    skipped: int = 0
    starts: array[float] | None = None  # given when tasks did not start back to back
    batch_end: float | None = None  # a batch: ``ends`` is empty; the tasks share the time


@dataclass(frozen=True)
class ChunkRejected:
    """The chunk's arguments could not be unpickled as a whole; none of its tasks ran."""

    job: int
    seq: int
    failure: Failure


@dataclass(frozen=True)
class FunctionFailed:
    """The function of ``job`` could not be loaded in the worker."""

    job: int
    failure: Failure


@dataclass(frozen=True)
class Emitted:
    """Something a running task sent to the main process at once (``_worker.emit``): the
    plugin streams each test's reports this way, so none is lost if the worker dies later."""

    job: int
    index: int
    payload: bytes


ToWorker = Function | Chunk | Cancel | NoMore | Stop
FromWorker = ChunkDone | ChunkRejected | FunctionFailed | Emitted
