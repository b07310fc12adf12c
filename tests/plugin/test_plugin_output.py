"""What reaches the terminal from the workers: ``-s`` output line by line with the worker's
id; coverage (pytest-cov) measured in the workers, the same as a serial run's."""

from __future__ import annotations

import re

import pytest
from plugin_support import INI, Project, outcomes

PRINTS = """
import sys

import pytest


@pytest.mark.parametrize("i", range(6))
def test_prints(i):
    print(f"out line of {i}")
    sys.stderr.write(f"err line of {i}\\n")
"""


def test_dash_s_output_is_prefixed_with_the_worker_id(project: Project) -> None:
    project.pytester.makepyfile(test_prints=PRINTS)
    result = project.run("--ploop-workers=2", "-s")
    assert outcomes(result) == {"passed": 6}
    # Each on the stream it was written to (before: stderr went to stdout).
    streams = {"out": result.stdout.str(), "err": result.stderr.str()}
    for i in range(6):
        for stream, text in streams.items():
            found = re.findall(rf"\[(w[01])\] {stream} line of {i}$", text, re.M)
            assert len(found) == 1, (stream, i, text)
    assert "err line" not in streams["out"] and "out line" not in streams["err"]
    assert set(re.findall(r"\[(w\d)\] out line", streams["out"])) == {"w0", "w1"}


PACKAGE = """
def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


def never_called():
    return "not covered"
"""

COVERED = """
import pytest

import covered


@pytest.mark.parametrize("x", [-2, -1, 1, 2])
def test_sign(x):
    assert covered.sign(x) in (-1, 1)
"""


def test_coverage_of_a_parallel_run_equals_serial(project: Project) -> None:
    project.pytester.makeini(INI.replace(" -p no:cov", ""))
    project.pytester.makepyfile(covered=PACKAGE, test_covered=COVERED)

    def report(*args: str) -> list[str]:
        result = project.run("--cov=covered", "--cov-report=term-missing", *args)
        assert outcomes(result) == {"passed": 4}
        return [line for line in result.outlines if line.startswith(("covered.py", "TOTAL"))]

    serial = report()
    # sign()'s branches for x > 0 and x < 0 ran only in the workers: lost worker data would
    # show them as missing.
    assert any(re.search(r"covered\.py\s+8\s+2\s+75%\s+6, 10$", line) for line in serial), serial
    assert report("--ploop-workers=2") == serial
    assert not list(project.path.glob(".coverage.*"))  # the workers' files were combined


KEPT_STREAMS = """
import logging
import sys
from sys import stderr, stdout

import pytest

HANDLER = logging.StreamHandler()  # holds sys.stderr as it is at import
LOG = logging.getLogger("kept")
LOG.addHandler(HANDLER)
LOG.propagate = False


@pytest.mark.parametrize("i", range(4))
def test_streams_kept_from_import(i):
    assert sys.stdout is stdout and sys.stderr is stderr
    stdout.write(f"stdout kept {i}\\n")
    stderr.write(f"stderr kept {i}\\n")
    LOG.warning("logged %d", i)
    assert i % 2 == 0
"""


@pytest.mark.parametrize("capture", ["fd", "sys", "tee-sys"])
def test_streams_kept_since_import_are_the_tests_capture(project: Project, capture: str) -> None:
    # In a serial run sys.stdout is one object for the whole session: what a module kept of
    # it at import (collection) is the capture each test reads. So in a worker.
    project.pytester.makepyfile(test_kept=KEPT_STREAMS)
    serial = project.run(f"--capture={capture}", "-p", "no:randomly")
    parallel = project.run(f"--capture={capture}", "-p", "no:randomly", "--ploop-workers=2")
    assert outcomes(serial) == {"passed": 2, "failed": 2}
    assert outcomes(parallel) == outcomes(serial)

    def counts(result: pytest.RunResult) -> list[int]:
        # (tee-sys also writes the output as it comes, among the progress characters)
        text = result.stdout.str() + result.stderr.str()
        return [
            text.count(f"{what} {i}")
            for i in range(4)
            for what in ("stdout kept", "stderr kept", "logged")
        ]

    assert counts(parallel) == counts(serial)
    assert all(counts(parallel)[3:6])  # test 1 failed: its output is shown
    text = parallel.stdout.str() + parallel.stderr.str()
    assert "closed file" not in text and "Logging error" not in text


