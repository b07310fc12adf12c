"""Workers that fit in memory: sizes (``--ploop-max-worker-rss``, ``--ploop-memory-budget``),
the memory a cgroup leaves, the peak RSS a run leaves in pytest's cache, the worker count
``--ploop-workers=auto`` fits to it (and the line that says so), and a worker replaced
between tests once past ``--ploop-max-worker-rss``."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sync_support import Project

from pytest_ploop._engine import _cpus, _metrics
from pytest_ploop._report._format import size
from pytest_ploop._testing import _memory
from pytest_ploop._testing._settings import parse_size, read_settings

GiB = 1 << 30
MiB = 1 << 20

# -- fit, parse_size -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "per_worker", "available", "workers"),
    [
        (8, GiB, 3 * GiB + GiB // 2, 3),  # memory caps: 3.5 GiB holds three
        (2, 100 * MiB, 24 * GiB, 2),  # the CPUs cap
        (4, GiB, 4 * GiB, 4),  # exactly enough for each CPU
        (4, 10 * GiB, GiB, 1),  # never below one
        (4, GiB, 0, 1),  # nothing available: still one
        (4, 0, GiB, 4),  # a worker that needs nothing: no division by zero
        (1, GiB, 100 * GiB, 1),
    ],
)
def test_fit(cpus: int, per_worker: int, available: int, workers: int) -> None:
    assert _memory.fit(cpus, per_worker, available) == workers


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("150M", 150 * MiB),
        ("2g", 2 * GiB),
        ("1.5G", 3 * GiB // 2),
        ("512MiB", 512 * MiB),
        ("8GB", 8 * GiB),
        ("64k", 64 << 10),
        ("1T", 1 << 40),
        ("4096", 4096),
        ("4096B", 4096),
        (" 3 G ", 3 * GiB),
        ("1e3M", 1000 * MiB),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(text, "--ploop-memory-budget") == size


@pytest.mark.parametrize(
    "text", ["0", "-1G", "nan", "inf", "-inf", "12X", "", "M", "1.5.2G", "lots", "0.5", "1e-4K"]
)
@pytest.mark.parametrize("flag", ["--ploop-max-worker-rss", "--ploop-memory-budget"])
def test_a_bad_size_names_the_option_and_the_fix(text: str, flag: str) -> None:
    with pytest.raises(pytest.UsageError) as info:
        parse_size(text, flag)
    assert str(info.value) == f"{flag}={text!r}: give a size such as 500M or 2G"


@pytest.mark.parametrize("text", ["0", "-1G", "nan", "12X"])
def test_a_bad_budget_is_a_usage_error_of_the_run(project: Project, text: str) -> None:
    project.pytester.makepyfile(test_one="def test_one(): pass")
    result = project.pytester.runpytest_inprocess(
        "--ploop-workers=auto", f"--ploop-memory-budget={text}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--ploop-memory-budget='{text}': give a size such as 500M or 2G"]
    )


# -- the cgroup's limit ---------------------------------------------------------------------


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "free"),
    [
        ({"memory.max": "max\n", "memory.current": "123456\n"}, None),
        ({"memory.max": "4294967296\n", "memory.current": "1073741824\n"}, 3 * GiB),
        ({"memory.max": "1073741824\n", "memory.current": "2147483648\n"}, 0),  # over it
        (
            {
                "memory/memory.limit_in_bytes": "2147483648\n",
                "memory/memory.usage_in_bytes": "536870912\n",
            },
            3 * GiB // 2,
        ),
        (
            {
                "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1: no limit
                "memory/memory.usage_in_bytes": "536870912\n",
            },
            None,
        ),
        ({"memory.max": "4294967296\n"}, None),  # no usage to subtract: unknown
        ({"memory.max": "lots\n", "memory.current": "1\n"}, None),
        ({"memory.max": "4294967296\n", "memory.current": "many\n"}, None),
        ({}, None),
    ],
    ids=[
        "v2-max",
        "v2",
        "v2-over",
        "v1",
        "v1-unlimited",
        "v2-no-current",
        "v2-garbage-limit",
        "v2-garbage-usage",
        "none",
    ],
)
def test_cgroup_free(tmp_path: Path, files: dict[str, str], free: int | None) -> None:
    assert _memory._cgroup_free(_cgroup(tmp_path, files)) == free


def test_the_cgroup_caps_what_the_system_says_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_metrics, "available_memory", lambda: 20 * GiB)
    monkeypatch.setattr(_memory, "_cgroup_free", lambda: 2 * GiB)
    assert _memory.available_memory() == 2 * GiB
    monkeypatch.setattr(_memory, "_cgroup_free", lambda: None)
    assert _memory.available_memory() == 20 * GiB


# -- the cache ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        "lots",
        [1, 2],
        {},
        {"worker_peak_rss": "100000000"},
        {"worker_peak_rss": 1.5e8},
        {"worker_peak_rss": True},
        {"worker_peak_rss": 0},
        {"worker_peak_rss": -5},
        {"worker_peak_rss": None},
        {"peak": 100_000_000},
    ],
)
def test_a_bad_cached_peak_is_ignored(pytester: pytest.Pytester, value: Any) -> None:
    config = pytester.parseconfigure()
    config.cache.set(_memory.CACHE_KEY, value)
    assert _memory.recorded_peak(config) is None


def test_a_saved_peak_is_the_highest_and_reads_back(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure()
    _memory.save_peak(config, [0, 70 * MiB, 90 * MiB, -1], workers=3)
    assert _memory.recorded_peak(config) == 90 * MiB
    assert config.cache.get(_memory.CACHE_KEY, None) == {
        "worker_peak_rss": 90 * MiB,
        "workers": 3,
    }
    _memory.save_peak(config, [0], workers=3)  # nothing measured: the last peak stays
    assert _memory.recorded_peak(config) == 90 * MiB


def test_no_cache_no_peak(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("-p", "no:cacheprovider")
    assert _memory.recorded_peak(config) is None
    _memory.save_peak(config, [MiB], workers=1)  # nowhere to save it: no error


# -- read_settings: how auto is capped ------------------------------------------------------


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """8 CPUs and 3.5 GiB available, whatever this machine has."""
    monkeypatch.setattr(_cpus, "available_cpus", lambda: 8)
    monkeypatch.setattr(_metrics, "available_memory", lambda: 7 * GiB // 2)
    monkeypatch.setattr(_memory, "_cgroup_free", lambda: None)


def _settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, peak: int | None, *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(_memory, "recorded_peak", lambda config: peak)
    settings = read_settings(pytester.parseconfig(*args))
    return settings.workers, settings.memory_cap


@pytest.mark.usefixtures("machine")
def test_the_recorded_peak_and_the_budget_cap_auto(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--ploop-workers=auto", "--ploop-memory-budget=3G")
    assert _settings(pytester, monkeypatch, GiB, *args) == (
        3,
        "ploop: --ploop-workers=auto: 3 workers, not 8 (one per CPU): each may need 1.0 GiB "
        "(its peak RSS in the last run) and 3.0 GiB is the budget (--ploop-memory-budget)",
    )


@pytest.mark.usefixtures("machine")
def test_without_a_budget_the_memory_available_caps_auto(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _settings(pytester, monkeypatch, 2 * GiB, "--ploop-workers=auto") == (
        1,
        "ploop: --ploop-workers=auto: 1 worker, not 8 (one per CPU): each may need 2.0 GiB "
        "(its peak RSS in the last run) and 3.5 GiB is available",
    )


@pytest.mark.usefixtures("machine")
def test_the_larger_of_peak_and_max_rss_is_what_a_worker_needs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--ploop-workers=auto", "--ploop-memory-budget=4G", "--ploop-max-worker-rss=2G")
    workers, line = _settings(pytester, monkeypatch, GiB, *args)
    assert workers == 2
    assert "each may need 2.0 GiB (--ploop-max-worker-rss)" in line
    workers, line = _settings(pytester, monkeypatch, 3 * GiB, *args)
    assert workers == 1
    assert "each may need 3.0 GiB (its peak RSS in the last run)" in line


@pytest.mark.usefixtures("machine")
@pytest.mark.parametrize(
    ("peak", "args", "workers", "line"),
    [
        (MiB, ("--ploop-workers=auto", "--ploop-memory-budget=1T"), 8, ""),  # room: one per CPU
        (None, ("--ploop-workers=auto", "--ploop-memory-budget=1M"), 8, ""),  # nothing to go by
        # A count given stays, and the line says that the budget did nothing.
        (GiB, ("--ploop-workers=6", "--ploop-memory-budget=1G"), 6,
         "ploop: --ploop-memory-budget=1G had no effect: it caps the worker count of "
         "--ploop-workers=auto, and this run had --ploop-workers=6"),
        (GiB, ("--ploop-memory-budget=1G",), 0, ""),  # serial stays serial
    ],
    ids=["generous-budget", "no-peak-recorded", "count-given", "serial"],
)  # fmt: skip
def test_no_cap(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    peak: int | None,
    args: tuple[str, ...],
    workers: int,
    line: str,
) -> None:
    assert _settings(pytester, monkeypatch, peak, *args) == (workers, line)


# -- real runs ------------------------------------------------------------------------------

BIG = """
import json
import os

