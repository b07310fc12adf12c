"""Issue 7: ``ploop.run_once`` computes a value once per run and shares it with every worker."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sync_support import Project

import pytest_ploop as ploop

ONCE = """
import json
import os
import uuid

import pytest
from conftest import barrier, log

import pytest_ploop as ploop


def compute(key):
    log("compute", key)
    return {"token": uuid.uuid4().hex, "pid": os.getpid()}


# In the main process, before the workers fork: they inherit it.
EARLY = ploop.run_once("early", lambda: compute("early"))


@pytest.mark.parametrize("n", range(8))
def test_share(n):
    barrier(4)  # all four ask at the same moment
    late = ploop.run_once("late", lambda: compute("late"))
    early = ploop.run_once("early", lambda: compute("early"))
    log("value", json.dumps({"late": late, "early": early}, sort_keys=True))
"""


def test_a_value_is_computed_once_across_four_workers(project: Project) -> None:
    project.pytester.makepyfile(test_once=ONCE)
    project.run("--ploop-workers=4").assert_outcomes(passed=8)

    computed = project.events("compute")
    assert sorted((e.name, e.worker) for e in computed if e.name == "early") == [("early", "main")]
    (late,) = (e for e in computed if e.name == "late")
    assert late.worker.startswith("w")

    values = project.events("value")
    assert len(values) == 8
    assert len({e.worker for e in values}) == 4
    (shared,) = {e.name for e in values}  # the same value in every test, on every worker
    assert json.loads(shared)["late"]["pid"] == late.pid


UNPICKLABLE = """
import threading

import pytest_ploop as ploop


def test_lock_value():
    ploop.run_once("lock", threading.Lock)
"""


def test_an_unpicklable_value_fails_with_the_fix_in_the_message(project: Project) -> None:
    project.pytester.makepyfile(test_bad=UNPICKLABLE)
    result = project.run("--ploop-workers=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*PloopError: run_once('lock'): the value cannot be pickled to share it between "
            "workers (TypeError: cannot pickle '_thread.lock' object); return something that "
            "can be, such as a URL, a path or a port, and open the resource in each worker"
        ]
    )


def test_in_one_process_the_value_is_computed_once(run_dir: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"answer": 42}

    first = ploop.run_once("answer", compute)
    assert ploop.run_once("answer", compute) is first
    assert calls == [1]
    assert first == {"answer": 42}


def test_after_an_unpicklable_value_the_key_is_free_again(run_dir: Path) -> None:
    with pytest.raises(ploop.PloopError, match="cannot be pickled") as info:
        ploop.run_once("k", threading.Lock)
    assert isinstance(info.value.__cause__, TypeError)
    assert not [p for p in run_dir.iterdir() if p.suffix == ".pickle"]
    assert ploop.run_once("k", lambda: "fine") == "fine"  # its lock was released
