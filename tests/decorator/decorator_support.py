"""Inner pytest runs for the ``parametrize_parallel`` tests (issue 4): a project in
``pytester.path``, run in a subprocess whenever a case may start a process, with the
decorator's plugin loaded by ``-p``.

The inner project gets a helper module, ``casehelp``, importable from its tests:

- ``log(*fields)``: append ``pid monotonic fields...`` (tab-separated) to ``events.log``: one
  ``O_APPEND`` write per line, so lines written by different processes never mix (and
  ``time.monotonic()`` is machine-wide on Linux, so times of different processes compare);
- ``flag(name)`` / ``wait_for(name)``: create a file / wait (bounded) until it exists;
- ``wait_until(condition, what)``: poll a condition (bounded): events, never fixed sleeps.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from tests.processes import clear_inner_run_env

PLUGIN = ("-p", "pytest_ploop._testing._cases_plugin")
RUN_TIMEOUT_S = 120.0

# Plugins the inner runs do not need (hypothesis alone costs about a second per start-up).
INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:xdist
faulthandler_timeout = 60
"""

HELPER = """\
import os
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
DEADLINE_S = 30.0


def log(*fields):
    line = "\\t".join([str(os.getpid()), repr(time.monotonic()), *map(str, fields)]) + "\\n"
    fd = os.open(os.path.join(ROOT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def events(kind):
    path = os.path.join(ROOT, "events.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\\n").split("\\t") for line in f if line.split("\\t")[2] == kind]


def wait_until(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.002)


def flag(name):
    open(os.path.join(ROOT, name), "a").close()


def wait_for(name):
    wait_until(lambda: os.path.exists(os.path.join(ROOT, name)), name)
"""


@dataclass(frozen=True)
class Event:
    """One line of ``events.log``."""

    pid: int
    t: float
    kind: str
    fields: tuple[str, ...]


class Project:
    """The inner project: its files, its runs and what its tests logged."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        clear_inner_run_env(monkeypatch)
        self.pytester = pytester
        self.path = pytester.path
        pytester.makeini(INI)
        pytester.makepyfile(casehelp=HELPER)

    def run(self, *args: str, cache: bool = False) -> pytest.RunResult:
        """A run in a subprocess, with the decorator's plugin (and without the cache)."""
        no_cache = () if cache else ("-p", "no:cacheprovider")
        return self.pytester.runpytest_subprocess(*PLUGIN, *no_cache, *args, timeout=RUN_TIMEOUT_S)

    def run_inprocess(self, *args: str) -> pytest.RunResult:
        """A run in this process: only for runs that never start a worker."""
        return self.pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", *args)

    def events(self, kind: str | None = None) -> list[Event]:
        path = self.path / "events.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            pid, t, k, *fields = line.split("\t")
            if kind is None or k == kind:
                out.append(Event(int(pid), float(t), k, tuple(fields)))
        return out

    def clear_events(self) -> None:
        (self.path / "events.log").unlink(missing_ok=True)


def section(result: pytest.RunResult, case_id: str) -> str:
    """The part of the failure report about one case: from its header to the next."""
    text = result.stdout.str()
    end = r"(?=\n_+ case |\n_+ \w|\n=+ |\n-+ Captured|$)"
    match = re.search(rf"_+ case {re.escape(case_id)} \(.*?\) _+\n(.*?){end}", text, re.S)
    assert match, f"no report section for case {case_id}:\n{text}"
    return match.group(1)


def rerun_args(report: str) -> list[str]:
    """The arguments of a ``rerun: pytest ...`` line, without ``pytest`` (and the timing)."""
    match = re.search(r"^rerun: (pytest .*?)  \(", report, re.M)
    assert match, f"no rerun line in:\n{report}"
    args = shlex.split(match.group(1))
    assert args[0] == "pytest"
    return args[1:]


def max_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """The most spans open at one instant (an end sorts before a start at the same time)."""
    points = sorted(p for s, e in spans for p in ((s, 1), (e, -1)))
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak
