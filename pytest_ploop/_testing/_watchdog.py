"""pytest's ``faulthandler_timeout`` watchdog, paused while a test's process forks workers.

pytest's faulthandler plugin arms a watchdog thread around each test (its setup, call and
teardown) when ``faulthandler_timeout`` is set. A fork next to that thread makes Python 3.12+
warn that the process is multi-threaded, and the child could hang on a lock the thread held.
So while ``ploop.map``, a ``Pool``, a ``parametrize_parallel`` test or a ``--ploop-workers``
worker's test forks workers, the watchdog is cancelled (:func:`pause`, a hook of
``_engine._forking.BEFORE_FORK``) and armed again, with the whole timeout, when the run ends
(or the ``Pool``'s workers close), if the same test is still running. The workers have their
own ``timeout``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .._engine import _forking


@dataclass
class _Armed:
    """The watchdog of the test running now, as pytest armed it."""

    timeout: float
    exit: bool
    fd: int | None  # pytest's own stream for the dump; None: not found (not re-armed)
    paused: bool = False


_armed: _Armed | None = None


def timeout_of(config: pytest.Config) -> float:
    """``faulthandler_timeout`` in seconds; 0 when unset or pytest's faulthandler plugin is
    disabled (``-p no:faulthandler``: the setting is then unknown)."""
    try:
        return float(config.getini("faulthandler_timeout") or 0)
    except (ValueError, TypeError):
        return 0.0


def install(config: pytest.Config) -> None:
    """Follow each test's watchdog and pause it for forks, if ``config`` arms one."""
    if timeout_of(config) <= 0 or config.pluginmanager.has_plugin("ploop-watchdog"):
        return
    config.pluginmanager.register(_Follower(), "ploop-watchdog")
    _forking.BEFORE_FORK.append(pause)
    config.add_cleanup(lambda: _forking.BEFORE_FORK.remove(pause))


class _Follower:
    """Knows, around each test, whether pytest armed its watchdog (the faulthandler plugin's
    own wrapper is the innermost one: it arms the watchdog inside this one). How pytest arms
    it is the same for every test of a session: read at the first."""

    def __init__(self) -> None:
        self.arming: tuple[float, bool, int | None] | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        global _armed
        if self.arming is None:
            self.arming = _arming(item.config)
        outer, _armed = _armed, _Armed(*self.arming)
        try:
            return (yield)
        finally:
            _armed = outer


def _arming(config: pytest.Config) -> tuple[float, bool, int | None]:
    """The timeout, whether to exit on it, and pytest's stream for the dump (``None``: not
    found, and then not armed again after a pause)."""
    exit_ = False
    with contextlib.suppress(ValueError):  # pytest before 9 has no such setting
        exit_ = bool(config.getini("faulthandler_exit_on_timeout"))
    fd: int | None = None
    with contextlib.suppress(ImportError, KeyError):
        from _pytest.faulthandler import fault_handler_stderr_fd_key  # no public name

        fd = config.stash[fault_handler_stderr_fd_key]
    return timeout_of(config), exit_, fd


def pause() -> Callable[[], None] | None:
    """Cancel the running test's watchdog and wait until its thread has ended; return what
    arms it again, or ``None`` when no watchdog is armed (or it is paused already)."""
    armed = _armed
    if armed is None or armed.paused:
        return None
    before = _os_threads()
    faulthandler.cancel_dump_traceback_later()
    _wait_for_watchdog_exit(before)
    armed.paused = True

    def resume() -> None:
        if not armed.paused:
            return
        armed.paused = False
        if _armed is armed and armed.fd is not None:
            faulthandler.dump_traceback_later(armed.timeout, file=armed.fd, exit=armed.exit)

    return resume


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The watchdog paused for the block (for runs that may not fork: Dask's)."""
    resume = pause()
    try:
        yield
    finally:
        if resume is not None:
            resume()


def _os_threads() -> set[str]:
    """This process's threads, as the kernel counts them (empty where there is no /proc)."""
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def _wait_for_watchdog_exit(before: set[str], wait_s: float = 0.2) -> None:
    """Wait until the cancelled watchdog thread has ended: until the threads left are the
    Python threads (the watchdog is not one), or, where other native threads live on (a BLAS
    pool), until some thread of ``before`` has gone and the rest stayed for 2 ms.

    ``cancel_dump_traceback_later()`` returns once the watchdog thread has said it stops, a
    moment before that thread has ended: right after it, the thread was still there in 280 of
    2,000 tries here, and a fork in that moment made Python 3.12 warn all the same. A watchdog
    cancelled just before (the previous test's) may still be ending too. Thread exits cannot
    be waited on otherwise than by looking.
    """
    if len(before) < 2:
        return  # this thread alone: no watchdog was running
    deadline = time.monotonic() + wait_s
    last, since = before, time.monotonic()
    while time.monotonic() < deadline:
        now = _os_threads()
        if len(now) <= max(1, threading.active_count()):
            return
        if now != last:
            last, since = now, time.monotonic()
        elif not before <= now and time.monotonic() - since >= 0.002:
            return
        time.sleep(0.0002)
