"""The run record as a versioned JSON document, and back.

Schema ``pytest-ploop/run/1`` (the whole of it is :data:`JSON_SCHEMA`, a JSON Schema;
``python -m pytest_ploop schema`` prints it). Times are seconds; ``start``, ``end`` and ``t``
are relative to the run's start. Figures the schema calls *derived* are written for readers
of the file (jq, dashboards); reading a file recomputes them from ``tasks`` and ``samples``,
and refuses a file that does not follow the schema (a field of the wrong type), naming the
field.

Top level:
    ``schema`` (``"pytest-ploop/run/1"``), ``kind`` (``"pytest"`` or ``"loop"``), ``title``,
    ``created`` (ISO 8601), ``machine`` {``cpus``, ``memory_bytes``, ``platform``,
    ``python``}, ``workers``, ``start_method``, ``wall_s``, ``counts`` {outcome: tests of
    a pytest run, as pytest counted them; tasks of a loop};
    derived: ``serial_s``, ``cpu_s``, ``speedup``, ``efficiency``, ``critical_path_s``,
    ``load_imbalance``, ``overhead_s``, ``serial_fraction``, ``peak_rss``, ``amdahl``
    [{``workers``, ``estimate``, ``amdahl``, ``bound``}]; ``worker_info`` [{``id``, ``pids``,
    ``restarts``, ``tasks``, ``busy_s``}]; ``tasks`` [{``index``, ``label``, ``worker``,
    ``start``, ``end``, ``cpu_s``, ``outcome``}]; ``samples`` [{``t``, ``worker``, ``pid``,
    ``cpu_percent``, ``rss``, ``read_bytes``, ``write_bytes``, ``ctx_switches``,
    ``children``}].

A figure that does not exist (the speedup of a run with no wall time) is ``null``.
Compatibility: a reader accepts every ``pytest-ploop/run/N`` with ``N`` up to its own
version; a change that older readers could misread gets a new ``N``.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

from .._engine._record import OUTCOMES, RunRecord, Sample, WorkerInfo
from .._errors import PloopError
from ._run import KINDS, Machine, RunReport
from ._stats import BAD_OUTCOMES, SHOWN_OUTCOMES
from ._validate import problem

SCHEMA_NAME = "pytest-ploop/run"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
_DIGITS = 6  # microseconds: enough for a timeline, and half the size of full floats

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}


def _object(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(props) if required is None else required,
        "properties": props,
    }


JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pytest-ploop run record, version 1",
    **_object(
        {
            "schema": {"const": SCHEMA},
            "kind": {"enum": list(KINDS)},
            "title": _STR,
            "created": _STR,
            "machine": _object(
                {
                    "cpus": _INT,
                    "memory_bytes": {"type": ["integer", "null"]},
                    "platform": _STR,
                    "python": _STR,
                }
            ),
            "workers": _INT,
            "start_method": _STR,
            "wall_s": _NUM,
            "serial_s": _NUM,
            "cpu_s": _NUM,
            "speedup": _NUM_OR_NULL,
            "efficiency": _NUM_OR_NULL,
            "critical_path_s": _NUM,
            "load_imbalance": _NUM_OR_NULL,
            "overhead_s": _NUM,
            "serial_fraction": _NUM_OR_NULL,
            "peak_rss": {"type": ["integer", "null"]},
            "counts": _object({k: _INT for k in SHOWN_OUTCOMES}, required=list(OUTCOMES)),
            "amdahl": {
                "type": "array",
                "items": _object(
                    {
                        "workers": _INT,
                        "estimate": _NUM,
                        "amdahl": _NUM_OR_NULL,
                        "bound": _NUM,
                    }
                ),
            },
            "worker_info": {
                "type": "array",
                "items": _object(
                    {
                        "id": _STR,
                        "pids": {"type": "array", "items": _INT},
                        "restarts": _INT,
                        "tasks": _INT,
                        "busy_s": _NUM,
                    }
                ),
            },
            "tasks": {
                "type": "array",
                "items": _object(
                    {
                        "index": _INT,
                        "label": _STR,
                        "worker": _STR,
                        "start": _NUM,
                        "end": _NUM,
                        "cpu_s": _NUM,
                        "outcome": {"enum": list(SHOWN_OUTCOMES)},
                    }
                ),
            },
            "samples": {
                "type": "array",
                "items": _object(
                    {
                        "t": _NUM,
                        "worker": _STR,
                        "pid": _INT,
                        "cpu_percent": _NUM,
                        "rss": _INT,
                        "read_bytes": _INT,
                        "write_bytes": _INT,
                        "ctx_switches": _INT,
                        "children": _INT,
                    }
                ),
            },
        },
        required=[
            "schema",
            "kind",
            "title",
            "created",
            "machine",
            "workers",
            "start_method",
            "wall_s",
            "serial_s",
            "speedup",
            "efficiency",
            "counts",
            "worker_info",
            "tasks",
            "samples",
        ],
    ),
}


def _num(x: float) -> float | None:
    return round(x, _DIGITS) if math.isfinite(x) else None


def to_dict(report: RunReport) -> dict[str, Any]:
    """``report`` as a JSON-ready dictionary of schema :data:`SCHEMA`."""
    rec, st = report.record, report.stats()
    t0 = rec.started
    assert report.machine is not None
    return {
        "schema": SCHEMA,
        "kind": report.kind,
        "title": report.title,
        "created": report.created,
        "machine": report.machine.__dict__,
        "workers": rec.workers,
        "start_method": rec.start_method,
        "wall_s": _num(st.wall_s),
        "serial_s": _num(st.serial_s),
        "cpu_s": _num(st.cpu_s),
        "speedup": _num(st.speedup),
        "efficiency": _num(st.efficiency),
        "critical_path_s": _num(st.critical_path_s),
        "load_imbalance": _num(st.load_imbalance),
        "overhead_s": _num(st.overhead_s),
        "serial_fraction": _num(st.serial_fraction),
        "peak_rss": st.peak_rss,
        "counts": st.counts,
        "amdahl": [
            {
                "workers": p.workers,
                "estimate": _num(p.estimate),
                "amdahl": _num(p.amdahl),
                "bound": _num(p.bound),
            }
            for p in st.amdahl
        ],
        "worker_info": [
            {
                "id": w.id,
                "pids": list(w.pids),
                "restarts": w.restarts,
                "tasks": w.tasks,
                "busy_s": _num(w.busy_s),
            }
            for w in (rec.worker_info[k] for k in sorted(rec.worker_info))
        ],
        "tasks": _tasks(report),
        "samples": [
            {
                "t": _num(s.t - t0),
                "worker": s.worker,
                "pid": s.pid,
                "cpu_percent": _num(s.cpu_percent),
                "rss": s.rss,
                "read_bytes": s.read_bytes,
                "write_bytes": s.write_bytes,
                "ctx_switches": s.ctx_switches,
                "children": s.children,
            }
            for s in rec.samples
        ],
    }


def _tasks(report: RunReport) -> list[dict[str, Any]]:
    cols = report.columns()
    ids = report.record.tasks.worker_ids
    name = report.label
    return [
        {
            "index": index,
            "label": name(index),
            "worker": ids[worker],
            "start": round(start, _DIGITS),
            "end": round(end, _DIGITS),
            "cpu_s": round(cpu, _DIGITS),
            "outcome": SHOWN_OUTCOMES[outcome],
        }
        for index, worker, start, end, cpu, outcome in zip(
            cols.index.tolist(),
            cols.worker.tolist(),
            cols.start.tolist(),
            cols.end.tolist(),
            cols.cpu.tolist(),
            cols.outcome.tolist(),
            strict=True,
        )
    ]


def dumps(report: RunReport) -> str:
    """``report`` as JSON text (one task or sample a line, so that diffs stay readable)."""
    data = to_dict(report)
    rows = {key: data.pop(key) for key in ("tasks", "samples")}
    text = json.dumps(data, indent=1, allow_nan=False)[:-2]
    for key, items in rows.items():
        body = ",\n  ".join(json.dumps(item, allow_nan=False) for item in items)
        text += f',\n "{key}": [' + (f"\n  {body}\n ]" if items else "]")
    return text + "\n}\n"


def write(report: RunReport, path: str | Path) -> None:
    """Write ``report`` to ``path`` as JSON."""
    Path(path).write_text(dumps(report), encoding="utf-8")


def read(path: str | Path) -> RunReport:
    """Read a JSON report written by :func:`write` (any version up to :data:`SCHEMA`).

    Raises:
        PloopError: the file is not JSON, not a ploop run record, or of a newer version.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PloopError(f"cannot read the run record {str(path)!r}: {exc}") from exc
    try:
        return from_dict(data)
    except PloopError as exc:
        raise PloopError(f"{path}: {exc}") from None


