"""Named locks and counting semaphores across a Dask cluster, on ``distributed.Semaphore``.

File locks (``_sync``) do not cross machines; on the Dask backend ``ploop.lock`` and
``ploop.semaphore`` are these (see ``_sync._on_cluster``). Inside a task they use the worker's
connection to the scheduler; in the calling process, pass the ``client``.

Names are cluster-wide (prefixed ``ploop:``): there is no per-run directory to scope them, so
two runs on one cluster share a lock of the same name, which is what serialising access to a
shared resource needs. A holder whose worker dies keeps its slot until the scheduler's lease
timeout (``distributed.scheduler.locks.lease-timeout``, 30 s by default) expires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import distributed

from .._errors import LockTimeout

__all__ = ["dask_lock", "dask_semaphore"]

PREFIX = "ploop:"
_HOLDER = "unknown (a Dask scheduler lease does not say who holds it)"


@contextlib.contextmanager
def dask_lock(name: str, timeout: float | None = None, client: Any = None) -> Iterator[None]:
    """Hold the cluster-wide lock ``name`` for the duration of the ``with`` block.

    Args:
        name: any non-empty string; the same name is the same lock on every worker.
        timeout: seconds to wait; ``None`` waits as long as it takes.
        client: the ``distributed.Client`` to use outside a Dask task (inside one, the
            worker's own connection is used).

    Raises:
        LockTimeout: not acquired within ``timeout``.

    Example:
        >>> with dask_lock("database"):  # doctest: +SKIP
        ...     pass  # one task of the cluster at a time here
    """
    with dask_semaphore(name, 1, timeout, client):
        yield


@contextlib.contextmanager
def dask_semaphore(
    name: str, slots: int, timeout: float | None = None, client: Any = None
) -> Iterator[None]:
    """Take one of ``slots`` cluster-wide slots called ``name`` for the ``with`` block.

    Args:
        name: any non-empty string; every user of the name must give the same ``slots``.
        slots: how many may hold it at once (at least 1).
        timeout: seconds to wait; ``None`` waits as long as it takes.
        client: as for :func:`dask_lock`.

    Raises:
        LockTimeout: no slot within ``timeout``.
        ValueError: ``slots`` is not a whole number of at least 1, or differs from the
            ``slots`` the name was first used with (Dask's message says both).

    Example:
        >>> with dask_semaphore("gpu", slots=2):  # doctest: +SKIP
        ...     pass  # two tasks of the cluster at a time here
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a lock name must be a non-empty string, got {name!r}")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots={slots!r} must be a whole number of at least 1")
    kwargs: dict[str, Any] = {}
    if client is not None:
        kwargs = {"scheduler_rpc": client.scheduler, "loop": client.loop}
    sem = distributed.Semaphore(max_leases=slots, name=PREFIX + name, **kwargs)
    if not sem.acquire(timeout=timeout):
        raise LockTimeout(name, timeout or 0.0, _HOLDER)
    try:
        yield
    finally:
        sem.release()
