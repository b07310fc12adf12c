"""``parametrize_parallel`` in pytest: one item whose body runs once per case in workers.

    item's process (fixtures set up)            forked workers (inherit item, fixtures, cases)
    run_item ── case indices ─────────────────> _ItemTask(index): own stdout/stderr files,
       │                                          own tmp_path sub-directory, the body,
       │                                          pytest's own repr_failure on an error
       │<──── CaseResult (or CaseFailed) ─────────┘ (a crash or a timeout: the engine says)
    one report: "7 of 500 cases failed", then each such case; timings to user_properties,
    the report's ``ploop_cases`` and the pytest cache (longest first next time)

``--ploop-case=ID`` instead runs the named cases one by one in the item's own process and lets
a failure propagate as pytest's own, so ``--pdb`` stops in the case.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from .. import _fanout
from .._backends import LoopRun
from .._case_spec import Case, XFail, skip_reason, xfail_of
from .._engine import _worker
from .._engine._outcomes import add_note
from .._errors import TaskFailure
from .._parametrize import Spec
from . import _watchdog
from ._cases_dask import backend_fields, for_backend
from ._cases_plugin import SELECTED_KEY, SUMMARY_KEY
from ._cases_report import (
    FAILING,
    ORDER,
    CaseResult,
    case_outcome,
    cases,
    crash_text,
    failure_report,
    read_output,
)
from ._logs import plugin_handler
from ._remote import save_coverage

CACHE_PREFIX = "ploop/cases/"

__all__ = ["SELECTED_KEY", "SUMMARY_KEY", "CaseFailed", "run_item"]


class CaseFailed(Exception):
    """Raised by a worker for a failing case so that the engine counts it (``fail_fast``);
    it carries the case's :class:`CaseResult` back."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(f"case {result.index} failed")
        self.result = result

    def __reduce__(self) -> Any:
        return (CaseFailed, (self.result,))


