"""Task functions that fail in every way the engine must handle: the one place for them.

Module-level, so they pickle by reference under ``spawn`` too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def identity(x: Any) -> Any:
    return x


def sleep_then(x: tuple[float, Any]) -> Any:
    seconds, value = x
    time.sleep(seconds)
    return value


def raise_value_error(x: Any) -> Any:
    raise ValueError(f"bad value {x!r}")


def fail_on(x: tuple[str, Any]) -> Any:
    """Do what ``x[0]`` says: ok, raise, stop, exit, os_exit, segfault, hang, kill."""
    how, value = x
    if how == "ok":
        return value
    if how == "raise":
        raise ValueError(f"failing on purpose: {value!r}")
    if how == "stop":  # as next() on an empty iterator does inside a task
        raise StopIteration(f"failing on purpose: {value!r}")
    if how == "exit":
        sys.exit(3)
    if how == "os_exit":
        os._exit(7)
    if how == "segfault":
        ctypes.string_at(0)
    if how == "hang":
        threading.Event().wait()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(f"unknown fault {how!r}")


class Unpicklable:
    """An object that refuses to be pickled."""

    def __reduce__(self) -> Any:
        raise TypeError("Unpicklable refuses to be pickled")


class FailsToUnpickle:
    """Pickles fine; raises when unpickled (in the other process)."""

    def __reduce__(self) -> Any:
        return (_explode, ())


def _explode() -> Any:
    raise RuntimeError("cannot be unpickled")


class BadInitError(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ wants two args)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(a)
        self.b = b


def raise_unpicklable_error(x: Any) -> Any:
    raise BadInitError("custom", "second")


def return_unpicklable(x: Any) -> Any:
    return Unpicklable()


def return_fails_to_unpickle(x: Any) -> Any:
    return FailsToUnpickle()


def start_grandchild_then(x: tuple[str, Any]) -> Any:
    """Start a long-lived child process (a grandchild of the main process), write its pid to
    the path ``x[0]``, then do ``fail_on(x[1])``."""
    import subprocess

    path, then = x
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(path, "w") as f:
        f.write(str(child.pid))
    return fail_on(then)


# -- the fault matrix: where a task fails, by how ----------------------------------------------
#
# A task of the matrix is ``run_case((where, how, value))``. Faults that happen before the task
# runs (pickling or unpickling its argument) travel in the argument itself.


class FailsWhenUnpickled:
    """Pickles fine; unpickling it does ``fail_on((how, ...))`` in the process that unpickles it
    (the worker, for an argument): raise, exit, os_exit, segfault, hang, kill."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> Any:
        return (fail_on, ((self.how, "unpickled"),))

    def __repr__(self) -> str:
        return f"FailsWhenUnpickled({self.how!r})"


class FailsWhenPickled:
    """Pickling it does ``fail_on((how, ...))`` in the process that pickles it (the worker, for
    a result)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> Any:
        fail_on((self.how, "pickled"))
        return (str, ("pickled",))  # pragma: no cover - every fault above raises or ends


class HoldsLockError(Exception):
    """An exception that cannot be pickled (it holds a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def run_case(x: tuple[str, str, Any]) -> Any:
    """One task of the fault matrix: ``(where, how, value)``.

    where: ``ok`` (return value), ``run`` (``fail_on((how, value))``), ``result`` (return an
    object whose pickling in the worker does ``how``), ``result_unpickle`` (return an object
    that cannot be unpickled in the main process), ``exception`` (raise an exception that
    cannot be unpickled), ``exception_pickle`` (raise one that cannot be pickled). Argument
    faults (``argument``, ``argument_pickle``) never get here: they fail on the way.
    """
    where, how, value = x
    if where == "ok":
        return value
    if where == "run":
        return fail_on((how, value))
    if where == "result":
        return FailsWhenPickled(how)
    if where == "result_unpickle":
        return FailsToUnpickle()
    if where == "exception":
        raise BadInitError("custom", "second")
    if where == "exception_pickle":
        raise HoldsLockError("holds a lock")
    raise AssertionError(f"unknown place {where!r}")


def mixed(x: tuple[str, Any]) -> Any:
    """For random mixes: ``ok``, ``raise``, ``crash`` (``os._exit``) or ``slow`` (sleeps a
    little as its workload, then returns the value)."""
    how, value = x
    if how == "slow":
        time.sleep(0.02)
        return value
    return fail_on(("os_exit" if how == "crash" else how, value))


def wait_for_path(path: str, timeout: float = 30.0) -> None:
    """Wait (bounded) until ``path`` exists: a task's way to wait for another task's event."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:g}s")
        time.sleep(0.005)


def touch(path: str) -> None:
    """Create ``path`` (atomically: another process never sees it half written)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)


def steps(x: list[tuple[Any, ...]]) -> Any:
    """Run a little script of steps, so that tasks in different workers can wait on each
    other's events: ``("touch", path)``, ``("wait", path)``, ``("sleep", seconds)`` (as a
    workload), ``("hang",)``, ``("raise", message)``, ``("exit", code)``,
    ``("return", value)``."""
    for step in x:
        match step:
            case ("touch", path):
                touch(path)
            case ("wait", path):
                wait_for_path(path)
            case ("sleep", seconds):
                time.sleep(seconds)
            case ("hang",):
                threading.Event().wait()
            case ("raise", message):
                raise ValueError(message)
            case ("exit", code):
                os._exit(code)
            case ("return", value):
                return value
            case _:
                raise AssertionError(f"unknown step {step!r}")
    return None
