"""Options and hooks for ``parametrize_parallel`` tests (see ``_cases`` for how they run).

- ``--ploop-case=ID`` (repeatable): run only the named cases, in the test's own process;
- ``--ploop-fanout-budget=N``: the processes a ``--ploop-workers`` run and the fan-outs of its
  tests may use together (default: the CPUs available); see ``pytest_ploop._fanout``;
- an empty list of cases is treated as pytest treats an empty ``parametrize``
  (``empty_parameter_set_mark``);
- each decorated test's cases get a line in the terminal summary, and the call report a
  ``ploop_cases`` attribute with their timings.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from .. import _here
from .._engine._cpus import BUDGET_ENV

# The decorator's machinery (the engine, filelock, the fan-out) is imported once a test uses
# it: this plugin is loaded by every pytest run, most of which have no decorated test.
if TYPE_CHECKING:
    from .._parametrize import Spec

SELECTED_KEY = pytest.StashKey[tuple[int, ...]]()
SUMMARY_KEY = pytest.StashKey[dict[str, Any]]()

CASE_HELP = (
    "run only the case with this id of each parametrize_parallel test, one by one in pytest's "
    "own process (so --pdb works); repeatable"
)
BUDGET_HELP = (
    "processes a --ploop-workers run and the parametrize_parallel fan-outs of its tests may "
    "use together: an int, or auto for the CPUs available (the default)"
)
_OLD_BUDGET = pytest.StashKey[str | None]()
_REPORTER = "ploop-cases-reporter"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ploop", "parallel runs (pytest-ploop)")
    group.addoption(
        "--ploop-case", action="append", dest="ploop_case", default=[], metavar="ID",
        help=CASE_HELP,
    )  # fmt: skip
    group.addoption(
        "--ploop-fanout-budget", dest="ploop_fanout_budget", default=None, metavar="N|auto",
        help=BUDGET_HELP,
    )  # fmt: skip
    parser.addini("ploop_fanout_budget", BUDGET_HELP, default=None)


def pytest_configure(config: pytest.Config) -> None:
    raw = config.getoption("ploop_fanout_budget") or config.getini("ploop_fanout_budget")
    if raw:
        text = str(raw).strip().lower()
        if text != "auto" and not (text.isdigit() and int(text) >= 1):
            raise pytest.UsageError(
                f"--ploop-fanout-budget={raw!r}: give a whole number of processes of at least "
                "1, or auto for the CPUs available"
            )
        # Workers are forked after this and inherit it; so do direct calls in the tests.
        config.stash[_OLD_BUDGET] = os.environ.get(BUDGET_ENV)
        os.environ[BUDGET_ENV] = text
    config.pluginmanager.register(_CasesReporter(), _REPORTER)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OLD_BUDGET in config.stash:
        old = config.stash[_OLD_BUDGET]
        if old is None:
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = old


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    result = yield
    spec = spec_of(obj)
    if spec is None or spec.cases or result is None:
        return result
    mark = _empty_mark(collector.config, spec, name)
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Item):
            item.add_marker(mark)
    return result


def _empty_mark(config: pytest.Config, spec: Spec, name: str) -> pytest.MarkDecorator:
    """What pytest does with an empty ``parametrize``, by ``empty_parameter_set_mark``."""
    reason = f"got empty parameter set for ({', '.join(spec.argnames)})"
    requested = config.getini("empty_parameter_set_mark") or "skip"
    if requested == "xfail":
        return pytest.mark.xfail(reason=reason, run=False)
    if requested == "fail_at_collect":
        line = getattr(getattr(spec.fn, "__code__", None), "co_firstlineno", 0)
        raise pytest.Collector.CollectError(f"Empty parameter set in '{name}' at line {line}")
    return pytest.mark.skip(reason=reason)


def pytest_collection_finish(session: pytest.Session) -> None:
    """``--ploop-case``: remember each decorated test's named cases; a decorated test with
    none of them is skipped; an id that names no case at all is a usage error.

    Checked once the collection is final: after ``-k``, ``-m``, ``--deselect`` and the
    plugins that deselect in ``pytest_collection_modifyitems`` (some of them trylast, as
    ``--ploop-shard``), so a case of a deselected test never counts as named."""
    wanted: list[str] = list(dict.fromkeys(session.config.getoption("ploop_case") or []))
    if not wanted:
        return
    matched: set[str] = set()
    known: list[str] = []
    for item in session.items:
        spec = spec_of(item.obj) if isinstance(item, pytest.Function) else None
        if spec is None:
            continue
        by_id = spec.by_id()
        known += list(by_id)[:20]
        chosen = sorted(by_id[w].index for w in wanted if w in by_id)
        matched.update(w for w in wanted if w in by_id)
        if chosen:
            item.stash[SELECTED_KEY] = tuple(chosen)
        else:
            item.add_marker(pytest.mark.skip(reason="no case of it is named by --ploop-case"))
    missing = [w for w in wanted if w not in matched]
    if missing:
        ids = ", ".join(dict.fromkeys(known)) or "none: no parametrize_parallel test selected"
        raise pytest.UsageError(
            f"--ploop-case={missing[0]!r} names no case of the selected tests; their case "
            f"ids: {ids}"
        )


def spec_of(obj: object) -> Spec | None:
    """The decorator's :class:`Spec` of ``obj``, else ``None``. No function carries one
    before ``pytest_ploop._parametrize`` is imported, so that import waits for a decorated
    test."""
    parametrize = sys.modules.get("pytest_ploop._parametrize")
    return None if parametrize is None else parametrize.spec_of(obj)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    spec = spec_of(pyfuncitem.obj)
    if spec is None:
        return None
    _at_test_location(pyfuncitem, functools.partial(_run_item, pyfuncitem, spec))
    return True


def _run_item(item: pytest.Function, spec: Spec) -> None:
    """Run the item's cases; on Dask, a run that cannot start because a fixture value or a
    case does not pickle fails the test naming it (the backend can only name the test)."""
    __tracebackhide__ = True
    from .._errors import PloopError
    from ._cases import run_item

    try:
        run_item(item, spec)
        return
    except PloopError:
        reason = _unpicklable(item, spec)
        if reason is None:
            raise
    # Out of the except block: the backend's error and its frames are not the user's business.
    pytest.fail(
        f"{item.name} runs its cases on Dask, which sends them and the test's fixture values "
        f"to its workers pickled: {reason}.\nGive picklable values (a fixture or a case can "
        "give what the body needs to make the object itself), or run the test on the local "
        "backend (backend='local'), whose forked workers inherit them",
        pytrace=False,
    )


def _unpicklable(item: pytest.Function, spec: Spec) -> str | None:
    """On Dask, what of the item's fixture values and cases cannot be pickled; else ``None``."""
    from .._parametrize import unpicklable
    from ._settings import read_backend

    backend = spec.backend if spec.backend is not None else read_backend(item.config)[0]
    if backend != "dask":
        return None
    fixtures = {n: item.funcargs[n] for n in spec.signature.parameters if n in item.funcargs}
    return unpicklable(fixtures, "fixture", spec.cases)


