"""``parametrize_parallel`` tests whose cases run on Dask, through real pytest runs:
``--ploop-backend=dask://HOST:PORT`` (the module's cluster), ``--ploop-backend=dask`` (a local
cluster started for the run), the decorator's ``backend="dask"``, the ini ``ploop_backend``,
and the usage errors.

The inner runs are subprocesses. Each case appends a line (its pid, the inner pytest's pid,
its Dask worker's address) to a log file that the test reads: the cases' own word for where
they ran, checked against the pids and addresses of the cluster's workers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import clear_inner_run_env, gone

pytest.importorskip("distributed")

RUN_TIMEOUT_S = 120.0
USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

# Plugins the inner runs do not need (hypothesis alone costs about a second per start-up).
INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:xdist
    -p no:cacheprovider
faulthandler_timeout = 60
{extra}
"""

# A case's line in the log. Everything it needs is in its own body: the function travels to
# the Dask worker by value, but a helper of the test module would be imported there by name,
# and the module cluster's workers do not have the inner project on their path.
LOG_CASE = """
    import json as _json
    import os as _os

    try:
        from distributed import get_worker
        _where = get_worker().address
    except (ImportError, ValueError):  # not in a Dask worker
        _where = "local"
    _line = _json.dumps([{test!r}, n, _os.getpid(), MAIN, _where]) + "\\n"
    _fd = _os.open({log!r}, _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT)
    try:
        _os.write(_fd, _line.encode())
    finally:
        _os.close(_fd)
"""


@dataclass(frozen=True)
class Case:
    """One line of the log: a case of ``test``, where it ran."""

    test: str
    n: int
    pid: int
    main: int  # the inner pytest's pid
    where: str  # the Dask worker's address, or "local"


class Project:
    """The inner project: its files, its runs, and what its cases logged."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.log = pytester.path / "cases.log"
        self.ini()

    def ini(self, extra: str = "") -> None:
        self.pytester.makeini(INI.format(extra=extra))

    def test(self, name: str, decorator: str, body: str = "") -> str:
        """A decorated test ``name`` over ``n`` in 0..3, logging where each case ran."""
        return (
            f"\n\n{decorator}\ndef {name}(n):"
            + LOG_CASE.format(test=name, log=str(self.log))
            + (body or "    pass\n")
        )

    def module(self, name: str, *tests: str) -> None:
        head = "import os\n\nimport pytest_ploop as ploop\n\nMAIN = os.getpid()\n"
        self.pytester.makepyfile(**{name: head + "".join(tests)})

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT_S)

    def cases(self) -> list[Case]:
        """The cases logged since the last call (by test and ``n``); the log starts anew."""
        if not self.log.exists():
            return []
        rows = [Case(*json.loads(line)) for line in self.log.read_text().splitlines()]
        self.log.unlink()
        return sorted(rows, key=lambda c: (c.test, c.n))


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    clear_inner_run_env(monkeypatch)
    return Project(pytester)


@dataclass(frozen=True)
class Cluster:
    """The module's cluster as the inner runs see it."""

    option: str  # --ploop-backend=...
    pids: frozenset[int]  # its worker processes
    addresses: frozenset[str]  # its workers' addresses


@pytest.fixture
def on_cluster(backend: Any) -> Cluster:
    address = str(backend.cluster.scheduler_address)
    by_address = backend.client.run(os.getpid)
    return Cluster(
        "dask://" + address.removeprefix("tcp://"),
        frozenset(by_address.values()),
        frozenset(by_address),
    )


def ran_on(cluster: Cluster, cases: list[Case]) -> bool:
    """Whether every case ran in a worker process of ``cluster`` (and not in pytest's)."""
    return bool(cases) and all(
        c.pid in cluster.pids and c.where in cluster.addresses and c.pid != c.main for c in cases
    )


def ran_locally(cluster: Cluster, cases: list[Case]) -> bool:
    """Whether every case ran in a forked ploop worker: not Dask, not pytest's process."""
    return bool(cases) and all(
        c.where == "local" and c.pid not in cluster.pids and c.pid != c.main for c in cases
    )


def failure_report(result: pytest.RunResult) -> str:
    """The failures section, with what differs between backends and runs (worker names,
    seconds, Dask addresses, pids) blanked."""
    text = result.stdout.str()
    start = text.index("= FAILURES =")
    end = text.index("- ploop cases -")
    report = text[start:end]
    report = re.sub(r"\(\d+\.\d+s on [\w:/.-]+\)", "(*s on *)", report)
    return re.sub(r"tcp://[\d.]+:\d+|pid \d+|main \d+", "*", report)


FAILING_BODY = """
    print(f"case {n} says hello")
    assert n != 2, f"case {n} fails on purpose"
"""


# -- --ploop-backend=dask://HOST:PORT ----------------------------------------------------------


