"""Fixtures in workers: module-scoped setup and teardown balance per worker; xdist's
per-worker fixtures and variables, ``ploop_worker``; ``tmp_path`` unique per worker."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from plugin_support import Event, Project, outcomes

MODULE_FIXTURE = """
import time

import pytest
import ploophelp


@pytest.fixture(scope="module")
def resource(request):
    name = request.module.__name__
    ploophelp.log("setup", name)
    yield name
    ploophelp.log("teardown", name)


@pytest.mark.parametrize("i", range(6))
def test_uses(resource, i):
    ploophelp.log("test", resource)
    time.sleep(0.02)
    assert i != FAILING
"""


def _check_balanced(events: list[Event]) -> dict[tuple[int, str], int]:
    """Per worker process and module: setup, its tests, teardown; never a test outside, never
    two setups without a teardown between them. Returns the setups per (pid, module)."""
    state: dict[int, str | None] = defaultdict(lambda: None)
    setups: dict[tuple[int, str], int] = defaultdict(int)
    for e in events:
        kind, module = e.fields
        if kind == "setup":
            assert state[e.pid] is None, f"{module} set up while {state[e.pid]} is: {e}"
            state[e.pid] = module
            setups[(e.pid, module)] += 1
        elif kind == "test":
            assert state[e.pid] == module, f"a test ran without its fixture: {e}"
        else:
            assert state[e.pid] == module, f"torn down without a setup: {e}"
            state[e.pid] = None
    assert all(v is None for v in state.values()), f"never torn down: {dict(state)}"
    return setups


@pytest.mark.parametrize("stop", [False, True], ids=["full-run", "stopped-by-x"])
def test_module_fixture_set_up_and_torn_down_once_per_worker(project: Project, stop: bool) -> None:
    for name in ("test_m1", "test_m2", "test_m3"):
        failing = 3 if stop and name == "test_m1" else -1
        project.pytester.makepyfile(**{name: MODULE_FIXTURE.replace("FAILING", str(failing))})
    args = ["--ploop-workers=2"] + (["-x"] if stop else [])
    result = project.run(*args)
    events = project.events()
    setups = _check_balanced(events)
    assert len({e.pid for e in events}) == 2  # both workers ran tests
    if stop:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert outcomes(result)["failed"] == 1
        tests = [e for e in events if e.fields[0] == "test"]
        assert len(tests) < 18  # the run stopped
    else:
        result.assert_outcomes(passed=18)
        # Tests are handed out in collection order: a worker sees each module's tests
        # together, so it sets each module's fixture up exactly once.
        assert set(setups.values()) == {1}
        ran = {(e.pid, e.fields[1]) for e in events if e.fields[0] == "test"}
        assert set(setups) == ran


IDS = """
import json
import os

import pytest
import xdist


@pytest.mark.parametrize("i", range(8))
def test_ids(request, i, worker_id, testrun_uid, ploop_worker, tmp_path, tmp_path_factory):
    info = {
        "worker_id": worker_id,
        "workerinput": getattr(request.config, "workerinput", None),
        "xdist_worker_id": xdist.get_xdist_worker_id(request),
        "testrun_uid": testrun_uid,
        "ploop_worker": [ploop_worker.id, ploop_worker.index, ploop_worker.count],
        "env": os.environ.get("PYTEST_XDIST_WORKER"),
        "env_count": os.environ.get("PYTEST_XDIST_WORKER_COUNT"),
        "tmp_path": str(tmp_path),
        "basetemp": str(tmp_path_factory.getbasetemp()),
        "pid": os.getpid(),
    }
    (tmp_path / "mine").write_text("x")
    with open(os.path.join(os.path.dirname(__file__), f"ids-{i}.json"), "w") as f:
        json.dump(info, f)
"""


def _infos(path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(path.glob("ids-*.json"))]


def test_worker_ids_fixtures_and_variables(project: Project) -> None:
    project.pytester.makepyfile(test_ids=IDS)
    project.run("--ploop-workers=2").assert_outcomes(passed=8)
    first = _infos(project.path)
    assert len(first) == 8
    assert len({info["pid"] for info in first}) == 2
    for info in first:
        wid, index, count = info["ploop_worker"]
        assert (wid, count) == (f"w{index}", 2)
        assert info["worker_id"] == info["env"] == info["xdist_worker_id"] == f"gw{index}"
        assert info["env_count"] == "2"
        # xdist's config.workerinput, with xdist's keys (read by conftests and plugins)
        workerinput = info["workerinput"]
        assert workerinput.pop("mainargv")
        assert workerinput == {
            "workerid": f"gw{index}",
            "workercount": 2,
            "testrunuid": info["testrun_uid"],
        }
    uids = {info["testrun_uid"] for info in first}
    assert len(uids) == 1 and uids != {""}

    project.run("--ploop-workers=2").assert_outcomes(passed=8)
    (second_uid,) = {info["testrun_uid"] for info in _infos(project.path)}
    assert uids != {second_uid}  # a new uid for each run

    project.run().assert_outcomes(passed=8)
    for info in _infos(project.path):
        assert info["worker_id"] == info["xdist_worker_id"] == "master"
        assert info["workerinput"] is None
        assert info["ploop_worker"] == ["main", 0, 1]
        assert info["env"] is None and info["env_count"] is None


@pytest.mark.parametrize("given", [True, False], ids=["basetemp-given", "default-basetemp"])
def test_tmp_path_is_unique_per_worker(project: Project, given: bool) -> None:
    project.pytester.makepyfile(test_ids=IDS)
    if given:  # runpytest_subprocess passes --basetemp
        project.run("--ploop-workers=2").assert_outcomes(passed=8)
    else:  # pytest picks its own base temporary directory
        project.pytester.run(
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ploop-workers=2"),
            timeout=120,
        ).assert_outcomes(passed=8)
    infos = _infos(project.path)
    assert len({info["tmp_path"] for info in infos}) == 8
    basetemps: dict[str, set[str]] = defaultdict(set)
    for info in infos:
        basetemps[info["worker_id"]].add(info["basetemp"])
        assert Path(info["tmp_path"]).parent == Path(info["basetemp"])
    assert len(basetemps) == 2
    (w0,), (w1,) = basetemps.values()
    assert w0 != w1
    assert not Path(w0).is_relative_to(w1)
    assert not Path(w1).is_relative_to(w0)
