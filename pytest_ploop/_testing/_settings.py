"""The plugin's options and ini settings, validated once into :class:`Settings`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pytest

from .._engine._cpus import resolve_workers
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
THREADS_HELP = (
    "threads each worker's numeric libraries (OpenMP, OpenBLAS, MKL) may use; default: the "
    "CPUs divided by the workers; 0 leaves them alone"
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


def read_settings(config: pytest.Config) -> Settings:
    """The settings from options, ini and environment; ``UsageError`` naming the fix."""
    raw = _raw(config, "ploop_workers")
    workers = 0
    if raw is not None and raw.strip() != "0":
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
    rss_text = _raw(config, "ploop_max_worker_rss")
    max_rss = parse_size(rss_text) if rss_text else None
    if max_rss is not None and raw is not None and raw.strip().lower() == "auto":
        from .._engine._metrics import available_memory

        workers = max(1, min(workers, available_memory() // max_rss))
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
    )


def parse_size(text: str) -> int:
    """``"512M"`` -> bytes (K, M, G, T are powers of 1024; a trailing ``B``/``iB`` is fine)."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS and cleaned[-1:] else ""
    try:
        value = float(cleaned[: len(cleaned) - len(unit)]) * _UNITS[unit]
    except ValueError:
        value = 0
    if not (math.isfinite(value) and value > 0):  # "nan", "inf": int() would crash
        raise pytest.UsageError(f"--ploop-max-worker-rss={text!r}: give a size such as 500M or 2G")
    return int(value)
