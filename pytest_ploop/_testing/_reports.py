"""Reports and warnings across the process boundary, and reports for tests that never
finished (their worker crashed or hung)."""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from _pytest._code.code import TerminalRepr  # no public name
from _pytest._io import TerminalWriter

_Impls = tuple[tuple[Callable[..., Any], tuple[str, ...]], ...]
_DIRECT = pytest.StashKey[tuple[_Impls | None, _Impls | None]]()
_LONGREPR = "ploop_longrepr"  # a report's longrepr object, pickled (see serialize_report)
_SUBTESTS_FAILED = "ploop_subtests_failed"  # the worker's count (see _failed_subtests)
_BDD = "ploop_bdd_scenario"  # pytest-bdd's scenario of the report (see _bdd_contexts)
_SUBTESTS_KEY: Any = None  # pytest's stash key of that count; False before pytest 9


def _pytests_own(hook: Any) -> _Impls | None:
    """The implementations of a first-result ``hook`` in the order pluggy calls them, when
    all of them are pytest's own plain ones (``_pytest.reports``, ``_pytest.subtests``);
    ``None`` when a plugin implements it too, or wraps it."""
    impls = hook.get_hookimpls()
    for impl in impls:
        module = getattr(impl.plugin, "__name__", "")
        if not module.startswith("_pytest.") or impl.hookwrapper or impl.wrapper:
            return None
    return tuple((impl.function, tuple(impl.argnames)) for impl in reversed(impls))


def _direct(config: pytest.Config) -> tuple[_Impls | None, _Impls | None]:
    known = config.stash.get(_DIRECT, None)
    if known is None:
        known = (
            _pytests_own(config.hook.pytest_report_to_serializable),
            _pytests_own(config.hook.pytest_report_from_serializable),
        )
        config.stash[_DIRECT] = known
    return known


def _first_result(impls: _Impls, **kwargs: Any) -> Any:
    """What the hook returns, pytest's own implementations called as pluggy would call them
    (first non-``None`` result), without the dispatch that cost a quick test much of its
    replay. A plugin's implementation of the hook is always honoured: then the hook runs."""
    for function, argnames in impls:
        result = function(*[kwargs[name] for name in argnames])
        if result is not None:
            return result
    return None


def serialize_report(config: pytest.Config, report: pytest.TestReport) -> dict[str, Any]:
    """The report as plain data (pytest's own serialization, as xdist uses).

    pytest keeps a failure's traceback as structured data, but turns any other kind of
    ``longrepr`` (a doctest's failure, a missing fixture's error, a plugin's own
    ``repr_failure``) into its text. The summary line of a text shows the whole text, where
    the object showed none, so such an object also travels pickled; one that cannot be
    pickled arrives as an object that prints its text.
    """
    impls = _direct(config)[0]
    data: dict[str, Any]
    if impls is not None:
        data = _first_result(impls, config=config, report=report)
    else:
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
    if report.when == "call" and not hasattr(report, "context"):  # not a subtest's own
        counts = _failed_subtests(config)
        if counts and counts.get(report.id):
            data[_SUBTESTS_FAILED] = counts[report.id]
    registry, _ = _bdd_contexts()
    context = None
    if registry is not None:
        with contextlib.suppress(TypeError):  # a subtest's report is no dict key
            context = registry.get(report)
    if context is not None:
        data[_BDD] = (context.scenario, context.name)
    longrepr = report.longrepr
    if isinstance(data.get("longrepr"), str) and not isinstance(longrepr, str):
        try:
            data[_LONGREPR] = pickle.dumps(longrepr)
        except Exception:  # its text, as pytest sends it, but not as a text
            data[_LONGREPR] = b""
    return data


def deserialize_report(config: pytest.Config, data: dict[str, Any]) -> pytest.TestReport:
    """The report back from :func:`serialize_report`."""
    pickled = data.pop(_LONGREPR, None)
    subtests_failed = data.pop(_SUBTESTS_FAILED, 0)
    scenario = data.pop(_BDD, None)
    impls = _direct(config)[1]
    report: pytest.TestReport
    if impls is not None:
        report = _first_result(impls, config=config, data=data)
    else:
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
    _subtest_values_as_sent(report, data)
    if subtests_failed:
        counts = _failed_subtests(config)
        if counts is not None:
            counts[report.id] = subtests_failed
    if scenario is not None:
        registry, context = _bdd_contexts()
        if registry is not None and context is not None:
            registry[report] = context(scenario=scenario[0], name=scenario[1])
    text = report.longrepr
    if pickled is not None and isinstance(text, str):
        try:
            report.longrepr = pickle.loads(pickled) if pickled else _ReprText(text)
        except Exception:  # its class is gone here
            report.longrepr = _ReprText(text)
    return report


def _bdd_contexts() -> tuple[Any, Any]:
    """pytest-bdd's table of each report's scenario (its steps, their outcomes and times,
    as plain data), and the class of its entries; ``(None, None)`` without pytest-bdd.

    pytest-bdd's cucumber JSON report and its gherkin terminal reporter read a report's
    scenario there, keyed by the report object itself, which stays in the process that made
    it: under xdist the cucumber report is empty. A worker's entry travels with the report
    and is entered again for the report the main process rebuilds."""
    module = sys.modules.get("pytest_bdd.reporting")
    registry = getattr(module, "test_report_context_registry", None)
    return registry, getattr(module, "ReportContext", None) if registry is not None else None