def _at_test_location(item: pytest.Function, run: Callable[[], None]) -> None:
    """Call ``run`` from a frame located where pytest locates the test: its file, and the
    first line of its definition.

    The cases run in workers: when the item fails or is interrupted, no frame of the test's
    file is on this process's stack, and pytest would give the crash location (``--tb=line``,
    the Ctrl-C summary, and plugins that annotate failures) as the last frame not hidden, one
    of this plugin's. A frame compiled with the test's file name and line number is where a
    plain test's crash would be reported. A case run here (``--ploop-case``) that fails has
    its own frames below this one, and is located in them, as a plain test is.
    """
    __tracebackhide__ = True
    path, line, _ = item.reportinfo()
    if line is None:
        run()
        return
    at = compile("\n" * line + "run()", str(path), "exec")
    exec(at, {"run": run})


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    if not _here.in_worker():
        return (yield)
    from .. import _fanout

    # In a --ploop-workers worker: hold its budget slot while it has tests.
    _fanout.hold_worker_slot()
    try:
        return (yield)
    finally:
        if nextitem is None:  # this worker has no test left: fan-outs may use its slot
            _fanout.worker_slot_done()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and SUMMARY_KEY in item.stash:
        report.ploop_cases = item.stash[SUMMARY_KEY]  # type: ignore[attr-defined]
    return report


class _CasesReporter:
    """One summary line per decorated test that ran (in the main process, where every
    report arrives, also those of ``--ploop-workers`` workers)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        summary = getattr(report, "ploop_cases", None)
        if report.when == "call" and isinstance(summary, dict):
            self.seen.append((report.nodeid, summary))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.seen:
            return
        from ._cases_report import summary_line  # with the decorator's machinery, on use

        terminalreporter.write_sep("-", "ploop cases")
        for nodeid, s in self.seen:
            terminalreporter.write_line(f"{nodeid}: {summary_line(s)}")
