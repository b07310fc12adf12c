"""pytest-benchmark under ``--ploop-workers``: its benchmarks run as plain tests, as under xdist.

pytest-benchmark keeps its measurements in a session object of the main process. Under
``--ploop-workers`` the ``benchmark`` fixture runs in the workers, which would fill their own
copies of that object, and the table and ``--benchmark-json`` of the main process would stay
empty; the timings, taken next to other tests, would not mean much either. pytest-benchmark
switches itself off under xdist for that reason; its check cannot see ploop's workers, so the
plugin switches it off the same way: each benchmarked function runs once, untimed, and the
terminal summary says so, and how to measure them. (It is not a warning: under
``filterwarnings = error`` that would fail a run whose tests all passed.)
"""

from __future__ import annotations

from typing import Any

import pytest

WHY = (
    "Benchmarks are automatically disabled because --ploop-workers is active: they cannot "
    "be measured reliably next to other tests, and each ran once as a plain test. Measure "
    "them in a run without --ploop-workers (such as `pytest --benchmark-only`)."
)


def install(config: pytest.Config) -> None:
    """Switch pytest-benchmark's timing off for this ``--ploop-workers`` run when the session
    starts (pytest-benchmark sets itself up last, after this plugin's ``pytest_configure``)."""
    config.pluginmanager.register(_Switch(config), "ploop-benchmark")


class _Switch:
    """Switches pytest-benchmark off before the workers fork, and says so at the end of the
    run when a test of it used the ``benchmark`` fixture."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: Any = None  # pytest-benchmark's, when this run switched it off
        self.found = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        session: Any = getattr(self.config, "_benchmarksession", None)
        if session is None or getattr(session, "skip", True) or getattr(session, "disabled", True):
            return  # not installed, --benchmark-skip, --benchmark-disable (or unknown)
        if getattr(session, "only", False):
            raise pytest.UsageError(
                "--benchmark-only measures benchmarks, and --ploop-workers runs them next to "
                "other tests, where they cannot be measured reliably: run it without "
                "--ploop-workers"
            )
        session.disabled = True
        self.session = session

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.found = any("benchmark" in getattr(item, "fixturenames", ()) for item in items)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.session is not None and self.found:
            terminalreporter.write_sep("-", "pytest-benchmark", yellow=True)
            terminalreporter.write_line(WHY)
