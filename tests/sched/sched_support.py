"""Inner pytest runs for the scheduling tests: a project in ``pytester.path`` whose tests log
when they start and end, run in a subprocess (workers are real forked processes).

Each test of the inner project appends ``kind nodeid worker pid monotonic`` to
``events.log`` from an autouse fixture (one ``O_APPEND`` write per line, so lines from
different workers never mix); ``time.monotonic()`` is machine-wide on Linux, so times from
different workers compare.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import clear_inner_run_env

# Plugins the inner runs do not need: hypothesis alone costs about a second per start-up.
INI = """\
[pytest]
addopts = --strict-markers --strict-config -p no:hypothesispytest -p no:benchmark -p no:cov
filterwarnings = error
xfail_strict = true
faulthandler_timeout = 60
"""

CONFTEST = """\
import os
import time

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))


def log(kind, name):
    worker = os.environ.get("PLOOP_WORKER", "main")
    line = f"{kind}\\t{name}\\t{worker}\\t{os.getpid()}\\t{time.monotonic()!r}\\n"
    fd = os.open(os.path.join(ROOT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@pytest.fixture(autouse=True)
def _ploop_events(request):
    log("start", request.node.nodeid)
    yield
    log("end", request.node.nodeid)
"""


@dataclass(frozen=True)
class Event:
    kind: str
    nodeid: str
    worker: str
    pid: int
    t: float


class Project:
    """The inner project: its files, its durations cache, its runs and their events."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        pytester.makeini(INI)
        pytester.makeconftest(CONFTEST)

    @property
    def durations_file(self) -> Path:
        return self.path / ".pytest_cache" / "v" / "ploop" / "durations"

    def write_durations(self, durations: dict[str, float]) -> None:
        self.durations_file.parent.mkdir(parents=True, exist_ok=True)
        self.durations_file.write_text(json.dumps(durations))

    def read_durations(self) -> dict[str, float]:
        data: dict[str, float] = json.loads(self.durations_file.read_text())
        return data

    def run(self, *args: str) -> pytest.RunResult:
        """A run in a subprocess, the events log emptied first."""
        (self.path / "events.log").unlink(missing_ok=True)
        return self.pytester.runpytest_subprocess(*args, timeout=120)

    def events(self) -> list[Event]:
        path = self.path / "events.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            kind, nodeid, worker, pid, t = line.split("\t")
            out.append(Event(kind, nodeid, worker, int(pid), float(t)))
        return out

    def start_order(self) -> list[str]:
        starts = [e for e in self.events() if e.kind == "start"]
        return [e.nodeid for e in sorted(starts, key=lambda e: e.t)]

    def collected(self, *args: str) -> list[str]:
        """The node ids ``--co -q`` lists (in process: collection starts no worker)."""
        result = self.pytester.runpytest_inprocess("--co", "-q", *args)
        assert result.ret == 0, result.stdout.str()
        return [line for line in result.outlines if "::" in line and " " not in line]


def ids_of(function: str, params: Iterable[object]) -> list[str]:
    """``ids_of("t.py::test", range(2))`` -> ``["t.py::test[0]", "t.py::test[1]"]``."""
    return [f"{function}[{p}]" for p in params]


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner run must not think it is a ploop worker (or an xdist one) or inherit a thread
    cap: the suite itself may run under ``--ploop-workers``."""
    clear_inner_run_env(monkeypatch)
