"""Hooks around forking workers, for code that keeps a thread of its own in the main process.

A thread alive at a fork is a hazard for the child (it may wait for ever on a lock that the
thread held) and makes Python 3.12+ warn that the process is multi-threaded. Code that can
pause its thread registers a hook in :data:`BEFORE_FORK`. Each hook is called before each
fork of a worker and returns what resumes the thread, or ``None`` when it paused nothing; the
workers' set calls what it got back when it closes, last paused first resumed. The plugin
pauses pytest's ``faulthandler_timeout`` watchdog this way (``_testing/_watchdog.py``).
"""

from __future__ import annotations

from collections.abc import Callable

BEFORE_FORK: list[Callable[[], Callable[[], None] | None]] = []
