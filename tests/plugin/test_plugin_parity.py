"""A ``--ploop-workers`` run reports what a serial run reports: outcomes, exit code, ``-r``
lines, junit XML, durations, warnings, captured output, plugins switched off."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from plugin_support import Project, junit_cases, outcomes, ploop_lines, short_summary

MIXED_CONFTEST = """
import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")
"""

MIXED_ALPHA = """
import warnings

import pytest


@pytest.fixture(scope="module")
def resource():
    return {"uses": 0}


def test_pass(resource):
    resource["uses"] += 1


def test_fail():
    print("output of the failing test")
    assert 1 == 2


def test_skip():
    pytest.skip("skipped on purpose")


@pytest.mark.skipif(True, reason="never here")
def test_skipif():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="maybe fixed")
def test_xpass():
    pass


@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpass_strict():
    pass


def test_error_in_setup(broken_setup):
    pass


def test_error_in_teardown(broken_teardown):
    pass


@pytest.mark.parametrize("n", range(6))
def test_param(n, resource):
    assert n != 4


def test_warns():
    warnings.warn(UserWarning("careful with that"))
"""

MIXED_BETA = """
import pytest


@pytest.fixture(scope="module")
def shared():
    return [1, 2, 3]


class TestGroup:
    @pytest.fixture(scope="class")
    @classmethod
    def value(cls):
        return 1

    def test_a(self, value, shared):
        assert value == 1

    def test_b(self, value):
        assert value == 2

    @pytest.mark.parametrize("k", ["x", "y", "z"])
    def test_c(self, k, shared):
        assert k in "xyz"


def test_last(shared):
    assert len(shared) == 3
"""

WORKERS = ("--ploop-workers=2", "--ploop-workers=auto")
VERDICT = re.compile(r"^test_\w+\.py::\S+ (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


@pytest.fixture
def mixed(project: Project) -> Project:
    project.pytester.makeconftest(MIXED_CONFTEST)
    project.pytester.makepyfile(test_alpha=MIXED_ALPHA, test_beta=MIXED_BETA)
    return project


def test_mixed_suite_outcomes_and_exit_code_match_serial(mixed: Project) -> None:
    serial = mixed.run("-rA")
    assert outcomes(serial) == {
        "failed": 4,  # test_fail, test_param[4], test_xpass_strict, TestGroup::test_b
        "passed": 13,
        "skipped": 2,
        "xfailed": 1,
        "xpassed": 1,
        "warnings": 1,
        "errors": 2,
    }
    assert serial.ret == pytest.ExitCode.TESTS_FAILED
    assert not ploop_lines(serial)
    for workers in WORKERS:
        parallel = mixed.run(workers, "-rA")
        assert outcomes(parallel) == outcomes(serial), workers
        assert parallel.ret == serial.ret
        # The -r lines, in collection order, exactly as the serial run prints them.
        assert short_summary(parallel) == short_summary(serial)
        assert len(short_summary(parallel)) == 23


def test_junitxml_matches_serial(mixed: Project) -> None:
    serial_xml = mixed.path / "serial.xml"
    parallel_xml = mixed.path / "parallel.xml"
    mixed.run(f"--junitxml={serial_xml}")
    mixed.run("--ploop-workers=2", f"--junitxml={parallel_xml}")
    serial, parallel = junit_cases(serial_xml), junit_cases(parallel_xml)
    assert sum(serial.values()) == 22
    assert parallel == serial
    # In the order of the serial run, not the order the tests finished in.
    assert junit_order(parallel_xml) == junit_order(serial_xml)


SUITE_PROPERTIES = """
import pytest


@pytest.fixture(scope="session", autouse=True)
def build(record_testsuite_property):
    record_testsuite_property("build", "1.2.3")


@pytest.mark.parametrize("i", range(6))
def test_each(i, record_testsuite_property):
    if i == 4:
        record_testsuite_property("seed", "4 & <5>")
