"""Inner pytest runs for the plugin tests: a project in ``pytester.path``, run in a subprocess
whenever workers are involved (they are real forked processes).

The inner project gets a helper module, ``ploophelp``, importable from its tests:

- ``log(*fields)``: append ``worker pid fields...`` (tab-separated) to ``events.log``: one
  ``O_APPEND`` write per line, so lines written by different workers never mix;
- ``flag(name)`` / ``wait_for(name)``: create a file / wait (bounded) until it exists.

The outer tests read the log with :meth:`Project.events` and wait with :func:`wait_until`:
events, never fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
import pytest

from tests.processes import clear_inner_run_env

# Plugins the inner runs do not need (hypothesis alone costs about a second per start-up).
# No ``filterwarnings = error`` here: some inner suites warn on purpose.
INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:rerunfailures
    -p no:syrupy -p no:html -p no:allure_pytest -p no:pytest-testmon -p no:pytest-bdd
    -p no:pytest_reportlog -p no:pytest_github_actions_annotate_failures
faulthandler_timeout = 60
"""

HELPER = """\
import os
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
DEADLINE_S = 60.0


def worker():
    return os.environ.get("PLOOP_WORKER", "main")


def log(*fields):
    line = "\\t".join([worker(), str(os.getpid()), *map(str, fields)]) + "\\n"
    fd = os.open(os.path.join(ROOT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def flag(name):
    open(os.path.join(ROOT, name), "a").close()


def wait_for(name):
    deadline = time.monotonic() + DEADLINE_S
    while not os.path.exists(os.path.join(ROOT, name)):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {name}")
        time.sleep(0.005)
"""

NO_CACHE = ("-p", "no:cacheprovider")
RUN_TIMEOUT_S = 120.0
SUMMARY_PREFIXES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")


@dataclass(frozen=True)
class Event:
    """One line of ``events.log``."""

    worker: str
    pid: int
    fields: tuple[str, ...]


class Project:
    """The inner project: its files, its runs and what its tests logged."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        clear_inner_run_env(monkeypatch)
        self.pytester = pytester
        self.path = pytester.path
        pytester.makeini(INI)
        pytester.makepyfile(ploophelp=HELPER)

    def run(self, *args: str, cache: bool = False) -> pytest.RunResult:
        """A run in a subprocess (``-p no:cacheprovider`` unless ``cache``)."""
        extra = () if cache else NO_CACHE
        return self.pytester.runpytest_subprocess(*extra, *args, timeout=RUN_TIMEOUT_S)

    def run_inprocess(self, *args: str) -> pytest.RunResult:
        """A run in this process: only for runs that never start a worker."""
        return self.pytester.runpytest_inprocess(*NO_CACHE, *args)

    def popen(self, *args: str, out: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start ``python -m pytest args`` (no cache), its output going to ``out``."""
        cmd = [sys.executable, "-m", "pytest", *NO_CACHE, *args]
        proc: subprocess.Popen[bytes] = self.pytester.popen(
            cmd, stdout=out.fileno(), stderr=subprocess.STDOUT
        )
        return proc

    def events(self) -> list[Event]:
        path = self.path / "events.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            worker, pid, *fields = line.split("\t")
            out.append(Event(worker, int(pid), tuple(fields)))
        return out

    def clear_events(self) -> None:
        (self.path / "events.log").unlink(missing_ok=True)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` (bounded) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` is still pending (not yet delivered) for process ``pid``."""
    mask = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")):
            mask |= int(line.split()[1], 16)
    return bool(mask & (1 << (sig - 1)))


def signal_and_wait_handled(pid: int, sig: int, timeout: float = 30.0) -> None:
    """Send ``sig`` to a run's main process and return once it has acted on it.

    The main process sleeps in its event loop; a signal wakes it, and it acts on the signal
    in that wake-up (the handler only records it and writes to the wake-up pipe, which the
    loop reads at once), sends what it has to send, and sleeps again. So: once the signal is
    no longer pending, a new voluntary context switch means the loop handled it. (Linux.)
    """
    proc = psutil.Process(pid)
    os.kill(pid, sig)
    wait_until(lambda: not _pending(pid, sig), "the signal to be delivered", timeout)
    switches = proc.num_ctx_switches().voluntary
    wait_until(
        lambda: proc.num_ctx_switches().voluntary > switches,
        "the main process to go back to waiting",
        timeout,
    )


def alive(pids: Iterable[int]) -> list[int]:
    """The pids among ``pids`` whose process still runs (a zombie has ended)."""
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
    return out


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` for ``pids`` to end; the pids still running then."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The final line's counts (``parseoutcomes``), with ``deselected`` kept."""
    return result.parseoutcomes()


def short_summary(result: pytest.RunResult) -> list[str]:
    """The ``-r`` lines of the short test summary, in their order."""
    lines = result.outlines
    try:
        start = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    except StopIteration:
        return []
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith(SUMMARY_PREFIXES):
            break
        out.append(line)
    return out


def ploop_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("ploop:")]


def not_run_count(result: pytest.RunResult) -> int:
    """N of the ``ploop: N tests not run (...)`` line (0 when there is none)."""
    for line in ploop_lines(result):
        if m := re.match(r"ploop: (\d+) tests? not run", line):
            return int(m.group(1))
    return 0


def junit_cases(path: Path) -> Counter[tuple[str, str, str]]:
    """Each testcase of a junit XML file as ``(classname, name, outcome)``, where outcome
    lists the result elements it holds (``failure``, ``error``, ``skipped:<type>``), or
    ``passed``; times and order are ignored."""
    cases: Counter[tuple[str, str, str]] = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = []
        for child in case:
            if child.tag in ("failure", "error"):
                kinds.append(f"{child.tag}:{child.get('message', '')[:60]}")
            elif child.tag == "skipped":
                kinds.append(f"skipped:{child.get('type', '')}")
        cases[(case.get("classname", ""), case.get("name", ""), ",".join(sorted(kinds)))] += 1
    return cases
