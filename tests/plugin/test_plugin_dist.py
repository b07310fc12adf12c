"""``--ploop-dist``: ``file`` keeps a module's tests on one worker, ``scope`` a class's (and a
module's own functions), ``load`` hands tests out one by one."""

from __future__ import annotations

from collections import defaultdict

import pytest
from plugin_support import Project

MODULE = """
import os

import pytest
import ploophelp


def record(request):
    ploophelp.log(request.node.nodeid, os.environ["PLOOP_WORKER"])


@pytest.mark.parametrize("i", range(4))
def test_function(request, i):
    record(request)


class TestOne:
    @pytest.mark.parametrize("i", range(4))
    def test_method(self, request, i):
        record(request)


class TestTwo:
    @pytest.mark.parametrize("i", range(4))
    def test_method(self, request, i):
        record(request)
"""


def _workers_by(project: Project, key: str) -> dict[str, set[str]]:
    """The workers that ran each module (``key="file"``) or scope (``"scope"``)."""
    out: dict[str, set[str]] = defaultdict(set)
    for e in project.events():
        nodeid, worker = e.fields
        path = nodeid.split("[")[0]
        out[path.split("::")[0] if key == "file" else path.rsplit("::", 1)[0]].add(worker)
    return out


@pytest.fixture
def modules(project: Project) -> Project:
    for name in ("test_d1", "test_d2", "test_d3"):
        project.pytester.makepyfile(**{name: MODULE})
    return project


@pytest.mark.parametrize("dist", ["file", "scope"])
def test_grouped_dist_keeps_a_scope_on_one_worker(modules: Project, dist: str) -> None:
    modules.run("--ploop-workers=2", f"--ploop-dist={dist}").assert_outcomes(passed=36)
    groups = _workers_by(modules, dist)
    assert len(groups) == (3 if dist == "file" else 9)
    assert all(len(workers) == 1 for workers in groups.values()), dict(groups)
    # Both workers had groups to run: the check above is not one worker running everything.
    assert set().union(*groups.values()) == {"w0", "w1"}


def test_load_dist_spreads_a_module(modules: Project) -> None:
    modules.run("--ploop-workers=2", "--ploop-dist=load").assert_outcomes(passed=36)
    groups = _workers_by(modules, "file")
    assert any(len(workers) == 2 for workers in groups.values()), dict(groups)
