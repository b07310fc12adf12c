"""Durations files: exported by the shards of a CI matrix, merged, and written back into a
project's pytest cache so that the next run cuts balanced shards.

    shard job K   pytest --ploop-shard=K/N          -> .pytest_cache/v/ploop/durations-shards
                  python -m pytest_ploop durations export -o durations-K.json
    final job     python -m pytest_ploop durations merge durations-*.json --into .
                  (then keep .pytest_cache/v/ploop for the next run: a CI cache)

The cache holds two values: ``ploop/durations`` ({test id: seconds}, what ordering and
sharding read) and ``ploop/durations-recorded`` ({test id: Unix time of the measurement}).
An exported file holds both, per test (schema ``pytest-ploop/durations/1``)::

    {"schema": "pytest-ploop/durations/1",
     "tests": {"tests/test_a.py::test_one": {"seconds": 1.25, "recorded": 1716301234.5}}}

Merging keeps, per test id, the **newest** measurement (the larger ``recorded``). Why not
"the last file wins": a shard job starts from the cache of the previous run, so its export
also carries the other shards' tests, measured a run ago; only its own tests are fresh. A
measurement of unknown age (a plain ``{id: seconds}`` file, a cache written before the times
were kept) counts as older than any other; on a tie the later source wins.

Plain values only here (no pytest import): the command line and the plugin both use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "CACHE_KEY",
    "RECORDED_KEY",
    "SHARD_KEY",
    "SCHEMA",
    "Measurement",
    "cache_dir",
    "dumps",
    "merge",
    "measurement_of",
    "merge_files",
    "read_cache",
    "read_file",
    "write_cache",
]

CACHE_KEY = "ploop/durations"
RECORDED_KEY = "ploop/durations-recorded"
# What sharded runs measured, kept beside the durations their cut read (an exported file's
# form): the next shard run in the same checkout cuts as the earlier ones did.
SHARD_KEY = "ploop/durations-shards"
SCHEMA_NAME = "pytest-ploop/durations"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"

# The fix named by every "not a durations file" error.
_WANTED = (
    "give a file written by `python -m pytest_ploop durations export`, a JSON object "
    "{test id: seconds}, or a pytest cache folder"
)

# What pytest puts in a cache folder it creates, so that one made here is ignored by git and
# by backup tools the same way.
_GITIGNORE = "# Created by pytest automatically.\n*\n"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pytest.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/spec.html\n"
)


class Measurement(NamedTuple):
    """One test's duration (setup, call and teardown, in seconds) and when it was measured
    (Unix time; 0 when unknown)."""

    seconds: float
    recorded: float


def seconds_of(value: Any) -> float | None:
    """``value`` as a duration: a finite, non-negative number; ``None`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def cache_dir(path: Path) -> Path:
    """The pytest cache folder ``path`` names: ``path`` itself when it is one (named
    ``.pytest_cache``, or holding pytest's ``CACHEDIR.TAG``), else ``path/.pytest_cache``
    (a project's root)."""
    if path.name == ".pytest_cache" or (path / "CACHEDIR.TAG").is_file():
        return path
    return path / ".pytest_cache"


def _value_file(cache: Path, key: str) -> Path:
    return cache / "v" / key


def read_cache(cache: Path) -> dict[str, Measurement]:
    """The durations in the pytest cache folder ``cache``.

    Raises:
        ValueError: it holds no durations, or they are not a JSON object of numbers.
    """
    path = _value_file(cache, CACHE_KEY)
    sharded = _value_file(cache, SHARD_KEY)
    if not path.is_file() and not sharded.is_file():
        raise ValueError(
            f"{cache}: no durations in this pytest cache (no {CACHE_KEY}): run pytest there "
            "first, or name the project's root folder"
        )
    again = "run pytest there again to record the durations afresh"
    main: dict[str, Measurement] = {}
    if path.is_file():
        durations = _plain(_load_json(path, again), path)
        recorded_file = _value_file(cache, RECORDED_KEY)
        recorded: Any = _load_json(recorded_file, again) if recorded_file.is_file() else {}
        if not isinstance(recorded, dict):
            recorded = {}
        main = {
            test: Measurement(m.seconds, seconds_of(recorded.get(test)) or 0.0)
            for test, m in durations.items()
        }
    shards = _load_json(sharded, again) if sharded.is_file() else None
    if shards is not None and not (isinstance(shards, dict) and "schema" in shards):
        raise ValueError(f"{sharded}: a malformed durations file: {again}")
    return merge([main, _exported(shards, sharded) if shards else {}])


def read_file(path: Path) -> dict[str, Measurement]:
    """The durations in ``path``: an exported file, a plain ``{id: seconds}`` object, a pytest
    cache folder or a project's root folder (its ``.pytest_cache``).

    Raises:
        ValueError: naming ``path``: unreadable, not a durations file, or a newer schema.
    """
    if path.is_dir():
        return read_cache(cache_dir(path))
    data = _load_json(path, _WANTED)
    if isinstance(data, dict) and "schema" in data:
        return _exported(data, path)
    return _plain(data, path)


def _load_json(path: Path, fix: str) -> Any:
    """The JSON in ``path``; a ``ValueError`` naming ``path`` and ``fix`` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file: {fix}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read a durations file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:  # JSON is UTF-8 text
        raise ValueError(
            f"{path}: not a durations file (not UTF-8 text: byte {exc.object[exc.start]:#04x} at "
            f"position {exc.start}): {fix}"
        ) from None
    try:
        return json.loads(text)
    except ValueError as exc:  # a JSONDecodeError
        raise ValueError(f"{path}: not a durations file (not JSON: {exc}): {fix}") from None


def _plain(data: Any, path: Path) -> dict[str, Measurement]:
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: not a durations file (a JSON {type(data).__name__}, not an object of "
            f"test ids): {_WANTED}"
        )
    out = {}
    for test, value in data.items():
        seconds = seconds_of(value)
        if seconds is None:
            raise ValueError(
                f"{path}: not a durations file: {test!r} has {value!r}, not a number of seconds "
                "(finite, >= 0): correct or remove that entry"
            )
        out[str(test)] = Measurement(seconds, 0.0)
    return out


def _exported(data: dict[str, Any], path: Path) -> dict[str, Measurement]:
    schema = str(data["schema"])
    name, _, version = schema.rpartition("/")
    if name != SCHEMA_NAME or not version.isdigit():
        raise ValueError(
            f"{path}: not a durations file (schema {schema!r}, expected {SCHEMA!r}): {_WANTED}"
        )
    if int(version) > SCHEMA_VERSION:
        raise ValueError(
            f"{path}: durations of schema {schema!r}, newer than this pytest-ploop reads "
            f"({SCHEMA!r}): upgrade pytest-ploop"
        )
    tests = data.get("tests")
    if not isinstance(tests, dict):
        raise ValueError(f"{path}: a malformed durations file (no 'tests' object): export it again")
    out = {}
    for test, entry in tests.items():
        m = measurement_of(entry)
        if m is None:
            raise ValueError(
                f"{path}: a malformed durations file: {test!r} has {entry!r}, expected "
                '{"seconds": S, "recorded": UNIX_TIME} (finite numbers >= 0): export it again'
            )
        out[str(test)] = m
    return out


def measurement_of(entry: Any) -> Measurement | None:
    """An exported test's ``{"seconds": S, "recorded": UNIX_TIME}``, or ``None`` when it is
    not one (finite numbers >= 0)."""
    entry = entry if isinstance(entry, dict) else {}
    seconds, recorded = seconds_of(entry.get("seconds")), seconds_of(entry.get("recorded"))
    return None if seconds is None or recorded is None else Measurement(seconds, recorded)


def merge(sources: Iterable[Mapping[str, Measurement]]) -> dict[str, Measurement]:
    """One measurement per test: the newest; on a tie, the one of the later source."""
    merged: dict[str, Measurement] = {}
    for source in sources:
        for test, m in source.items():
            old = merged.get(test)
            if old is None or m.recorded >= old.recorded:
                merged[test] = m
    return merged


def merge_files(paths: Sequence[Path]) -> dict[str, float]:
    """The seconds of :func:`merge` over the files (or cache folders) at ``paths``.

    Raises:
        ValueError: naming the file that is not a durations file.
    """
    return {test: m.seconds for test, m in merge(read_file(p) for p in paths).items()}


def dumps(entries: Mapping[str, Measurement]) -> str:
    """``entries`` as an exported durations file (tests sorted, one a line)."""
    rows = [
        f"  {json.dumps(test)}: "
        + json.dumps({"seconds": round(m.seconds, 6), "recorded": round(m.recorded, 3)})
        for test, m in sorted(entries.items())
    ]
    body = "{\n" + ",\n".join(rows) + "\n }" if rows else "{}"
    return f'{{\n "schema": "{SCHEMA}",\n "tests": {body}\n}}\n'


def write_cache(cache: Path, entries: Mapping[str, Measurement]) -> list[Path]:
    """Replace the durations in the pytest cache folder ``cache`` with ``entries`` (the
    folder is made as pytest makes it when missing); return the files written."""
    if not cache.exists():
        cache.mkdir(parents=True)
        (cache / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
        (cache / "CACHEDIR.TAG").write_text(_CACHEDIR_TAG, encoding="utf-8")
    ordered = sorted(entries.items())
    values = {
        CACHE_KEY: {test: round(m.seconds, 6) for test, m in ordered},
        RECORDED_KEY: {test: round(m.recorded, 3) for test, m in ordered},
    }
    # What sharded runs measured is in ``entries`` now, or was older.
    _value_file(cache, SHARD_KEY).unlink(missing_ok=True)
    written = []
    for key, value in values.items():
        path = _value_file(cache, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # As pytest's cache.set writes a value (UTF-8 whatever the locale's encoding: pytest
        # reads it as UTF-8), so that pytest reads it back unchanged.
        text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
