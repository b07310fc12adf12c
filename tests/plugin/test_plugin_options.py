"""Options: usage errors that name the fix, a serial run without workers, the ini setting
and ``PLOOP_WORKERS``, and the ``ploop:`` summary line of a parallel run."""

from __future__ import annotations

import os
import re

import pytest
from plugin_support import Project, ploop_lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ploop-workers=x"], "--ploop-workers='x'*whole number*'auto'*or 0*"),
        (["--ploop-workers=-1"], "--ploop-workers='-1'*whole number*'auto'*or 0*"),
        (["--ploop-workers=2", "--ploop-dist=nope"], "*--ploop-dist='nope'*load, scope, file*"),
        (["--ploop-workers=2", "--ploop-timeout=-1"], "*--ploop-timeout='-1'*at least 0*"),
        (["--ploop-workers=2", "--ploop-timeout=nan"], "*--ploop-timeout='nan'*at least 0*"),
        (["--ploop-workers=2", "--pdb"], "*--pdb*rerun without --ploop-workers*"),
        (["--ploop-workers=2", "--trace"], "*--trace*rerun without --ploop-workers*"),
        (["--ploop-workers=2", "-n", "2"], "*either -n (pytest-xdist) or --ploop-workers*"),
        (["-n", "2", "--ploop-workers=2"], "*either -n (pytest-xdist) or --ploop-workers*"),
    ],
)
def test_usage_errors_name_the_fix(project: Project, args: list[str], message: str) -> None:
    project.pytester.makepyfile("def test_never_runs(): assert False")
    result = project.run_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "test_never_runs" not in result.stdout.str()


def test_a_bad_workers_value_does_not_suggest_what_fails_too(project: Project) -> None:
    # The fix the message names must work: "-1" is refused, so is any advice naming a
    # value that is refused as well, or one that means something else here.
    project.pytester.makepyfile("def test_never_runs(): pass")
    result = project.run_inprocess("--ploop-workers=-1")
    (line,) = [line for line in result.errlines if line.startswith("ERROR:")]
    assert "workers=1 to run in this process" not in line
    assert "--ploop-workers=0" in line or "0 to run" in line


SERIAL = """
import os

import ploophelp


def test_where(worker_id):
    ploophelp.log(worker_id, os.getppid())
"""


@pytest.mark.parametrize("args", [[], ["--ploop-workers=0"]], ids=["unset", "zero"])
def test_without_workers_the_run_is_serial(project: Project, args: list[str]) -> None:
    project.pytester.makepyfile(test_serial=SERIAL)
    result = project.run(*args)
    result.assert_outcomes(passed=1)
    assert not ploop_lines(result)
    (event,) = project.events()
    assert (event.worker, event.fields[0]) == ("main", "master")
    assert int(event.fields[1]) == os.getpid()  # the test ran in the pytest process itself


WHO = """
import pytest
import ploophelp


@pytest.mark.parametrize("i", range(4))
def test_who(i):
    ploophelp.log(i)
"""


@pytest.mark.parametrize("how", ["option", "ini", "env"])
def test_workers_from_option_ini_or_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    project.pytester.makepyfile(test_who=WHO)
    args: list[str] = []
    if how == "option":
        args = ["--ploop-workers=2"]
    elif how == "ini":
        ini = project.path / "tox.ini"
        ini.write_text(ini.read_text() + "\nploop_workers = 2\n")
    else:
        monkeypatch.setenv("PLOOP_WORKERS", "2")
    result = project.run(*args)
    result.assert_outcomes(passed=4)
    assert {e.worker for e in project.events()} == {"w0", "w1"}
    assert ploop_lines(result)
    if how == "option":
        return
    # The command line wins: --ploop-workers=0 runs serially whatever the ini or env say.
    project.clear_events()
    serial = project.run("--ploop-workers=0")
    serial.assert_outcomes(passed=4)
    assert {e.worker for e in project.events()} == {"main"}
    assert not ploop_lines(serial)


# "ploop: 2 workers, 0.95s wall, 1.80s of tests -> 1.9x speedup (95% efficiency), ...": the
# worker count and the speedup are what this line promises; the rest may grow.
SUMMARY = re.compile(r"ploop: (\d+) workers, [\d.]+s wall, .*-> ([\d.]+)x speedup\b")


def test_summary_line_gives_workers_and_speedup(project: Project) -> None:
    project.pytester.makepyfile(
        test_sleepy="""
        import time

        import pytest


        @pytest.mark.parametrize("i", range(6))
        def test_sleepy(i):
            time.sleep(0.3)
        """
    )
    result = project.run("--ploop-workers=2")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*- ploop -*", "ploop: 2 workers, *"])
    (line,) = ploop_lines(result)
    match = SUMMARY.match(line)
    assert match, line
    assert match.group(1) == "2"
    speedup = float(match.group(2))
    assert 1.3 < speedup <= 2.2  # six 0.3 s sleeps on two workers


def test_workers_never_exceed_the_tests(project: Project) -> None:
    project.pytester.makepyfile(test_who=WHO)
    result = project.run("--ploop-workers=8")
    result.assert_outcomes(passed=4)
    (line,) = ploop_lines(result)
    assert line.startswith("ploop: 4 workers,")
    assert len({e.pid for e in project.events()}) <= 4
