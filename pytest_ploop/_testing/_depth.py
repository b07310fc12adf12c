"""A worker's tests get the stack a serial run's tests get.

A worker is forked deep in the main process's run loop, and its frames stay below the tests
it runs: a test in a worker starts some twenty frames deeper than in a serial run, so that
recursion fails that much sooner ("maximum recursion depth exceeded"), and code that
measures its depth against ``sys.getrecursionlimit()`` sees less room. The worker gives those
frames back: it raises the interpreter's limit by their number and shows the tests the limit
a serial run shows. ``sys.getrecursionlimit()`` and ``sys.setrecursionlimit(n)`` keep their
serial values and meaning; only the frames below the tests are not counted.
"""

from __future__ import annotations

import sys

_given = 0  # frames given back in this process


def room() -> int:
    """How many calls deeper than its caller this thread can go before ``RecursionError``.

    Measured, not counted from the frames: the interpreter also counts calls that go through
    C (an instance called, a class made) against the limit (Python 3.11)."""

    def down(depth: int) -> int:
        try:
            return down(depth + 1)
        except RecursionError:
            return depth

    return down(0)


def give_back(frames: int) -> None:
    """Let this process recurse ``frames`` deeper, with the limit it reads unchanged (once
    per process)."""
    global _given
    if frames <= 0 or _given:
        return
    _given = frames
    real_get, real_set = sys.getrecursionlimit, sys.setrecursionlimit
    real_set(real_get() + frames)

    def getrecursionlimit() -> int:
        return real_get() - _given

    def setrecursionlimit(limit: int, /) -> None:
        # An invalid limit gets the interpreter's own error for that limit.
        real_set(limit + _given if isinstance(limit, int) and limit >= 1 else limit)

    getrecursionlimit.__doc__ = real_get.__doc__
    setrecursionlimit.__doc__ = real_set.__doc__
    sys.getrecursionlimit = getrecursionlimit
    sys.setrecursionlimit = setrecursionlimit
