"""``python -m pytest_ploop durations export`` and ``durations merge``: the durations that the
shard jobs of a CI matrix measured, merged into the cache of the next run (docs/sharding.md).

Each shard job is a copy of the project (its own checkout and ``.pytest_cache``) that runs one
real shard on two workers, in a subprocess with the job's folder as its working directory, as
CI runs it. The command line runs in a subprocess where the way CI calls it matters, and in
process through ``main`` for the error cases.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sched_support import Project, ids_of

from pytest_ploop.__main__ import main
from pytest_ploop._testing._durations import group_costs, shard
from pytest_ploop._testing._durations_merge import SCHEMA

MILLISECONDS = [0, 5, 10, 20, 30, 400]
TESTS = f"""
import time

import pytest


@pytest.mark.parametrize("ms", {MILLISECONDS})
def test_work(ms):
    time.sleep(ms / 1000)
"""
IDS = ids_of("test_work.py::test_work", MILLISECONDS)
LONG = "test_work.py::test_work[400]"
CACHE = Path(".pytest_cache", "v", "ploop")


def _cli(
    cwd: Path, *args: str | Path, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python, "-m", "pytest_ploop", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _tests(path: Path) -> dict[str, dict[str, float]]:
    """The ``tests`` of an exported durations file, its schema checked."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA
    tests: dict[str, dict[str, float]] = data["tests"]
    return tests


def _exported(entries: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """An exported file of ``{test id: (seconds, recorded)}``."""
    tests = {t: {"seconds": s, "recorded": r} for t, (s, r) in entries.items()}
    return {"schema": SCHEMA, "tests": tests}


def _shard_job(project: Project, tmp_path: Path, k: int) -> Path:
    """A CI job: a checkout of the project with the cache it starts from, running shard k/2."""
    job = tmp_path / f"job{k}"
    shutil.copytree(project.path, job)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--basetemp={tmp_path / f'basetemp{k}'}",
         f"--ploop-shard={k}/2", "--ploop-workers=2"],
        cwd=job, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 3 deselected" in result.stdout, result.stdout
    return job