def _failed_subtests(config: pytest.Config) -> Any:
    """pytest's count of failed subtests by test, in this process (``None`` before pytest 9).

    pytest counts them where a ``subtests`` fixture's subtest ran, and, when the test's own
    report is logged, reports a test that passed but holds failed subtests as failed
    ("contains 1 failed subtest"). A worker's count travels with the test's call report."""
    global _SUBTESTS_KEY
    if _SUBTESTS_KEY is None:
        try:
            from _pytest.subtests import failed_subtests_key  # no public name
        except ImportError:
            _SUBTESTS_KEY = False
        else:
            _SUBTESTS_KEY = failed_subtests_key
    return config.stash.get(_SUBTESTS_KEY, None) if _SUBTESTS_KEY is not False else None


def _subtest_values_as_sent(report: pytest.TestReport, data: dict[str, Any]) -> None:
    """A subtest's values (``subTest(i=1)``) as the worker's report had them. pytest turns
    them into their ``repr`` when a report is made, and again when one is read back from
    plain data, so a serial ``(i=1)`` would read ``(i='1')``."""
    sent = data.get("_subtest.context")
    context = getattr(report, "context", None)
    if isinstance(sent, dict) and isinstance(sent.get("kwargs"), dict) and context is not None:
        with contextlib.suppress(AttributeError, TypeError):
            object.__setattr__(context, "kwargs", dict(sent["kwargs"]))


@dataclass(eq=False)
class _ReprText(TerminalRepr):
    """A report's ``longrepr`` object that reached the main process as its text only: it
    prints that text, and, as the object did, adds nothing to the summary line."""

    text: str

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.text.split("\n"):
            tw.line(line)


def serialize_warning(message: warnings.WarningMessage) -> dict[str, Any]:
    """A recorded warning as data; the warning object itself travels when it pickles."""
    blob: bytes | None
    try:
        blob = pickle.dumps((message.message, message.category))
        pickle.loads(blob)
    except Exception:
        blob = None
    return {
        "blob": blob,
        "text": str(message.message),
        "category": message.category.__name__,
        "filename": message.filename,
        "lineno": message.lineno,
        "line": message.line,
        "source": _untracked(message.source),
    }


def _untracked(source: object) -> bool:
    """Whether the warning has a source object whose allocation tracemalloc did not record.

    pytest then adds "Enable tracemalloc to get traceback where the object was allocated" to
    the warning in its summary. The object itself stays here (a coroutine, a file: it seldom
    pickles); where tracemalloc has its traceback, the main process could only find its own.
    """
    if source is None:
        return False
    import tracemalloc

    return tracemalloc.get_object_traceback(source) is None


def deserialize_warning(data: dict[str, Any]) -> warnings.WarningMessage:
    """The ``WarningMessage`` back from :func:`serialize_warning`."""
    if data["blob"] is not None:
        message, category = pickle.loads(data["blob"])
    else:
        message, category = UserWarning(f"{data['category']}: {data['text']}"), UserWarning
    # A statically allocated object: tracemalloc never has its traceback, so pytest adds the
    # same hint as for the worker's untracked source.
    source = object if data["source"] else None
    return warnings.WarningMessage(
        message, category, data["filename"], data["lineno"], None, data["line"], source
    )


def failed_report(
    item: pytest.Item,
    text: str,
    start: float,
    stop: float,
    when: Literal["setup", "call", "teardown"] = "call",
) -> pytest.TestReport:
    """A failed report for ``item`` with ``text`` as its long representation."""
    return pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords=dict.fromkeys(item.keywords, 1),
        outcome="failed",
        longrepr=text,
        when=when,
        sections=[],
        duration=max(stop - start, 0.0),
        start=start,
        stop=stop,
        user_properties=list(item.user_properties),
    )


def output_file(run_dir: str, worker_id: str, pid: int, stream: str) -> str:
    """Where worker ``worker_id`` (process ``pid``) captures its ``"out"`` or ``"err"``, or
    writes what its terminal writer is given (``"tw"``)."""
    return os.path.join(run_dir, f"output-{worker_id}-{pid}.{stream}")


def last_output(run_dir: str, worker_id: str, live: Collection[int], limit: int = 2000) -> str:
    """The output a dead worker of slot ``worker_id`` captured in its last test phase (the
    end of it, ``limit`` characters a stream at most), as text for its crash report. The
    files are removed; those of the live worker ``live`` that replaced it stay."""
    parts = []
    for stream, name in (("out", "stdout"), ("err", "stderr"), ("tw", "the terminal")):
        for path in sorted(Path(run_dir).glob(f"output-{worker_id}-*.{stream}")):
            if int(path.stem.rsplit("-", 1)[1]) in live:
                continue
            try:
                text = path.read_text(errors="replace")
                path.unlink()
            except OSError:
                continue
            if text.strip():
                if len(text) > limit:
                    text = "...\n" + text[-limit:].split("\n", 1)[-1]
                parts.append(f"last output on {name}:\n{text.rstrip()}")
    return "\n\n".join(parts)


def trim_stack(text: str, frames: int = 12) -> str:
    """faulthandler's dump, each thread cut where the test's (or case's) own frames end:
    below them is the worker's machinery (pytest, pluggy, pytest-ploop, multiprocessing)."""
    machinery = ("/_pytest/", "/pluggy/", "/pytest_ploop/", "/multiprocessing/")
    out: list[str] = []
    kept, cut = 0, False
    for line in text.strip().splitlines():
        if not line.startswith("  File"):
            out.append(line)
            kept, cut = 0, False
        elif cut:
            continue
        elif kept >= frames or any(part in line for part in machinery):
            out.append("  ...")
            cut = True
        else:
            out.append(line)
            kept += 1
    return "\n".join(out)
