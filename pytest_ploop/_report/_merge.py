"""One run record from the records of a suite's shards (``--ploop-shard=K/N``, one CI job
each), so that the whole suite renders, and compares, as one run.

    shard1.json  shard2.json ...           (each: tasks, workers w0.., times from its start)
         │           │
         └─ read_shards: same schema, same kind ─> merge ─> RunReport ─> terminal · JSON · MD · HTML

The shards ran at the same time on different machines, whose monotonic clocks have nothing in
common, so times are aligned at the starts: every shard's timeline starts at 0, as if the jobs
had started together (a job that waited for a runner shows no wait). Then:

- tasks are concatenated in the order the records are given, renumbered so that indices stay
  unique (shard 1's first); their labels (test ids) and outcomes are kept, and the counts of
  outcomes are the shards' summed (a shard's tests as pytest counted them);
- each shard's workers become lanes of their own: ``w0`` of the first record is
  ``shard1/w0`` (shards are numbered by their position on the command line, not by K);
- wall time is the longest shard's (the shards ran at once); the serial-equivalent time is
  the sum of every task's, so the speedup is the whole suite's over the slowest job; workers
  and CPUs are the sums, so efficiency is against every worker of every job;
- resource samples stay with their lanes; a tick's memory is summed over workers as in any
  run, and ticks of different machines almost never share a time, so the peak RSS is in
  effect the highest of one shard's.
"""

from __future__ import annotations

import dataclasses
import json
from array import array
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._engine._record import RunRecord, WorkerInfo
from .._errors import PloopError
from ._json import SCHEMA_NAME, from_dict
from ._run import Machine, RunReport

__all__ = ["merge", "read_shards", "shard_name"]

# The fix named by every "not a run record" error.
_WANTED = "give the records that the shards' `pytest --ploop-report=RUN.json` wrote"


def shard_name(position: int) -> str:
    """The lane prefix of the record at 0-based ``position``: ``"shard1"`` for the first."""
    return f"shard{position + 1}"


def read_shards(paths: Sequence[str | Path]) -> list[RunReport]:
    """The run records at ``paths``, checked to be shards of one suite.

    Raises:
        PloopError: naming the file: not readable, not a run record, a newer schema, a
            different schema version or a different kind (tests, loop) than the first.
    """
    reports: list[RunReport] = []
    first: tuple[Path, str, str] | None = None
    for given in paths:
        path = Path(given)
        data = _load(path)
        schema, kind = str(data.get("schema")), str(data.get("kind"))
        try:
            report = from_dict(data)
        except PloopError as exc:
            # A newer record's fix is an upgrade, not another file.
            fix = "" if schema.startswith(f"{SCHEMA_NAME}/") else f": {_WANTED}"
            raise PloopError(f"{path}: {exc}{fix}") from None
        if first is None:
            first = (path, schema, kind)
        elif schema != first[1]:
            raise PloopError(
                f"{path}: schema {schema!r} differs from {first[1]!r} of {first[0]}: merge "
                "records written by one pytest-ploop version (render the older one again "
                "with `python -m pytest_ploop report OLD.json --json NEW.json`)"
            )
        elif kind != first[2]:
            raise PloopError(
                f"{path}: a record of a {kind} run, and {first[0]} of a {first[2]} run: "
                "merge the shards of one suite"
            )
        reports.append(report)
    return reports


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PloopError(f"cannot read the run record {str(path)!r}: {exc}: {_WANTED}") from exc
    if not isinstance(data, dict):
        raise PloopError(
            f"{path}: not a pytest-ploop run record (a JSON {type(data).__name__}): {_WANTED}"
        )
    return data


def merge(reports: Sequence[RunReport], title: str | None = None) -> RunReport:
    """One report of the shards' ``reports`` (see the module docstring for the rules).

    Raises:
        ValueError: no reports, or reports of different kinds.

    Example::

        merged = merge(read_shards(["shard1.json", "shard2.json"]))
        write_reports(merged, ["all.html"])
    """
    if not reports:
        raise ValueError("merge needs at least one run record")
    kinds = {r.kind for r in reports}
    if len(kinds) > 1:
        raise ValueError(f"cannot merge records of different kinds: {sorted(kinds)}")
    walls = [_wall(r.record) for r in reports]
    record = RunRecord(
        sum(r.record.workers for r in reports),
        _joined(r.record.start_method for r in reports),
        0.0,
        max(walls),
    )
    record.cpus = sum(r.record.cpus for r in reports)
    labels: dict[int, str] = {}
    shown: dict[int, str] = {}
    counts: Counter[str] = Counter()
    offset = 0
    for position, report in enumerate(reports):
        offset += _add_shard(record, report, shard_name(position), offset, labels, shown)
        counts.update(report.stats().counts)
    return RunReport(
        record,
        labels,
        reports[0].kind,
        title or f"{_joined(r.title for r in reports)} ({len(reports)} shards merged)",
        min(r.created for r in reports),
        _machine(reports, record.cpus),
        shown or None,
        dict(counts),
    )


def _add_shard(
    record: RunRecord,
    report: RunReport,
    name: str,
    offset: int,
    labels: dict[int, str],
    shown: dict[int, str],
) -> int:
    """Append one shard's tasks, samples, workers and counts to ``record``, its task indices
    moved up by ``offset``; return how many indices it used."""
    rec = report.record
    t0 = rec.started
    outcomes = report.outcomes or {}
    span = 0
    for row in rec.tasks:
        index = offset + row.index
        failed = None if row.outcome == "passed" else {0: row.outcome}
        ends = array("d", (row.end - t0,))
        record.tasks.add(
            (index,), f"{name}/{row.worker}", row.start - t0, ends, (row.cpu_s,), failed
        )
        labels[index] = report.label(row.index)
        if row.index in outcomes:
            shown[index] = outcomes[row.index]
        span = max(span, row.index + 1)
    record.samples += [
        dataclasses.replace(s, t=s.t - t0, worker=f"{name}/{s.worker}") for s in rec.samples
    ]
    for wid, info in rec.worker_info.items():
        record.worker_info[f"{name}/{wid}"] = WorkerInfo(
            f"{name}/{wid}", list(info.pids), info.restarts, info.tasks, info.busy_s
        )
    record.counts.update(rec.counts)
    return span


def _wall(record: RunRecord) -> float:
    """A shard's wall time (a record that never ended: until its last task's end)."""
    wall = record.wall_s
    if wall == wall:  # not nan
        return wall
    return max((end - record.started for end in record.tasks.end), default=0.0)


def _joined(values: Any) -> str:
    """The distinct ``values``, in order of appearance, joined by ``", "``."""
    return ", ".join(dict.fromkeys(str(v) for v in values))


def _machine(reports: Sequence[RunReport], cpus: int) -> Machine:
    machines = [r.machine for r in reports if r.machine is not None]
    memory = [m.memory_bytes for m in machines]
    return Machine(
        cpus,
        None if None in memory or not memory else sum(m for m in memory if m is not None),
        _joined(m.platform for m in machines),
        _joined(m.python for m in machines),
    )