def test_cases_run_on_the_cluster_the_option_names(project: Project, on_cluster: Cluster) -> None:
    project.module(
        "test_cases",
        project.test("test_fails", "@ploop.parametrize_parallel('n', range(4))", FAILING_BODY),
        project.test("test_passes", "@ploop.parametrize_parallel('n', range(4))"),
    )
    result = project.run(f"--ploop-backend={on_cluster.option}")
    result.assert_outcomes(failed=1, passed=1)
    cases = project.cases()
    assert [(c.test, c.n) for c in cases] == [
        (t, n) for t in ("test_fails", "test_passes") for n in range(4)
    ]
    assert ran_on(on_cluster, cases), cases
    text = result.stdout.str()
    assert "1 of 4 cases failed (1 failed); 3 passed" in text
    assert re.search(r"rerun: pytest test_cases.py::test_fails --ploop-case=2 .*on dask-\d", text)
    result.stdout.fnmatch_lines(["FAILED test_cases.py::test_fails - *1 of 4 cases failed*"])
    dask_report = failure_report(result)
    assert "E       AssertionError: case 2 fails on purpose" in dask_report
    assert "case 2 says hello" in dask_report  # its output, captured on the worker

    # The same project on the local backend reports the failure the same way.
    local = project.run()
    local.assert_outcomes(failed=1, passed=1)
    assert ran_locally(on_cluster, project.cases())
    assert failure_report(local) == dask_report


def _fails(n: int) -> None:
    assert n != 2


def test_a_case_failure_is_located_from_pytests_directory_not_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Dask worker's working directory is its own (the cluster's starter's). A location
    relative to it, when shorter than the absolute path, stayed as it was: the test above
    failed from a checkout next to pytest's temporary directories."""
    from pytest_ploop._testing._cases_dask import DaskCaseTask

    here = Path(__file__).resolve()
    task = DaskCaseTask(_fails, None, {}, {}, None, "long", False, str(here.parent))
    monkeypatch.chdir(here.parent.parent)  # the worker's: "dask/..." is shorter from here
    with pytest.raises(AssertionError) as info:
        _fails(2)
    text = task._longrepr(info.value)
    assert re.search(rf"^{here.name}:\d+: AssertionError$", text, re.M), text


def test_the_decorators_backend_wins_over_the_option(project: Project, on_cluster: Cluster) -> None:
    project.module(
        "test_mixed",
        project.test("test_default", "@ploop.parametrize_parallel('n', range(3))"),
        project.test("test_local", "@ploop.parametrize_parallel('n', range(3), backend='local')"),
        # backend="dask" without an address: the option's cluster.
        project.test("test_dask", "@ploop.parametrize_parallel('n', range(3), backend='dask')"),
    )
    result = project.run(f"--ploop-backend={on_cluster.option}")
    result.assert_outcomes(passed=3)
    cases = project.cases()
    assert ran_on(on_cluster, [c for c in cases if c.test != "test_local"])
    assert ran_locally(on_cluster, [c for c in cases if c.test == "test_local"])


def test_ploop_workers_each_connect_to_the_cluster(project: Project, on_cluster: Cluster) -> None:
    project.module(
        "test_workers",
        *(project.test(f"test_{i}", "@ploop.parametrize_parallel('n', range(3))") for i in "ab"),
    )
    result = project.run(f"--ploop-backend={on_cluster.option}", "--ploop-workers=2")
    result.assert_outcomes(passed=2)
    cases = project.cases()
    assert len(cases) == 6
    assert ran_on(on_cluster, cases)
    result.stdout.fnmatch_lines(["ploop: 2 workers, *"])  # each worker its own connection


def test_the_ini_setting_names_the_backend(project: Project, on_cluster: Cluster) -> None:
    project.ini(f"ploop_backend = {on_cluster.option}")
    project.module("test_ini", project.test("test_it", "@ploop.parametrize_parallel('n', [0, 1])"))
    project.run().assert_outcomes(passed=1)
    assert ran_on(on_cluster, project.cases())
    # The option wins over the ini setting.
    project.run("--ploop-backend=local").assert_outcomes(passed=1)
    assert ran_locally(on_cluster, project.cases())


LOCKS = """
import json
import os
import time

import pytest_ploop as ploop


@ploop.parametrize_parallel("n", range(4))
def test_serial(n):
    with ploop.lock("plugin-db", timeout=60):
        start = time.time()
        time.sleep(0.1)
        end = time.time()
    fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (json.dumps([start, end]) + "\\n").encode())
    finally:
        os.close(fd)


@ploop.parametrize_parallel("n", range(2))
def test_held(n):
    with ploop.lock("plugin-held", timeout=0.2):
        pass
"""