"""


def test_testsuite_properties_are_those_of_a_serial_run(project: Project) -> None:
    """Before: none (as under xdist): they stayed in the workers' copies of the writer."""
    project.pytester.makepyfile(test_props=SUITE_PROPERTIES)
    props = {}
    for mode, args in {"serial": (), "ploop": ("--ploop-workers=2",)}.items():
        path = project.path / f"{mode}.xml"
        project.run(f"--junitxml={path}", *args).assert_outcomes(passed=6)
        props[mode] = sorted(
            (p.get("name"), p.get("value")) for p in ET.parse(path).getroot().iter("property")
        )
    # Each worker set the session fixture up: the property is still there once.
    assert props["ploop"] == props["serial"] == [("build", "1.2.3"), ("seed", "4 & <5>")]


XML_ATTRIBUTES = """
import pytest


@pytest.mark.parametrize("i", range(4))
def test_each(i, record_xml_attribute):
    record_xml_attribute("requirement", f"REQ-{i}")
    assert i != 3
"""


def test_a_tests_xml_attributes_are_those_of_a_serial_run(project: Project) -> None:
    """Before: none (as under xdist): a worker's copy of the writer dropped them with its
    copy of the test's case."""
    project.pytester.makepyfile(test_attrs=XML_ATTRIBUTES)
    attrs = {}
    for mode, args in {"serial": (), "ploop": ("--ploop-workers=2",)}.items():
        path = project.path / f"{mode}.xml"
        result = project.run(f"--junitxml={path}", "-o", "junit_family=xunit1", *args)
        result.assert_outcomes(passed=3, failed=1, warnings=4)
        attrs[mode] = sorted(
            (c.get("name"), c.get("requirement")) for c in ET.parse(path).getroot().iter("testcase")
        )
    assert attrs["ploop"] == attrs["serial"] == [(f"test_each[{i}]", f"REQ-{i}") for i in range(4)]


def junit_order(path: Path) -> list[tuple[str, str]]:
    return [
        (case.get("classname", ""), case.get("name", ""))
        for case in ET.parse(path).getroot().iter("testcase")
    ]


def test_verbose_lines_match_serial(mixed: Project) -> None:
    def verdicts(result: pytest.RunResult) -> list[str]:
        # "test_alpha.py::test_pass PASSED  [  5%]": the node id and its verdict.
        return sorted(m.group(0) for line in result.outlines if (m := VERDICT.match(line)))

    serial = mixed.run("-v")
    parallel = mixed.run("-v", "--ploop-workers=2")
    assert len(verdicts(serial)) == 23  # and the teardown error's line
    assert verdicts(parallel) == verdicts(serial)


def test_captured_stdout_of_a_failing_test_is_shown(mixed: Project) -> None:
    result = mixed.run("--ploop-workers=2", "-k", "test_fail")
    result.assert_outcomes(failed=1, deselected=21)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fail _*",
            "*assert 1 == 2",
            "*- Captured stdout call -*",
            "output of the failing test",
        ]
    )


