"""Reports and warnings across the process boundary, and reports for tests that never
finished (their worker crashed or hung)."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import pytest


def serialize_report(config: pytest.Config, report: pytest.TestReport) -> dict[str, Any]:
    """The report as plain data (pytest's own serialization, as xdist uses)."""
    data: dict[str, Any] = config.hook.pytest_report_to_serializable(config=config, report=report)
    return data


def deserialize_report(config: pytest.Config, data: dict[str, Any]) -> pytest.TestReport:
    """The report back from :func:`serialize_report`."""
    report: pytest.TestReport = config.hook.pytest_report_from_serializable(
        config=config, data=data
    )
    return report


def serialize_warning(message: warnings.WarningMessage) -> dict[str, Any]:
    """A recorded warning as data; the warning object itself travels when it pickles."""
    blob: bytes | None
    try:
        blob = pickle.dumps((message.message, message.category))
        pickle.loads(blob)
    except Exception:
        blob = None
    return {
        "blob": blob,
        "text": str(message.message),
        "category": message.category.__name__,
        "filename": message.filename,
        "lineno": message.lineno,
        "line": message.line,
    }


def deserialize_warning(data: dict[str, Any]) -> warnings.WarningMessage:
    """The ``WarningMessage`` back from :func:`serialize_warning`."""
    if data["blob"] is not None:
        message, category = pickle.loads(data["blob"])
    else:
        message, category = UserWarning(f"{data['category']}: {data['text']}"), UserWarning
    return warnings.WarningMessage(
        message, category, data["filename"], data["lineno"], None, data["line"]
    )


def failed_report(
    item: pytest.Item,
    text: str,
    start: float,
    stop: float,
    when: Literal["setup", "call", "teardown"] = "call",
) -> pytest.TestReport:
    """A failed report for ``item`` with ``text`` as its long representation."""
    return pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords=dict.fromkeys(item.keywords, 1),
        outcome="failed",
        longrepr=text,
        when=when,
        sections=[],
        duration=max(stop - start, 0.0),
        start=start,
        stop=stop,
        user_properties=list(item.user_properties),
    )


def output_file(run_dir: str, worker_id: str, pid: int, stream: str) -> str:
    """Where worker ``worker_id`` (process ``pid``) captures its ``"out"`` or ``"err"``."""
    return os.path.join(run_dir, f"output-{worker_id}-{pid}.{stream}")


def last_output(run_dir: str, worker_id: str, live: Collection[int], limit: int = 2000) -> str:
    """The output a dead worker of slot ``worker_id`` captured in its last test phase (the
    end of it, ``limit`` characters a stream at most), as text for its crash report. The
    files are removed; those of the live worker ``live`` that replaced it stay."""
    parts = []
    for stream, name in (("out", "stdout"), ("err", "stderr")):
        for path in sorted(Path(run_dir).glob(f"output-{worker_id}-*.{stream}")):
            if int(path.stem.rsplit("-", 1)[1]) in live:
                continue
            try:
                text = path.read_text(errors="replace")
                path.unlink()
            except OSError:
                continue
            if text.strip():
                if len(text) > limit:
                    text = "...\n" + text[-limit:].split("\n", 1)[-1]
                parts.append(f"last output on {name}:\n{text.rstrip()}")
    return "\n\n".join(parts)


def trim_stack(text: str, frames: int = 12) -> str:
    """faulthandler's dump, each thread cut where the test's (or case's) own frames end:
    below them is the worker's machinery (pytest, pluggy, pytest-ploop, multiprocessing)."""
    machinery = ("/_pytest/", "/pluggy/", "/pytest_ploop/", "/multiprocessing/")
    out: list[str] = []
    kept, cut = 0, False
    for line in text.strip().splitlines():
        if not line.startswith("  File"):
            out.append(line)
            kept, cut = 0, False
        elif cut:
            continue
        elif kept >= frames or any(part in line for part in machinery):
            out.append("  ...")
            cut = True
        else:
            out.append(line)
            kept += 1
    return "\n".join(out)
