"""``parametrize_parallel`` in pytest: one item whose body runs once per case in workers.

    item's process (fixtures set up)            forked workers (inherit item, fixtures, cases)
    run_item ── case indices ─────────────────> _ItemTask(index): own stdout/stderr files,
       │                                          own tmp_path sub-directory, the body,
       │                                          pytest's own repr_failure on an error
       │<──── CaseResult (or CaseFailed) ─────────┘ (a crash or a timeout: the engine says)
    one report: "7 of 500 cases failed", then each such case; timings to user_properties,
    the report's ``ploop_cases`` and the pytest cache (longest first next time)

``--ploop-case=ID`` instead runs the named cases one by one in the item's own process. One
case is the test's own call: its failure propagates as pytest's own, so ``--pdb`` stops in the
case. Several each run to their outcome, and the item ends as a fan-out of them would.
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
# Raised by a case in the test's own process, these end the session as from any test.
_NOT_AN_OUTCOME = (KeyboardInterrupt, pytest.exit.Exception)

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

    @contextlib.contextmanager
    def arguments(self, case: Case) -> Iterator[dict[str, Any]]:
        """The case's arguments, as ``for_case``, with a ``monkeypatch`` of the case's own:
        what the case patches is undone when it ends, failed or not, so that the next case
        its process runs does not see it. The patches the fixtures made stay: they were
        made before the case, in the process it inherits."""
        kwargs = self.for_case(case)
        if "monkeypatch" not in self.kwargs:
            yield kwargs
            return
        with pytest.MonkeyPatch.context() as patch:
            kwargs["monkeypatch"] = patch
            yield kwargs


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
    """The engine task: ``task(case_index)`` runs one case in a worker.

    ``raises``: the classes the item's own ``xfail(raises=...)`` mark names, if any;
    ``propagate``: the exceptions that are not a case's outcome (see ``case_outcome``).
    """

    def __init__(
        self,
        item: pytest.Function,
        spec: Spec,
        call: _Call,
        xfails: dict[int, XFail | None],
        capture: _Capture | None,
        raises: tuple[type[BaseException], ...] | None,
        propagate: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.item, self.spec, self.call = item, spec, call
        self.xfails, self.capture = xfails, capture
        self.raises, self.propagate = raises, propagate

    def __call__(self, index: int) -> CaseResult:
        case = self.spec.cases[index]
        if self.capture is not None:
            self.capture.start(index)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # keeps the item's filters
            outcome, text, expected = self.outcome_of(case)
        seconds = time.perf_counter() - start
        out = err = log = ""
        if self.capture is not None:
            out, err, log = self.capture.stop(index, keep=outcome in FAILING)
        seen = tuple(_warning(w) for w in caught)
        result = CaseResult(
            index, outcome, text, out, err, seconds, warnings=seen, log=log,
            raised_expected=expected,
        )  # fmt: skip
        if outcome in FAILING:
            raise CaseFailed(result)
        return result

    def outcome_of(self, case: Case) -> tuple[str, str, bool]:
        """Run ``case`` here: its outcome, the text its report shows, and whether it failed
        with an exception of the item's ``raises`` (see ``case_outcome``)."""

        def run() -> object:
            with self.call.arguments(case) as kwargs:
                return self.spec.fn(*self.call.args, **kwargs)

        xfail = self.xfails.get(case.index)
        return case_outcome(run, xfail, self._longrepr, self.raises, self.propagate)

    def _longrepr(self, exc: BaseException) -> str:
        """The failure as pytest shows a test's: its frames of the test only, assertions
        explained (the module was rewritten), ``--tb`` and ``-l`` honoured."""
        try:
            return str(self.item.repr_failure(pytest.ExceptionInfo.from_exception(exc)))
        except Exception:  # a repr that fails must not lose the failure
            import traceback

            return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _warning(message: warnings.WarningMessage) -> tuple[Any, str, str, int]:
    """A warning as it travels to the item's process: its class (only its name when the
    class does not pickle: one defined in a function), its text and where it was raised."""
    category: Any = message.category
    try:
        pickle.loads(pickle.dumps(category))
    except Exception:
        category = f"{category.__module__}.{category.__qualname__}"
    return (category, str(message.message), message.filename, message.lineno)


# -- in the item's process -----------------------------------------------------------------


def run_item(item: pytest.Function, spec: Spec) -> None:
    """Run the cases of the decorated test ``item`` (its fixtures are set up) in workers;
    fail it with one report if any case did not pass. The cases ``--ploop-case`` named run
    here instead (one: as the test's own call; several: each to its outcome)."""
    __tracebackhide__ = True
    call = _call_of(item, spec)
    namespace = _namespace(item, spec)
    strict = _strict_xfail(item.config)
    selected = item.stash.get(SELECTED_KEY, None)
    if selected is not None and len(selected) == 1:
        _run_one(spec, spec.cases[selected[0]], call, namespace, strict)
        return
    indices = selected if selected is not None else tuple(range(len(spec.cases)))
    results, xfails, runnable = _triage(spec, indices, namespace, strict)
    raises = _item_raises(item, namespace, strict)
    if selected is None:
        results.update(_fan_out(item, spec, call, results, xfails, runnable, raises))
    else:
        task = _ItemTask(item, spec, call, xfails, None, raises, _NOT_AN_OUTCOME)
        results.update(_run_here(task, runnable))
    _conclude(item, spec, results, len(indices), raises)


