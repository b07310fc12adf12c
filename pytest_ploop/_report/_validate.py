"""Where a JSON value breaks a JSON Schema: the keywords the run record's schema uses (type,
const, enum, minimum, required, properties, items), so that a record read back is checked
against :data:`._json.JSON_SCHEMA` itself rather than a second description of the format.
"""

from __future__ import annotations

import json
import math
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}
_TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "null": "null"}  # fmt: skip
_LEAF_KEYWORDS = frozenset({"type", "enum", "minimum"})
_MISSING = object()  # a field an object does not have, in a column of a list's objects


def problem(value: Any, schema: dict[str, Any], where: str = "") -> str | None:
    """The first place where ``value`` breaks ``schema``, or ``None``. ``where`` names
    ``value`` in the message (empty: the record).

    Example::

        problem({"workers": "2"}, JSON_SCHEMA)  # 'workers is "2", not an integer'
    """
    name = where or "the record"
    kinds = _kinds(schema)
    if kinds and (isinstance(value, bool) or not isinstance(value, _types(kinds))):
        return f"{name} is {_shown(value)}, not {' or '.join(_TYPE_NAMES[k] for k in kinds)}"
    if isinstance(value, float) and not math.isfinite(value):
        # Python's json reads NaN and Infinity, which JSON has no numbers for (and which
        # made the HTML report fail on int(nan)).
        return f"{name} is {_shown(value)}, not a finite number"
    if "const" in schema and value != schema["const"]:
        return f"{name} is {_shown(value)}, not {_shown(schema['const'])}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{name} is {_shown(value)}, not one of {', '.join(map(_shown, schema['enum']))}"
    if "minimum" in schema and value < schema["minimum"]:
        return f"{name} is {_shown(value)}, below {schema['minimum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{name} has no {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found = problem(value[key], sub, f"{where}.{key}" if where else key)
                if found is not None:
                    return found
    if isinstance(value, list) and "items" in schema and not _columns_fine(value, schema["items"]):
        for i, item in enumerate(value):
            found = problem(item, schema["items"], f"{where}[{i}]")
            if found is not None:
                return found
    return None


def _columns_fine(items: list[Any], schema: dict[str, Any]) -> bool:
    """Whether ``items``, objects of plain fields (a record's tasks and samples), follow
    ``schema``, checked a whole field at a time: a long run's record has hundreds of
    thousands, and a call of :func:`problem` per field took seconds. ``False`` also when this
    cannot tell: :func:`problem` then looks at each item, and names the first bad one."""
    props = schema.get("properties")
    if _kinds(schema) != ["object"] or props is None or {type(i) for i in items} - {dict}:
        return False
    required = set(schema.get("required", ()))
    for key, sub in props.items():
        if set(sub) - _LEAF_KEYWORDS:
            return False
        column = [item.get(key, _MISSING) for item in items]
        if key not in required:
            column = [v for v in column if v is not _MISSING]
        # Exact types (a missing field's is none of them): a bool is no number here, as in
        # JSON, nor is anything json.loads does not make; problem() decides on those.
        allowed = set(_types(_kinds(sub))) or {str, int, float, type(None)}
        if {type(v) for v in column} - allowed:
            return False
        if float in allowed and not all(math.isfinite(v) for v in column if type(v) is float):
            return False
        if "enum" in sub and not set(column) <= set(sub["enum"]):
            return False
        numbers = [v for v in column if v is not None]
        if "minimum" in sub and min(numbers, default=sub["minimum"]) < sub["minimum"]:
            return False
    return True


def _kinds(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", [])
    return kinds if isinstance(kinds, list) else [kinds]


def _types(kinds: list[str]) -> tuple[type, ...]:
    return tuple(t for k in kinds for t in _TYPES[k])


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
