"""Issue 7: workers replaced after N tests or past an RSS limit; the worker count fits the
machine (``--ploop-workers=auto`` with ``--ploop-max-worker-rss``)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from sync_support import Project

from pytest_ploop._engine import _cpus, _metrics
from pytest_ploop._testing._settings import parse_size, read_settings

RECYCLED = """
import os

import pytest
from conftest import log


@pytest.fixture(scope="session")
def session_resource():
    log("setup", "session")
    yield
    log("teardown", "session")


@pytest.mark.parametrize("n", range(10))
def test_t(n, session_resource):
    if n == 3:
        assert n == 4, "a real failure"
    if n == 6:
        pytest.skip("a real skip")
"""


def test_workers_are_replaced_after_max_tasks_and_results_stay_right(project: Project) -> None:
    project.pytester.makepyfile(test_recycled=RECYCLED)
    result = project.run("--ploop-workers=2", "--ploop-max-tasks-per-worker=2", "-rs")
    result.assert_outcomes(passed=8, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*AssertionError: a real failure*", "SKIPPED*a real skip"])

    per_pid = Counter(e.pid for e in project.events("start"))
    assert sum(per_pid.values()) == 10
    assert max(per_pid.values()) <= 2
    assert len(per_pid) >= 5
    # Each replaced worker tore its session fixture down before it went.
    setups = Counter(e.pid for e in project.events("setup"))
    teardowns = Counter(e.pid for e in project.events("teardown"))
    assert setups == teardowns == Counter(dict.fromkeys(per_pid, 1))


GROWING = """
import os

import pytest
from conftest import log

HOG = []


def test_0_grow():
    HOG.append(bytearray(256 << 20))  # touched: the pages count in the RSS
    log("grew", "")


@pytest.mark.parametrize("n", range(20))
def test_t(n):
    import time

    time.sleep(0.03)  # work: the main process samples RSS on its 0.1 s tick meanwhile
"""


def test_a_worker_past_the_rss_limit_is_replaced(project: Project) -> None:
    project.pytester.makepyfile(test_growing=GROWING)
    project.run("--ploop-workers=1", "--ploop-max-worker-rss=160M").assert_outcomes(passed=21)
    (grew,) = project.events("grew")
    starts = sorted(project.events("start"), key=lambda e: e.t)
    assert starts[0].pid == grew.pid
    assert starts[-1].pid != grew.pid  # replaced by a fresh fork of the main process
    after = [e.pid for e in starts if e.pid != grew.pid]
    assert len(set(after)) == 1  # and the fresh one, small, stayed


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500M", 500 << 20),
        ("2G", 2 << 30),
        ("1.5g", 3 << 29),
        ("512MiB", 512 << 20),
        ("100MB", 100 << 20),
        ("64K", 64 << 10),
        ("1T", 1 << 40),
        ("4096", 4096),
        (" 3G ", 3 << 30),
    ],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1G", "abc", "G", "10X", "1.5.2M", "nan", "inf"])
def test_a_bad_size_is_a_usage_error(text: str) -> None:
    with pytest.raises(pytest.UsageError, match="give a size such as 500M or 2G"):
        parse_size(text)


@pytest.mark.parametrize(
    ("args", "workers"),
    [
        (["--ploop-workers=auto", "--ploop-max-worker-rss=1G"], 3),  # 3.5 GiB free / 1 GiB
        (["--ploop-workers=auto", "--ploop-max-worker-rss=100M"], 8),  # the CPUs cap it
        (["--ploop-workers=auto", "--ploop-max-worker-rss=1T"], 1),  # never below one
        (["--ploop-workers=6", "--ploop-max-worker-rss=1G"], 6),  # a count given is kept
        (["--ploop-workers=auto"], 8),
    ],
)
def test_auto_workers_fit_the_memory_available(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], workers: int
) -> None:
    monkeypatch.setattr(_cpus, "available_cpus", lambda: 8)
    monkeypatch.setattr(_metrics, "available_memory", lambda: 7 << 29)
    assert read_settings(pytester.parseconfig(*args)).workers == workers


def test_a_bad_rss_option_is_a_usage_error(project: Project) -> None:
    project.pytester.makepyfile(test_one="def test_one(): pass")
    result = project.pytester.runpytest_inprocess(
        "--ploop-workers=2", "--ploop-max-worker-rss=lots"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ploop-max-worker-rss='lots': give a size such as 500M or 2G"])


COUNT = """
import json
import os

from conftest import ROOT


def test_count():
    with open(os.path.join(ROOT, "count.json"), "w") as f:
        json.dump(os.environ["PLOOP_WORKER_COUNT"], f)
"""


def test_auto_workers_are_capped_in_a_real_run(project: Project, tmp_path: Path) -> None:
    assert _cpus.available_cpus() >= 2  # without the cap, auto would mean two here
    project.pytester.makepyfile(
        test_count=COUNT, test_more="def test_a(): pass\ndef test_b(): pass"
    )
    project.run("--ploop-workers=auto", "--ploop-max-worker-rss=1T").assert_outcomes(passed=3)
    assert json.loads((project.path / "count.json").read_text()) == "1"


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
    ids=["v2", "v2-unlimited", "v1", "v1-unlimited", "none"],
)
def test_cgroup_cpu_quota(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _cpus._cgroup_quota(tmp_path) == quota


def test_a_cgroup_quota_caps_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cpus, "_cgroup_quota", lambda: 1.2)
    assert _cpus.available_cpus() == min(2, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(_cpus, "_cgroup_quota", lambda: 0.5)
    assert _cpus.available_cpus() == 1


@pytest.mark.parametrize(
    "arg",
    [
        "--ploop-max-tasks-per-worker=0",
        "--ploop-max-tasks-per-worker=inf",
        "--ploop-max-tasks-per-worker=nan",
        "--ploop-max-tasks-per-worker=many",
        "--ploop-threads-per-worker=-1",
        "--ploop-threads-per-worker=nan",
        "--ploop-threads-per-worker=inf",
    ],
)
def test_a_bad_count_is_a_usage_error(pytester: pytest.Pytester, arg: str) -> None:
    flag, value = arg.split("=")
    with pytest.raises(pytest.UsageError, match=f"{flag}='{value}' must be a number of at least"):
        read_settings(pytester.parseconfig("--ploop-workers=2", arg))