@dataclass
class _Call:
    """What every case gets: the item's fixture values, and where its tmp_path lives."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tmp_base: Path | None
    dirs: dict[int, str] = field(default_factory=dict)

    def for_case(self, case: Case) -> dict[str, Any]:
        kwargs = dict(self.kwargs, **case.params)
        if self.tmp_base is not None:
            path = self.tmp_base / self.dirs[case.index]
            path.mkdir(exist_ok=True)
            if "tmp_path" in kwargs:
                kwargs["tmp_path"] = path
            if "tmpdir" in kwargs:
                kwargs["tmpdir"] = type(kwargs["tmpdir"])(str(path))
        return kwargs


# -- in the worker -------------------------------------------------------------------------


class _Capture:
    """A case's stdout and stderr (at the file-descriptor level) and its log records, in
    files of its own: a crashed case's output and logs are still there for the item's
    process to read.

    Logs are captured as pytest's ``Captured log call`` section shows them: the records that
    reach the root logger (at the level pytest set on it for the test), formatted with the
    logging plugin's format. ``streams`` is off with ``-s``; ``logs`` is the logging plugin's
    handler for the report (``None`` when the plugin is disabled).
    """

    def __init__(self, directory: str, streams: bool, logs: logging.Handler | None) -> None:
        self.directory = directory
        self.streams = streams
        self.logs = logs
        self._pid = 0
        self._handler: logging.Handler | None = None

    def paths(self, index: int) -> tuple[str, str, str]:
        base = os.path.join(self.directory, str(index))
        return base + ".out", base + ".err", base + ".log"

    def start(self, index: int) -> None:
        out, err, log = self.paths(index)
        if self.streams:
            if self._pid != os.getpid():  # first case in this worker: own Python streams
                self._pid = os.getpid()
                sys.stdout = _text_stream(1)
                sys.stderr = _text_stream(2)
            for fd, path in ((1, out), (2, err)):
                new = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(new, fd)
                os.close(new)
        if self.logs is not None:
            _clear_pytest_log_handlers()
            handler = logging.FileHandler(log, mode="w", encoding="utf-8")
            handler.setFormatter(self.logs.formatter or logging.Formatter())
            handler.setLevel(self.logs.level)
            logging.getLogger().addHandler(handler)
            self._handler = handler

    def stop(self, index: int, keep: bool) -> tuple[str, str, str]:
        if self.streams:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        return self.read(index, keep)

    def read(self, index: int, keep: bool = True) -> tuple[str, str, str]:
        """What the case wrote (the end of it, when long; nothing unless ``keep``); the
        files are removed."""
        out = tuple(read_output(p) if keep else "" for p in self.paths(index))
        for path in self.paths(index):
            with contextlib.suppress(OSError):
                os.unlink(path)
        return out[0], out[1], out[2]


def _clear_pytest_log_handlers() -> None:
    """Empty the logging plugin's handlers inherited from the item's process: ``caplog``
    then holds the running case's records only, not those of the cases this worker ran
    before it (``clear`` keeps the list that ``caplog.get_records`` reads)."""
    for handler in logging.getLogger().handlers:
        clear = getattr(handler, "clear", None)
        if hasattr(handler, "records") and callable(clear):
            clear()


def _report_log_handler(config: pytest.Config) -> logging.Handler | None:
    """The handler whose text pytest shows as ``Captured log call`` (its format and level)."""
    return plugin_handler(config, "report_handler")


def _text_stream(fd: int) -> Any:
    # The process's own stream until it ends.
    return open(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)


class _ItemTask:
    """The engine task: ``task(case_index)`` runs one case in a worker."""

    def __init__(
        self,
        item: pytest.Function,
        spec: Spec,
        call: _Call,
        xfails: dict[int, XFail | None],
        capture: _Capture | None,
    ) -> None:
        self.item, self.spec, self.call = item, spec, call
        self.xfails, self.capture = xfails, capture

    def __call__(self, index: int) -> CaseResult:
        case = self.spec.cases[index]
        if self.capture is not None:
            self.capture.start(index)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # keeps the item's filters
            outcome, text = self._run(case)
        seconds = time.perf_counter() - start
        out = err = log = ""
        if self.capture is not None:
            out, err, log = self.capture.stop(index, keep=outcome in FAILING)
        seen = tuple(_warning(w) for w in caught)
        result = CaseResult(index, outcome, text, out, err, seconds, warnings=seen, log=log)
        if outcome in FAILING:
            raise CaseFailed(result)
        return result

    def _run(self, case: Case) -> tuple[str, str]:
        def run() -> object:
            return self.spec.fn(*self.call.args, **self.call.for_case(case))

        return case_outcome(run, self.xfails.get(case.index), self._longrepr)

    def _longrepr(self, exc: BaseException) -> str:
        """The failure as pytest shows a test's: its frames of the test only, assertions
        explained (the module was rewritten), ``--tb`` and ``-l`` honoured."""
        try:
            return str(self.item.repr_failure(pytest.ExceptionInfo.from_exception(exc)))
        except Exception:  # a repr that fails must not lose the failure
            import traceback

            return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _warning(message: warnings.WarningMessage) -> tuple[Any, str, str, int]:
    category: Any = message.category
    try:
        pickle.loads(pickle.dumps(category))
    except Exception:
        category = None
    return (category, str(message.message), message.filename, message.lineno)


# -- in the item's process -----------------------------------------------------------------


def run_item(item: pytest.Function, spec: Spec) -> None:
    """Run the cases of the decorated test ``item`` (its fixtures are set up); fail it with
    one report if any case did not pass."""
    __tracebackhide__ = True
    call = _call_of(item, spec)
    namespace = _namespace(item, spec)
    strict = _strict_xfail(item.config)
    selected = item.stash.get(SELECTED_KEY, None)
    if selected is not None:
        _run_serial(item, spec, [spec.cases[i] for i in selected], call, namespace, strict)
        return
    results: dict[int, CaseResult] = {}
    xfails: dict[int, XFail | None] = {}
    runnable: list[int] = []
    for case in spec.cases:
        reason = skip_reason(case, namespace)
        xfail = xfail_of(case, namespace, strict)
        if reason is not None:
            results[case.index] = CaseResult(case.index, "skipped", reason)
        elif xfail is not None and not xfail.run:
            results[case.index] = CaseResult(case.index, "xfailed", f"[NOTRUN] {xfail.reason}")
        else:
            runnable.append(case.index)
            xfails[case.index] = xfail
    # Without fork (no platform ploop supports) the cases run here, under pytest's capture.
    streams = item.config.getoption("capture", "fd") != "no"
    logs = _report_log_handler(item.config)
    capturing = (streams or logs is not None) and hasattr(os, "fork")
    directory = tempfile.mkdtemp(prefix="ploop-cases-") if capturing else None
    capture = _Capture(directory, streams, logs) if directory else None
    task = _ItemTask(item, spec, call, xfails, capture)
    plan = _plan(item, spec, runnable)
    try:
        with _watchdog.paused(), _coverage_saved_by_workers():
            task_run = _fanout.run(for_backend(task, plan), runnable, plan)
        results.update(_collect(task_run, runnable, directory))
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    _fanout.reraise_interrupt(task_run)
    summary = _summary(spec, results, task_run)
    _record(item, spec, results, summary)
    _warn_again(results)
    _conclude(item, spec, results)


@contextlib.contextmanager
def _coverage_saved_by_workers() -> Iterator[None]:
    """Have each worker forked meanwhile save what coverage (pytest-cov) measured in it, as
    ``--ploop-workers`` workers do: a worker leaves with ``os._exit``, which saves nothing,
    and the combine step at the session's end picks up the files."""
    _worker.AFTER_FORK.append(_save_coverage_at_exit)
    try:
        yield
    finally:
        _worker.AFTER_FORK.remove(_save_coverage_at_exit)