def test_warnings_summary_and_w_error(mixed: Project) -> None:
    parallel = mixed.run("--ploop-workers=2", "-k", "test_warns")
    parallel.assert_outcomes(passed=1, deselected=21, warnings=1)
    parallel.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "test_alpha.py::test_warns",
            "*UserWarning: careful with that",
        ]
    )
    for extra in ((), ("--ploop-workers=2",)):
        result = mixed.run(*extra, "-W", "error::UserWarning", "-k", "test_warns")
        result.assert_outcomes(failed=1, deselected=21)
        result.stdout.fnmatch_lines(["FAILED test_alpha.py::test_warns - UserWarning: careful*"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED


DURATIONS = """
import time

import pytest


@pytest.mark.parametrize("seconds", [0.0, 0.15, 0.0, 0.3, 0.0, 0.45, 0.0])
def test_sleep(seconds):
    time.sleep(seconds)
"""


def test_durations_list_the_same_slowest_tests(project: Project) -> None:
    project.pytester.makepyfile(test_durations=DURATIONS)

    def slowest(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "slowest 3 durations" in line)
        return [line.split()[-1] for line in lines[start + 1 : start + 4]]

    serial = project.run("--durations=3")
    parallel = project.run("--durations=3", "--ploop-workers=2")
    expected = [f"test_durations.py::test_sleep[{s}]" for s in ("0.45", "0.3", "0.15")]
    assert slowest(serial) == expected
    assert slowest(parallel) == expected
    for line in parallel.outlines:
        if line.endswith(tuple(expected)):
            assert " call " in line


def test_plugins_switched_off_stay_off(mixed: Project) -> None:
    serial = mixed.run("-p", "no:terminal")
    parallel = mixed.run("-p", "no:terminal", "--ploop-workers=2")
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    assert parallel.outlines == serial.outlines == []

    quiet = mixed.run("-p", "no:warnings", "--ploop-workers=2")
    assert "warnings summary" not in quiet.stdout.str()
    assert "warnings" not in outcomes(quiet)


REPORT_HOOKS_CONFTEST = """
import os

import pytest
import ploophelp
from _pytest.reports import TestReport


@pytest.hookimpl(tryfirst=True)
def pytest_report_to_serializable(config, report):
    if isinstance(report, TestReport):
        data = report._to_json()
        data["$report_type"] = "TestReport"
        data["mine"] = "serialized in " + ploophelp.worker()
        return data


@pytest.hookimpl(tryfirst=True)
def pytest_report_from_serializable(config, data):
    if "mine" in data:
        mine = data.pop("mine")
        report = TestReport._from_json(data)
        report.mine = mine
        return report


def pytest_runtest_logreport(report):
    if report.when == "call" and ploophelp.worker() == "main":
        ploophelp.log(report.nodeid, getattr(report, "mine", "-"))
"""


def test_a_plugins_report_serialization_hooks_are_honoured(project: Project) -> None:
    # pytest's own serialization is called directly when it is the only one; a plugin that
    # implements the hooks (to carry data of its own across) gets them called.
    project.pytester.makeconftest(REPORT_HOOKS_CONFTEST)
    project.pytester.makepyfile(test_two="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    project.run("--ploop-workers=2").assert_outcomes(passed=2)
    got = sorted(e.fields for e in project.events())
    assert [nodeid for nodeid, _ in got] == ["test_two.py::test_a", "test_two.py::test_b"]
    assert {mine for _, mine in got} <= {"serialized in w0", "serialized in w1"}


READS_THE_REPORTER = """
def test_writes_through_the_reporter(request):
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line("a line from a test")
    request.config.get_terminal_writer().write("and through the writer\\n")
    assert reporter.config is request.config and reporter.verbosity == 0
"""


def test_a_test_using_the_terminal_reporter_in_a_worker(project: Project) -> None:
    # Workers leave the reporting to the main process (the reporter's hooks do not run
    # there); what plugins and tests read of the reporter is still there.
    project.pytester.makepyfile(test_reporter=READS_THE_REPORTER)
    project.run("--ploop-workers=2").assert_outcomes(passed=1)


TEXT_FAILURES = '''
import threading

import pytest
from _pytest._code.code import TerminalRepr


def add(a, b):
    """
    >>> add(1, 2)
    4
    """
    return a + b


def test_missing_fixture(no_such_fixture):
    pass


class LockedRepr(TerminalRepr):
    def __init__(self):
        self.lock = threading.Lock()  # cannot be pickled

    def toterminal(self, tw):
        tw.line("a failure of its own kind")


class Item(pytest.Item):
    def runtest(self):
        raise ValueError("own item failed")

    def repr_failure(self, excinfo):
        return LockedRepr()
'''

OWN_ITEMS_CONFTEST = """
import pytest


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".own":
        return OwnFile.from_parent(parent, path=file_path)


class OwnFile(pytest.File):
    def collect(self):
        from test_text import Item

        yield Item.from_parent(self, name="own")
"""


def test_failures_that_pytest_sends_as_text_read_as_in_a_serial_run(project: Project) -> None:
    # pytest serializes a doctest's failure and a missing fixture's error as their text, and
    # prints a text's whole first line in the short summary, which it does not for the
    # objects: with -vv (or on CI) the whole text. The objects travel pickled.
    project.pytester.makepyfile(test_text=TEXT_FAILURES)
    project.pytester.makeconftest(OWN_ITEMS_CONFTEST)
    project.pytester.makefile(".own", item="")
    args = ("--doctest-modules", "-rA", "-vv", "-p", "no:randomly")
    serial = project.run(*args)
    parallel = project.run(*args, "--ploop-workers=2")
    assert outcomes(serial) == {"failed": 2, "errors": 1}
    assert outcomes(parallel) == outcomes(serial)
    assert sorted(short_summary(parallel)) == sorted(short_summary(serial))
    assert "ERROR test_text.py::test_missing_fixture" in short_summary(serial)
    assert "FAILED test_text.py::test_text.add" in short_summary(serial)

    def sections(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "= ERRORS =" in line)
        end = next(i for i, line in enumerate(lines) if "short test summary info" in line)
        return lines[start:end]

    # The failure that cannot be pickled comes as pytest sends it, its text; the others as
    # in the serial run, line for line.
    assert sections(parallel) == sections(serial)


SUBTESTS = """
import unittest


class T(unittest.TestCase):
    def test_sub(self):
        for i in range(3):
            with self.subTest(i=i, name="x"):
                self.assertTrue(i != 1)


def test_fixture(subtests):
    for i in range(2):
        with subtests.test(msg="m", i=i):
            assert i == 0
"""


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="subtests are pytest 9's")
def test_subtests_read_and_count_as_in_a_serial_run(project: Project) -> None:
    # pytest writes a subtest's values as their repr when it makes the report, and again
    # when it reads one back from plain data: (i=1) became (i='1'). And it fails a test
    # whose subtests (of the fixture) failed from a count kept where they ran: the worker.
    project.pytester.makepyfile(test_sub=SUBTESTS)
    serial = project.run("-rA", "-p", "no:randomly")
    parallel = project.run("-rA", "-p", "no:randomly", "--ploop-workers=2")
    assert outcomes(serial) == {"failed": 3, "passed": 1}
    assert outcomes(parallel) == outcomes(serial)

    def summary(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "short test summary info" in line)
        return sorted(line for line in lines[start + 1 :] if "test_sub.py" in line)

    assert summary(serial) == [
        "FAILED test_sub.py::test_fixture - contains 1 failed subtest",
        "PASSED test_sub.py::T::test_sub",
        "SUBFAILED(i=1, name='x') test_sub.py::T::test_sub - AssertionError: False is ...",
        "SUBFAILED[m] (i=1) test_sub.py::test_fixture - assert 1 == 0",
    ]
    assert summary(parallel) == summary(serial)
    assert "i='1'" not in parallel.stdout.str()


WARNING_WITH_A_SOURCE = """
import gc


async def coro():
    pass


def test_never_awaited():
    coro()
    gc.collect()
"""


def test_a_warning_about_an_object_reads_as_in_a_serial_run(project: Project) -> None:
    # "coroutine ... was never awaited" and ResourceWarnings carry the object they are about;
    # pytest's summary then says how to find where it was allocated. The object stays in the
    # worker; whether tracemalloc knew it travels.
    project.pytester.makepyfile(test_source=WARNING_WITH_A_SOURCE)

    def summary(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "warnings summary" in line)
        end = next(i for i, line in enumerate(lines) if line.startswith("-- Docs:"))
        return lines[start:end]

    serial = summary(project.run())
    assert any(line.strip().startswith("Enable tracemalloc") for line in serial)
    assert summary(project.run("--ploop-workers=2")) == serial
