"""Reports of a ``--ploop-workers`` run: ``--ploop-report``, ``--ploop-compare``,
``--ploop-fail-on-regression``, the ``ploop`` terminal section and the CI job summary.

The run record comes from the main process's session plugin (registered as
``"ploop-session"``) once the tests ran; task ``i`` is the group of tests ``task_groups[i]``
of that plugin (or, failing that, :func:`make_groups` of the session's items). Without a
record (a serial run, a worker process, ``--collect-only``) this plugin does nothing.

    pytest_configure      check the options; read OLD.json (a missing one is only a note)
    pytest_sessionfinish  compare, write the reports, append $GITHUB_STEP_SUMMARY, and turn
                          the exit code to 1 on a regression beyond the threshold, or when a
                          report could not be written
    pytest_terminal_summary  the ``ploop`` section (one line; details with -v; the errors)
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .. import _here
from ._files import format_of, write_report

# The rest of the report package (numpy, the renderers) is imported only once there is a
# record to report: this plugin is registered in every pytest run, serial ones too.
if TYPE_CHECKING:
    from .._engine._record import RunRecord
    from ._compare import Comparison
    from ._run import RunReport

SESSION_PLUGIN = "ploop-session"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
REPORT_HELP = (
    "write the run's report to PATH after a --ploop-workers run, in the format its "
    "extension names: .json (the run record), .md (a Markdown summary), .html (a "
    "self-contained page with the worker timeline). Repeatable."
)
COMPARE_HELP = (
    "compare the run with an earlier one saved by --ploop-report=OLD.json: wall time, "
    "speedup and the tests whose time changed most, in the summary and the reports"
)
FAIL_HELP = (
    "with --ploop-compare: fail the run (exit code 1) when its wall time grew, or its "
    "speedup fell, by more than PCT percent"
)


@dataclass
class _State:
    paths: list[str]
    compare_path: str | None
    threshold: float | None
    old: RunReport | None = None
    note: str = ""
    report: RunReport | None = None
    comparison: Comparison | None = None
    written: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # reports that could not be written
    tests: dict[str, str] = field(default_factory=dict)  # node id -> pytest's outcome
    # node id -> the timings of a parametrize_parallel test's cases (``report.ploop_cases``)
    fanouts: dict[str, dict[str, Any]] = field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ploop", "parallel runs (pytest-ploop)")
    group.addoption(
        "--ploop-report", dest="ploop_report", action="append", default=[], metavar="PATH",
        help=REPORT_HELP,
    )  # fmt: skip
    group.addoption(
        "--ploop-compare", dest="ploop_compare", default=None, metavar="OLD.json",
        help=COMPARE_HELP,
    )  # fmt: skip
    group.addoption(
        "--ploop-fail-on-regression", dest="ploop_fail_on_regression", default=None,
        metavar="PCT", help=FAIL_HELP,
    )  # fmt: skip
    parser.addini("ploop_report", REPORT_HELP, type="linelist", default=[])
    parser.addini("ploop_compare", COMPARE_HELP, default=None)
    parser.addini("ploop_fail_on_regression", FAIL_HELP, default=None)


def _setting(config: pytest.Config, name: str) -> Any:
    """The command line's value, else the ini file's."""
    value = config.getoption(name)
    return value if value not in (None, []) else config.getini(name)


def pytest_configure(config: pytest.Config) -> None:
    paths = [str(p) for p in _setting(config, "ploop_report") or []]
    for p in paths:
        try:
            format_of(p)
        except ValueError as exc:
            raise pytest.UsageError(f"--ploop-report: {exc}") from None
    compare_path = _setting(config, "ploop_compare") or None
    threshold = _threshold(_setting(config, "ploop_fail_on_regression"))
    if threshold is not None and compare_path is None:
        raise pytest.UsageError("--ploop-fail-on-regression needs --ploop-compare=OLD.json")
    state = config.stash[_STATE] = _State(paths, compare_path, threshold)
    if not _here.in_worker():
        recorder = _OutcomeRecorder(state.tests, state.fanouts)
        config.pluginmanager.register(recorder, "ploop-report-outcomes")
    if compare_path is not None:
        if Path(compare_path).exists():
            from .._errors import PloopError
            from ._json import read

            try:
                state.old = read(compare_path)
            except PloopError as exc:
                raise pytest.UsageError(f"--ploop-compare: {exc}") from None
        else:
            state.note = f"ploop: no earlier run at {compare_path} to compare with"


def _threshold(value: object) -> float | None:
    if value in (None, ""):
        return None
    try:
        pct = float(str(value).rstrip("%"))
    except ValueError:
        pct = -1.0
    if not pct >= 0:
        raise pytest.UsageError(
            f"--ploop-fail-on-regression takes a percentage >= 0 (such as 10), not {value!r}"
        )
    return pct


def _record(config: pytest.Config) -> RunRecord | None:
    if _here.in_worker():
        return None
    session_plugin = config.pluginmanager.get_plugin(SESSION_PLUGIN)
    record: RunRecord | None = getattr(session_plugin, "record", None)
    return record


def group_label(nodeids: Sequence[str]) -> str:
    """A task's name: its test's node id, or what a group's tests share and how many."""
    if len(nodeids) == 1:
        return nodeids[0]
    split = [n.split("::") for n in nodeids]
    shared: list[str] = []
    for parts in zip(*split, strict=False):
        if any(p != parts[0] for p in parts):
            break
        shared.append(parts[0])
    scope = "::".join(shared) or nodeids[0] + " ..."
    return f"{scope} ({len(nodeids)} tests)"


