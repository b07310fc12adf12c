"""The cases of a ``parametrize_parallel`` call: parsed, named and marked as
``pytest.mark.parametrize`` does it.

Pure functions on plain values; no pytest import (``pytest.param`` objects are recognised when
pytest made them, which means it is loaded).
"""

from __future__ import annotations

import enum
import os
import platform
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._engine._outcomes import bounded_repr

_LONG_STR = 100  # pytest's ids: longer strings get the name-and-index id
_NON_PRINTABLE = {i: f"\\x{i:02x}" for i in range(128) if i not in range(32, 127)}

__all__ = ["Case", "XFail", "make_ids", "parameter_set", "parse_names", "skip_reason", "xfail_of"]


@dataclass(frozen=True)
class XFail:
    """An ``xfail`` mark as it applies to one case."""

    reason: str
    run: bool = True
    strict: bool = False
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None

    def expects(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the expected failure (``raises=`` narrows it)."""
        return self.raises is None or isinstance(exc, self.raises)


@dataclass(frozen=True, eq=False)
class Case:
    """One case: its position, its id (as ``pytest.mark.parametrize`` would make it), its
    parameter values by name and the marks ``pytest.param`` gave it."""

    index: int
    id: str
    params: Mapping[str, Any]
    marks: tuple[Any, ...] = ()

    def describe(self) -> str:
        """``seed=3, path='a.txt'``: the parameters, each repr cut to a readable length."""
        return ", ".join(f"{k}={bounded_repr(v)}" for k, v in self.params.items())


def parse_names(argnames: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The names, and whether each value is one value (a string without a trailing comma
    naming one parameter: ``"x"``; ``"x,"`` and ``["x"]`` want a 1-tuple per case)."""
    if isinstance(argnames, str):
        names = tuple(n.strip() for n in argnames.split(",") if n.strip())
        force_tuple = len(names) == 1 and not argnames.rstrip().endswith(",")
    else:
        names, force_tuple = tuple(argnames), False
    if not names or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise ValueError(
            f"parametrize_parallel: argnames={argnames!r} must name parameters: a "
            "comma-separated string such as 'x, y' or a list of names"
        )
    if len(set(names)) != len(names):
        dup = [n for n, c in Counter(names).items() if c > 1]
        raise ValueError(f"parametrize_parallel: argnames={argnames!r} repeats {dup}")
    return names, force_tuple


def parameter_set(
    value: Any, names: tuple[str, ...], force_tuple: bool, where: str
) -> tuple[tuple[Any, ...], tuple[Any, ...], str | None]:
    """``(values, marks, id)`` of one case."""
    structures = sys.modules.get("_pytest.mark.structures")
    if structures is not None and isinstance(value, structures.ParameterSet):
        values, marks, given_id = tuple(value.values), tuple(value.marks), value.id
        marks = tuple(getattr(m, "mark", m) for m in marks)  # MarkDecorator -> Mark
    elif force_tuple:
        return (value,), (), None
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(
                f"parametrize_parallel: in {where}, with names {list(names)} each case needs "
                f"a sequence of values, got {type(value).__name__}: {bounded_repr(value)} "
                "(for one name, use the string 'x' or a one-element tuple per case)"
            ) from None
        marks, given_id = (), None
    if len(values) != len(names):
        raise ValueError(
            f"parametrize_parallel: in {where}, the number of names ({len(names)}): "
            f"{list(names)} must be equal to the number of values ({len(values)}): "
            f"{bounded_repr(values)}"
        )
    return values, marks, given_id if isinstance(given_id, str) else None


def make_ids(
    names: tuple[str, ...],
    sets: list[tuple[tuple[Any, ...], tuple[Any, ...], str | None]],
    ids: Any,
    where: str,
) -> list[str]:
    """Each case's id, made unique, by the rules of pytest's ``IdMaker`` (without the
    ``pytest_make_parametrize_id`` hook, which needs a config the decorator does not have)."""
    idfn = ids if callable(ids) else None
    given = None if ids is None or callable(ids) else list(ids)
    if given is not None and len(given) != len(sets):
        raise ValueError(
            f"parametrize_parallel: in {where}, {len(sets)} cases were given with {len(given)} ids"
        )
    out = []
    for idx, (values, _, param_id) in enumerate(sets):
        if param_id is not None:
            out.append(_escaped(param_id))
        elif given is not None and given[idx] is not None:
            made = _id_from_value(given[idx])
            if made is None:
                raise ValueError(
                    f"parametrize_parallel: in {where}, ids contains an unsupported value "
                    f"{bounded_repr(given[idx])} at index {idx} (use str, numbers, enums, or "
                    "anything with a __name__)"
                )
            out.append(made)
        else:
            parts = (_id(v, n, idx, idfn, where) for v, n in zip(values, names, strict=True))
            out.append("-".join(parts))
    return _unique(out)


def _id(value: Any, name: str, idx: int, idfn: Callable[[Any], object] | None, where: str) -> str:
    if idfn is not None:
        try:
            made = idfn(value)
        except Exception as exc:  # as pytest words it, with where it happened
            raise ValueError(
                f"parametrize_parallel: {where}: error raised while trying to determine id of "
                f"parameter {name!r} at position {idx} (the ids function raised "
                f"{type(exc).__name__}: {exc})"
            ) from exc
        if made is not None and (text := _id_from_value(made)) is not None:
            return text
    if isinstance(value, str | bytes) and len(value) > _LONG_STR:
        return f"{name}{idx}"
    return _id_from_value(value) or f"{name}{idx}"


def _id_from_value(value: Any) -> str | None:
    if isinstance(value, str | bytes):
        return _escaped(value)
    if value is None or isinstance(value, float | int | bool | complex):
        return str(value)
    if isinstance(value, re.Pattern):
        return _escaped(value.pattern)
    if isinstance(value, enum.Enum):
        return str(value)
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else None


def _escaped(value: str | bytes) -> str:
    """As pytest's ``ascii_escaped``: non-ASCII and unprintable characters escaped."""
    if isinstance(value, bytes):
        text = value.decode("ascii", "backslashreplace")
    else:
        text = value.encode("unicode_escape").decode("ascii")
    return text.translate(_NON_PRINTABLE)


def _unique(ids: list[str]) -> list[str]:
    counts = Counter(ids)
    if len(counts) == len(ids):
        return ids
    taken, suffixes = set(ids), Counter[str]()
    out = list(ids)
    for i, case_id in enumerate(ids):
        if counts[case_id] > 1:
            sep = "_" if case_id and case_id[-1].isdigit() else ""
            new = f"{case_id}{sep}{suffixes[case_id]}"
            while new in taken:
                suffixes[case_id] += 1
                new = f"{case_id}{sep}{suffixes[case_id]}"
            out[i] = new
            suffixes[case_id] += 1
    return out


# -- marks ---------------------------------------------------------------------------------


def skip_reason(case: Case, namespace: dict[str, Any]) -> str | None:
    """Why ``case`` is skipped by a ``skip`` or ``skipif`` mark, or ``None``."""
    for mark in case.marks:
        if mark.name == "skip":
            return str(
                mark.kwargs.get("reason", mark.args[0] if mark.args else "unconditional skip")
            )
        if mark.name == "skipif":
            hit = _conditions_hold(mark, namespace)
            if hit is not None:
                return hit
    return None


def xfail_of(case: Case, namespace: dict[str, Any], strict_default: bool) -> XFail | None:
    """The ``xfail`` mark that applies to ``case``, or ``None``."""
    for mark in case.marks:
        if mark.name != "xfail":
            continue
        reason = _conditions_hold(mark, namespace)
        if reason is None:
            continue
        return XFail(
            reason=reason,
            run=bool(mark.kwargs.get("run", True)),
            strict=bool(
                strict_default if mark.kwargs.get("strict") is None else mark.kwargs["strict"]
            ),
            raises=mark.kwargs.get("raises"),
        )
    return None


def _conditions_hold(mark: Any, namespace: dict[str, Any]) -> str | None:
    """The reason when the mark applies (a condition holds, or it has none), else ``None``.

    Conditions as pytest evaluates them: a string is evaluated with ``os``, ``sys``,
    ``platform`` and the test module's globals; anything else by its truth.
    """
    conditions = mark.args if "condition" not in mark.kwargs else (mark.kwargs["condition"],)
    given = mark.kwargs.get("reason")
    if not conditions:
        return str(given or "")
    for condition in conditions:
        if isinstance(condition, str):
            scope = {"os": os, "sys": sys, "platform": platform, **namespace}
            if eval(condition, scope):  # as pytest's skipif does with string conditions
                return str(given or f"condition: {condition}")
        elif condition:
            return str(given or "")
    return None
