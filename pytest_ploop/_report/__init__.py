"""Renderings of a run record: the terminal summary, JSON, Markdown and a self-contained HTML
page; statistics and comparisons behind them.

    RunRecord (engine) ──> RunReport (record + labels + outcomes + kind + machine)
                                 │            ^                 │
                    _json.write  │            │ _json.read      v  RunStats (numpy)
                                 └─> run.json ┘                 │
                                                    terminal · Markdown · HTML · compare

Entry points for the rest of the package: :func:`write_report` (the loop API's
``report=`` and ``--ploop-report``), :func:`terminal_lines` (pytest's summary),
:func:`compare`, and ``python -m pytest_ploop report``.

The names below other than those of ``_files`` are imported on first use: the pytest plugin
imports this package in every run, and numpy only matters once there is a record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy
from ._files import FORMATS, format_of, render, report_paths, write_report, write_reports

if TYPE_CHECKING:
    from ._compare import Comparison, compare
    from ._html import render_html
    from ._json import SCHEMA, read
    from ._markdown import render_markdown
    from ._run import RunReport, as_report
    from ._stats import Labels, RunStats, compute
    from ._terminal import summary_line, terminal_lines

__all__ = [
    "FORMATS",
    "SCHEMA",
    "Comparison",
    "Labels",
    "RunReport",
    "RunStats",
    "as_report",
    "compare",
    "compute",
    "format_of",
    "read",
    "render",
    "render_html",
    "render_markdown",
    "report_paths",
    "summary_line",
    "terminal_lines",
    "write_report",
    "write_reports",
]

_LAZY = {
    "Comparison": "_compare",
    "compare": "_compare",
    "render_html": "_html",
    "SCHEMA": "_json",
    "read": "_json",
    "render_markdown": "_markdown",
    "RunReport": "_run",
    "as_report": "_run",
    "Labels": "_stats",
    "RunStats": "_stats",
    "compute": "_stats",
    "summary_line": "_terminal",
    "terminal_lines": "_terminal",
}


__getattr__ = _lazy.attributes(__name__, _LAZY)