from conftest import ROOT

HOG = []


def test_grow():
    HOG.append(bytearray(b"x") * (100 << 20))  # every page written: all of it resident


def test_count():
    with open(os.path.join(ROOT, "count.json"), "w") as f:
        json.dump(os.environ["PLOOP_WORKER_COUNT"], f)
"""


def _cached_peak(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (project.path / ".pytest_cache" / "v" / "ploop" / "memory").read_text()
    )
    return data


def _worker_count(project: Project) -> int:
    return int(json.loads((project.path / "count.json").read_text()))


@pytest.fixture
def two_cpus() -> None:
    if _cpus.available_cpus() < 2:
        pytest.skip("auto means one worker on one CPU: nothing for memory to cap")


@pytest.mark.usefixtures("two_cpus")
def test_a_run_records_its_peak_and_the_next_auto_run_fits_the_budget(project: Project) -> None:
    project.pytester.makepyfile(test_big=BIG)
    project.run("--ploop-workers=2").assert_outcomes(passed=2)
    recorded = _cached_peak(project)
    assert recorded["workers"] == 2
    peak = recorded["worker_peak_rss"]
    assert 100 * MiB < peak < 1 * GiB  # the worker that grew, not the sum of both

    # A budget for one and a half such workers: one.
    budget = peak * 3 // 2
    result = project.run("--ploop-workers=auto", f"--ploop-memory-budget={budget}")
    result.assert_outcomes(passed=2)
    assert _worker_count(project) == 1
    result.stdout.fnmatch_lines(
        [
            f"ploop: --ploop-workers=auto: 1 worker, not {_cpus.available_cpus()} (one per "
            f"CPU): each may need {size(peak)} (its peak RSS in the last run) "
            f"and {size(budget)} is the budget (--ploop-memory-budget)"
        ]
    )


@pytest.mark.usefixtures("two_cpus")
def test_a_generous_budget_does_not_cap(project: Project) -> None:
    project.pytester.makepyfile(test_big=BIG)
    project.run("--ploop-workers=2").assert_outcomes(passed=2)
    assert _cached_peak(project)["worker_peak_rss"] > 100 * MiB
    result = project.run("--ploop-workers=auto", "--ploop-memory-budget=1T")
    result.assert_outcomes(passed=2)
    assert _worker_count(project) == 2
    assert "--ploop-workers=auto:" not in result.stdout.str()


@pytest.mark.usefixtures("two_cpus")
def test_without_a_recorded_peak_auto_is_one_per_cpu(project: Project) -> None:
    project.pytester.makepyfile(test_big=BIG)
    result = project.run("--ploop-workers=auto", "--ploop-memory-budget=1M")
    result.assert_outcomes(passed=2)
    assert _worker_count(project) == 2
    assert "--ploop-workers=auto:" not in result.stdout.str()


GROWS = """
import pytest

