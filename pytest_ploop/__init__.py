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

from ._engine._cpus import available_cpus
from ._engine._record import RunRecord, TaskRow
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