LIVE_LOG_CONFTEST = """
import logging


def pytest_runtest_logreport(report):
    if report.when == "call":
        logging.getLogger("hook").info("reported %s: %s", report.nodeid, report.outcome)


def pytest_sessionfinish(session):
    logging.getLogger("hook").info("session finished")
"""

LIVE_LOG_ALPHA = """
import logging

import pytest

log = logging.getLogger("alpha")


class Unpicklable:
    def __reduce__(self):
        raise TypeError("not picklable")

    def __repr__(self):
        return "<unpicklable>"


@pytest.fixture
def resource():
    log.info("setting up")
    yield 1
    log.warning("tearing down")


def test_phases(resource):
    log.info("running with %s", resource)


def test_fails():
    log.error("about to fail: %d", 2)
    assert 0


def test_silent():
    pass


def test_exception():
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("caught it")


def test_unpicklable_argument_and_extra():
    log.info("argument %s", Unpicklable(), extra={"odd": Unpicklable()})


def test_below_the_level():
    log.debug("not shown")
"""

LIVE_LOG_BETA = """
import logging

import pytest

log = logging.getLogger("beta")


@pytest.fixture(scope="module")
def shared():
    log.info("module fixture up")
    yield
    log.info("module fixture down")


@pytest.mark.parametrize("n", range(4))
def test_numbered(shared, n):
    log.info("number %d", n)
"""

TEST_LINE = re.compile(r"^test_\w+\.py::\S+ ")


def live_log_blocks(result: pytest.RunResult) -> tuple[list[str], list[str]]:
    """The run's output cut into one block of lines per test (from its ``path::name`` line
    to the next test's; sorted, as workers finish tests in their own order; the progress
    percentages and the blank line before the next test left out), and what follows the
    last test up to the short summary's line (ploop's own summary comes after it)."""
    lines = [re.sub(r"\[\s*\d+%\]", "[%]", line) for line in result.outlines]
    start = next(i for i, line in enumerate(lines) if TEST_LINE.match(line))
    end = next(
        i
        for i, line in enumerate(lines)
        if i > start and ("live log sessionfinish" in line or line.startswith("="))
    )
    blocks: list[list[str]] = []
    for line in lines[start:end]:
        if TEST_LINE.match(line):
            blocks.append([])
        blocks[-1].append(line)
    summary = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    tail = lines[end : summary + 2]  # the sessionfinish section, the failures, the summary
    return sorted("\n".join(block).rstrip("\n") for block in blocks), tail


@pytest.mark.parametrize("flags", [(), ("-s",), ("--log-cli-level=WARNING",)])
def test_live_logging_prints_what_a_serial_run_prints(
    project: Project, flags: tuple[str, ...]
) -> None:
    """Before: nothing of the tests' live logging (as under xdist)."""
    project.pytester.makeini(INI + "log_cli = true\nlog_cli_level = INFO\n")
    project.pytester.makeconftest(LIVE_LOG_CONFTEST)
    project.pytester.makepyfile(test_alpha=LIVE_LOG_ALPHA, test_beta=LIVE_LOG_BETA)
    serial = project.run("-p", "no:randomly", *flags)
    parallel = project.run("-p", "no:randomly", "--ploop-workers=2", "--ploop-dist=file", *flags)
    assert outcomes(serial) == outcomes(parallel) == {"passed": 9, "failed": 1}
    blocks, tail = live_log_blocks(parallel)
    assert (blocks, tail) == live_log_blocks(serial)
    text = "\n".join(blocks)
    warnings_only = flags == ("--log-cli-level=WARNING",)
    assert set(re.findall(r"live log (\w+)", text)) == (
        {"call", "teardown"} if warnings_only else {"setup", "call", "teardown", "logreport"}
    )
    if not warnings_only:
        assert text.count("reported test_") == 10  # once each, though both processes hook it
        for expected in (
            "setting up",
            "argument <unpicklable>",
            "module fixture down",
        ):
            assert expected in text
    for expected in ("tearing down", "about to fail: 2", "ZeroDivisionError: division by zero"):
        assert expected in text
    assert "not shown" not in text
    assert any("session finished" in line for line in tail) != warnings_only


