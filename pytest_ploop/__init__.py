"""pytest-ploop: run tests and loops in worker processes, and measure what it bought you.

The loop API::

    import pytest_ploop as ploop

    results = ploop.map(fn, items, workers=4)
    with ploop.Pool(workers=4) as pool:
        total = pool.map_reduce(fn, items, reduce=operator.add, initial=0)
        record = pool.last_run

The pytest plugin: ``pytest --ploop-workers=auto``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _lazy
from ._errors import (
    LockTimeout,
    LoopError,
    PloopError,
    RemoteException,
    RemoteTraceback,
    TaskFailure,
    TaskNotRun,
    TaskTimeout,
    WorkerCrashed,
)

if TYPE_CHECKING:
    from ._engine._cpus import available_cpus
    from ._engine._record import RunRecord, TaskRow
    from ._loop import Pool, map
    from ._parametrize import parametrize_parallel
    from ._sync import lock, once, run_once, semaphore

__version__ = "0.1.0.dev0"

__all__ = [
    "LockTimeout",
    "LoopError",
    "PloopError",
    "Pool",
    "RemoteException",
    "RemoteTraceback",
    "RunRecord",
    "TaskFailure",
    "TaskNotRun",
    "TaskRow",
    "TaskTimeout",
    "WorkerCrashed",
    "available_cpus",
    "lock",
    "map",
    "once",
    "parametrize_parallel",
    "run_once",
    "semaphore",
]

# Each public name is imported on first use (PEP 562): the pytest plugin lives in this
# package, so every pytest run where it is installed imports this module, and most of them
# never touch the loop API, the engine or filelock.
_SOURCES = {
    "available_cpus": "_engine._cpus",
    "RunRecord": "_engine._record",
    "TaskRow": "_engine._record",
    "Pool": "_loop",
    "map": "_loop",
    "parametrize_parallel": "_parametrize",
    "lock": "_sync",
    "once": "_sync",
    "run_once": "_sync",
    "semaphore": "_sync",
}


__getattr__ = _lazy.attributes(__name__, _SOURCES)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SOURCES])
