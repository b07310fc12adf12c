"""Issue 7: ``ploop_serial`` tests run alone; a ``ploop_group`` runs on one worker, in order;
``ploop_worker`` tells a test where it runs."""

from __future__ import annotations

import json

import pytest
from sync_support import Project

SERIAL = """
import time

import pytest


@pytest.mark.ploop_serial
def test_serial_first():
    time.sleep(0.05)  # long enough that an overlap would show


@pytest.mark.parametrize("seconds", [0.02, 0.3, 0.02, 0.3, 0.02, 0.1])
def test_parallel(seconds):
    time.sleep(seconds)


@pytest.mark.ploop_serial
def test_serial_middle():
    time.sleep(0.05)


class TestMore:
    @pytest.mark.ploop_serial
    def test_serial_in_a_class(self):
        time.sleep(0.05)

    def test_parallel_in_class(self):
        time.sleep(0.1)
"""


@pytest.mark.parametrize("workers", ["2", "3"])
def test_serial_tests_never_overlap_another_test(project: Project, workers: str) -> None:
    project.pytester.makepyfile(test_serial=SERIAL)
    project.run(f"--ploop-workers={workers}").assert_outcomes(passed=10)
    spans = project.intervals()
    assert len(spans) == 10
    serial = [s for name, s in spans.items() if "::test_serial" in name]
    assert len(serial) == 3
    for s in serial:
        others = [o.name for o in spans.values() if o is not s and o.overlaps(s)]
        assert not others, f"{s.name} ran together with {others}"
    parallel = [s for name, s in spans.items() if "::test_serial" not in name]
    assert any(a.overlaps(b) for a in parallel for b in parallel if a is not b)  # in parallel
    assert len({s.worker for s in spans.values()}) > 1


GROUPS = {
    "test_one": """
        import pytest

        @pytest.mark.ploop_group("db")
        def test_db_1(): pass

        def test_free_1(): pass

        @pytest.mark.ploop_group(name="cache")
        def test_cache_1(): pass

        @pytest.mark.ploop_group("db")
        def test_db_2(): pass

        def test_free_2(): pass
        """,
    "test_two": """
        import pytest

        def test_free_3(): pass

        @pytest.mark.ploop_group("cache")
        class TestCache:
            def test_cache_2(self): pass
            def test_cache_3(self): pass

        @pytest.mark.ploop_group("db")
        @pytest.mark.parametrize("n", [3, 4])
        def test_db(n): pass

        def test_free_4(): pass
        """,
}


@pytest.mark.parametrize("dist", ["load", "file"])
def test_a_group_runs_on_one_worker_in_collection_order(project: Project, dist: str) -> None:
    project.pytester.makepyfile(**GROUPS)
    project.run("--ploop-workers=3", f"--ploop-dist={dist}").assert_outcomes(passed=11)
    spans = sorted(project.intervals().values(), key=lambda s: s.start)
    expected = {
        "db": [
            "test_one.py::test_db_1",
            "test_one.py::test_db_2",
            "test_two.py::test_db[3]",
            "test_two.py::test_db[4]",
        ],
        "cache": [
            "test_one.py::test_cache_1",
            "test_two.py::TestCache::test_cache_2",
            "test_two.py::TestCache::test_cache_3",
        ],
    }
    for group, members in expected.items():
        ran = [s for s in spans if s.name in members]
        assert [s.name for s in ran] == members, group
        assert len({s.pid for s in ran}) == 1, group
        # One task: nothing else ran on that worker from the group's first test to its last.
        on_worker = [s.name for s in spans if s.pid == ran[0].pid]
        first = on_worker.index(members[0])
        assert on_worker[first : first + len(members)] == members, group


WORKER = """
import json
import os

import pytest
from conftest import log


@pytest.mark.parametrize("n", range(4))
def test_where(n, ploop_worker, tmp_path):
    log("info", json.dumps(dict(
        id=ploop_worker.id, index=ploop_worker.index, count=ploop_worker.count,
        xdist=os.environ.get("PYTEST_XDIST_WORKER", "master"), tmp=str(tmp_path),
    )))
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_ploop_worker_names_the_worker(project: Project, workers: str) -> None:
    project.pytester.makepyfile(test_where=WORKER)
    project.run(f"--ploop-workers={workers}").assert_outcomes(passed=4)
    infos = [json.loads(e.name) for e in project.events("info")]
    assert len(infos) == 4
    if workers == "0":
        assert {(i["id"], i["index"], i["count"], i["xdist"]) for i in infos} == {
            ("main", 0, 1, "master")
        }
        return
    for info in infos:
        assert info["id"] == f"w{info['index']}"
        assert info["xdist"] == f"gw{info['index']}"
        assert info["count"] == 2
        assert f"/{info['id']}/" in info["tmp"]  # each worker its own temporary directory
    assert {i["id"] for i in infos} == {"w0", "w1"}
    assert len({i["tmp"] for i in infos}) == 4