def _save_coverage_at_exit(config: _worker.WorkerConfig) -> None:
    _worker.BEFORE_EXIT.append(save_coverage)


def _call_of(item: pytest.Function, spec: Spec) -> _Call:
    bound = getattr(item.obj, "__self__", None)
    names = [n for n in spec.signature.parameters if n in item.funcargs]
    kwargs = {n: item.funcargs[n] for n in names}
    base: Path | None = None
    if "tmp_path" in kwargs:
        base = Path(str(kwargs["tmp_path"]))
    elif "tmpdir" in kwargs:
        base = Path(str(kwargs["tmpdir"]))
    return _Call((bound,) if bound is not None else (), kwargs, base, _case_dirs(spec.cases))


def _case_dirs(cases: Sequence[Case]) -> dict[int, str]:
    """A directory name per case, from its id (no dots: an id ``..`` stays inside)."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for case in cases:
        name = re.sub(r"[^\w=-]", "_", case.id)[:40] or f"case{case.index}"
        if name in used:
            name = f"{name}-{case.index}"
        used.add(name)
        names[case.index] = name
    return names


def _namespace(item: pytest.Function, spec: Spec) -> dict[str, Any]:
    """What a string condition of ``skipif``/``xfail`` sees, as in pytest."""
    namespace: dict[str, Any] = {"config": item.config}
    for extra in reversed(item.ihook.pytest_markeval_namespace(config=item.config)):
        namespace.update(extra)
    namespace.update(getattr(spec.fn, "__globals__", {}))
    return namespace


def _strict_xfail(config: pytest.Config) -> bool:
    for name in ("strict_xfail", "xfail_strict", "strict"):
        with contextlib.suppress(ValueError):
            value = config.getini(name)
            if value is not None:
                return bool(value)
    return False


def _plan(item: pytest.Function, spec: Spec, runnable: list[int]) -> _fanout.Plan:
    durations = _load_durations(item)
    order = None
    if spec.schedule in (None, "lpt") and durations and len(runnable) > 1:
        known = sorted(durations.values())
        default = known[len(known) // 2]
        costs = [durations.get(spec.cases[i].id, default) for i in runnable]
        order = sorted(range(len(runnable)), key=lambda p: -costs[p])
    schedule = spec.schedule if spec.schedule not in (None, "lpt") else "dynamic"
    return _fanout.Plan(
        spec.workers, spec.timeout, spec.fail_fast, schedule or "dynamic", order,
        **backend_fields(item, spec),
    )  # fmt: skip


def _cache_key(item: pytest.Item) -> str:
    return CACHE_PREFIX + hashlib.sha1(item.nodeid.encode()).hexdigest()[:20]


def _load_durations(item: pytest.Item) -> dict[str, float]:
    cache = getattr(item.config, "cache", None)
    if cache is None:
        return {}
    data = cache.get(_cache_key(item), {})
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def _collect(
    task_run: LoopRun, runnable: list[int], directory: str | None
) -> dict[int, CaseResult]:
    """Each run case's result, with the time and the worker the engine recorded."""
    results: dict[int, CaseResult] = {}
    for batch in task_run.outcomes.ready:
        for pos, (i, value) in enumerate(zip(batch.indices, batch.values, strict=True)):
            if pos not in batch.failed:
                results[runnable[i]] = value
    for i, failure in task_run.outcomes.failures.items():
        results[runnable[i]] = _from_failure(runnable[i], failure, directory)
    for row in task_run.record.tasks:
        index = runnable[row.index]
        if index in results:
            results[index] = replace(results[index], seconds=row.wall_s, worker=row.worker)
    return results


