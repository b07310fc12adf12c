"""Issue 7: the harness in loop bodies as in tests. A test running in a worker may start
processes of its own, and a loop inside it shares the run's locks with the other tests."""

from __future__ import annotations

import json

from sync_support import Project

NESTED = """
import multiprocessing
import os
import signal
import time

import pytest
from conftest import ROOT, log

import pytest_ploop as ploop

COUNTER = os.path.join(ROOT, "counter.txt")


def increment(_=None):
    with ploop.lock("counter"):
        with open(COUNTER) as f:
            value = int(f.read())
        with open(COUNTER, "w") as f:
            f.write(str(value + 1))
    return os.environ["PLOOP_RUN_DIR"]


@pytest.mark.parametrize("n", range(4))
def test_plain(n):
    increment()


def test_a_loop_inside():
    dirs = ploop.map(increment, range(8), workers=2, chunksize=1)
    assert set(dirs) == {os.environ["PLOOP_RUN_DIR"]}  # the loop's workers: the same locks
    log("loop", "done")


def test_a_multiprocessing_pool():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]


def test_a_child_terminated_at_once_ends():
    # What Pool.terminate() does to a worker that may not have run yet: a SIGTERM the
    # child caught before its first line of Python would be lost, and it would sleep on.
    for _ in range(20):
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        child.start()
        child.terminate()
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGTERM
"""


def test_a_test_in_a_worker_may_start_processes_and_loops(project: Project) -> None:
    project.pytester.makepyfile(test_nested=NESTED)
    (project.path / "counter.txt").write_text("0")
    project.run("--ploop-workers=2").assert_outcomes(passed=7)
    assert (project.path / "counter.txt").read_text() == "12"
    (loop,) = project.events("loop")
    assert loop.worker in ("w0", "w1")


SUBPROCESS = """
import json
import os
import subprocess
import sys

from conftest import log

NESTED_TEST = '''
import json
import os


def test_where(ploop_worker):
    with open(os.path.join(os.path.dirname(__file__), "where.json"), "w") as f:
        json.dump([ploop_worker.id, ploop_worker.count, os.environ.get("PLOOP_WORKER")], f)
'''


def test_a_pytest_subprocess(tmp_path, ploop_worker):
    (tmp_path / "test_nested.py").write_text(NESTED_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\\n")  # its own rootdir and cache
    plugins = ["-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cov"]
    for args in ([], ["--ploop-workers=1"]):
        cmd = [sys.executable, "-m", "pytest", *plugins, *args, str(tmp_path)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path).stdout
        assert "1 passed" in out, out
        with open(tmp_path / "where.json") as f:
            where = json.load(f)
        log("nested", json.dumps([ploop_worker.id, args, where, "ploop: 1 worker," in out]))
    cache = tmp_path / ".pytest_cache" / "v" / "ploop" / "durations"
    log("recorded", json.dumps(cache.exists()))
"""


def test_a_pytest_that_a_test_starts_is_a_run_of_its_own(project: Project) -> None:
    """It inherits PLOOP_WORKER from the worker: it must not take itself for a worker (it
    ignored --ploop-workers and --ploop-shard, and recorded no durations)."""
    project.pytester.makepyfile(test_sub=SUBPROCESS)
    project.run("--ploop-workers=1").assert_outcomes(passed=1)
    serial, parallel = (json.loads(e.name) for e in project.events("nested"))
    assert serial == ["w0", [], ["main", 1, "w0"], False]  # a serial run of its own
    assert parallel == ["w0", ["--ploop-workers=1"], ["w0", 1, "w0"], True]  # its own worker
    (recorded,) = project.events("recorded")
    assert recorded.name == "true"
