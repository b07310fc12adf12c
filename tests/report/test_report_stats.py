"""The statistics of hand-made records, figure by figure."""

from __future__ import annotations

import math

import pytest
from report_support import known_record, make_record

from pytest_ploop._report import RunReport, compute
from pytest_ploop._report._stats import amdahl


def test_headline_figures() -> None:
    st = compute(known_record())
    assert st.wall_s == 10.0
    assert st.serial_s == 14.0
    assert st.cpu_s == 11.0
    assert st.speedup == 1.4
    assert st.efficiency == 0.7
    assert st.critical_path_s == 8.0
    assert st.tasks == 3
    assert st.counts == {
        "passed": 2, "failed": 1, "error": 0, "crashed": 0, "timed_out": 0, "skipped": 0,
        "xfailed": 0, "not_run": 0,
    }  # fmt: skip


def test_load_imbalance_is_busiest_over_mean() -> None:
    st = compute(known_record())
    assert [w.busy_s for w in st.per_worker] == [6.0, 8.0]
    assert st.load_imbalance == pytest.approx(8.0 / 7.0)


def test_an_idle_worker_counts_in_the_mean_and_as_unused_time() -> None:
    # Four workers given, two ran tasks (6 and 8 s busy): the mean is 14 / 4.
    rec = make_record(
        4, 10.0, [(0, "w0", 0.0, 6.0, 0.0, "passed"), (1, "w1", 1.0, 9.0, 0.0, "passed")]
    )
    st = compute(rec)
    assert st.lanes == 4
    assert st.load_imbalance == pytest.approx(8.0 / 3.5)
    assert st.split.unused_s == 20.0
    assert st.overhead_s == 40.0 - 14.0


def test_overhead_splits_into_startup_gaps_and_tail() -> None:
    st = compute(known_record())
    sp = st.split
    assert st.overhead_s == 2 * 10.0 - 14.0
    # w0: starts at 0, no gap, idle from 6 s to 10 s; w1: starts at 1 s, idle from 9 s.
    assert (sp.startup_s, sp.gaps_s, sp.tail_s, sp.unused_s) == (1.0, 0.0, 5.0, 0.0)
    assert sp.startup_s + sp.gaps_s + sp.tail_s + sp.unused_s == pytest.approx(st.overhead_s)
    assert st.overhead_fraction == pytest.approx(6.0 / 20.0)


def test_gaps_between_tasks() -> None:
    rec = make_record(
        1, 5.0, [(0, "w0", 0.0, 1.0, 0.0, "passed"), (1, "w0", 1.5, 4.0, 0.0, "passed")]
    )
    w = compute(rec).per_worker[0]
    assert (w.startup_s, w.gaps_s, w.tail_s) == (0.0, 0.5, 1.0)


def test_slowest_tasks_longest_first_with_labels() -> None:
    st = compute(known_record(), labels={1: "test_b", 0: "test_a"}, top=2)
    assert [(t.index, t.label, t.wall_s, t.worker) for t in st.slowest] == [
        (1, "test_b", 8.0, "w1"),
        (0, "test_a", 4.0, "w0"),
    ]
    # A function names tasks too; without labels a task is its index.
    assert compute(known_record(), labels=lambda i: f"case {i}").slowest[0].label == "case 1"
    assert compute(known_record()).slowest[2].label == "2"


def test_ties_go_to_the_lower_index() -> None:
    rec = make_record(1, 3.0, [(5, "w0", 0.0, 1.0, 0, "passed"), (3, "w0", 1.0, 2.0, 0, "passed")])
    assert [t.index for t in compute(rec).slowest] == [3, 5]


def test_peak_rss_per_task_from_its_workers_samples_while_it_ran() -> None:
    st = compute(known_record())
    peaks = {t.index: t.peak_rss for t in st.slowest}
    # task 0 (w0, 0-4 s): the 2 s sample; task 2 (w0, 4-6 s): 5 s; task 1 (w1, 1-9 s): 2 and 5 s.
    assert peaks == {0: 100, 2: 150, 1: 300}


