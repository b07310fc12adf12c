"""Worker recycling between tests: a worker past ``--ploop-max-worker-rss`` leaves before its
next test, even one already sent to it; ``--ploop-max-tasks-per-worker`` counts tests, and a
group of tests (``--ploop-dist=file``, ``ploop_group``) is never split; a worker killed while
over the limit says so in the test's report."""

from __future__ import annotations

from collections import Counter, defaultdict

from sync_support import Event, Project

GROWS_FIRST = """
import pytest
from conftest import log

HOG = []


@pytest.fixture(scope="module")
def module_resource():
    log("setup", "module")
    yield
    log("teardown", "module")


def test_0_grow(module_resource):
    HOG.append(bytearray(256 << 20))
    HOG[-1][:: 4096] = b"x" * len(range(0, 256 << 20, 4096))  # touched: counted in the RSS
    log("grew", "")


@pytest.mark.parametrize("n", range(8))
def test_t(n, module_resource):
    pass
"""


def _once_each(events: list[Event]) -> None:
    runs = Counter(e.name for e in events)
    assert set(runs.values()) == {1}, f"a test ran twice: {runs}"


def test_a_worker_past_the_rss_limit_leaves_before_its_next_test(project: Project) -> None:
    project.pytester.makepyfile(test_grows=GROWS_FIRST)
    result = project.run("--ploop-workers=1", "--ploop-max-worker-rss=160M")
    result.assert_outcomes(passed=9)
    starts = project.events("start")
    _once_each(starts)
    (grew,) = project.events("grew")
    # The test after the one that grew was already sent to that worker (tests are sent ahead
    # so that none waits for a round trip): it ran on a fresh fork all the same.
    assert starts[0].pid == grew.pid
    assert {e.pid for e in starts[1:]} == {starts[1].pid} != {grew.pid}
    # The leaving worker tore its module fixture down in its last test, before the new one
    # set it up again.
    kinds = [(e.kind, e.pid) for e in project.events("setup", "teardown")]
    assert kinds == [
        ("setup", grew.pid),
        ("teardown", grew.pid),
        ("setup", starts[1].pid),
        ("teardown", starts[1].pid),
    ]


MODULE = """
import pytest


@pytest.mark.parametrize("n", range(4))
def test_t(n):
    pass
"""


def _tests_per_pid(events: list[Event]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for e in events:
        out[e.pid].append(e.name)
    return dict(out)


def test_max_tasks_counts_tests_and_never_splits_a_module(project: Project) -> None:
    project.pytester.makepyfile(test_m1=MODULE, test_m2=MODULE, test_m3=MODULE)
    result = project.run("--ploop-workers=1", "--ploop-dist=file", "--ploop-max-tasks-per-worker=5")
    result.assert_outcomes(passed=12)
    starts = project.events("start")
    _once_each(starts)
    per_pid = _tests_per_pid(starts)
    # 5 tests: the worker finishes the module it is in (8 tests), and the next worker
    # runs the rest. (Counting modules, as it did, one worker ran all 12.)
    assert sorted(len(names) for names in per_pid.values()) == [4, 8]
    for names in per_pid.values():
        modules = {name.split("::")[0] for name in names}
        assert len(names) == 4 * len(modules)  # whole modules only


def test_max_tasks_with_one_test_a_task(project: Project) -> None:
    project.pytester.makepyfile(test_m1=MODULE, test_m2=MODULE)
    project.run("--ploop-workers=2", "--ploop-max-tasks-per-worker=3").assert_outcomes(passed=8)
    starts = project.events("start")
    _once_each(starts)
    assert max(len(n) for n in _tests_per_pid(starts).values()) <= 3


GROUPED = """
import pytest

pytestmark = pytest.mark.ploop_group("together")


@pytest.mark.parametrize("n", range(6))
def test_g(n):
    pass


def test_after():
    pass
"""


def test_a_ploop_group_is_never_split_by_recycling(project: Project) -> None:
    project.pytester.makepyfile(test_grouped=GROUPED)
    result = project.run("--ploop-workers=1", "--ploop-max-tasks-per-worker=2")
    result.assert_outcomes(passed=7)
    per_pid = _tests_per_pid(project.events("start"))
    assert sorted(len(names) for names in per_pid.values()) == [7]


HUNG_OVER_LIMIT = """
import threading

from conftest import log

HOG = []


def test_hangs_big():
    HOG.append(bytearray(200 << 20))
    HOG[-1][:: 4096] = b"x" * len(range(0, 200 << 20, 4096))
    log("grew", "")
    threading.Event().wait()  # hangs: --ploop-timeout kills the worker


def test_small():
    pass
"""


def test_a_worker_killed_while_over_the_limit_is_reported_so(project: Project) -> None:
    project.pytester.makepyfile(test_hung=HUNG_OVER_LIMIT)
    result = project.run(
        "--ploop-workers=1", "--ploop-timeout=1", "--ploop-max-worker-rss=100M", "-p", "no:cov"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ploop: this test timed out after 1s; worker w0 was killed*",
            "*ploop: worker w0 was over the memory limit in this test: its RSS was * MiB at "
            "the last sample, past --ploop-max-worker-rss=100 MiB",
        ]
    )


def test_a_worker_under_the_limit_is_not_said_to_be_over(project: Project) -> None:
    project.pytester.makepyfile(test_hung=HUNG_OVER_LIMIT.replace("200 << 20", "1 << 20"))
    result = project.run("--ploop-workers=1", "--ploop-timeout=1", "--ploop-max-worker-rss=1G")
    result.assert_outcomes(passed=1, failed=1)
    assert "over the memory limit" not in result.stdout.str()


SHARED_VALUES = """
import pytest
import pytest_ploop as ploop
from conftest import log


@pytest.fixture(scope="session")
@ploop.once
def database():
    log("create", "database")
    yield "db"
    log("drop", "database")


@pytest.fixture(scope="session")
def build():
    def make():
        log("create", "build")
        return "wheel"

    return ploop.run_once("build", make, teardown=lambda value: log("drop", "build"))


@pytest.mark.parametrize("n", range(6))
def test_uses(n, database, build):
    log("start", str(n))
"""


def test_a_worker_holding_a_run_once_teardown_is_not_replaced(project: Project) -> None:
    # Replacing the only worker that uses a run-once value would tear the value down in the
    # middle of the run, and the next worker would set it up again: that worker stays.
    project.pytester.makepyfile(test_shared=SHARED_VALUES)
    result = project.run("--ploop-workers=1", "--ploop-max-tasks-per-worker=2")
    result.assert_outcomes(passed=6)
    _once_each(project.events("start"))
    made = [(e.kind, e.name) for e in project.events("create", "drop")]
    assert sorted(made) == [
        ("create", "build"),
        ("create", "database"),
        ("drop", "build"),
        ("drop", "database"),
    ]
    assert made.index(("drop", "database")) > made.index(("create", "build"))
    assert len({e.pid for e in project.events("start")}) == 1
