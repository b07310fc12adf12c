"""Where a run's tasks execute, beyond the local worker processes of ``_engine``.

Only the Dask distributed backend exists (``_dask``; ``pip install "pytest-ploop[dask]"``).
Nothing in this package imports dask at import time: :func:`open_dask` does, when a run asks
for it, so ``import pytest_ploop`` stays as light without the extra as with it.

Every backend's run has the interface of ``_engine._pool.Run`` (:class:`LoopRun`), which the
loop API drives the same way whatever executes the tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .._engine._outcomes import Outcomes
from .._engine._pool import RunOptions
from .._engine._record import RunRecord
from .._errors import PloopError

if TYPE_CHECKING:
    from ._dask import DaskBackend, DaskRun

__all__ = ["BACKENDS", "LoopRun", "check_backend", "make_dask_run", "open_dask"]

DASK_EXTRA_HINT = 'backend="dask" needs Dask distributed: pip install "pytest-ploop[dask]"'
BACKENDS = ("local", "dask")


def check_backend(backend: object, address: object, where: str = "") -> None:
    """Raise ``ValueError`` (``TypeError`` for a wrong type) unless ``backend`` is one of
    :data:`BACKENDS` and ``address`` is ``None`` or, with ``backend="dask"``, a string."""
    if backend not in BACKENDS:
        choices = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"{where}backend={backend!r} is not one of {choices}")
    if address is None:
        return
    if backend != "dask":
        raise ValueError(
            f"{where}address={address!r} is the Dask scheduler's: it needs backend='dask'"
        )
    if not isinstance(address, str) or not address:
        raise TypeError(
            f"{where}address={address!r} must be the scheduler's address, such as "
            "'tcp://scheduler:8786', or None for a local cluster"
        )
    scheme = address.partition("://")[0] if "://" in address else "tcp"
    if scheme not in _SCHEMES:
        # Refused here: Dask's Client, given it, raised and then held the interpreter's exit
        # for a minute (its half-made connection's timeout).
        host = address.partition("://")[2]
        raise ValueError(
            f"{where}address={address!r}: Dask schedulers are reached by "
            f"{', '.join(s + '://' for s in _SCHEMES)}: give 'tcp://{host}' (dask://HOST:PORT "
            "is how --ploop-backend names a scheduler)"
        )


# The address schemes of Dask distributed's comms (distributed.comm.registry).
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


class LoopRun(Protocol):
    """What the loop API needs of a run, whatever runs its tasks (``Run``, ``InlineRun``,
    ``DaskRun``)."""

    outcomes: Outcomes
    record: RunRecord
    fatal: BaseException | None
    interrupted: int | None
    consumed: int
    delivered: int
    total: int | None
    stop_reason: str

    @property
    def done(self) -> bool: ...

    @property
    def not_consumed(self) -> int | None: ...

    def begin(self) -> None:
        """Take the first tasks from the input and start them (the caller holds the run
        already: an input that raises here still leaves it a record to finish)."""

    def poll(self, timeout: float = ...) -> None: ...

    def run_to_end(self) -> None: ...

    def abort(self, reason: str) -> None: ...

    def finish(self) -> None: ...


def open_dask(address: str | None = None, workers: int | None = None) -> DaskBackend:
    """Connect to the Dask scheduler at ``address``, or start a local cluster of ``workers``
    processes (one thread each, no dashboard) when it is ``None``.

    The caller keeps the backend for its runs and calls ``close()`` at the end (a local
    cluster is closed with it; a remote one is left running).

    Raises:
        PloopError: Dask distributed is not installed (the message gives the install line).
        OSError: the scheduler cannot be reached (Dask's own error, with the address).

    Example:
        >>> backend = open_dask(workers=2)  # doctest: +SKIP
        >>> run = backend.run(abs, [-1, -2], RunOptions(workers=2))  # doctest: +SKIP
    """
    try:
        from ._dask import DaskBackend
    except ImportError as exc:
        raise PloopError(f"{DASK_EXTRA_HINT} ({exc})") from exc
    return DaskBackend(address, workers)


def make_dask_run(
    backend: DaskBackend,
    fn: Callable[..., Any],
    items: Iterable[Any],
    options: RunOptions,
    progress: Callable[[int, int | None], None] | None = None,
) -> DaskRun:
    """A run of ``fn`` over ``items`` on ``backend`` (from :func:`open_dask`), started:
    drive it with ``poll()`` or ``run_to_end()``, then ``finish()``, as a local ``Run``."""
    return backend.run(fn, items, options, progress)