def test_the_log_file_gets_each_record_once(project: Project) -> None:
    """Before: twice each record that a ``pytest_runtest_logreport`` hook logged (the
    worker's call of the hook and the main process's, when it replays the test)."""
    project.pytester.makeconftest(LIVE_LOG_CONFTEST)
    project.pytester.makepyfile(test_alpha=LIVE_LOG_ALPHA, test_beta=LIVE_LOG_BETA)
    records = {}
    for mode, args in {"serial": (), "ploop": ("--ploop-workers=2", "--ploop-dist=file")}.items():
        path = project.path / f"{mode}.log"
        result = project.run(f"--log-file={path}", "--log-file-level=INFO", *args)
        assert outcomes(result) == {"passed": 9, "failed": 1}
        # "INFO     alpha:test_alpha.py:18 setting up" (pytest's default format: no time)
        records[mode] = sorted(path.read_text().splitlines())
    assert records["ploop"] == records["serial"]
    assert sum("reported test_" in line for line in records["ploop"]) == 10
    assert sum("session finished" in line for line in records["ploop"]) == 1
    assert len(records["ploop"]) > 20


LIVE_LOG_CRASH = """
import logging
import os

log = logging.getLogger("crash")


def test_fine():
    log.info("a fine test")


def test_crashes():
    log.info("about to exit")
    os._exit(3)
"""


def test_a_crashed_tests_report_ends_with_its_live_log(project: Project) -> None:
    """A serial run would have printed these records before it died; the crash report shows
    them (the worker's terminal file still gets them)."""
    project.pytester.makepyfile(test_crash=LIVE_LOG_CRASH)
    result = project.run("--ploop-workers=2", "--log-cli-level=INFO")
    assert outcomes(result) == {"passed": 1, "failed": 1}
    text = result.stdout.str()
    report = text[text.index("_ test_crashes _") : text.index("short test summary info")]
    assert "exited with code 3" in report
    assert re.search(
        r"last output on the terminal:\n\n-+ live log call -+\nINFO +crash:test_crash.py:\d+ "
        r"about to exit",
        report,
    ), report
    # The test that passed: printed once, by the main process.
    assert text.count("a fine test") == 1


ODD_LOGS_CONFTEST = """
import logging

import pytest

STATE = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    # Before pytest_runtest_logstart: under the phase the run is in (the test before's).
    logging.getLogger("odd").warning("protocol of %s", item.name)
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid):
    # A thread of the test logs while this hook runs (in the process that ran the test).
    thread = STATE.pop("thread", None)
    if thread is not None:
        STATE["go"].set()
        thread.join()
"""

ODD_LOGS = """
import logging
import os
import threading

import pytest

from conftest import STATE

log = logging.getLogger("odd")


class Thing:
    def __init__(self):
        self.lock = threading.Lock()  # does not pickle

    def __str__(self):
        return "str of thing"


@pytest.fixture
def resource():
    log.info("fixture up")
    yield
    log.info("fixture down")


def test_subtests(subtests):
    for i in range(3):
        with subtests.test(i=i):
            log.warning("inside subtest %d", i)
            assert i != 1
    log.warning("after the subtests")


@pytest.mark.flaky(reruns=1)
def test_rerun(resource, tmp_path_factory):
    marker = tmp_path_factory.getbasetemp() / "tried"
    log.warning("try %s", "again" if marker.exists() else "first")
    if not marker.exists():
        marker.touch()
        raise AssertionError("the first try fails")


def test_bad_arguments():
    log.warning("two placeholders %s %s", "one")


def test_thread_logs_in_logfinish():
    go = threading.Event()

    def later():
        go.wait()
        log.warning("from a thread while pytest is in logfinish")

    thread = threading.Thread(target=later)
    thread.start()
    STATE["go"], STATE["thread"] = go, thread
    log.info("in the test")


def test_extra():
    log.warning("with an extra", extra={"thing": Thing()})
"""


def _odd_lines(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("collected"))
    end = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    return [re.sub(r" at 0x[0-9a-f]+|\[\s*\d+%\]", "", line).rstrip() for line in lines[start:end]]


