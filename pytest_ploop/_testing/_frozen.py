"""The collected session frozen for a parallel run (``gc.freeze``), without hiding it from
code that asks the collector about objects.

Frozen objects are left out of ``gc.get_referrers`` and ``gc.get_objects``: code that relies on
them saw another world in a parallel run than in a serial one. Hypothesis, for one, checks with
``gc.get_referrers`` that a ``random.Random`` handed to ``register_random`` is referenced; trio
registers its module-level one when Hypothesis is first imported, and that warning (an error
under ``-W error``) broke jinja2's suite at the end of a parallel run. While the session is
frozen, both functions give the objects back to the collector first (``gc.unfreeze``, in the
calling process only: a worker's freeze is its own) and then answer as they would have.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any

# gc's own functions while ours stand in for them: name -> the original.
_ORIGINALS: dict[str, Callable[..., Any]] = {}
_INTROSPECTION = ("get_referrers", "get_objects")


def freeze() -> None:
    """``gc.freeze()``, with ``gc.get_referrers`` and ``gc.get_objects`` thawing first."""
    gc.freeze()
    if _ORIGINALS:
        return
    for name in _INTROSPECTION:
        original = getattr(gc, name)
        _ORIGINALS[name] = original
        setattr(gc, name, _thawing_first(original))


def thaw() -> None:
    """Give every frozen object back to the collector and put gc's functions back."""
    gc.unfreeze()
    for name, original in _ORIGINALS.items():
        setattr(gc, name, original)
    _ORIGINALS.clear()


def _thawing_first(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        thaw()
        return original(*args, **kwargs)

    return call
