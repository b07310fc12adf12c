"""Issue 6: durations recorded after every run; the next run hands tests out longest-first.

One worker runs tests exactly in dispatch order, so its start order is the schedule; with two
workers each worker runs its share in dispatch order.
"""

from __future__ import annotations

import json

import pytest
from sched_support import Project, ids_of

SLEEPS = (0.01, 0.04, 0.08, 0.12, 0.16)

SLEEPING = f"""
import time

import pytest


@pytest.mark.parametrize("seconds", {list(SLEEPS)!r})
def test_sleep(seconds):
    time.sleep(seconds)
"""


def test_a_parallel_run_records_durations_and_the_next_goes_longest_first(
    project: Project,
) -> None:
    project.pytester.makepyfile(test_sleep=SLEEPING)
    ids = [f"test_sleep.py::test_sleep[{s}]" for s in SLEEPS]

    project.run("--ploop-workers=2").assert_outcomes(passed=5)
    durations = project.read_durations()
    assert set(durations) == set(ids)
    for nodeid, seconds in zip(ids, SLEEPS, strict=True):
        assert durations[nodeid] >= seconds  # setup + call + teardown, measured in a worker

    project.run("--ploop-workers=1").assert_outcomes(passed=5)
    assert project.start_order() == sorted(ids, key=lambda i: -durations[i])

    # The same run in collection order, for contrast: --ploop-schedule=fifo overrides.
    project.run("--ploop-workers=1", "--ploop-schedule=fifo").assert_outcomes(passed=5)
    assert project.start_order() == ids


def test_a_serial_run_records_durations_too(project: Project) -> None:
    project.pytester.makepyfile(test_sleep=SLEEPING)
    project.write_durations({"gone.py::test_old": 3.0})
    project.run("test_sleep.py").assert_outcomes(passed=5)
    durations = project.read_durations()
    assert set(durations) == {f"test_sleep.py::test_sleep[{s}]" for s in SLEEPS} | {
        "gone.py::test_old"
    }
    # kept: a run of some paths must not forget the rest (test_merge_durations: stale ones
    # go when a run collects everything)
    assert durations["gone.py::test_old"] == 3.0


def test_each_of_two_workers_runs_its_share_longest_first(project: Project) -> None:
    project.pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_t(n):
            pass
        """
    )
    ids = ids_of("test_many.py::test_t", range(8))
    project.write_durations({nodeid: float(n + 1) for n, nodeid in enumerate(ids)})
    project.run("--ploop-workers=2").assert_outcomes(passed=8)

    dispatch = list(reversed(ids))  # longest first
    starts = [e for e in project.events() if e.kind == "start"]
    by_worker: dict[str, list[str]] = {}
    for e in sorted(starts, key=lambda e: e.t):
        by_worker.setdefault(e.worker, []).append(e.nodeid)
    assert sorted(by_worker) == ["w0", "w1"]
    firsts = {tests[0] for tests in by_worker.values()}
    assert firsts == set(dispatch[:2])  # the two longest start the run, one per worker
    for tests in by_worker.values():  # each worker's share, in dispatch order
        positions = [dispatch.index(t) for t in tests]
        assert positions == sorted(positions)


def test_a_test_without_a_recorded_duration_counts_as_the_median(project: Project) -> None:
    project.pytester.makepyfile(
        test_m="""
        def test_new(): pass
        def test_e(): pass
        def test_d(): pass
        def test_b(): pass
        def test_a(): pass
        """
    )
    # Median 3, mean 4.25: the new test goes between b (4) and d (2) only with the median.
    project.write_durations(
        {"test_m.py::test_a": 10.0, "test_m.py::test_b": 4.0}
        | {"test_m.py::test_d": 2.0, "test_m.py::test_e": 1.0}
    )
    project.run("--ploop-workers=1").assert_outcomes(passed=5)
    assert project.start_order() == [
        "test_m.py::test_a",
        "test_m.py::test_b",
        "test_m.py::test_new",
        "test_m.py::test_d",
        "test_m.py::test_e",
    ]


def test_groups_are_ordered_by_their_total_duration(project: Project) -> None:
    project.pytester.makepyfile(
        test_a="def test_one(): pass",
        test_b="def test_1(): pass\ndef test_2(): pass\ndef test_3(): pass",
        test_c="def test_one(): pass",
    )
    project.write_durations(
        {"test_a.py::test_one": 0.5, "test_c.py::test_one": 2.5}
        | {f"test_b.py::test_{n}": 1.0 for n in (1, 2, 3)}
    )
    project.run("--ploop-workers=1", "--ploop-dist=file").assert_outcomes(passed=5)
    # test_b.py totals 3 s and goes first, although its tests are shorter than test_c's.
    assert project.start_order() == [
        "test_b.py::test_1",
        "test_b.py::test_2",
        "test_b.py::test_3",
        "test_c.py::test_one",
        "test_a.py::test_one",
    ]


def test_serial_tests_go_last_whatever_their_duration(project: Project) -> None:
    project.pytester.makepyfile(
        test_s="""
        import pytest

        @pytest.mark.ploop_serial
        def test_serial(): pass

        def test_short(): pass
        def test_long(): pass
        """
    )
    project.write_durations(
        {"test_s.py::test_serial": 9.0, "test_s.py::test_short": 1.0}
        | {"test_s.py::test_long": 2.0}
    )
    project.run("--ploop-workers=1").assert_outcomes(passed=3)
    assert project.start_order() == [
        "test_s.py::test_long",
        "test_s.py::test_short",
        "test_s.py::test_serial",
    ]


FIVE = """
import pytest