def test_ploop_lock_in_a_case_is_the_clusters(
    project: Project, on_cluster: Cluster, backend: Any
) -> None:
    from pytest_ploop._backends._dask_sync import dask_lock

    spans = project.pytester.path / "spans.log"
    project.pytester.makepyfile(test_locks=LOCKS.format(log=str(spans)))
    # Held here, on the cluster: the cases cannot take it (a file lock they would).
    with dask_lock("plugin-held", client=backend.client):
        result = project.run(f"--ploop-backend={on_cluster.option}", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    assert "2 of 2 cases failed (2 failed)" in result.stdout.str()
    assert result.stdout.str().count("LockTimeout") >= 2
    times = [json.loads(line) for line in spans.read_text().splitlines()]
    assert len(times) == 4
    edges = sorted([(end, -1) for _, end in times] + [(start, 1) for start, _ in times])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    assert peak == 1  # one case at a time held "plugin-db", across the cluster's two workers


# -- a local cluster for the run ----------------------------------------------------------------


def test_dask_alone_starts_a_local_cluster_for_the_run(
    project: Project, on_cluster: Cluster
) -> None:
    project.module(
        "test_local_cluster",
        project.test("test_option", "@ploop.parametrize_parallel('n', range(4))"),
        # The decorator's backend="dask" uses the run's cluster, too: one cluster per run.
        project.test("test_dask", "@ploop.parametrize_parallel('n', range(4), backend='dask')"),
    )
    result = project.run("--ploop-backend=dask")
    result.assert_outcomes(passed=2)
    cases = project.cases()
    assert len(cases) == 8
    assert all(c.where.startswith("tcp://") and c.pid != c.main for c in cases)
    assert not {c.pid for c in cases} & on_cluster.pids  # not the module's cluster
    assert gone({c.pid for c in cases})  # closed at the end of the run


def test_the_decorators_backend_dask_without_the_option(project: Project) -> None:
    project.module(
        "test_decorator",
        project.test("test_dask", "@ploop.parametrize_parallel('n', range(4), backend='dask')"),
        project.test("test_local", "@ploop.parametrize_parallel('n', range(2))"),
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    cases = project.cases()
    on_dask = [c for c in cases if c.test == "test_dask"]
    assert [c.n for c in on_dask] == [0, 1, 2, 3]
    assert all(c.where.startswith("tcp://") and c.pid != c.main for c in on_dask)
    local = [c for c in cases if c.test == "test_local"]
    assert [c.n for c in local] == [0, 1]
    assert all(c.where == "local" and c.pid != c.main for c in local)
    assert gone({c.pid for c in cases})


# -- usage errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--ploop-backend=spark"], "",
         "*--ploop-backend='spark': give local, dask (a local Dask cluster) or dask://HOST:PORT*"),
        (["--ploop-backend=dask://"], "", "*--ploop-backend='dask://': give local, dask*"),
        (["--ploop-backend=dask", "--ploop-workers=2"], "",
         "*which --ploop-workers workers cannot share*--ploop-backend=dask://HOST:PORT, or leave "
         "out --ploop-workers*"),
        (["--ploop-workers=2"], "ploop_backend = dask",
         "*pass --ploop-backend=dask://HOST:PORT, or leave out --ploop-workers*"),
        ([], "ploop_backend = ray", "*--ploop-backend='ray': give local, dask*"),
    ],
    ids=["unknown", "no-address", "with-workers", "ini-with-workers", "ini-unknown"],
)  # fmt: skip
def test_a_bad_backend_is_a_usage_error(
    project: Project, args: list[str], ini: str, message: str
) -> None:
    project.ini(ini)
    project.module("test_never", project.test("test_it", "@ploop.parametrize_parallel('n', [1])"))
    # In this process: a usage error starts no worker and no cluster.
    result = project.pytester.runpytest_inprocess(*args)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert project.cases() == []


def test_a_case_on_the_cluster_has_its_own_monkeypatch_and_the_items_xfail_judges_it(
    project: Project, on_cluster: Cluster
) -> None:
    """As on forked workers: a case's ``monkeypatch`` is undone when it ends (a later case
    on the same Dask worker saw the variable an earlier one set), and the item's own
    ``xfail(raises=...)`` xfails it when every failing case raised that."""
    project.pytester.makepyfile(
        test_cases="""
        import os

        import pytest
        import pytest_ploop as ploop


        @ploop.parametrize_parallel("n", range(6))
        def test_patches(n, monkeypatch):
            assert "PLOOP_CASE" not in os.environ, os.environ["PLOOP_CASE"]
            monkeypatch.setenv("PLOOP_CASE", str(n))


        @pytest.mark.xfail(raises=ValueError)
        @ploop.parametrize_parallel("n", range(4))
        def test_expected(n):
            if n % 2:
                raise ValueError(n)
        """
    )
    result = project.run(f"--ploop-backend={on_cluster.option}", "-rxX")
    result.assert_outcomes(passed=1, xfailed=1)
