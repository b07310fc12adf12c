"""The HTML report as a browser draws it: headless Chromium (Debian's ``chromium``) lays the
page out; a probe script appended to a copy of it measures the drawn lanes, bars and headline
(the report itself has no script), and a screenshot is taken."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest
from report_support import known_record

from pytest_ploop._report import RunReport, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (apt-get install chromium)"
)

PROBE = """<script>
(() => {
  const box = (e) => e.getBoundingClientRect();
  const lanes = [...document.querySelectorAll("g.lane")].map((g) => {
    const lane = box(g.querySelector("rect.lane-bg"));
    const bars = [...g.querySelectorAll("rect.task")].map((r) => {
      const b = box(r);
      return {index: r.dataset.index, w: b.width, h: b.height,
              inside: b.top >= lane.top - 0.5 && b.bottom <= lane.bottom + 0.5};
    });
    return {worker: g.dataset.worker, top: lane.top, bars};
  });
  const key = document.querySelector(".card.key .value");
  const out = {lanes, headline: key.textContent, headlineHeight: box(key).height};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="ploop-chromium-") as profile:
        # No network: a machine without one refuses Chromium's background connections.
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _report() -> RunReport:
    labels = {0: "test_a.py::test_one", 1: "test_a.py::test_two", 2: "test_b.py::test_three"}
    return RunReport(known_record(), labels, kind="pytest")


def test_the_drawn_page_has_its_lanes_bars_and_headline(tmp_path: Path) -> None:
    page = tmp_path / "probe.html"
    page.write_text(render_html(_report()).replace("</body>", PROBE + "</body>"))
    result = _chromium("--dump-dom", page.as_uri())
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    drawn = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [lane["worker"] for lane in drawn["lanes"]] == ["w0", "w1"]
    assert drawn["lanes"][0]["top"] < drawn["lanes"][1]["top"]
    bars = {b["index"]: b for lane in drawn["lanes"] for b in lane["bars"]}
    assert sorted(bars) == ["0", "1", "2"]
    assert all(b["w"] > 1 and b["h"] > 1 and b["inside"] for b in bars.values())
    assert bars["1"]["w"] == pytest.approx(2 * bars["0"]["w"], rel=0.01)  # 8 s and 4 s
    assert drawn["headline"] == "1.4x" and drawn["headlineHeight"] > 20


def test_a_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(_report()))
    shot = tmp_path / "report.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert shot.exists(), result.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1200, 900)
    pixels = zlib.decompress(b"".join(_chunks(png, b"IDAT")))
    assert len(set(pixels)) > 50  # drawn, not a blank page


def _chunks(png: bytes, kind: bytes) -> list[bytes]:
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == kind:
            out.append(png[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return out
