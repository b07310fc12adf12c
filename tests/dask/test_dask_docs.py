"""docs/dask.md is real: its example files run, and print what the page shows (times, pids,
addresses and worker numbers aside), against a local cluster and against a cluster started
with the ``dask scheduler`` and ``dask worker`` commands, as the page's recipe says."""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
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

import pytest_ploop as ploop

DOC = Path(__file__).resolve().parents[2] / "docs" / "dask.md"
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(
    "backend" not in inspect.signature(ploop.Pool).parameters,
    reason="ploop.Pool has no backend= yet (_loop.py is not wired to the Dask backend)",
)

# What differs from run to run: durations, speedups, pids, addresses, worker numbers.
_VOLATILE = [
    (re.compile(r"\d+\.\d+(s|x)\b"), r"*\1"),
    (re.compile(r"\(\d+% efficiency\)"), "(*% efficiency)"),
    (re.compile(r"tcp://[\d.]+:\d+"), "tcp://*"),
    (re.compile(r"pid \d+"), "pid *"),
    (re.compile(r"dask-\d+"), "dask-*"),
    (re.compile(r"attempt \d+.*"), "attempt *"),
]


def _blocks(kind: str) -> dict[str, str]:
    """The fenced blocks that follow ``<!-- kind: name -->`` in the page, by name."""
    pattern = rf"<!-- {kind}: (.+?) -->\n```[a-z]*\n(.*?)```"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, DOC.read_text(), re.S)}


def _pattern(line: str) -> str:
    literal = re.sub(r"([\[\]*?])", r"[\1]", line)
    for regex, replacement in _VOLATILE:
        literal = regex.sub(replacement, literal)
    return literal


def _check(command: str, cwd: Path, *args: str) -> None:
    shown = _blocks("output")[command]
    argv = [sys.executable, *shlex.split(command)[1:2], *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = out.stdout.rstrip("\n").splitlines()
    want = [_pattern(line) for line in shown.rstrip("\n").splitlines()]
    assert len(got) == len(want), out.stdout
    for line, pattern in zip(got, want, strict=True):
        assert fnmatch.fnmatchcase(line, pattern), (line, pattern)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    for name, source in _blocks("file").items():
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