HOG = []


@pytest.mark.parametrize("n", range(4))
def test_t(n):
    HOG.append(bytearray(b"x") * (160 << 20))  # every page written, and kept alive
"""


def test_a_worker_past_max_rss_is_replaced_and_every_test_runs_once(project: Project) -> None:
    project.pytester.makepyfile(test_grows=GROWS)
    result = project.run(
        "--ploop-workers=2", "--ploop-max-worker-rss=150M", "--ploop-report=run.json"
    )
    result.assert_outcomes(passed=4)
    record = json.loads((project.path / "run.json").read_text())
    assert record["counts"]["passed"] == 4
    labels = Counter(t["label"] for t in record["tasks"])
    assert labels == Counter({f"test_grows.py::test_t[{n}]": 1 for n in range(4)})

    starts = project.events("start")
    assert Counter(e.name for e in starts) == labels  # each test started once, too
    # Every test grows its worker past the limit, so every worker leaves after its first
    # test, and a fresh fork of the main process (small again) runs the next one.
    pids = [e.pid for e in starts]
    assert len(set(pids)) == len(pids) == 4
    assert os.getpid() not in pids
    assert {p for w in record["worker_info"] for p in w["pids"]} == set(pids)


def test_a_budget_without_auto_says_it_has_no_effect(project: Project) -> None:
    # Said in the ploop section, not an error: the ini file may hold it for auto runs.
    project.pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = project.run("--ploop-workers=2", "--ploop-memory-budget=8G")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["ploop: --ploop-memory-budget=8G had no effect: it caps the worker count of "
         "--ploop-workers=auto, and this run had --ploop-workers=2"]
    )  # fmt: skip
