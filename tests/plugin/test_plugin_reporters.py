"""Reporting plugins under ``--ploop-workers``: what they write is what a serial run makes
them write. Workers are forked after the main process configured, so they inherit plugin
objects that xdist's workers never have; those that only report are left to the main
process, which replays every test's reports to them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from plugin_support import INI, Project, outcomes

MIXED = """
import warnings

import pytest


def test_pass():
    pass


def test_fail():
    assert 1 == 2


@pytest.mark.parametrize("i", range(3))
def test_param(i):
    assert i != 1


def test_warns():
    warnings.warn(UserWarning("careful"))


def test_skip():
    pytest.skip("not here")
"""

MIXED_OUTCOMES = {"passed": 4, "failed": 2, "skipped": 1, "warnings": 1}
MODES = {"serial": (), "ploop": ("--ploop-workers=2",)}


def _load(project: Project, plugin: str) -> None:
    """Let the inner runs load ``plugin`` (the project's ini keeps it out)."""
    assert f" -p no:{plugin}" in INI
    project.pytester.makeini(INI.replace(f" -p no:{plugin}", ""))


def test_report_log_has_each_record_once(project: Project) -> None:
    """Before: every test's records and every warning twice (the worker's inherited copy of
    pytest-reportlog's plugin wrote them, then the main process's)."""
    pytest.importorskip("pytest_reportlog")
    _load(project, "pytest_reportlog")
    project.pytester.makepyfile(test_mixed=MIXED)
    records: dict[str, Counter[tuple[str, ...]]] = {}
    for mode, args in MODES.items():
        path = project.path / f"{mode}.jsonl"
        result = project.run(f"--report-log={path}", *args)
        assert outcomes(result) == MIXED_OUTCOMES
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        records[mode] = Counter(
            (r["$report_type"], r.get("nodeid", ""), r.get("when", ""), r.get("outcome", ""))
            for r in lines
            if r["$report_type"] in ("TestReport", "WarningMessage")
        )
    assert records["ploop"] == records["serial"]
    tests = [key for key in records["serial"] if key[0] == "TestReport"]
    assert len(tests) == 7 * 3  # setup, call and teardown of each
    assert set(records["serial"].values()) == {1}
    assert records["serial"][("WarningMessage", "", "runtest", "")] == 1


def test_github_annotations_are_printed_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: each ``::error`` and ``::warning`` line twice."""
    pytest.importorskip("pytest_github_actions_annotate_failures")
    _load(project, "pytest_github_actions_annotate_failures")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    project.pytester.makepyfile(test_mixed=MIXED)
    annotations = {}
    for mode, args in MODES.items():
        result = project.run(*args)
        assert outcomes(result) == MIXED_OUTCOMES
        annotations[mode] = Counter(  # printed to stderr; by a worker, to its stderr
            line.split("::", 2)[1]
            for line in result.outlines + result.errlines
            if line.startswith(("::error ", "::warning "))
        )
    assert annotations["ploop"] == annotations["serial"]
    assert sorted(annotations["serial"].elements()) == [
        "error file=test_mixed.py,line=11",
        "error file=test_mixed.py,line=16",
        "warning file=test_mixed.py,line=20",
    ]


TEARDOWN_CONFTEST = """
import pytest


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown boom")
"""

TEARDOWN_TEST = """
def test_it(broken_teardown):
    pass
"""


def test_a_teardown_errors_traceback_is_a_serial_runs(project: Project) -> None:
    """Before: with the fixture in a conftest, the traceback began in ploop's own teardown
    wrapper (``result = yield``)."""
    project.pytester.makeconftest(TEARDOWN_CONFTEST)
    project.pytester.makepyfile(test_teardown=TEARDOWN_TEST)
    for tb in ("auto", "native"):
        sections = {}
        for mode, args in MODES.items():
            result = project.run(f"--tb={tb}", *args)
            assert outcomes(result) == {"passed": 1, "errors": 1}
            text = result.stdout.str()
            start, end = text.index("ERROR at teardown"), text.index("short test summary")
            sections[mode] = text[start:end]
        assert sections["ploop"] == sections["serial"], tb
        assert 'raise RuntimeError("teardown boom")' in sections["serial"]
        assert "pytest_ploop" not in sections["ploop"]


COLOURED = """
def test_lists():
    assert [1, 2, 3] == [1, 2, 4]
"""


def test_an_assertions_explanation_is_coloured_as_in_a_serial_run(project: Project) -> None:
    """Before: with --color=yes, the explanation (made in the worker, whose terminal is a
    file) had no colour in its diff."""
    project.pytester.makepyfile(test_coloured=COLOURED)
    failures = {}
    for mode, args in MODES.items():
        result = project.run("--color=yes", *args)
        text = result.stdout.str()
        start = text.index("FAILURES")
        failures[mode] = text[start : text.index("AssertionError", start)]
    assert failures["ploop"] == failures["serial"]
    # The explanation's numbers are highlighted, as the source line's are.
    assert "diff: \x1b[0m\x1b[94m3" in failures["serial"]


STAND_IN = """
class StandIn:
    # pytest-testmon deselects with an object that is not a test item and has no node id.
    def __init__(self, config):
        self.config = config


def pytest_collection_modifyitems(config, items):
    config.hook.pytest_deselected(items=[StandIn(config)])
"""


@pytest.mark.parametrize("args", [(), ("--ploop-workers=2",)], ids=["serial", "ploop"])
def test_a_deselected_item_without_a_node_id_is_no_error(
    project: Project, args: tuple[str, ...]
) -> None:
    """Before: INTERNALERROR (ploop's duration recorder read its ``nodeid``), in any run with
    ploop installed."""
    project.pytester.makeconftest(STAND_IN)
    project.pytester.makepyfile(test_teardown="def test_it():\n    pass\n")
    result = project.run(*args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert outcomes(result) == {"passed": 1, "deselected": 1}  # as testmon reports it


ALLURE_TESTS = """
import pytest

import ploophelp


@pytest.mark.parametrize("i", range(4))
def test_each(i):
    ploophelp.log(i)
"""


def test_allure_labels_each_test_with_the_process_that_ran_it(project: Project) -> None:
    """Before: every test carried the main process's pid, read when allure-pytest configured,
    and Allure's timeline drew tests that ran at once on top of each other."""
    pytest.importorskip("allure_pytest")
    _load(project, "allure_pytest")
    project.pytester.makepyfile(test_allure=ALLURE_TESTS)
    results = project.path / "allure-results"
    result = project.run(f"--alluredir={results}", "--ploop-workers=2")
    assert outcomes(result) == {"passed": 4}
    ran_in = {e.fields[0]: e.pid for e in project.events()}
    labels = {}
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text())
        thread = next(x["value"] for x in data["labels"] if x["name"] == "thread")
        labels[data["parameters"][0]["value"]] = thread
    assert sorted(labels) == ["0", "1", "2", "3"]
    assert labels == {i: f"{pid}-MainThread" for i, pid in ran_in.items()}


TESTMON_CONFTEST = """
import os

import pytest

MAIN = os.getpid()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    data = getattr(config, "testmon_data", None)
    if data is None:
        return
    save = data.save_test_execution_file_fps

    def logged(fingerprints, *args, **kwargs):
        with open("saves.log", "a") as file:
            file.write(f"{'main' if os.getpid() == MAIN else 'worker'} {len(fingerprints)}\\n")
        return save(fingerprints, *args, **kwargs)

    data.save_test_execution_file_fps = logged
"""

TESTMON_TESTS = """
import pytest

import calc


@pytest.mark.parametrize("i", range(4))
def test_add(i):
    assert calc.add(i, 1) == i + 1
"""


def test_testmon_fingerprints_are_saved_by_the_main_process(project: Project) -> None:
    """Before: each worker saved its tests' fingerprints to testmon's database through the
    main process's SQLite connection, which it inherited in the fork, and the main process
    saved them again."""
    pytest.importorskip("testmon")
    _load(project, "pytest-testmon")
    project.pytester.makeconftest(TESTMON_CONFTEST)
    project.pytester.makepyfile(calc="def add(a, b):\n    return a + b\n")
    project.pytester.makepyfile(test_calc=TESTMON_TESTS)
    saves = {}
    for mode, args in MODES.items():
        (project.path / ".testmondata").unlink(missing_ok=True)
        (project.path / "saves.log").unlink(missing_ok=True)
        first = project.run("--testmon", *args, cache=True)
        assert outcomes(first) == {"passed": 4}
        log = (project.path / "saves.log").read_text().split()
        saves[mode] = sorted(zip(log[::2], map(int, log[1::2]), strict=True))
        # What was saved is what testmon selects from: nothing changed, nothing runs.
        second = project.run("--testmon", *args, cache=True)
        assert second.ret == 0  # testmon's own exit code for "nothing to run"
        second.stdout.fnmatch_lines(["collected 0 items", "*no tests ran*"])
    # The main process saves them all, in batches of the tests' teardowns as they come.
    assert {who for who, _ in saves["ploop"]} == {who for who, _ in saves["serial"]} == {"main"}
    assert sum(n for _, n in saves["ploop"]) == sum(n for _, n in saves["serial"])


INTERACT_CONFTEST = """
def pytest_exception_interact(node, call, report):
    # As pytest-ruff does: its own message, put in after the report was logged.
    report.longrepr = "the plugin's own message"
"""


def test_a_report_changed_after_it_was_logged_reads_as_in_a_serial_run(
    project: Project,
) -> None:
    """Before: the failure showed pytest's traceback, as under xdist: the worker had sent
    the report when ``pytest_runtest_logreport`` saw it, before the change."""
    project.pytester.makeconftest(INTERACT_CONFTEST)
    project.pytester.makepyfile(test_fails="def test_fails():\n    assert 0\n")
    for args in MODES.values():
        result = project.run(*args)
        assert outcomes(result) == {"failed": 1}
        text = result.stdout.str()
        failure = text[text.index("_ test_fails _") : text.index("short test summary")]
        assert "the plugin's own message" in failure
        assert "assert 0" not in failure


FEATURE = """\
Feature: Cucumbers
    Scenario: Eating
        Given there are 12 cucumbers
        When I eat 5 cucumbers
        Then I should have 7 cucumbers

    Scenario Outline: Eating more
        Given there are <start> cucumbers
        When I eat <eat> cucumbers
        Then I should have <left> cucumbers

        Examples:
        | start | eat | left |
        |  12   |  5  |  7   |
        |  20   |  5  |  14  |
"""

STEPS = """
from pytest_bdd import given, parsers, scenarios, then, when

scenarios("cucumbers.feature")


@given(parsers.parse("there are {start:d} cucumbers"), target_fixture="cucumbers")
def cucumbers(start):
    return {"count": start}


@when(parsers.parse("I eat {eat:d} cucumbers"))
def eat(cucumbers, eat):
    cucumbers["count"] -= eat


@then(parsers.parse("I should have {left:d} cucumbers"))
def should_have(cucumbers, left):
    assert cucumbers["count"] == left
"""


def _cucumber_steps(path: Path) -> list[tuple[str, str, str, str]]:
    """Each step of each scenario: (scenario id, keyword, name, status), sorted."""
    steps = []
    for feature in json.loads(path.read_text()):
        for element in feature["elements"]:
            for step in element["steps"]:
                keyword, name = step["keyword"], step["name"]
                steps.append((element["id"], keyword, name, step["result"]["status"]))
    return sorted(steps)


def test_pytest_bdd_cucumber_report_is_a_serial_runs(project: Project) -> None:
    """Before: empty (``[]``), as under xdist: pytest-bdd keeps each report's scenario in a
    table keyed by the report object, which stayed in the worker."""
    pytest.importorskip("pytest_bdd")
    _load(project, "pytest-bdd")
    (project.path / "cucumbers.feature").write_text(FEATURE)
    project.pytester.makepyfile(test_cucumbers=STEPS)
    steps = {}
    for mode, args in MODES.items():
        path = project.path / f"{mode}.json"
        result = project.run(f"--cucumberjson={path}", *args)
        assert outcomes(result) == {"passed": 2, "failed": 1}
        steps[mode] = _cucumber_steps(path)
    assert steps["ploop"] == steps["serial"]
    assert len(steps["serial"]) == 9
    assert [s[3] for s in steps["serial"]].count("failed") == 1


SUBTESTS = """
import unittest


class Case(unittest.TestCase):
    def test_sub(self):
        with self.subTest(i=1):
            self.fail("the subtest fails")


def test_fixture(subtests):
    with subtests.test(msg="a"):
        pass


def test_after():
    pass
"""


def test_pytest_bdd_and_subtests(project: Project) -> None:
    """Before: with pytest-bdd loaded, each subtest's report (which is no dict key) failed
    its test with an internal error of ploop's."""
    pytest.importorskip("pytest_bdd")
    _load(project, "pytest-bdd")
    project.pytester.makepyfile(test_subtests=SUBTESTS)
    serial = project.run("-rA")
    for dist in ("load", "file"):
        parallel = project.run("-rA", "--ploop-workers=2", f"--ploop-dist={dist}")
        assert outcomes(parallel) == outcomes(serial)
        assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
        assert "internal error" not in parallel.stdout.str()
    assert outcomes(serial)["failed"] == 1
