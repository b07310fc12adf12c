"""Reports written to files, in the format a file's extension names.

Light on purpose: the pytest plugin imports this at start-up in every run, serial ones too,
so numpy and the renderers are imported only when a report is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .._engine._record import RunRecord
    from ._compare import Comparison
    from ._run import RunReport
    from ._stats import Labels

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


ReportOption = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]], None]
"""What a ``report=`` argument takes: no report, one path, or several."""


def report_paths(report: ReportOption) -> list[Path]:
    """The files a ``report=`` argument names, their formats checked (call it before the
    run, so that a wrong name fails at once, not after an hour of work).

    Raises:
        ValueError: an extension is none of ``.json``, ``.md``, ``.html``.

    Example::

        paths = report_paths(report)  # before the run
        ...
        write_reports(pool.last_run, paths)  # after it, also when it raised
    """
    if report is None:
        return []
    given = [report] if isinstance(report, str | os.PathLike) else list(report)
    for p in given:
        if isinstance(p, str) and not p.strip():
            raise ValueError(
                "report='' names no file: give a name ending in .json, .md or .html, or "
                "report=None for no report"
            )
    paths = [Path(p) for p in given]
    for p in paths:
        format_of(p)
    return paths


def render(report: RunReport, fmt: str, comparison: Comparison | None = None) -> str:
    """``report`` as ``"json"``, ``"md"`` or ``"html"`` text."""
    if fmt == "json":
        from ._json import dumps

        return dumps(report)
    if fmt == "md":
        from ._markdown import render_markdown

        return render_markdown(report, comparison)
    if fmt == "html":
        from ._html import render_html

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
    from ._run import as_report

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
    """:func:`write_report` to each of ``paths`` (statistics computed once).

    Raises:
        ValueError: an extension is none of ``.json``, ``.md``, ``.html`` (checked before
            anything is written).
    """
    from ._run import as_report

    targets = list(paths)
    for p in targets:
        format_of(p)
    report = as_report(run, labels, kind)
    return [write_report(report, p, comparison=comparison) for p in targets]