def _triage(
    spec: Spec, indices: Sequence[int], namespace: dict[str, Any], strict: bool
) -> tuple[dict[int, CaseResult], dict[int, XFail | None], list[int]]:
    """The cases' marks, read before any case runs: the results of the cases a ``skip`` or
    an ``xfail(run=False)`` mark keeps from running, the ``xfail`` mark of each other case,
    and those cases, to run."""
    results: dict[int, CaseResult] = {}
    xfails: dict[int, XFail | None] = {}
    runnable: list[int] = []
    for case in (spec.cases[i] for i in indices):
        reason = skip_reason(case, namespace)
        xfail = xfail_of(case, namespace, strict)
        if reason is not None:
            results[case.index] = CaseResult(case.index, "skipped", reason)
        elif xfail is not None and not xfail.run:
            results[case.index] = CaseResult(case.index, "xfailed", f"[NOTRUN] {xfail.reason}")
        else:
            runnable.append(case.index)
            xfails[case.index] = xfail
    return results, xfails, runnable


def _fan_out(
    item: pytest.Function,
    spec: Spec,
    call: _Call,
    triaged: dict[int, CaseResult],
    xfails: dict[int, XFail | None],
    runnable: list[int],
    raises: tuple[type[BaseException], ...] | None,
) -> dict[int, CaseResult]:
    """Run the ``runnable`` cases in workers; their results. The timings of all the cases
    (``triaged`` ones too) go to the reports, their warnings to pytest's."""
    __tracebackhide__ = True
    # Without fork (no platform ploop supports) the cases run here, under pytest's capture.
    streams = item.config.getoption("capture", "fd") != "no"
    logs = _report_log_handler(item.config)
    capturing = (streams or logs is not None) and hasattr(os, "fork")
    directory = tempfile.mkdtemp(prefix="ploop-cases-") if capturing else None
    capture = _Capture(directory, streams, logs) if directory else None
    task = _ItemTask(item, spec, call, xfails, capture, raises)
    plan = _plan(item, spec, runnable)
    try:
        with _watchdog.paused(), _coverage_saved_by_workers():
            task_run = _fanout.run(for_backend(task, plan), runnable, plan)
        results = _collect(task_run, runnable, directory)
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    _fanout.reraise_interrupt(task_run)
    everything = {**triaged, **results}
    _record(item, spec, everything, _summary(spec, everything, task_run))
    _warn_again(results)
    return results


