"""The plugin's options and ini settings, validated once into :class:`Settings`."""

from __future__ import annotations

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
DISTS = ("load", "scope", "file")
SCHEDULES = ("lpt", "fifo")


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
    if value < minimum:
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
        except (ValueError, TypeError) as exc:
            raise pytest.UsageError(
                f"--ploop-workers={raw!r}: {exc}. Pass a whole number (0 to run serially) or 'auto'"
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
    return Settings(
        workers=workers,
        timeout=timeout,
        grace=5.0 if grace is None else grace,
        dist=dist,
        max_worker_restart=int(restarts) if restarts is not None else 4 * max(workers, 1),
        schedule=schedule,
        shard=parse_shard(shard_text) if shard_text else None,
    )