@pytest.mark.parametrize("n", range(5))
def test_t(n):
    pass
"""

HOOK = """

def pytest_ploop_make_scheduler(config, groups, costs):
    import json
    with open(os.path.join(ROOT, "hook.json"), "w") as f:
        json.dump({{"groups": groups, "costs": costs}}, f)
    return {result}
"""


@pytest.fixture
def five(project: Project) -> list[str]:
    """Five tests whose recorded durations make longest-first, reversed and collection
    order three different orders."""
    project.pytester.makepyfile(test_five=FIVE)
    ids = ids_of("test_five.py::test_t", range(5))
    project.write_durations(dict(zip(ids, (2.0, 5.0, 1.0, 4.0, 3.0), strict=True)))
    return ids


def _hook(project: Project, result: str) -> None:
    conftest = project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + HOOK.format(result=result))


def test_the_hook_decides_the_order(project: Project, five: list[str]) -> None:
    _hook(project, "list(reversed(range(len(groups))))")
    project.run("--ploop-workers=1").assert_outcomes(passed=5)
    assert project.start_order() == list(reversed(five))
    seen = json.loads((project.path / "hook.json").read_text())
    assert seen == {"groups": [[i] for i in five], "costs": [2.0, 5.0, 1.0, 4.0, 3.0]}


def test_a_hook_that_returns_none_leaves_the_order_to_ploop(
    project: Project, five: list[str]
) -> None:
    _hook(project, "None")
    project.run("--ploop-workers=1").assert_outcomes(passed=5)
    assert project.start_order() == [five[i] for i in (1, 3, 4, 0, 2)]


def test_a_hook_order_that_misses_a_group_is_a_usage_error(
    project: Project, five: list[str]
) -> None:
    _hook(project, "[0, 1, 2, 3, 3]")
    result = project.run("--ploop-workers=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest_ploop_make_scheduler must return each group*"])
    assert project.events() == []


def test_an_unknown_schedule_is_a_usage_error(project: Project) -> None:
    project.pytester.makepyfile(test_five=FIVE)
    result = project.pytester.runpytest_inprocess("--ploop-schedule=sjf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ploop-schedule='sjf' is not one of lpt, fifo*"])


def test_a_test_that_timed_out_or_crashed_records_how_long_it_ran(project: Project) -> None:
    """Else it would count as 0 s and go last next time: the slowest test of all."""
    project.pytester.makepyfile(
        test_bad="""
        import os
        import threading
        import time

        def test_fast():
            pass

        def test_crash():
            time.sleep(0.3)  # work before the crash
            os._exit(3)

        def test_hang():
            threading.Event().wait()
        """
    )
    result = project.run("--ploop-workers=2", "--ploop-timeout=1")
    result.assert_outcomes(passed=1, failed=2)
    durations = project.read_durations()
    assert durations["test_bad.py::test_hang"] >= 1.0
    assert durations["test_bad.py::test_crash"] >= 0.3
    assert durations["test_bad.py::test_fast"] < 0.3
