"""Hand-made run records with known numbers, and a small JSON Schema checker."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_ploop._engine._record import RunRecord, Sample, WorkerInfo

T0 = 100.0  # the runs start here on the monotonic clock; reports show times from 0


def make_record(
    workers: int,
    wall: float,
    tasks: Sequence[tuple[int, str, float, float, float, str]],
    samples: Sequence[tuple[float, str, int, float, int, int, int, int]] = (),
    restarts: dict[str, int] | None = None,
    not_run: int = 0,
    start_method: str = "fork",
) -> RunRecord:
    """A record of ``tasks`` ``(index, worker, start, end, cpu_s, outcome)`` and ``samples``
    ``(t, worker, pid, cpu_percent, rss, read, write, ctx)``, times from the run's start."""
    rec = RunRecord(workers, start_method, T0, T0 + wall)
    rec.cpus = 4
    for index, worker, start, end, cpu, outcome in tasks:
        failed = None if outcome == "passed" else {0: outcome}
        rec.tasks.add((index,), worker, T0 + start, array("d", (T0 + end,)), (cpu,), failed)
        info = rec.worker_info.setdefault(worker, WorkerInfo(worker))
        info.tasks += 1
        info.busy_s += end - start
    rec.samples = [
        Sample(T0 + t, w, pid, cpu, rss, read, write, ctx, 0)
        for t, w, pid, cpu, rss, read, write, ctx in samples
    ]
    for wid, n in (restarts or {}).items():
        rec.worker_info.setdefault(wid, WorkerInfo(wid)).restarts = n
    counts = Counter(t[5] for t in tasks)
    counts["not_run"] += not_run
    rec.counts = counts
    return rec


# Two workers over 10 s: w0 runs task 0 (0-4 s) and task 2 (4-6 s), w1 task 1 (1-9 s).
# serial 14 s, speedup 1.4, efficiency 0.7, longest task 8 s, busy 6 and 8 s.
KNOWN_TASKS = [
    (0, "w0", 0.0, 4.0, 3.0, "passed"),
    (1, "w1", 1.0, 9.0, 7.5, "passed"),
    (2, "w0", 4.0, 6.0, 0.5, "failed"),
]
# w0 had two processes (a restart): its I/O is the last reading of each, summed.
KNOWN_SAMPLES = [
    (2.0, "w0", 11, 50.0, 100, 10, 1, 5),
    (2.0, "w1", 21, 100.0, 200, 0, 0, 7),
    (5.0, "w0", 11, 70.0, 150, 30, 2, 9),
    (5.0, "w1", 21, 90.0, 300, 0, 4, 8),
    (8.0, "w0", 12, 0.0, 90, 5, 0, 1),
]


def known_record() -> RunRecord:
    """The two-worker run above."""
    return make_record(2, 10.0, KNOWN_TASKS, KNOWN_SAMPLES, restarts={"w0": 1})


def issue_record() -> RunRecord:
    """The run of issue 5's example line: 8 workers, 12.3 s wall, 80.1 s of tests, 1.2 GiB."""
    tasks = [(i, f"w{i}", 0.5, 10.5 + (0.1 if i == 0 else 0.0), 1.0, "passed") for i in range(8)]
    gib = 1 << 30
    rss = [round(1.2 * gib / 8)] * 8
    samples = [(1.0, f"w{i}", 1000 + i, 99.0, rss[i], 0, 0, 0) for i in range(8)]
    return make_record(8, 12.3, tasks, samples)


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the JSON Schema keywords the record schema uses:
    type, const, enum, required, properties, items, minimum)."""
    errors: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(value, _TYPES[k]) and not (k in ("integer", "number") and value is True)
            for k in kinds
        )
        if not ok or (kinds == ["integer"] and isinstance(value, bool)):
            return [f"{where}: {value!r} is not of type {kinds}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        errors.append(f"{where}: {value!r} < {schema['minimum']}")
    if isinstance(value, dict):
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors
