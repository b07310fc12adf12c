"""The plugin's options and ini settings, validated once into :class:`Settings`."""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass

import pytest

from .._engine._cpus import resolve_workers
from . import _memory
from ._durations import parse_shard

WORKERS_HELP = (
    "run tests in N worker processes ('auto': the CPUs this process may use); 0 or unset "
    "runs them in this process as usual. Also the PLOOP_WORKERS environment variable."
)
TIMEOUT_HELP = "seconds a test may run; a hung test's worker is killed and the test fails"
GRACE_HELP = "seconds tests in flight get to finish after -x/--maxfail or Ctrl-C (default 5)"
DIST_HELP = (
    "load: hand out test by test (default); scope: keep a module's or class's tests on one "
    "worker; file: keep a module's tests on one worker"
)
RESTART_HELP = "stop the run after this many workers crashed (default: 4 times the workers)"
SCHEDULE_HELP = (
    "lpt: hand out the longest tests first, by the durations recorded in pytest's cache "
    "(the default when there are any); fifo: in collection order"
)
SHARD_HELP = (
    "run only the K-th of N shards of the suite (1-based), balanced by recorded durations "
    "(by count when none are recorded): one shard per CI job"
)
MAX_TASKS_HELP = "replace a worker (a fresh fork) after it ran this many tests"
MAX_RSS_HELP = (
    "replace a worker whose memory (RSS) passed SIZE between tests (such as 500M, 2G); with "
    "--ploop-workers=auto it also caps the workers so that they fit in the memory available"
)
BUDGET_HELP = (
    "with --ploop-workers=auto: the memory the workers may use together (such as 8G; "
    "default: what the system reports available, within the cgroup's limit); the workers "
    "are capped so that each fits with its peak RSS of the last run"
)
THREADS_HELP = (
    "threads each worker's numeric libraries (OpenMP, OpenBLAS, MKL) may use; default: the "
    "CPUs divided by the workers; 0 leaves them alone"
)
BACKEND_HELP = (
    "where parametrize_parallel tests run their cases: local (forked workers, the default), "
    "dask (a Dask LocalCluster started for the run), or dask://HOST:PORT (the Dask "
    "scheduler there); needs pytest-ploop[dask]"
)
DISTS = ("load", "scope", "file")
SCHEDULES = ("lpt", "fifo")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Settings:
    """What the options asked for."""

    workers: int
    timeout: float | None
    grace: float
    dist: str
    max_worker_restart: int
    schedule: str | None  # None: lpt when durations are recorded, else fifo
    shard: tuple[int, int] | None
    max_tasks_per_worker: int | None = None
    max_worker_rss: int | None = None
    threads_per_worker: int | None = None
    memory_budget: int | None = None
    memory_cap: str = ""  # the terminal's line about the memory budget (a cap, or no effect)
    backend: tuple[str, str | None] = ("local", None)  # ("dask", address or None)


def add_options(parser: pytest.Parser) -> None:
    """Register the command-line options and their ini settings."""
    group = parser.getgroup("ploop", "parallel runs (pytest-ploop)")
    options = [
        ("workers", WORKERS_HELP, "N|auto"),
        ("timeout", TIMEOUT_HELP, "SECONDS"),
        ("grace", GRACE_HELP, "SECONDS"),
        ("dist", DIST_HELP, "load|scope|file"),
        ("max-worker-restart", RESTART_HELP, "N"),
        ("schedule", SCHEDULE_HELP, "lpt|fifo"),
        ("shard", SHARD_HELP, "K/N"),
        ("max-tasks-per-worker", MAX_TASKS_HELP, "N"),
        ("max-worker-rss", MAX_RSS_HELP, "SIZE"),
        ("threads-per-worker", THREADS_HELP, "N"),
        ("memory-budget", BUDGET_HELP, "SIZE"),
        ("backend", BACKEND_HELP, "local|dask|dask://HOST:PORT"),
    ]
    for name, help_, metavar in options:
        dest = "ploop_" + name.replace("-", "_")
        group.addoption(f"--ploop-{name}", dest=dest, default=None, metavar=metavar, help=help_)
        parser.addini(dest, help_, default=None)


def _raw(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name)
    if value is None:
        value = config.getini(name)
    if value is None and name == "ploop_workers":
        value = os.environ.get("PLOOP_WORKERS")
    return None if value in (None, "") else str(value)


def _number(config: pytest.Config, name: str, minimum: float) -> float | None:
    raw = _raw(config, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if not math.isfinite(value) or value < minimum:  # nan and inf crashed int() below
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag}={raw!r} must be a number of at least {minimum:g}")
    return value


def workers_asked(config: pytest.Config) -> str | None:
    """``--ploop-workers`` (or its ini setting, or ``PLOOP_WORKERS``) as given, when it asks
    for workers (not absent, not 0)."""
    raw = _raw(config, "ploop_workers")
    return raw if raw is not None and raw.strip() != "0" else None