def _from_failure(index: int, failure: TaskFailure, directory: str | None) -> CaseResult:
    exc = failure.exception
    if isinstance(exc, CaseFailed):
        return exc.result
    if failure.kind == "not_run":
        reason = str(getattr(exc, "reason", exc)).replace("task", "case")
        return CaseResult(index, "not_run", reason)
    out = err = log = ""
    if directory is not None:
        out, err, log = _Capture(directory, True, None).read(index)
    if failure.kind in ("crashed", "timed_out"):
        text = crash_text(exc, failure.worker)
        return CaseResult(index, failure.kind, text, out, err, log=log)
    # The case ran but its result could not come back (pickling): the engine's traceback.
    return CaseResult(index, "failed", failure.traceback, out, err, log=log)


def _summary(spec: Spec, results: dict[int, CaseResult], task_run: LoopRun) -> dict[str, Any]:
    """The cases' timings: what ``report.ploop_cases`` holds and junitxml's properties say."""
    record = task_run.record
    ran = [r for r in results.values() if r.seconds > 0]
    serial = sum(r.seconds for r in ran)
    wall = record.wall_s if ran else 0.0
    counts = Counter(r.outcome for r in results.values())
    return {
        "cases": len(spec.cases),
        "workers": record.workers if ran else 0,
        "wall_s": round(wall, 6),
        # The sum of the per-case figures as written, so that the report adds up (rounding
        # the sum instead gave 0.000907 against the cases' 0.000906).
        "serial_s": round(sum(round(r.seconds, 6) for r in ran), 6),
        "speedup": round(serial / wall, 3) if wall > 0 else None,
        "counts": {k: counts[k] for k in ORDER if counts[k]},
        "per_case": [
            {
                "id": spec.cases[i].id,
                "outcome": results[i].outcome,
                "seconds": round(results[i].seconds, 6),
                "worker": results[i].worker,
            }
            for i in sorted(results)
        ],
    }


def _record(
    item: pytest.Function, spec: Spec, results: dict[int, CaseResult], summary: dict[str, Any]
) -> None:
    """Timings to the report (the plugin attaches ``ploop_cases``), to ``user_properties``
    (junitxml writes them) and to the pytest cache (longest first in the next run)."""
    item.stash[SUMMARY_KEY] = summary
    item.user_properties.extend(_user_properties(summary))
    for case in summary["per_case"]:
        data = {"outcome": case["outcome"], "seconds": case["seconds"], "worker": case["worker"]}
        item.user_properties.append((f"ploop_case[{case['id']}]", json.dumps(data)))
    cache = getattr(item.config, "cache", None)
    if cache is not None:
        known = _load_durations(item)
        known.update({c["id"]: c["seconds"] for c in summary["per_case"] if c["seconds"] > 0})
        cache.set(_cache_key(item), known)


