"""``python -m pytest_ploop report merge``: the run records of a suite's shards (one CI job
each, ``--ploop-shard=K/N --ploop-report=shardK.json``) rendered as one run.

The shards' records come from real runs (pytest in a subprocess: the workers are forked
processes) and, for exact numbers, from hand-made records (report_support).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_support import known_record, make_record

from pytest_ploop.__main__ import main
from pytest_ploop._report import RunReport, read, summary_line, write_report

INI = """\
[pytest]
addopts = --strict-markers -p no:hypothesispytest -p no:benchmark -p no:cov -p no:randomly
"""
SUITE = """\
import time

import pytest


@pytest.mark.parametrize("ms", [10, 20, 30, 40, 50, 60])
def test_work(ms):
    time.sleep(ms / 1000)


def test_fails():
    assert 1 == 2


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""
NODEIDS = [
    *(f"test_suite.py::test_work[{ms}]" for ms in (10, 20, 30, 40, 50, 60)),
    "test_suite.py::test_fails",
    "test_suite.py::test_skipped",
]
MERGED_NOTE = "ploop: merged: every shard's timeline starts at 0; wall is the longest shard's"
WANTED = "give the records that the shards' `pytest --ploop-report=RUN.json` wrote"


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_ploop", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _shown(path: Path) -> str:
    """The summary line of the record at ``path``, as ``report merge`` shows a shard's."""
    return summary_line(read(path)).removeprefix("ploop: ")


