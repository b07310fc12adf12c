"""docs/dask.md is real: its example files run, and print what the page shows (times, pids,
addresses and worker numbers aside), against a local cluster and against a cluster started
with the ``dask scheduler`` and ``dask worker`` commands, as the page's recipe says; so do
the examples of ``report=`` and ``backend=``, and of how arguments reach the workers, in
docs/loops.md.

A page marks an example file with ``<!-- file: NAME -->`` before its block, and what a command
printed with ``<!-- output: COMMAND -->``; ``python NAME`` and ``pytest ARGS`` commands run."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")


DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "dask.md"
LOOPS = DOCS / "loops.md"
RUN_TIMEOUT_S = 120

# What an example's run must not inherit from this one (a worker's variables, pytest options).
_ENV_OUT = ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT")

# What differs from run to run: durations, speedups, pids, addresses, worker numbers.
_VOLATILE = [
    (re.compile(r"\d+\.\d+(s|x)\b"), r"*\1"),
    (re.compile(r"\(\d+% efficiency\)"), "(*% efficiency)"),
    (re.compile(r"tcp://[\d.]+:\d+"), "tcp://*"),
    (re.compile(r"pid \d+"), "pid *"),
    (re.compile(r"dask-\d+"), "dask-*"),
    (re.compile(r"attempt \d+.*"), "attempt *"),
    (re.compile(r"on \d+ workers"), "on * workers"),  # a LocalCluster of one per CPU
]


def _blocks(kind: str, doc: Path = DOC) -> dict[str, str]:
    """The fenced blocks that follow ``<!-- kind: name -->`` in the page, by name."""
    pattern = rf"<!-- {kind}: (.+?) -->\n```[a-z]*\n(.*?)```"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, doc.read_text(), re.S)}


def _pattern(line: str) -> str:
    literal = re.sub(r"([\[\]*?])", r"[\1]", line)
    for regex, replacement in _VOLATILE:
        literal = regex.sub(replacement, literal)
    return literal


def _argv(command: str, args: tuple[str, ...]) -> list[str]:
    """``python FILE`` (with ``args`` for it instead of the page's) or ``pytest ARGS``."""
    program, *rest = shlex.split(command)
    if program == "pytest":
        return [sys.executable, "-m", "pytest", *rest, *args]
    assert program == "python", command
    return [sys.executable, rest[0], *args]


def _check(command: str, cwd: Path, *args: str, doc: Path = DOC, returncode: int = 0) -> None:
    shown = _blocks("output", doc)[command]
    env = {k: v for k, v in os.environ.items() if k not in _ENV_OUT and not k.startswith("PLOOP_")}
    # pytest cuts its summary lines to the terminal's width: the page's is 80 columns.
    env |= {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "COLUMNS": "80"}
    out = subprocess.run(
        _argv(command, args), cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        env=env,
    )  # fmt: skip
    assert out.returncode == returncode, out.stdout[-3000:] + out.stderr[-3000:]
    got = out.stdout.rstrip("\n").splitlines()
    want = [_pattern(line) for line in shown.rstrip("\n").splitlines()]
    assert len(got) == len(want), out.stdout
    for line, pattern in zip(got, want, strict=True):
        assert fnmatch.fnmatchcase(line, pattern), (line, pattern)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """The example files of both pages, in a directory of their own."""
    files = [_blocks("file", doc) for doc in (DOC, LOOPS)]
    assert not set(files[0]) & set(files[1]), "two pages' examples share a file name"
    for name, source in (files[0] | files[1]).items():
        (tmp_path / name).write_text(source)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _cluster(cwd: Path) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker --nworkers 2 --nthreads 1``, with the page's
    setting; stopped (SIGTERM, then waited for) at the end."""
    import distributed

    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    python_m = [sys.executable, "-m"]
    port = address.rsplit(":", 1)[1]
    procs = [
        subprocess.Popen(
            [*python_m, "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", port, "--no-dashboard"],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        procs.append(
            subprocess.Popen(
                [*python_m, "distributed.cli.dask_worker", address, "--nworkers", "2",
                 "--nthreads", "1", "--no-dashboard"],
                cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):  # workers first: they close their nannies and processes
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_local_cluster(examples: Path) -> None:
    _check("python failures.py", examples)


def test_a_cluster_you_already_run(examples: Path) -> None:
    with _cluster(examples) as address:
        _check("python cluster.py tcp://127.0.0.1:8786", examples, address)


def test_decorated_tests_on_a_local_cluster(examples: Path) -> None:
    _check("pytest -q test_sims.py --ploop-backend=dask", examples, returncode=1)


def test_locks_across_the_cluster(examples: Path) -> None:
    _check("python locks.py", examples)


def test_loops_report_and_backend(examples: Path) -> None:
    _check("python reports.py", examples, doc=LOOPS)
    assert (examples / "local.html").read_text().startswith("<!DOCTYPE html>")
    assert (examples / "dask.html").read_text().startswith("<!DOCTYPE html>")
    assert not (examples / "run.txt").exists()


def test_loops_arguments_unpickled_and_pickled(examples: Path) -> None:
    _check("python args.py", examples, doc=LOOPS)


def test_every_output_has_its_example() -> None:
    """An output block whose command runs nothing on this page would go unchecked."""
    for doc in (DOC, LOOPS):
        files = _blocks("file", doc)
        for command in _blocks("output", doc):
            program, *rest = shlex.split(command)
            assert any(arg in files for arg in rest), (doc.name, command)
            assert program in ("python", "pytest"), (doc.name, command)
