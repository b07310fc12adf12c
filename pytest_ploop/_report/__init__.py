"""Renderings of a run record: the terminal summary, JSON, Markdown and a self-contained HTML
page; statistics and comparisons behind them.

    RunRecord (engine) ──> RunReport (record + labels + kind + machine) ──> RunStats (numpy)
                                 │                    ^                         │
                                 │ _json.write        │ _json.read              v
                                 └──> run.json ───────┘        terminal · Markdown · HTML

Entry points for the rest of the package: :func:`write_report` (the loop API's
``report=`` and ``--ploop-report``), :func:`~._terminal.terminal_lines` (pytest's summary),
:func:`~._compare.compare`, and ``python -m pytest_ploop report``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .._engine._record import RunRecord
from ._compare import Comparison, compare
from ._html import render_html
from ._json import SCHEMA, dumps, read
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
    "summary_line",
    "terminal_lines",
    "write_report",
    "write_reports",
]

FORMATS = {".json": "json", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


def format_of(path: str | Path) -> str:
    """``"json"``, ``"md"`` or ``"html"``, from the extension of ``path``.

    Raises:
        ValueError: the extension is none of ``.json``, ``.md``, ``.html``.
    """
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(
            f"cannot tell the report format of {str(path)!r}: use a name ending in .json, "
            ".md or .html"
        ) from None


def render(report: RunReport, fmt: str, comparison: Comparison | None = None) -> str:
    """``report`` as ``"json"``, ``"md"`` or ``"html"`` text."""
    if fmt == "json":
        return dumps(report)
    if fmt == "md":
        return render_markdown(report, comparison)
    if fmt == "html":
        return render_html(report, comparison)
    raise ValueError(f"unknown report format {fmt!r}")


def write_report(
    run: RunReport | RunRecord,
    path: str | Path,
    *,
    labels: Labels = None,
    kind: str = "loop",
    comparison: Comparison | None = None,
) -> Path:
    """Write ``run`` to ``path`` in the format its extension names; return the path.

    ``run`` is a record (``pool.last_run``) or a :class:`RunReport`; ``labels`` and ``kind``
    apply to a bare record. Parent directories are created.

    Raises:
        ValueError: the extension is none of ``.json``, ``.md``, ``.html``.

    Example::

        with ploop.Pool(4) as pool:
            pool.map(resize, images)
        write_report(pool.last_run, "run.html")
    """
    out = Path(path)
    fmt = format_of(out)
    report = as_report(run, labels, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report, fmt, comparison), encoding="utf-8")
    return out


def write_reports(
    run: RunReport | RunRecord,
    paths: Iterable[str | Path],
    *,
    labels: Labels = None,
    kind: str = "loop",
    comparison: Comparison | None = None,
) -> list[Path]:
    """:func:`write_report` to each of ``paths`` (statistics computed once)."""
    report = as_report(run, labels, kind)
    return [write_report(report, p, comparison=comparison) for p in paths]
