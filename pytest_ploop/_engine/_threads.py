"""Capping the thread pools of numeric libraries (BLAS, OpenMP) in the workers.

N workers that each start a thread per core for BLAS oversubscribe the machine, so a worker
caps them: by environment for libraries loaded later, and with threadpoolctl for those it
inherited already loaded. Standard library only at import: threadpoolctl and ctypes are
imported when a numeric library is loaded.

OpenBLAS (pthreads) needs care. It stops its pool before a fork (its at-fork handler) and
starts it again at the next BLAS call, but ``openblas_set_num_threads`` starts it at once: in
every new worker that made a thread that spun for about 0.1 s of CPU before it slept, whether
the worker's tasks used BLAS or not (on 2 CPUs, 40 ms of a 25 ms loop). So:

- where OpenBLAS exports its pool's variables (up to 0.3.31 in numpy's wheels), the worker
  lowers the counts the pool will start from, without starting it (:func:`_cap_at_rest`);
- where it hides them (0.3.34 in numpy 2.5's wheels), the main process sets the cap on its
  own copy before it forks (:func:`prepare`), the workers inherit it, and the main process
  sets its own count back when its workers are closed (:func:`restore`). A worker that finds
  the cap already in place leaves the library alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_NUMERIC = ("numpy", "scipy", "torch", "sklearn")
_POOL_VARIABLES = ("blas_server_avail", "blas_num_threads", "blas_cpu_number")

# threadpoolctl's view of the numeric libraries loaded in the main process, taken there
# before forking (see prepare), with the modules it was taken for.
_CONTROLLER: tuple[frozenset[str], Any] | None = None
# Libraries capped in this (the main) process for its forks: path -> (controller, count before).
_CAPPED_HERE: dict[str, tuple[Any, int]] = {}


def _loaded_numeric() -> frozenset[str]:
    return frozenset(m for m in _NUMERIC if m in sys.modules)


def prepare(n: int) -> bool:
    """In the main process, before forking workers capped at ``n`` threads: scan the loaded
    numeric libraries once (each worker importing threadpoolctl and scanning took tens of
    milliseconds of its start), and cap here each OpenBLAS whose pool the workers could not
    cap at rest. Returns whether it capped one (then :func:`restore` sets it back)."""
    global _CONTROLLER
    loaded = _loaded_numeric()
    if not loaded:
        return False
    capped = False
    with contextlib.suppress(Exception):
        if _CONTROLLER is None or _CONTROLLER[0] != loaded:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = (loaded, ThreadpoolController())
        for lib in _CONTROLLER[1].lib_controllers:
            if _pthreads_openblas(lib) and _pool_variables(lib) is None:
                before = lib.num_threads
                if before > n:
                    lib.set_num_threads(n)
                    _CAPPED_HERE.setdefault(lib.filepath, (lib, before))
                capped = capped or lib.filepath in _CAPPED_HERE
    return capped


def restore() -> None:
    """In the main process: give the libraries :func:`prepare` capped their counts back."""
    while _CAPPED_HERE:
        _, (lib, before) = _CAPPED_HERE.popitem()
        with contextlib.suppress(Exception):
            lib.set_num_threads(before)


def cap(n: int) -> None:
    """In a worker: cap the numeric libraries at ``n`` threads (see the module docstring).

    A cap only lowers: a smaller count the environment sets already (``OMP_NUM_THREADS=1``
    for the whole run), or a library runs with already, stays."""
    for var in THREAD_VARS:
        if not 1 <= _count(os.environ.get(var)) <= n:
            os.environ[var] = str(n)
    loaded = _loaded_numeric()
    if not loaded:
        return
    with contextlib.suppress(Exception):
        if _CONTROLLER is not None and _CONTROLLER[0] == loaded:
            controller = _CONTROLLER[1]  # scanned before the fork
        else:
            from threadpoolctl import ThreadpoolController

            controller = ThreadpoolController()
        for lib in controller.lib_controllers:
            if lib.num_threads <= n:
                # Within the cap already: capped in the main process before the fork (an
                # OpenBLAS whose pool must not start), or by the user, lower.
                continue
            if not _cap_at_rest(lib, n):
                lib.set_num_threads(n)


def _count(text: str | None) -> int:
    """A thread-count variable's value, 0 when unset or not a whole number."""
    try:
        return int(text or "")
    except ValueError:
        return 0


def _pthreads_openblas(lib: Any) -> bool:
    return (
        getattr(lib, "internal_api", "") == "openblas"
        and getattr(lib, "threading_layer", "") == "pthreads"
    )


def _pool_variables(lib: Any) -> tuple[Any, Any, Any] | None:
    """OpenBLAS's pool variables (running, threads, threads in use), if it exports them."""
    import ctypes

    try:
        dll = lib.dynlib
        avail, threads, cpus = (ctypes.c_int.in_dll(dll, name) for name in _POOL_VARIABLES)
    except (AttributeError, ValueError, OSError):
        return None
    return avail, threads, cpus


def _cap_at_rest(lib: Any, n: int) -> bool:
    """Cap a pthreads OpenBLAS whose pool is at rest by lowering the counts it will start
    from: the same cap, at no cost. Returns whether it applied; elsewhere (another library,
    OpenMP threading, a running pool, variables not exported) threadpoolctl sets the limit."""
    if not _pthreads_openblas(lib):
        return False
    pool = _pool_variables(lib)
    if pool is None:
        return False
    avail, threads, cpus = pool
    if avail.value != 0 or not 1 <= n <= threads.value:
        return False  # running, or more threads than it had: its own API sets it
    threads.value = cpus.value = n
    return True
