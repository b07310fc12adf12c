"""Issue 7: workers cap their numeric libraries' threads (CPUs // workers by default), seen
from inside a worker through the environment and, for a library already loaded before the
fork, through threadpoolctl.

This machine has 2 CPUs, and numpy's OpenBLAS starts with 2 threads: 2 workers cap it to 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from sync_support import THREAD_VARS, Project

import pytest_ploop as ploop
from pytest_ploop._engine import _threads
from pytest_ploop._engine._cpus import available_cpus

REPORT = """
import json
import os
import sys

from conftest import ROOT

{imports}


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted({{p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}})


def test_report():
    numpy_before = "numpy" in sys.modules
    import numpy  # noqa: F401

    report = dict(
        env={{v: os.environ.get(v) for v in {thread_vars!r}}},
        blas=_blas_threads(),
        numpy_before=numpy_before,
        workers=os.environ.get("PLOOP_WORKER_COUNT"),
    )
    with open(os.path.join(ROOT, "threads.json"), "w") as f:
        json.dump(report, f)
"""


@pytest.fixture(autouse=True)
def _two_cpus() -> None:
    if available_cpus() != 2:
        pytest.skip("the expected counts below are those of a 2-CPU machine")


def _report(project: Project, *args: str, numpy_first: bool = True) -> dict[str, object]:
    imports = "import numpy  # loaded in the main process, before the fork" if numpy_first else ""
    project.pytester.makepyfile(
        test_threads=REPORT.format(imports=imports, thread_vars=THREAD_VARS),
        test_other="def test_other(): pass",  # a second test, so that two workers start
    )
    project.run(*args).assert_outcomes(passed=2)
    report: dict[str, object] = json.loads((project.path / "threads.json").read_text())
    return report


def _env(value: str | None) -> dict[str, str | None]:
    return dict.fromkeys(THREAD_VARS, value)


def test_two_workers_on_two_cpus_get_one_thread_each(project: Project) -> None:
    report = _report(project, "--ploop-workers=2")
    assert report["numpy_before"] is True
    assert report["env"] == _env("1")
    assert report["blas"] == [1]  # the pool loaded before the fork, capped by threadpoolctl


def test_a_library_loaded_in_the_worker_follows_the_environment(project: Project) -> None:
    report = _report(project, "--ploop-workers=2", numpy_first=False)
    assert report["numpy_before"] is False
    assert report["env"] == _env("1")
    assert report["blas"] == [1]


def test_one_worker_gets_every_cpu(project: Project) -> None:
    report = _report(project, "--ploop-workers=1")
    assert report["env"] == _env("2")
    assert report["blas"] == [2]


def test_the_option_sets_the_threads(project: Project) -> None:
    report = _report(project, "--ploop-workers=1", "--ploop-threads-per-worker=1")
    assert report["env"] == _env("1")
    assert report["blas"] == [1]


def test_zero_threads_per_worker_leaves_the_libraries_alone(project: Project) -> None:
    report = _report(project, "--ploop-workers=2", "--ploop-threads-per-worker=0")
    assert report["env"] == _env(None)
    assert report["blas"] == [2]


def test_a_lower_count_the_environment_sets_stays(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cap only lowers: a run under ``OMP_NUM_THREADS=1`` kept 1 in a serial run and got
    2 in a worker (the cap was written over it)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    report = _report(project, "--ploop-workers=1")
    assert report["env"] == {**_env("2"), "OMP_NUM_THREADS": "1"}
    assert report["blas"] == [1]  # loaded in the main process under OMP_NUM_THREADS=1


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """This process (and so the inner run) may use CPU 0 only, for the duration of the test."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def test_auto_follows_the_cpu_affinity(project: Project, one_cpu: None) -> None:
    report = _report(project, "--ploop-workers=auto")
    assert report["workers"] == "1"
    assert report["env"] == _env("1")
    assert report["blas"] == [1]


def test_loop_workers_cap_threads_too(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    seen = ploop.map(lambda _: os.environ.get("OMP_NUM_THREADS"), range(4), workers=2)
    assert seen == ["1"] * 4
    assert "OMP_NUM_THREADS" not in os.environ  # only in the workers


def _threads_now() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


@pytest.mark.parametrize("variables", ["as found", "hidden"])
def test_a_worker_caps_a_loaded_openblas_without_starting_its_threads(
    variables: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Capping OpenBLAS through its API in a fresh fork started its thread pool, one thread
    spinning for about 0.1 s of CPU in every worker; the cap now waits for the first BLAS
    call, which then runs on the capped pool. Where OpenBLAS hides its pool's variables
    (numpy 2.5's wheels; "hidden" makes any OpenBLAS look so), the main process caps its own
    copy before the forks and sets it back after the run."""
    numpy = pytest.importorskip("numpy")
    if variables == "hidden":
        monkeypatch.setattr(_threads, "_pool_variables", lambda lib: None)
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})

    pools = [p for p in threadpool_info() if p["internal_api"] == "openblas"]
    if not any(p.get("threading_layer") == "pthreads" and p["num_threads"] > 1 for p in pools):
        pytest.skip("numpy here does not use a multi-threaded pthreads OpenBLAS")
    a = numpy.ones((300, 300))

    def probe(_: int) -> tuple[int, list[int], int, bool]:
        started = _threads_now()
        capped = blas()
        ok = bool(((a @ a) == 300).all())  # large enough for OpenBLAS to use its pool
        return started, capped, _threads_now(), ok

    assert ploop.map(probe, range(2), workers=2) == [(1, [1], 1, True)] * 2
    assert blas() == [2]  # the main process keeps its own