def test_shard_jobs_merge_into_the_durations_that_the_next_run_cuts_by(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project.pytester.makepyfile(test_work=TESTS)
    # The cache every job starts from (a CI cache): the previous run's, a day old, 1 s a test.
    # Equal durations: the jobs cut their shards by count.
    day_ago = round(time.time() - 86400, 3)
    previous = _write(tmp_path / "previous.json", _exported(dict.fromkeys(IDS, (1.0, day_ago))))
    seeded = _cli(tmp_path, "durations", "merge", previous, "--into", project.path)
    assert seeded.returncode == 0, seeded.stderr
    assert (project.path / ".pytest_cache" / "CACHEDIR.TAG").is_file()  # made as pytest does

    jobs = [_shard_job(project, tmp_path, k) for k in (1, 2)]
    first = _cli(jobs[0], "durations", "export", "-o", tmp_path / "durations-1.json")
    second = _cli(tmp_path, "durations", "export", "--rootdir", jobs[1] / ".pytest_cache")
    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith("ploop: 6 test durations, ")
    assert first.stdout == ""  # -o: the file only
    _write(tmp_path / "durations-2.json", second.stdout)  # no -o: the file on standard output

    exports = [_tests(tmp_path / f"durations-{k}.json") for k in (1, 2)]
    fresh = [{t: e for t, e in tests.items() if e["recorded"] > day_ago} for tests in exports]
    for tests, own in zip(exports, fresh, strict=True):
        assert sorted(tests) == sorted(IDS)  # its own tests, and the others' from the cache
        assert len(own) == 3
        assert all(e == {"seconds": 1.0, "recorded": day_ago} for t, e in tests.items()
                   if t not in own)  # fmt: skip
    assert sorted(fresh[0] | fresh[1]) == sorted(IDS)  # the two shards ran every test once
    newest = fresh[0] | fresh[1]
    assert all(newest[t]["seconds"] >= ms / 1000 for t, ms in zip(IDS, MILLISECONDS, strict=True))

    # The final job: a fresh checkout. A plain {id: seconds} file, even given last, loses to
    # every timed measurement; a shard's stale copy of the other's tests loses to theirs.
    shutil.rmtree(project.path / ".pytest_cache")
    plain = _write(tmp_path / "plain.json", dict.fromkeys(IDS, 9.0))
    inputs = [tmp_path / "durations-1.json", tmp_path / "durations-2.json", plain]
    merged = _cli(
        tmp_path, "durations", "merge", *inputs, "-o", "merged.json", "--into", project.path
    )
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout == ""
    assert merged.stderr.splitlines() == [
        f"ploop: 6 test durations, {sum(e['seconds'] for e in newest.values()):.1f}s in all",
        f"ploop: wrote {project.path / CACHE / 'durations'}",
        f"ploop: wrote {project.path / CACHE / 'durations-recorded'}",
        "ploop: wrote merged.json",
    ]
    assert _tests(tmp_path / "merged.json") == newest  # every test once, the newest of each

    # The order of the files does not matter (not "the last file wins").
    assert (
        main(["durations", "merge", *map(str, reversed(inputs)), "-o", str(tmp_path / "r.json")])
        == 0
    )
    assert _tests(tmp_path / "r.json") == newest
    capsys.readouterr()

    # --into wrote the cache the plugin reads (and export reads it back as merged).
    seconds = {t: e["seconds"] for t, e in newest.items()}
    assert json.loads((project.path / CACHE / "durations").read_text()) == seconds
    again = _cli(project.path, "durations", "export")
    assert again.stdout == (tmp_path / "merged.json").read_text()

    # The next run cuts by the merged durations: the long test alone in one shard, the five
    # short ones (not a 3/3 count split) in the other.
    assert seconds[LONG] > sum(s for t, s in seconds.items() if t != LONG)
    shards = [project.collected(f"--ploop-shard={k}/2") for k in (1, 2)]
    assert shards == [
        [IDS[p] for p in s] for s in shard(group_costs([[i] for i in IDS], seconds), 2)
    ]
    assert shards == [[LONG], [t for t in IDS if t != LONG]]


def test_a_plain_file_is_read_and_each_test_keeps_its_newest_measurement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = _write(tmp_path / "plain.json", {"a.py::test_old": 2.5, "a.py::test_both": 9.0})
    later = _write(tmp_path / "later.json", {"a.py::test_old": 3.0})
    timed = _write(tmp_path / "timed.json", _exported({"a.py::test_both": (0.5, 1000.0)}))
    older = _write(tmp_path / "older.json", _exported({"a.py::test_both": (7.0, 999.0)}))
    assert main(["durations", "merge", str(timed), str(plain), str(older), str(later)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == _exported(
        {"a.py::test_both": (0.5, 1000.0), "a.py::test_old": (3.0, 0.0)}  # unknown age: 0
    )
    assert err == "ploop: 2 test durations, 3.5s in all\n"


def test_merge_writes_the_cache_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """pytest reads its cache as UTF-8: a test id beyond ASCII must reach it unchanged (the
    locale's encoding was used: EncodingWarning, and mojibake or an error on Windows)."""
    test_id = "test_é.py::test_größe[東京]"
    source = _write(tmp_path / "in.json", _exported({test_id: (1.5, 1000.0)}))
    result = _cli(
        tmp_path, "durations", "merge", source, "--into", "project",
        python=("-X", "warn_default_encoding", "-W", "error::EncodingWarning"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "project" / CACHE
    assert json.loads((cache / "durations").read_bytes().decode("utf-8")) == {test_id: 1.5}
    assert json.loads((cache / "durations-recorded").read_bytes().decode()) == {test_id: 1000.0}


WANTED = (
    "give a file written by `python -m pytest_ploop durations export`, a JSON object "
    "{test id: seconds}, or a pytest cache folder"
)
BAD_FILES: list[tuple[str, Any, str]] = [
    ("not-json", "{'a.py::test': 1}", "not a durations file (not JSON: Expecting property "
     f"name enclosed in double quotes: line 1 column 2 (char 1)): {WANTED}"),
    ("list", [["a.py::test", 1.0]], "not a durations file (a JSON list, not an object of "
     f"test ids): {WANTED}"),
    ("negative", {"a.py::test": -0.5}, "not a durations file: 'a.py::test' has -0.5, not a "
     "number of seconds (finite, >= 0): correct or remove that entry"),
    ("nan", '{"a.py::test": NaN}', "not a durations file: 'a.py::test' has nan, not a "
     "number of seconds (finite, >= 0): correct or remove that entry"),
    ("exported-negative", _exported({"a.py::test": (-1.0, 1000.0)}), "a malformed durations "
     "file: 'a.py::test' has {'seconds': -1.0, 'recorded': 1000.0}, expected "
     '{"seconds": S, "recorded": UNIX_TIME} (finite numbers >= 0): export it again'),
    ("missing", None, f"no such file: {WANTED}"),
    ("newer", {"schema": "pytest-ploop/durations/2", "tests": {}}, "durations of schema "
     "'pytest-ploop/durations/2', newer than this pytest-ploop reads "
     f"('{SCHEMA}'): upgrade pytest-ploop"),
    ("run-record", {"schema": "pytest-ploop/run/1", "kind": "pytest"}, "not a durations file "
     f"(schema 'pytest-ploop/run/1', expected '{SCHEMA}'): {WANTED}"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_a_bad_file_is_named_with_the_fix_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str
) -> None:
    good = _write(tmp_path / "good.json", {"a.py::test": 1.0})
    bad = tmp_path / "bad.json"
    if content is not None:
        _write(bad, content)
    out, into = tmp_path / "out.json", tmp_path / "next"
    args = ["durations", "merge", str(good), str(bad), "-o", str(out), "--into", str(into)]
    assert main(args) == 2
    assert capsys.readouterr() == ("", f"error: {bad}: {message}\n")
    assert not out.exists()
    assert not into.exists()


def test_usage_errors_exit_2_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    no_cache = _cli(tmp_path, "durations", "export", "--rootdir", "empty")
    assert no_cache.returncode == 2
    assert no_cache.stdout == ""
    assert no_cache.stderr == (
        f"error: {Path('empty', '.pytest_cache')}: no durations in this pytest cache (no "
        "ploop/durations): run pytest there first, or name the project's root folder\n"
    )
    _write(tmp_path / "d.json", {"a.py::test": 1.0})
    into_a_file = _cli(tmp_path, "durations", "merge", "d.json", "--into", "d.json")
    assert into_a_file.returncode == 2
    assert into_a_file.stderr == (
        "error: --into d.json: not a folder: name the project's root folder (or its "
        ".pytest_cache); -o OUT.json writes a file\n"
    )
    no_files = _cli(tmp_path, "durations", "merge")
    assert no_files.returncode == 2
    assert "the following arguments are required: FILE" in no_files.stderr


def test_an_unwritable_output_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(tmp_path / "d.json", {"a.py::test": 1.0})
    blocked = _write(tmp_path / "a-file", "")
    out = blocked / "out.json"
    for option in ("-o", "--into"):  # a file where a folder must be made
        assert main(["durations", "merge", str(source), option, str(out)]) == 2
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.startswith(f"error: {option} {out}: cannot write: [Errno "), last
        assert f"'{blocked}" in last, last
    assert blocked.read_text() == ""