# What reading checks a record against: the whole schema but its name and version, which
# from_dict checks first with messages of their own (and which may be an older version's).
_READ_SCHEMA = {
    **JSON_SCHEMA,
    "properties": {k: v for k, v in JSON_SCHEMA["properties"].items() if k != "schema"},
}
# The fix named by every "malformed" error: the record is read as the plugin wrote it.
_REWRITE = (
    "write the record again with `pytest --ploop-report=RUN.json`, or correct that field "
    "(`python -m pytest_ploop schema` prints the format)"
)


def from_dict(data: Any) -> RunReport:
    """The :class:`RunReport` of a dictionary of schema :data:`SCHEMA`.

    Raises:
        PloopError: it is not a ploop run record, of a newer version, or does not follow
            the schema (naming the first field that does not, and the fix).
    """
    schema = data.get("schema") if isinstance(data, dict) else None
    name, _, version = str(schema).rpartition("/")
    if name != SCHEMA_NAME or not version.isdigit():
        raise PloopError(f"not a pytest-ploop run record (schema {schema!r}, expected {SCHEMA!r})")
    if int(version) > SCHEMA_VERSION:
        raise PloopError(
            f"this run record has schema {schema!r}, newer than this pytest-ploop reads "
            f"({SCHEMA!r}): upgrade pytest-ploop"
        )
    found = problem(data, _READ_SCHEMA)
    if found is not None:
        raise PloopError(f"a malformed run record: {found}: {_REWRITE}")
    return _from_dict(data)