def test_live_logging_of_subtests_reruns_threads_and_odd_records(project: Project) -> None:
    """Before, under --ploop-workers: the records after a subtest's report, another
    thread's records during a pytest_runtest_log* hook, and a rerun's test line were
    missing; ploop's own lock records were printed (DEBUG); a message whose arguments do not
    fit failed through ploop's frames; an extra that does not pickle was shown by repr();
    a record logged before a test's logstart had a "live log collection" heading."""
    pytest.importorskip("pytest_rerunfailures")
    project.pytester.makeini(INI.replace(" -p no:rerunfailures", ""))
    project.pytester.makeconftest(ODD_LOGS_CONFTEST)
    project.pytester.makepyfile(test_odd=ODD_LOGS)
    flags = ("-p", "no:randomly", "--log-cli-level=DEBUG")
    serial = project.run(*flags)
    parallel = project.run(*flags, "--ploop-workers=2", "--ploop-dist=file")
    assert outcomes(serial) == outcomes(parallel)
    assert outcomes(serial)["rerun"] == 1
    assert _odd_lines(parallel) == _odd_lines(serial)
    text = "\n".join(_odd_lines(serial))
    for expected in (
        "after the subtests",
        "try again",
        "from a thread while pytest is in logfinish",
        "not enough arguments for format string",
        "protocol of test_extra",
    ):
        assert expected in text
    assert "filelock" not in text
    extra = ("-k", "test_extra", "--log-cli-format=%(message)s: %(thing)s")
    for args in ((), ("--ploop-workers=2",)):
        project.run(*flags, *extra, *args).stdout.fnmatch_lines(["with an extra: str of thing"])


OWN_REPORTER_CONFTEST = """
import pytest
from _pytest.terminal import TerminalReporter


class OwnReporter(TerminalReporter):
    pass


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    # As pytest-sugar and pytest-relaxed do, after the logging plugin took pytest's reporter.
    standard = config.pluginmanager.getplugin("terminalreporter")
    config.pluginmanager.unregister(standard)
    config.pluginmanager.register(OwnReporter(config), "terminalreporter")
"""


def test_live_logging_through_a_plugins_own_reporter_is_printed_once(project: Project) -> None:
    """Before: each record twice, the worker's copy written to the real terminal through
    the reporter that the logging plugin had kept."""
    project.pytester.makeconftest(OWN_REPORTER_CONFTEST)
    project.pytester.makepyfile(test_alpha=LIVE_LOG_ALPHA)
    flags = ("-p", "no:randomly", "--log-cli-level=INFO")
    serial = project.run(*flags)
    parallel = project.run(*flags, "--ploop-workers=2")
    assert outcomes(parallel) == outcomes(serial) == {"passed": 5, "failed": 1}
    for result in (serial, parallel):
        text = result.stdout.str() + result.stderr.str()
        assert text.count("setting up") == 1
        assert text.count("running with 1") == 1
        assert "live log finish" not in text


SETUP_SHOW = """
import pytest


@pytest.fixture(scope="module")
def shared():
    yield 1


@pytest.fixture
def resource(shared):
    yield 2


def test_a(resource):
    pass


@pytest.mark.parametrize("i", [1, 2])
def test_b(shared, i):
    assert i == 1
"""

WRITES_IN_LOGREPORT = """
def pytest_runtest_logreport(report):
    if report.when == "call":
        import pytest

        config = pytest.ploop_config
        config.get_terminal_writer().line(f"reported {report.nodeid}")


def pytest_configure(config):
    import pytest

    pytest.ploop_config = config
"""


@pytest.mark.parametrize(
    "flags", [("--setup-show",), ("--setup-show", "-v"), ("--setup-only",), ("--setup-plan",)]
)
def test_setup_show_prints_what_a_serial_run_prints(
    project: Project, flags: tuple[str, ...]
) -> None:
    """Before: none of the SETUP and TEARDOWN lines (as under xdist): the workers wrote them
    to their own terminals. A line that a report hook writes is still written once."""
    project.pytester.makeconftest(WRITES_IN_LOGREPORT)
    project.pytester.makepyfile(test_fixtures=SETUP_SHOW)
    serial = project.run("-p", "no:randomly", *flags)
    # One module: one worker runs it, in order; each worker sets its own fixtures up.
    parallel = project.run("-p", "no:randomly", "--ploop-workers=2", "--ploop-dist=file", *flags)
    assert outcomes(parallel) == outcomes(serial)

    def shown(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "collected" in line)
        end = next(
            i
            for i, line in enumerate(lines)
            if i > start and (line.startswith("=") or re.match(r"-+ ploop -+$", line))
        )
        return [re.sub(r"\[\s*\d+%\]", "", line).rstrip() for line in lines[start:end]]

    assert shown(parallel) == shown(serial)
    text = "\n".join(shown(serial))
    assert "SETUP    M shared" in text and "TEARDOWN F resource" in text
    reported = [
        r.stdout.str().count("reported test_fixtures.py::test_b[1]") for r in (serial, parallel)
    ]
    assert reported[0] == reported[1]
