"""Fixtures for the whole suite; the first rule: no test leaves a process behind."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

pytest_plugins = ["pytester"]

_REAP_S = 10.0


def pytest_configure(config: pytest.Config) -> None:
    """Give the suite Python's own Ctrl-C handler when it was started with SIGINT ignored.

    A shell without job control starts a background job (``cmd &`` in a script, ``nohup``)
    with SIGINT ignored, and every process started from it inherits that across ``exec``.
    The suite's Ctrl-C tests send SIGINT to ploop runs in this process and in the ones it
    starts, as a terminal would; ignored, they saw no interrupt at all.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _descendants() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:  # pragma: no cover
        return {}


@pytest.fixture(autouse=True)
def no_orphans(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a child process (or a grandchild) running when it ends."""
    before = set(_descendants())
    yield
    left = {pid: p for pid, p in _descendants().items() if pid not in before}
    if not left:
        return
    # Processes that were told to exit may still be on their way out: wait for the exit
    # event (bounded), not a fixed sleep.
    _, alive = psutil.wait_procs(list(left.values()), timeout=_REAP_S)
    alive = [p for p in alive if _running(p)]
    if alive:
        names = ", ".join(f"{p.pid} {_cmd(p)}" for p in alive)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        pytest.fail(f"{request.node.nodeid} left processes running: {names}", pytrace=False)


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:80] or p.name()
    except psutil.Error:
        return "?"


@pytest.fixture
def in_tmp(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> os.PathLike[str]:
    """Run the test with the temporary directory as the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs print as on a developer's terminal: under ``CI`` (or
    ``BUILD_NUMBER``) pytest stops cutting the short summary's lines to the terminal width,
    and tests that read that summary expect one line per test."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
