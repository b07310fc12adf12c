"""Inner pytest runs for the resource-harness tests: a project in ``pytester.path`` run in a
subprocess (workers are real forked processes), whose tests log what they do.

The inner ``conftest.py`` gives the inner tests:

- ``log(kind, name)``: append ``kind name worker pid monotonic`` to ``events.log`` (one
  ``O_APPEND`` write per line, so lines of different workers never mix; ``time.monotonic()``
  is machine-wide on Linux, so times of different workers compare). An autouse fixture logs
  ``start`` and ``end`` of every test.
- ``barrier(n)``: wait until ``n`` different workers have reached it (bounded).
- ``wait_for(name)`` / ``signal(name)``: wait for / create a flag file.
- ``wait_count(kind, n)``: wait until ``n`` events of ``kind`` were logged (bounded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from tests.processes import clear_inner_run_env

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
DEADLINE_S = 30.0
POLL_S = 0.002


def log(kind, name):
    worker = os.environ.get("PLOOP_WORKER", "main")
    line = f"{kind}\\t{name}\\t{worker}\\t{os.getpid()}\\t{time.monotonic()!r}\\n"
    fd = os.open(os.path.join(ROOT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _until(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(POLL_S)


def barrier(n):
    folder = os.path.join(ROOT, "barrier")
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, os.environ.get("PLOOP_WORKER", "main")), "a").close()
    _until(lambda: len(os.listdir(folder)) >= n, f"{n} workers at the barrier")


def count(kind):
    try:
        with open(os.path.join(ROOT, "events.log")) as f:
            return sum(line.startswith(kind + "\t") for line in f)
    except FileNotFoundError:
        return 0


def wait_count(kind, n):
    _until(lambda: count(kind) >= n, f"{n} {kind!r} events")


def signal(name):
    open(os.path.join(ROOT, name + ".flag"), "a").close()


def wait_for(name):
    _until(lambda: os.path.exists(os.path.join(ROOT, name + ".flag")), name)


@pytest.fixture(autouse=True)
def _ploop_events(request):
    log("start", request.node.nodeid)
    yield
    log("end", request.node.nodeid)
"""

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class Event:
    kind: str
    name: str
    worker: str
    pid: int
    t: float


class Project:
    """The inner project: its runs and their events."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        pytester.makeini(INI)
        pytester.makeconftest(CONFTEST)

    def run(self, *args: str) -> pytest.RunResult:
        """A run in a subprocess, the events log emptied first."""
        (self.path / "events.log").unlink(missing_ok=True)
        return self.pytester.runpytest_subprocess(*args, timeout=120)

    def events(self, *kinds: str) -> list[Event]:
        """Logged events (of ``kinds``, when given), in the order they were written."""
        path = self.path / "events.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            kind, name, worker, pid, t = line.split("\t")
            if not kinds or kind in kinds:
                out.append(Event(kind, name, worker, int(pid), float(t)))
        return out

    def intervals(self, enter: str = "start", leave: str = "end") -> dict[str, Interval]:
        """Each name's span from its ``enter`` event to its ``leave`` event."""
        begun: dict[str, Event] = {}
        out: dict[str, Interval] = {}
        for e in self.events(enter, leave):
            if e.kind == enter:
                begun[e.name] = e
            else:
                b = begun.pop(e.name)
                out[e.name] = Interval(e.name, b.worker, b.pid, b.t, e.t)
        assert not begun, f"entered and never left: {sorted(begun)}"
        return out


@dataclass(frozen=True)
class Interval:
    name: str
    worker: str
    pid: int
    start: float
    end: float

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def max_concurrency(spans: Iterable[Interval]) -> int:
    """The most spans open at one instant."""
    points = sorted(p for s in spans for p in ((s.start, 1), (s.end, -1)))  # ends sort first
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner run must not think it is a ploop worker (or an xdist one) or inherit a thread
    cap: the suite itself may run under ``--ploop-workers``."""
    clear_inner_run_env(monkeypatch, *THREAD_VARS)