def test_the_shards_of_a_real_run_merge_into_one_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=SUITE)
    shards = [pytester.path / f"shard{k}.json" for k in (1, 2)]
    for k, path in enumerate(shards, 1):
        # No cache: both jobs cut by count, as two CI jobs that start from the same cache.
        result = pytester.runpytest_subprocess(
            "--ploop-workers=2", f"--ploop-shard={k}/2", f"--ploop-report={path.name}",
            "-p", "no:cacheprovider", timeout=120,
        )  # fmt: skip
        assert f"ploop: wrote {path.name}" in result.outlines
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    records = [json.loads(p.read_text()) for p in shards]
    labels = [[t["label"] for t in r["tasks"]] for r in records]
    assert sorted(labels[0] + labels[1]) == sorted(NODEIDS)  # each test in one shard

    result = _cli(
        "report", "merge", *(p.name for p in shards),
        "--html", "all.html", "--md", "all.md", "--json", "all.json", cwd=pytester.path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    merged = json.loads((pytester.path / "all.json").read_text())
    assert result.stdout.splitlines() == [
        f"ploop: shard1 (shard1.json): {_shown(shards[0])}",
        f"ploop: shard2 (shard2.json): {_shown(shards[1])}",
        MERGED_NOTE,
        summary_line(read(pytester.path / "all.json")),
        "ploop: wrote all.html",
        "ploop: wrote all.md",
        "ploop: wrote all.json",
    ]
    one, two = (r["counts"] for r in records)
    assert merged["counts"] == {outcome: n + two[outcome] for outcome, n in one.items()}
    assert merged["counts"]["passed"] == 6
    assert merged["counts"]["failed"] == merged["counts"]["skipped"] == 1
    assert merged["wall_s"] == max(r["wall_s"] for r in records)  # the shards ran at once
    assert merged["workers"] == 4
    assert merged["title"] == "ploop test run (2 shards merged)"
    lanes = ["shard1/w0", "shard1/w1", "shard2/w0", "shard2/w1"]
    assert [w["id"] for w in merged["worker_info"]] == lanes
    assert [t["label"] for t in merged["tasks"]] == labels[0] + labels[1]
    assert sorted(t["index"] for t in merged["tasks"]) == list(range(len(NODEIDS)))
    for task in merged["tasks"]:  # every shard's timeline starts at 0
        assert 0 <= task["start"] <= task["end"] <= merged["wall_s"]

    root = ET.fromstring((pytester.path / "all.html").read_text())
    assert [g.get("data-worker") for g in root.iter("g") if g.get("class") == "lane"] == lanes
    markdown = (pytester.path / "all.md").read_text()
    assert markdown.startswith("## ploop test run (2 shards merged): ")
    assert all(f"`{nodeid}`" in markdown for nodeid in NODEIDS)
    assert "- **failed** `test_suite.py::test_fails` on shard" in markdown


def _known_shards(tmp_path: Path) -> list[Path]:
    """Two shards: the two-worker run of report_support (10 s wall, 14 s of tests, 1 failed)
    and another two-worker run (4 s wall, 4 s of tests, 1 failed)."""
    first = RunReport(known_record(), {0: "a.py::t0", 1: "a.py::t1", 2: "a.py::t2"}, "pytest")
    tasks = [(0, "w0", 0.0, 4.0, 3.5, "passed"), (1, "w1", 0.0, 0.0, 0.0, "failed")]
    second = RunReport(make_record(2, 4.0, tasks), {0: "b.py::t0", 1: "b.py::t1"}, "pytest")
    return [
        write_report(first, tmp_path / "shard1.json"),
        write_report(second, tmp_path / "shard2.json"),
    ]


def test_merged_figures_of_known_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = _known_shards(tmp_path)
    out = tmp_path / "all.json"
    assert main(["report", "merge", str(one), str(two), "--json", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ploop: shard1 ({one}): 2 workers, 10.0s wall, 14.0s of tests -> 1.4x speedup "
        "(70% efficiency), peak RSS 450 B",
        f"ploop: shard2 ({two}): 2 workers, 4.0s wall, 4.0s of tests -> 1.0x speedup "
        "(50% efficiency)",
        MERGED_NOTE,
        # wall: the longest shard's; tests: the sum; efficiency: over all 4 workers
        "ploop: 4 workers, 10.0s wall, 18.0s of tests -> 1.8x speedup (45% efficiency), "
        "peak RSS 450 B",
        f"ploop: wrote {out}",
    ]
    merged = json.loads(out.read_text())
    assert {k: v for k, v in merged["counts"].items() if v} == {"passed": 3, "failed": 2}
    assert [t["label"] for t in merged["tasks"]] == ["a.py::t0", "a.py::t1", "a.py::t2",
                                                     "b.py::t0", "b.py::t1"]  # fmt: skip
    # The order on the command line names the shards.
    assert main(["report", "merge", str(two), str(one)]) == 0
    assert capsys.readouterr().out.startswith(f"ploop: shard1 ({two}): 2 workers, 4.0s wall")


def test_report_merge_alone_renders_a_record_named_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As documented in __main__: ``report merge`` with one name is a record file named
    merge; without such a file, the message says how to merge."""
    monkeypatch.chdir(tmp_path)
    assert main(["report", "merge"]) == 2
    assert capsys.readouterr() == (
        "",
        "error: report merge: name the shards' records: report merge A.json B.json ... "
        "(to render a record file named merge: report ./merge)\n",
    )
    (tmp_path / "merge").write_text(_known_shards(tmp_path)[0].read_text())
    assert main(["report", "merge"]) == 0
    assert capsys.readouterr().out.startswith("ploop: 2 workers, 10.0s wall, 14.0s of tests")


BAD_RECORDS: list[tuple[str, str, str]] = [
    ("not-json", "{oops", "cannot read the run record '{bad}': Expecting property name "
     f"enclosed in double quotes: line 1 column 2 (char 1): {WANTED}"),
    ("list", "[]", f"{{bad}}: not a pytest-ploop run record (a JSON list): {WANTED}"),
    ("other-json", '{"a": 1}', "{bad}: not a pytest-ploop run record (schema None, expected "
     f"'pytest-ploop/run/1'): {WANTED}"),
    ("durations", '{"schema": "pytest-ploop/durations/1", "tests": {}}', "{bad}: not a "
     "pytest-ploop run record (schema 'pytest-ploop/durations/1', expected "
     f"'pytest-ploop/run/1'): {WANTED}"),
    ("newer", "", "{bad}: this run record has schema 'pytest-ploop/run/2', newer than this "
     "pytest-ploop reads ('pytest-ploop/run/1'): upgrade pytest-ploop"),
    ("loop", "", "{bad}: a record of a loop run, and {good} of a pytest run: merge the shards "
     "of one suite"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS]
)
def test_a_bad_record_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    good, other = _known_shards(tmp_path)
    bad = tmp_path / "bad.json"
    if message.startswith("{bad}: a record of a loop run"):
        write_report(RunReport(known_record(), kind="loop"), bad)
    elif "newer than" in message:
        data = json.loads(other.read_text())
        bad.write_text(json.dumps(data | {"schema": "pytest-ploop/run/2"}))
    else:
        bad.write_text(content)
    out = tmp_path / "all.html"
    assert main(["report", "merge", str(good), str(bad), "--html", str(out)]) == 2
    assert capsys.readouterr() == ("", f"error: {message.format(bad=bad, good=good)}\n")
    assert not out.exists()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = _known_shards(tmp_path)
    missing = tmp_path / "missing.json"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (["report", one, two], "error: report takes one run record; to merge shards' records: "
         "report merge A.json B.json ..."),
        (["report", "merge", one, missing], f"error: cannot read the run record '{missing}': "
         f"[Errno 2] No such file or directory: '{missing}': {WANTED}"),
        (["report", "merge", one, two, "--md", tmp_path / "all.html"],
         f"error: --md {tmp_path / 'all.html'}: the name must end in .md"),
    ]  # fmt: skip
    for args, message in cases:
        assert main([str(a) for a in args]) == 2, args
        assert capsys.readouterr() == ("", f"{message}\n"), args
    assert not (tmp_path / "all.html").exists()
    # A file where a folder must be made: an error naming it, not a traceback; the other
    # reports are written and said to be (the error named neither).
    bad, good = a_file / "x.json", tmp_path / "all.md"
    assert main(["report", "merge", str(one), str(two), "--json", str(bad), "--md", str(good)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: cannot write the report {bad}: [Errno "), err
    assert err.rstrip().endswith("give a path in a folder that can be written"), err
    assert f"ploop: wrote {good}" in out and good.is_file()


def test_report_merge_in_a_subprocess_exits_2_on_a_bad_record(tmp_path: Path) -> None:
    good, _ = _known_shards(tmp_path)
    (tmp_path / "notes.txt").write_text("not a record")
    result = _cli("report", "merge", good.name, "notes.txt", "--md", "all.md", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: cannot read the run record 'notes.txt': Expecting value: line 1 column 1 "
        f"(char 0): {WANTED}\n"
    )
    assert not (tmp_path / "all.md").exists()