def _task_groups(session: pytest.Session) -> list[tuple[int, ...]]:
    """The positions in ``session.items`` of each task's tests."""
    session_plugin = session.config.pluginmanager.get_plugin(SESSION_PLUGIN)
    groups: list[tuple[int, ...]] | None = getattr(session_plugin, "task_groups", None)
    if groups is None:
        from .._testing._session import make_groups

        dist = getattr(getattr(session_plugin, "settings", None), "dist", "load")
        groups = make_groups(session.items, dist)
    return groups


def task_labels(session: pytest.Session) -> dict[int, str]:
    """Task index -> label for the session plugin's run."""
    items = session.items
    return {
        t: group_label([items[i].nodeid for i in g]) for t, g in enumerate(_task_groups(session))
    }


# How bad each outcome of a test is: a task (a group of tests) shows its worst.
_RANK = {"skipped": 0, "xfailed": 1, "passed": 2, "failed": 3, "error": 4, "crashed": 5,
         "timed_out": 5}  # fmt: skip


def test_outcome(report: pytest.TestReport) -> str | None:
    """What ``report`` says of its test: ``passed``, ``failed``, ``error`` (in set-up or
    tear-down), ``skipped`` or ``xfailed``, or ``crashed`` or ``timed_out`` (the failed
    report the main process made for a test whose worker died, as ``ploop_outcome``);
    ``None`` for a set-up or tear-down that passed."""
    ploop_outcome: str | None = getattr(report, "ploop_outcome", None)
    if ploop_outcome is not None:
        return ploop_outcome
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed" if report.failed else "passed"
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


class _OutcomeRecorder:
    """Each test's outcome, from the reports the main process replays as workers send them;
    and the cases' timings of each ``parametrize_parallel`` test."""

    def __init__(self, tests: dict[str, str], fanouts: dict[str, dict[str, Any]]) -> None:
        self.tests = tests
        self.fanouts = fanouts

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        cases = getattr(report, "ploop_cases", None)
        if report.when == "call" and isinstance(cases, dict):
            self.fanouts[report.nodeid] = cases
        outcome = test_outcome(report)
        if outcome is None:
            return
        old = self.tests.get(report.nodeid)
        if old is None or _RANK[outcome] > _RANK[old]:
            self.tests[report.nodeid] = outcome


def task_outcomes(session: pytest.Session, tests: dict[str, str]) -> dict[int, str]:
    """Task index -> the worst outcome of its tests (for the tasks that have any)."""
    items = session.items
    out = {}
    for t, group in enumerate(_task_groups(session)):
        seen = [tests[items[i].nodeid] for i in group if items[i].nodeid in tests]
        if seen:
            out[t] = max(seen, key=_RANK.__getitem__)
    return out


def tests_per_outcome(session: pytest.Session, tests: dict[str, str]) -> dict[str, int]:
    """Tests per outcome, each test once, as pytest counts them: by what its reports said
    (``tests``: node id -> outcome), and as not run when it has none (the run stopped
    first, or the test's worker died before it)."""
    return dict(Counter(tests.get(item.nodeid, "not_run") for item in session.items))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    record = _record(config)
    if state is None or record is None:
        return
    from ._run import RunReport

    report = state.report = RunReport(
        record,
        task_labels(session),
        kind="pytest",
        outcomes=task_outcomes(session, state.tests),
        counts=tests_per_outcome(session, state.tests),
    )
    if state.old is not None:
        from ._compare import compare

        state.comparison = compare(state.old, report, state.threshold)
    _write(state, report)
    failed = state.errors or (state.comparison is not None and state.comparison.regressed)
    if failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.errors and config.pluginmanager.get_plugin("terminalreporter") is None:
        for line in state.errors:  # no ploop section to show them in (-p no:terminal)
            print(line, file=sys.stderr)


def _write(state: _State, report: RunReport) -> None:
    """Write the reports and append the step summary. One that cannot be written is an
    error line, not a traceback: the tests ran, and pytest's summary of them still shows
    (the exit status becomes 1, as pytest's own when it cannot write ``--junitxml``)."""
    for path in state.paths:
        try:
            state.written.append(write_report(report, path, comparison=state.comparison))
        except OSError as exc:
            state.errors.append(
                f"ploop: error: cannot write the report {path}: {exc}: give --ploop-report "
                "a path in a folder that can be written"
            )
    summary = os.environ.get(STEP_SUMMARY_ENV)
    if summary:
        from ._markdown import render_markdown

        text = render_markdown(report, state.comparison) + "\n"
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            state.errors.append(
                f"ploop: error: cannot append the summary to {STEP_SUMMARY_ENV}={summary}: "
                f"{exc}: set it to a file that can be written, or unset it"
            )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> Any:
    # Written after the other sections and the short test summary, as the main process's
    # session plugin writes its own ploop lines (tests not run) after this, last of all.
    result = yield
    state = config.stash.get(_STATE, None)
    if state is None or state.report is None:
        return result
    from ._terminal import fanout_lines, terminal_lines

    tr = terminalreporter
    tr.write_sep("-", "ploop")
    verbosity = int(config.getoption("verbose") or 0)
    for line in terminal_lines(state.report, verbosity, state.comparison):
        tr.write_line(line)
    if verbosity >= 1:
        for line in fanout_lines(state.fanouts):
            tr.write_line(line)
    if state.note:
        tr.write_line(state.note)
    for path in state.written:
        tr.write_line(f"ploop: wrote {path}")
    for line in state.errors:
        tr.write_line(line, red=True)
    c = state.comparison
    if c is not None and c.regressed:
        tr.write_line(f"ploop: FAILED: a regression beyond {c.threshold_pct:g}%", red=True)
    return result