def _item_raises(
    item: pytest.Function, namespace: dict[str, Any], strict: bool
) -> tuple[type[BaseException], ...] | None:
    """The classes the item's own ``xfail(raises=...)`` mark names, when the mark applies
    (its conditions evaluated as a case's are: the item's marks stand in for a case's).
    ``None`` without such a mark, or when ``raises`` is not classes (a ``pytest.RaisesExc``
    matches the exception's message too, which the aggregate failure does not carry)."""
    marks = tuple(item.iter_markers("xfail"))
    xfail = xfail_of(Case(-1, item.name, {}, marks), namespace, strict) if marks else None
    raises = xfail.raises if xfail is not None else None
    if isinstance(raises, type):
        return (raises,)
    if isinstance(raises, tuple) and all(isinstance(c, type) for c in raises):
        return raises
    return None


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
    the item and shows them in its warnings summary. Not guarded: the filters here are the
    ones the case had (its worker inherited them), so a warning that passed them there
    passes them here, and one that does not is not dropped unseen."""
    seen = {w for r in results.values() for w in r.warnings}
    for category, message, filename, lineno in sorted(seen, key=lambda w: (w[2], w[3], w[1])):
        warning = _rebuilt(category, message)
        warnings.warn_explicit(warning, type(warning), filename, lineno)


def _rebuilt(category: Any, message: str) -> Warning:
    """The warning of class ``category`` and text ``message`` again: by calling the class,
    else without its ``__init__`` (which may want other arguments) as an instance whose
    ``args`` are the text. A class that gives neither with that text, or only a class's
    name (it did not pickle), makes a UserWarning that names it."""
    if isinstance(category, type) and issubclass(category, Warning):
        with contextlib.suppress(Exception):
            warning = category(message)
            if str(warning) == message:
                return warning
        with contextlib.suppress(Exception):
            warning = category.__new__(category)
            warning.args = (message,)
            if str(warning) == message:
                return warning
        category = f"{category.__module__}.{category.__qualname__}"
    return UserWarning(f"{category}: {message}" if isinstance(category, str) else message)


def _conclude(
    item: pytest.Function,
    spec: Spec,
    results: dict[int, CaseResult],
    total: int,
    raises: tuple[type[BaseException], ...] | None,
) -> None:
    """The item's outcome from its cases' (``total``: the cases there are, or those that
    ``--ploop-case`` named): failed if any did not pass, skipped if all were, xfailed if none
    passed and some xfailed; else it passes."""
    __tracebackhide__ = True
    counts = Counter(r.outcome for r in results.values())
    bad = [results[i] for i in sorted(results) if results[i].outcome in FAILING]
    if bad:
        report = failure_report(item, spec, results, total)
        if raises is not None and all(r.raised_expected for r in bad):
            raise _expected_failure(report, raises)
        pytest.fail(report, pytrace=False)
    if counts["passed"] + counts["xpassed"] + counts["xfailed"] == 0 and total:
        reasons = "; ".join(sorted({r.text for r in results.values()}))
        _skip(f"{'all ' if total > 1 else ''}{cases(total)} skipped: {reasons}")
    if counts["passed"] + counts["xpassed"] == 0 and counts["xfailed"]:
        pytest.xfail(f"{counts['xfailed']} of {cases(total)} xfailed, none passed")


def _expected_failure(report: str, raises: tuple[type[BaseException], ...]) -> BaseException:
    """pytest's ``Failed`` with ``report``, which is also an instance of one of ``raises``:
    every failing case raised one of them, and pytest's check of the item's
    ``xfail(raises=...)`` mark (``isinstance`` on the test's exception) then xfails the item,
    as it would each case of a ``pytest.mark.parametrize`` test. A class that does not
    combine with ``Failed`` (another instance layout or constructor) is passed over; with
    none left, the failure is the plain one, as when some case failed otherwise."""
    failed = pytest.fail.Exception
    names = {"__module__": failed.__module__, "__qualname__": failed.__qualname__}
    for cls in raises:
        if issubclass(cls, _NOT_AN_OUTCOME):  # raised by a test, it ends the session
            continue
        with contextlib.suppress(TypeError):
            failure: BaseException = type(failed.__name__, (failed, cls), names)(
                report, pytrace=False
            )
            return failure
    return failed(report, pytrace=False)


def _skip(reason: str) -> None:
    """Skip the item, reported at the test's location (as a skip mark is), not at ours."""
    __tracebackhide__ = True
    try:
        exc = pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:  # a pytest without the (private) keyword
        pytest.skip(reason)
    raise exc


# -- --ploop-case: in this process ---------------------------------------------------------


def _run_one(spec: Spec, case: Case, call: _Call, namespace: dict[str, Any], strict: bool) -> None:
    """The one case ``--ploop-case`` named, as the test's own call: its failure propagates
    as pytest's own (so ``--pdb`` stops in it and ``--tb`` shows its frames), with a note
    naming the case. Its ``monkeypatch`` is the test's, undone at the test's teardown."""
    __tracebackhide__ = True
    reason = skip_reason(case, namespace)
    xfail = xfail_of(case, namespace, strict)
    if reason is not None:
        _skip(f"case {case.id}: {reason}")
    if xfail is not None and not xfail.run:
        pytest.xfail(f"case {case.id}: [NOTRUN] {xfail.reason}")
    try:
        spec.fn(*call.args, **call.for_case(case))
    except (pytest.skip.Exception, pytest.xfail.Exception):
        raise
    except BaseException as exc:
        if xfail is not None and xfail.expects(exc):
            pytest.xfail(f"case {case.id}: {xfail.reason}")
        add_note(exc, f"ploop: case {case.id} ({case.describe()})")
        raise
    if xfail is not None and xfail.strict:
        pytest.fail(f"[XPASS(strict)] case {case.id}: {xfail.reason}", pytrace=False)


def _run_here(task: _ItemTask, runnable: list[int]) -> dict[int, CaseResult]:
    """Several cases ``--ploop-case`` named, one by one in this process, each to its own
    outcome as a worker judges it; their output goes to pytest's capture of the test. After
    a failure, ``fail_fast`` leaves the rest not run, as a fan-out does."""
    __tracebackhide__ = True
    results: dict[int, CaseResult] = {}
    for pos, index in enumerate(runnable):
        start = time.perf_counter()
        outcome, text, expected = task.outcome_of(task.spec.cases[index])
        seconds = time.perf_counter() - start
        results[index] = CaseResult(index, outcome, text, seconds=seconds, raised_expected=expected)
        if task.spec.fail_fast and outcome in FAILING:
            for rest in runnable[pos + 1 :]:
                results[rest] = CaseResult(rest, "not_run", "fail_fast: an earlier case failed")
            break
    return results
