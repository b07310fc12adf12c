"""The collected session frozen for a parallel run (``gc.freeze``), without hiding it from
code that asks the collector about objects.

Frozen objects are left out of ``gc.get_referrers`` and ``gc.get_objects``: code that relies on
them saw another world in a parallel run than in a serial one. Hypothesis, for one, checks with
``gc.get_referrers`` that a ``random.Random`` handed to ``register_random`` is referenced; trio
registers its module-level one when Hypothesis is first imported, and that warning (an error
under ``-W error``) broke jinja2's suite at the end of a parallel run. While the session is
frozen, a call of either function first gives the objects back to the collector
(``gc.unfreeze``, in the calling process only: a worker's freeze is its own), and then
answers as it would have.

The thaw happens in an audit hook (``sys.addaudithook``: both functions raise an audit event
before they look), not in a stand-in for them: a call of a Python function from a running
generator or coroutine lets the collector see that frame's variables (Python 3.11+), so a
stand-in made the caller a referrer of its own locals, which the built-in call does not
(anyio's suite checks for reference cycles that way). The hook stays for the life of the
process; past the thaw it costs one comparison per audited event.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

_EVENTS = frozenset({"gc.get_referrers", "gc.get_objects"})
_frozen = False  # this process froze the session and nothing has thawed it yet
_hooked = False  # the audit hook is in place (it cannot be taken out)


def freeze() -> None:
    """``gc.freeze()``, with ``gc.get_referrers`` and ``gc.get_objects`` thawing first."""
    global _frozen, _hooked
    gc.freeze()
    _frozen = True
    if not _hooked:
        sys.addaudithook(_thaw_before_looking)
        _hooked = True


def thaw() -> None:
    """Give every frozen object back to the collector."""
    global _frozen
    _frozen = False
    gc.unfreeze()


def _thaw_before_looking(event: str, args: tuple[Any, ...]) -> None:
    if _frozen and event in _EVENTS:
        thaw()
