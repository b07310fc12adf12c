"""pytest-rerunfailures under ``--ploop-workers``: reruns are reported as in a serial run.

A worker has xdist's ``config.workerinput``; pytest-rerunfailures takes a process that has it
for an xdist worker, and where pytest-xdist is not installed it left each rerun unreported (as
for pytest-xdist < 1.20): no ``R``, no ``rerun`` count. The ``without-xdist`` case stands for
such an environment: xdist is not loaded, and the inner conftest makes
``importlib.metadata`` answer that pytest-xdist is not installed, which is what
pytest-rerunfailures asks.
"""

from __future__ import annotations

import pytest
from plugin_support import INI, Project, outcomes, short_summary

pytest.importorskip("pytest_rerunfailures")

FLAKY = """
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("i", range(4))
def test_fails_once(i):
    path = os.path.join(HERE, f"tried-{i}")
    if not os.path.exists(path):
        open(path, "w").close()
        raise AssertionError("the first try fails")


def test_passes():
    pass
"""

WITHOUT_XDIST = """
import importlib.metadata

_distribution = importlib.metadata.distribution


def _without_xdist(name):
    if name == "pytest-xdist":
        raise importlib.metadata.PackageNotFoundError(name)
    return _distribution(name)


importlib.metadata.distribution = _without_xdist
"""


def _run(project: Project, *args: str) -> pytest.RunResult:
    for path in project.path.glob("tried-*"):
        path.unlink()
    return project.run("--reruns=2", "-rAR", *args)


@pytest.mark.parametrize("xdist", [True, False], ids=["with-xdist", "without-xdist"])
def test_reruns_read_as_in_a_serial_run(project: Project, xdist: bool) -> None:
    # The project's ini keeps rerunfailures out of the inner runs: this test wants it.
    project.pytester.makeini(INI.replace(" -p no:rerunfailures", ""))
    project.pytester.makepyfile(test_flaky=FLAKY)
    args = () if xdist else ("-p", "no:xdist")
    if not xdist:
        project.pytester.makeconftest(WITHOUT_XDIST)

    serial = _run(project, *args)
    ploop = _run(project, *args, "--ploop-workers=2")
    for result in (serial, ploop):
        assert outcomes(result) == {"passed": 5, "rerun": 4}
        progress = next(line for line in result.outlines if line.startswith("test_flaky.py "))
        assert progress.split()[1].count("R") == 4
    assert sorted(short_summary(ploop)) == sorted(short_summary(serial))
    # rerunfailures' own summary section (-rR)
    assert sorted(_reruns(ploop)) == sorted(_reruns(serial))
    assert len(_reruns(ploop)) == 4


def _reruns(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("RERUN ")]


THREADS = """
import os
import threading


def pytest_sessionstart(session):
    # In the main process, after every plugin configured and before the workers fork.
    if hasattr(session.config, "workerinput"):  # an xdist worker
        return
    with open(os.path.join(str(session.config.rootpath), "threads.txt"), "w") as file:
        status = open("/proc/self/status").read()
        count = next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:"))
        names = sorted(t.name for t in threading.enumerate())
        file.write(count + " " + ",".join(names))
"""


def test_the_workers_fork_from_a_process_without_rerunfailures_server(project: Project) -> None:
    """With pytest-xdist installed, pytest-rerunfailures starts a server thread when it
    configures, for xdist's workers. Before: it ran in ploop's main process too, and Python
    3.12+ warned at each fork that the process is multi-threaded."""
    pytest.importorskip("xdist")
    project.pytester.makeini(INI.replace(" -p no:rerunfailures", ""))
    project.pytester.makepyfile(test_flaky=FLAKY)
    project.pytester.makeconftest(THREADS)
    threads = project.path / "threads.txt"

    ploop = _run(project, "--ploop-workers=2", "-W", "error::DeprecationWarning")
    assert threads.read_text() == "1 MainThread"
    assert outcomes(ploop) == {"passed": 5, "rerun": 4}
    assert len(_reruns(ploop)) == 4
    assert "multi-threaded" not in ploop.stdout.str() + ploop.stderr.str()
    # An xdist run still has the server its workers talk to.
    xdist = _run(project, "-n", "2")
    count, names = threads.read_text().split(" ", 1)
    assert count == "2" and "(run_server)" in names
    assert outcomes(xdist) == {"passed": 5, "rerun": 4}
