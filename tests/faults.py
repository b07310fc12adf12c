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
    """Do what ``x[0]`` says: ok, raise, exit, os_exit, segfault, hang, kill."""
    how, value = x
    if how == "ok":
        return value
    if how == "raise":
        raise ValueError(f"failing on purpose: {value!r}")
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
