"""The HTML report of a large run: file size and time to render it, in Python and in a browser.

Run it from a checkout with::

    python benchmarks/report_html.py [--tasks 60000] [--workers 2]

It runs ``ploop.map`` over ``--tasks`` tasks of ``--task-ms`` of CPU each, then renders the
run's HTML report and reports the file size, the bars drawn (tasks narrower than a pixel are
drawn together), the time ``render_html`` took, and, when Debian's ``chromium`` is
installed, how long headless Chromium takes to load the page and take a screenshot of it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's ploop

import pytest_ploop as ploop
from pytest_ploop._report import RunReport, render_html


def spin(seconds: float) -> int:
    """A task that keeps its CPU busy for ``seconds``."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="size and render time of a large HTML report")
    parser.add_argument("--tasks", type=int, default=60_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task-ms", type=float, default=0.1)
    args = parser.parse_args(argv)
    with ploop.Pool(workers=args.workers) as pool:
        pool.map(spin, [args.task_ms / 1000] * args.tasks)
        record = pool.last_run
    assert record is not None
    t0 = time.perf_counter()
    html = render_html(RunReport(record))
    render_s = time.perf_counter() - t0
    bars = html.count('<rect class="task')
    print(f"{args.tasks} tasks of {args.task_ms:g} ms on {args.workers} workers "
          f"({record.wall_s:.1f} s wall): {len(html.encode()) / 1024:.0f} KiB of "
          f"HTML, {bars} bars, rendered in {render_s:.2f} s")  # fmt: skip
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: no browser timing")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "run.html", Path(tmp) / "run.png"
        page.write_text(html)
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
               "--window-size=1400,1800", page.as_uri()]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, timeout=300, check=True)
        browser_s = time.perf_counter() - t0
        blank = Path(tmp) / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title>")
        t0 = time.perf_counter()
        subprocess.run([*cmd[:-1], blank.as_uri()], capture_output=True, timeout=300, check=True)
        baseline_s = time.perf_counter() - t0
    print(f"headless Chromium: {browser_s:.2f} s to load it and take a screenshot "
          f"({baseline_s:.2f} s for a blank page)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
