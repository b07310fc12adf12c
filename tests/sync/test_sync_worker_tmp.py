"""``ploop_worker.tmp_path``: a directory of each worker process's own under the session's
basetemp, shared by the tests that process runs, new for a worker that replaces another, and
``<basetemp>/ploop-main`` in a serial run; without pytest's tmpdir plugin it says so. And
examples/test_resources.py, which uses it, passes serially and in workers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from sync_support import Event, Project

USES_IT = """
import os

import pytest
from conftest import barrier, log


@pytest.mark.parametrize("n", range(6))
def test_t(n, ploop_worker, tmp_path, tmp_path_factory):
    barrier(ploop_worker.count)  # every worker runs some of the tests
    path = ploop_worker.tmp_path
    assert path.is_dir()
    assert path == ploop_worker.tmp_path  # the same object each time it is asked
    assert path.name == f"ploop-{ploop_worker.id}"
    # Next to this process's tmp_path directories, under its own basetemp.
    assert path.parent == tmp_path.parent == tmp_path_factory.getbasetemp()
    (path / f"{n}.txt").write_text(str(os.getpid()))
    log("tmp", str(path))
"""


def _paths_per_pid(events: list[Event]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for e in events:
        out[e.pid].add(e.name)
    return dict(out)


def _files(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def _test_files(events: list[Event], pid: int) -> set[str]:
    """The files the tests of process ``pid`` wrote: ``{n}.txt`` for each test ``n``."""
    return {e.name.split("[")[1].rstrip("]") + ".txt" for e in events if e.pid == pid}


def test_one_directory_per_worker_shared_by_its_tests(project: Project) -> None:
    project.pytester.makepyfile(test_tmp=USES_IT)
    basetemp = project.path / "basetemp"
    project.run("--ploop-workers=2", f"--basetemp={basetemp}").assert_outcomes(passed=6)

    per_pid = _paths_per_pid(project.events("tmp"))
    assert len(per_pid) == 2
    assert all(len(paths) == 1 for paths in per_pid.values())  # one per process...
    (first,), (second,) = per_pid.values()
    assert first != second  # ...and one per worker
    starts = project.events("start")
    for pid, (text,) in per_pid.items():
        path = Path(text)
        assert path.is_relative_to(basetemp)
        assert path.is_dir()  # kept after the run, as tmp_path directories are
        assert _files(path) == _test_files(starts, pid)  # every test of that worker's
    assert {Path(p).relative_to(basetemp).as_posix() for p in (first, second)} == {
        "w0/ploop-w0",
        "w1/ploop-w1",
    }


def test_a_replacement_worker_gets_a_fresh_directory(project: Project) -> None:
    project.pytester.makepyfile(test_tmp=USES_IT)
    basetemp = project.path / "basetemp"
    result = project.run(
        "--ploop-workers=1", "--ploop-max-tasks-per-worker=2", f"--basetemp={basetemp}"
    )
    result.assert_outcomes(passed=6)

    per_pid = _paths_per_pid(project.events("tmp"))
    assert len(per_pid) == 3  # two tests per process, then a fresh fork
    paths = [Path(text) for (text,) in per_pid.values()]
    assert len(set(paths)) == 3
    starts = project.events("start")
    for pid, path in zip(per_pid, paths, strict=True):
        assert path.name == "ploop-w0"  # the same worker slot...
        assert _files(path) == _test_files(starts, pid)  # ...none of the earlier files
        assert len(_files(path)) == 2


def test_a_serial_run_has_one_for_the_main_process(project: Project) -> None:
    project.pytester.makepyfile(test_tmp=USES_IT)
    basetemp = project.path / "basetemp"
    project.run(f"--basetemp={basetemp}").assert_outcomes(passed=6)
    (paths,) = _paths_per_pid(project.events("tmp")).values()
    assert paths == {str(basetemp / "ploop-main")}
    assert _files(basetemp / "ploop-main") == {f"{n}.txt" for n in range(6)}


NO_TMPDIR = """
def test_tmp(ploop_worker):
    ploop_worker.tmp_path
"""


@pytest.mark.parametrize("args", [(), ("--ploop-workers=1",)], ids=["serial", "workers"])
def test_without_the_tmpdir_plugin_it_says_what_it_needs(
    project: Project, args: tuple[str, ...]
) -> None:
    project.pytester.makepyfile(test_no_tmpdir=NO_TMPDIR)
    result = project.run("-p", "no:tmpdir", *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E * pytest_ploop.PloopError: ploop_worker.tmp_path needs pytest's tmpdir plugin"]
    )


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_resources.py"


@pytest.mark.parametrize("args", [(), ("--ploop-workers=2",)], ids=["serial", "workers"])
def test_the_resources_example_passes(project: Project, args: tuple[str, ...]) -> None:
    (project.path / EXAMPLE.name).write_text(EXAMPLE.read_text())
    project.run(*args).assert_outcomes(passed=12)
