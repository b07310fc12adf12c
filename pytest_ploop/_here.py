"""What the pytest plugin asks at every pytest start, without importing the engine.

The plugin is loaded by every pytest run in an environment where pytest-ploop is installed
(and by every pytest-xdist worker there): its modules import the engine, psutil, filelock and
the loop API only once a run uses them.
"""

from __future__ import annotations

import sys

_WORKER_MODULE = "pytest_ploop._engine._worker"


def in_worker() -> bool:
    """Whether this process is a ploop worker (see ``_engine._worker.in_worker``). A worker
    runs ``_engine._worker.main``, so a process where that module was never imported is not
    one, and the check costs no import."""
    worker = sys.modules.get(_WORKER_MODULE)
    return worker is not None and bool(worker.in_worker())