def read_settings(config: pytest.Config) -> Settings:
    """The settings from options, ini and environment; ``UsageError`` naming the fix."""
    raw = workers_asked(config)
    workers = 0
    if raw is not None:
        try:
            workers = resolve_workers(raw)
        except (ValueError, TypeError):
            # Our own words, not the loop API's: its advice ("workers=1 to run in this
            # process") is wrong here, where 1 is one worker and 0 runs in this process.
            raise pytest.UsageError(
                f"--ploop-workers={raw!r}: pass a whole number of worker processes such as "
                "--ploop-workers=4, 'auto' for one per CPU available, or 0 to run the tests "
                "in this process"
            ) from None
    timeout = _number(config, "ploop_timeout", 0)
    if timeout == 0:
        timeout = None
    grace = _number(config, "ploop_grace", 0)
    dist = _raw(config, "ploop_dist") or "load"
    if dist not in DISTS:
        raise pytest.UsageError(f"--ploop-dist={dist!r} is not one of {', '.join(DISTS)}")
    restarts = _number(config, "ploop_max_worker_restart", 0)
    schedule = _raw(config, "ploop_schedule")
    if schedule is not None and schedule not in SCHEDULES:
        raise pytest.UsageError(
            f"--ploop-schedule={schedule!r} is not one of {', '.join(SCHEDULES)}"
        )
    shard_text = _raw(config, "ploop_shard")
    max_tasks = _number(config, "ploop_max_tasks_per_worker", 1)
    threads = _number(config, "ploop_threads_per_worker", 0)  # 0: no cap (RunOptions)
    backend = read_backend(config)
    if backend == ("dask", None) and workers > 0:
        raise pytest.UsageError(
            "--ploop-backend=dask starts a Dask cluster in this process, which --ploop-workers "
            "workers cannot share: start one (dask scheduler; dask worker ADDRESS) and pass "
            "--ploop-backend=dask://HOST:PORT, or leave out --ploop-workers"
        )
    rss_text = _raw(config, "ploop_max_worker_rss")
    max_rss = parse_size(rss_text) if rss_text else None
    budget_text = _raw(config, "ploop_memory_budget")
    budget = parse_size(budget_text, "--ploop-memory-budget") if budget_text else None
    memory_line = ""
    if raw is not None and raw.strip().lower() == "auto":
        cap = _memory.cap_workers(config, workers, max_rss, budget)
        if cap is not None:
            workers = cap.workers
            memory_line = cap.line() if cap.capped else ""
    elif budget is not None and workers > 0:
        # Said, not an error: the budget may sit in the ini file for the runs that use auto.
        memory_line = (
            f"ploop: --ploop-memory-budget={budget_text} had no effect: it caps the worker "
            f"count of --ploop-workers=auto, and this run had --ploop-workers={raw}"
        )
    return Settings(
        workers=workers,
        timeout=timeout,
        grace=5.0 if grace is None else grace,
        dist=dist,
        max_worker_restart=int(restarts) if restarts is not None else 4 * max(workers, 1),
        schedule=schedule,
        shard=parse_shard(shard_text) if shard_text else None,
        max_tasks_per_worker=int(max_tasks) if max_tasks is not None else None,
        max_worker_rss=max_rss,
        threads_per_worker=int(threads) if threads is not None else None,
        memory_budget=budget,
        memory_cap=memory_line,
        backend=backend,
    )


def read_backend(config: pytest.Config) -> tuple[str, str | None]:
    """``--ploop-backend`` (or ini ``ploop_backend``) as ``(kind, address)``: ``("local",
    None)``, ``("dask", None)`` for a local cluster, ``("dask", "tcp://HOST:PORT")``.

    Raises:
        pytest.UsageError: not one of those forms, or Dask distributed is not installed.
    """
    raw = _raw(config, "ploop_backend")
    text = (raw or "local").strip()
    if text == "local":
        return ("local", None)
    address: str | None = None
    if text.startswith("dask://") and len(text) > len("dask://"):
        address = "tcp://" + text.removeprefix("dask://")
    elif text != "dask":
        raise pytest.UsageError(
            f"--ploop-backend={raw!r}: give local, dask (a local Dask cluster) or "
            "dask://HOST:PORT (a Dask scheduler, such as dask://scheduler:8786)"
        )
    if importlib.util.find_spec("distributed") is None:
        raise pytest.UsageError(
            f"--ploop-backend={raw}: Dask distributed is not installed: "
            'pip install "pytest-ploop[dask]"'
        )
    return ("dask", address)


def parse_size(text: str, flag: str = "--ploop-max-worker-rss") -> int:
    """``"512M"`` -> bytes (K, M, G, T are powers of 1024; a trailing ``B``/``iB`` is fine)."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS and cleaned[-1:] else ""
    try:
        value = float(cleaned[: len(cleaned) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = 0
    # "nan", "inf": int() would crash; under a byte ("0.5") is 0, which "0" is refused as.
    if not (math.isfinite(value) and value >= 1):
        raise pytest.UsageError(f"{flag}={text!r}: give a size such as 500M or 2G")
    return int(value)