def _user_properties(summary: dict[str, Any]) -> list[tuple[str, object]]:
    """The totals as ``--junitxml`` shows them, one property each: ``ploop_cases``,
    ``ploop_workers``, ``ploop_wall_s``, ``ploop_serial_s``, ``ploop_speedup`` (left out
    when no case ran) and ``ploop_counts`` (outcome -> cases, as JSON)."""
    props: list[tuple[str, object]] = [
        ("ploop_cases", summary["cases"]),
        ("ploop_workers", summary["workers"]),
        ("ploop_wall_s", summary["wall_s"]),
        ("ploop_serial_s", summary["serial_s"]),
    ]
    if summary["speedup"] is not None:
        props.append(("ploop_speedup", summary["speedup"]))
    props.append(("ploop_counts", json.dumps(summary["counts"])))
    return props


def _warn_again(results: dict[int, CaseResult]) -> None:
    """Warnings the cases raised, once each, in the item's process: pytest records them for
    the item and shows them in its warnings summary."""
    seen = {w for r in results.values() for w in r.warnings}
    for category, message, filename, lineno in sorted(seen, key=lambda w: (w[2], w[3], w[1])):
        category = category if isinstance(category, type) else UserWarning
        with contextlib.suppress(Exception):
            warnings.warn_explicit(category(message), category, filename, lineno)


def _conclude(item: pytest.Function, spec: Spec, results: dict[int, CaseResult]) -> None:
    __tracebackhide__ = True
    counts = Counter(r.outcome for r in results.values())
    bad = [results[i] for i in sorted(results) if results[i].outcome in FAILING]
    if bad:
        pytest.fail(failure_report(item, spec, results), pytrace=False)
    total = len(spec.cases)
    if counts["passed"] + counts["xpassed"] + counts["xfailed"] == 0 and total:
        reasons = "; ".join(sorted({r.text for r in results.values()}))
        _skip(f"{'all ' if total > 1 else ''}{cases(total)} skipped: {reasons}")
    if counts["passed"] + counts["xpassed"] == 0 and counts["xfailed"]:
        pytest.xfail(f"{counts['xfailed']} of {cases(total)} xfailed, none passed")


def _skip(reason: str) -> None:
    """Skip the item, reported at the test's location (as a skip mark is), not at ours."""
    __tracebackhide__ = True
    try:
        exc = pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # a pytest without the (private) keyword
        pytest.skip(reason)
    raise exc


# -- --ploop-case: in this process ---------------------------------------------------------


def _run_serial(
    item: pytest.Function,
    spec: Spec,
    cases: list[Case],
    call: _Call,
    namespace: dict[str, Any],
    strict: bool,
) -> None:
    """Run ``cases`` here, in order; the first failure propagates as the test's own (so
    ``--pdb`` stops in it), with a note naming the case."""
    __tracebackhide__ = True
    skipped: list[str] = []
    xfailed: list[str] = []
    for case in cases:
        reason = skip_reason(case, namespace)
        xfail = xfail_of(case, namespace, strict)
        if reason is not None:
            skipped.append(f"case {case.id}: {reason}")
            continue
        if xfail is not None and not xfail.run:
            xfailed.append(f"case {case.id}: [NOTRUN] {xfail.reason}")
            continue
        try:
            spec.fn(*call.args, **call.for_case(case))
        except (pytest.skip.Exception, pytest.xfail.Exception):
            raise
        except BaseException as exc:
            if xfail is not None and xfail.expects(exc):
                xfailed.append(f"case {case.id}: {xfail.reason}")
                continue
            add_note(exc, f"ploop: case {case.id} ({case.describe()})")
            raise
        if xfail is not None and xfail.strict:
            pytest.fail(f"[XPASS(strict)] case {case.id}: {xfail.reason}", pytrace=False)
    if skipped and len(skipped) == len(cases):
        _skip("; ".join(skipped))
    if xfailed and len(skipped) + len(xfailed) == len(cases):
        pytest.xfail("; ".join(xfailed))