def test_a_task_shorter_than_the_tick_has_no_peak_rss() -> None:
    rec = make_record(
        1, 1.0, [(0, "w0", 0.2, 0.25, 0, "passed")], [(0.5, "w0", 1, 0.0, 9, 0, 0, 0)]
    )
    assert compute(rec).slowest[0].peak_rss is None


def test_run_peak_rss_sums_the_workers_of_one_tick() -> None:
    # 2 s: 100 + 200; 5 s: 150 + 300; 8 s: 90.
    assert compute(known_record()).peak_rss == 450
    assert compute(make_record(1, 1.0, [])).peak_rss is None


def test_per_worker_resources() -> None:
    w0, w1 = compute(known_record()).per_worker
    assert (w0.samples, w0.cpu_mean, w0.cpu_max, w0.peak_rss) == (3, 40.0, 70.0, 150)
    # I/O counters are per process since it started: pid 11's last plus pid 12's last.
    assert (w0.read_bytes, w0.write_bytes, w0.ctx_switches) == (35, 2, 10)
    assert (w1.read_bytes, w1.write_bytes, w1.ctx_switches) == (0, 4, 8)
    assert (w0.restarts, w1.restarts, w0.tasks, w1.tasks) == (1, 0, 2, 1)
    assert (w0.cpu_s, w1.cpu_s) == (3.5, 7.5)


def test_amdahl_fits_the_serial_fraction_and_caps_at_the_longest_task() -> None:
    st = compute(known_record())
    # Karp-Flatt: e = (1/1.4 - 1/2) / (1 - 1/2) = 3/7; Amdahl: S(n) = 7n / (3n + 4).
    assert st.serial_fraction == pytest.approx(3 / 7)
    law = {p.workers: p.amdahl for p in st.amdahl}
    assert law == pytest.approx({1: 1.0, 2: 1.4, 4: 1.75, 8: 2.0, 16: 112 / 52})
    # The 8 s task of 14 s caps every worker count at 1.75x.
    assert {p.workers: p.estimate for p in st.amdahl} == pytest.approx(
        {1: 1.0, 2: 1.4, 4: 1.75, 8: 1.75, 16: 1.75}
    )
    assert st.amdahl[1].estimate == pytest.approx(st.speedup)  # the measured point


def test_amdahl_of_one_worker_has_only_the_bound() -> None:
    points = amdahl(10.0, 1.0, math.nan)
    assert all(math.isnan(p.amdahl) for p in points)
    assert [p.estimate for p in points] == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_perfect_parallelism_has_no_serial_fraction() -> None:
    rec = make_record(2, 2.0, [(0, "w0", 0.0, 2.0, 0, "passed"), (1, "w1", 0.0, 2.0, 0, "passed")])
    st = compute(rec)
    assert (st.speedup, st.efficiency, st.serial_fraction, st.load_imbalance) == (
        2.0,
        1.0,
        0.0,
        1.0,
    )


def test_an_empty_run() -> None:
    st = compute(make_record(2, 0.0, []))
    assert (st.tasks, st.serial_s, st.critical_path_s) == (0, 0.0, 0.0)
    assert math.isnan(st.speedup) and math.isnan(st.load_imbalance)


def test_outcomes_shown_override_what_the_engine_saw_pass() -> None:
    # pytest's verdict: task 0 skipped, task 2 passed as far as pytest is concerned, but the
    # engine said failed: the engine's failure stays.
    report = RunReport(known_record(), outcomes={0: "skipped", 2: "passed"})
    st = report.stats()
    assert {t.index: t.outcome for t in st.slowest} == {0: "skipped", 1: "passed", 2: "failed"}
    assert (st.counts["passed"], st.counts["skipped"], st.counts["failed"]) == (1, 1, 1)


def test_not_run_tasks_are_counted_from_the_record() -> None:
    rec = make_record(1, 1.0, [(0, "w0", 0.0, 1.0, 0, "passed")], not_run=3)
    assert compute(rec).counts["not_run"] == 3