def _from_dict(data: dict[str, Any]) -> RunReport:
    """The report of ``data``, a record that follows the schema."""
    m = data["machine"]
    rec = RunRecord(data["workers"], data["start_method"], 0.0, float(data["wall_s"]))
    rec.cpus = m["cpus"]
    rec.counts = Counter({k: v for k, v in data["counts"].items() if v})
    labels: dict[int, str] = {}
    shown: dict[int, str] = {}  # outcomes the engine's table cannot hold (a skipped test)
    for t in data["tasks"]:
        i, outcome = t["index"], t["outcome"]
        if outcome not in OUTCOMES:
            shown[i] = outcome
            outcome = "failed" if outcome in BAD_OUTCOMES else "passed"
        failed = None if outcome == "passed" else {0: outcome}
        rec.tasks.add((i,), t["worker"], t["start"], array("d", (t["end"],)), (t["cpu_s"],), failed)
        labels[i] = t["label"]
    rec.samples = [
        Sample(
            s["t"],
            s["worker"],
            s["pid"],
            s["cpu_percent"],
            s["rss"],
            s["read_bytes"],
            s["write_bytes"],
            s["ctx_switches"],
            s["children"],
        )
        for s in data["samples"]
    ]
    for w in data["worker_info"]:
        rec.worker_info[w["id"]] = WorkerInfo(
            w["id"], list(w["pids"]), w["restarts"], w["tasks"], float(w["busy_s"])
        )
    machine = Machine(rec.cpus, m["memory_bytes"], m["platform"], m["python"])
    return RunReport(
        rec,
        labels,
        data["kind"],
        data["title"],
        data["created"],
        machine,
        shown or None,
        data["counts"],
    )
