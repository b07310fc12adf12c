"""``report=`` on ``ploop.map`` and ``ploop.Pool`` (local backend): the run record is written
to each named file in the format its extension names, also when the call raises, and a bad
name is refused before anything runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

import pytest_ploop as ploop
from tests import faults


def loop_json(path: Path) -> dict[str, Any]:
    """The JSON report at ``path``, checked to be a loop's run record."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == "pytest-ploop/run/1"
    assert data["kind"] == "loop"
    return data


def counts(data: dict[str, Any]) -> dict[str, int]:
    """The report's outcome counts, without the zeros."""
    return {k: n for k, n in data["counts"].items() if n}


def is_markdown(path: Path) -> bool:
    return path.read_text(encoding="utf-8").lstrip().startswith("## ploop run:")


def is_html(path: Path) -> bool:
    return path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# -- ploop.map -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "inline"])
def test_map_writes_a_json_report(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "run.json"
    assert ploop.map(faults.square, range(12), workers=workers, report=out) == [
        x * x for x in range(12)
    ]
    data = loop_json(out)
    assert counts(data) == {"passed": 12}
    assert data["workers"] == workers
    assert data["start_method"] == ("inline" if workers == 1 else "fork")
    assert len(data["tasks"]) == 12
    assert sum(w["tasks"] for w in data["worker_info"]) == 12


@pytest.mark.parametrize("name", ["run.json", "run.md", "run.html"])
def test_map_writes_the_format_the_extension_names(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    ploop.map(faults.square, range(4), workers=2, report=str(out))  # a str works as a Path
    check: dict[str, Callable[[Path], Any]] = {
        "run.json": lambda p: loop_json(p)["workers"] == 2,
        "run.md": is_markdown,
        "run.html": is_html,
    }
    assert check[name](out)


def test_map_writes_every_report_of_a_list(tmp_path: Path) -> None:
    paths = [tmp_path / "run.json", tmp_path / "run.md", tmp_path / "deep" / "er" / "run.html"]
    ploop.map(faults.square, range(6), workers=2, report=paths)
    assert counts(loop_json(paths[0])) == {"passed": 6}
    assert is_markdown(paths[1])
    assert is_html(paths[2])  # parent directories are created


@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "inline"])
def test_map_writes_the_report_when_it_raises(tmp_path: Path, workers: int) -> None:
    paths = [tmp_path / "run.json", tmp_path / "run.md"]
    items = [("ok", 0), ("raise", 1), ("ok", 2), ("raise", 3), ("ok", 4)]
    with pytest.raises(ploop.LoopError) as info:
        ploop.map(faults.fail_on, items, workers=workers, report=paths)
    assert [f.index for f in info.value.failures] == [1, 3]
    data = loop_json(paths[0])
    assert counts(data) == {"passed": 3, "failed": 2}
    assert data["workers"] == workers
    assert [t["outcome"] for t in sorted(data["tasks"], key=lambda t: t["index"])] == [
        "passed", "failed", "passed", "failed", "passed",
    ]  # fmt: skip
    assert is_markdown(paths[1])


def test_map_writes_a_crash_and_a_timeout_into_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    items = [("ok", 0), ("os_exit", 1), ("hang", 2), ("ok", 3)]
    with pytest.raises(ploop.LoopError):
        ploop.map(faults.fail_on, items, workers=2, timeout=1, chunksize=1, report=out)
    assert counts(loop_json(out)) == {"passed": 2, "crashed": 1, "timed_out": 1}


# -- ploop.Pool ------------------------------------------------------------------------------


def test_pool_report_is_every_calls_default(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with ploop.Pool(2, report=out) as pool:
        pool.map(faults.square, range(3))
        assert counts(loop_json(out)) == {"passed": 3}
        # The next call overwrites it, streaming calls too.
        assert list(pool.imap(faults.square, range(5))) == [x * x for x in range(5)]
        assert counts(loop_json(out)) == {"passed": 5}
        assert pool.map_reduce(faults.square, range(4), reduce=max) == 9
        assert counts(loop_json(out)) == {"passed": 4}


def test_a_calls_report_overrides_the_pools(tmp_path: Path) -> None:
    default, own = tmp_path / "default.json", tmp_path / "own.md"
    with ploop.Pool(2, report=default) as pool:
        pool.map(faults.square, range(3), report=own)
        assert not default.exists()
        assert is_markdown(own)
        pool.map(faults.square, range(2), report=None)  # None: no report for this call
        assert not default.exists()
        pool.map(faults.square, range(7))  # the pool's default again
    assert counts(loop_json(default)) == {"passed": 7}


def test_a_pool_without_report_writes_none(tmp_path: Path, in_tmp: Path) -> None:
    with ploop.Pool(2) as pool:
        pool.map(faults.square, range(3))
        own = tmp_path / "own.json"
        pool.map(faults.square, range(3), report=own)
        pool.map(faults.square, range(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["own.json"]


@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "inline"])
def test_pool_writes_the_report_when_a_call_raises(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "run.json"
    with ploop.Pool(workers, report=out) as pool:
        with pytest.raises(ploop.LoopError):
            pool.map(faults.fail_on, [("raise", 0), ("ok", 1)])
        assert counts(loop_json(out)) == {"passed": 1, "failed": 1}
        assert pool.last_run is not None and pool.last_run.counts["failed"] == 1
        # A streaming call that raises after its last result writes it as well.
        with pytest.raises(ploop.LoopError):
            list(pool.imap(faults.fail_on, [("ok", 0), ("ok", 1), ("raise", 2)]))
        assert counts(loop_json(out)) == {"passed": 2, "failed": 1}


def test_a_stream_stopped_early_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    with ploop.Pool(2) as pool:
        it = pool.imap(faults.square, range(100_000), report=out)
        assert not out.exists()  # a stream's run starts at its first next()
        assert next(it) == 0
        assert isinstance(it, Generator)
        it.close()
        data = loop_json(out)
    assert data["counts"]["passed"] >= 1
    assert data["counts"]["failed"] == 0


# -- bad input: refused before anything runs ------------------------------------------------


BAD = [
    pytest.param("run.txt", ValueError, r"cannot tell the report format of '.*run.txt': use a "
                 r"name ending in .json, .md or .html", id="txt"),
    pytest.param("run", ValueError, r"report format of '.*run'", id="no-extension"),
    pytest.param("", ValueError, r"report='' names no file: give a name ending in .json, "
                 r".md or .html, or report=None for no report", id="empty"),
    pytest.param(42, TypeError, r"report=42 must be a path \(str or os.PathLike\), a list of "
                 r"paths, or None", id="int"),
    pytest.param(b"run.json", TypeError, r"report=b'run.json' must be a path", id="bytes"),
    pytest.param(["ok.json", "bad.csv"], ValueError, r"report format of '.*bad.csv'",
                 id="list-bad-name"),
    pytest.param(["ok.json", 42], TypeError, r"report=\['ok.json', 42\] must be a path",
                 id="list-bad-type"),
]  # fmt: skip


@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "inline"])
@pytest.mark.parametrize(("report", "error", "message"), BAD)
def test_map_refuses_a_bad_report_before_running(
    in_tmp: Path, workers: int, report: Any, error: type[Exception], message: str
) -> None:
    ran = in_tmp / "ran"
    with pytest.raises(error, match=message):
        ploop.map(faults.steps, [[("touch", str(ran))]], workers=workers, report=report)
    assert not ran.exists()  # the task never ran
    assert list(in_tmp.iterdir()) == []  # and no report was written (not even ok.json)


@pytest.mark.parametrize(("report", "error", "message"), BAD)
def test_pool_refuses_a_bad_report_before_running(
    in_tmp: Path, report: Any, error: type[Exception], message: str
) -> None:
    ran = in_tmp / "ran"
    task = [[("touch", str(ran))]]
    with pytest.raises(error, match=message):
        ploop.Pool(2, report=report)
    with ploop.Pool(2) as pool:
        with pytest.raises(error, match=message):
            pool.map(faults.steps, task, report=report)
        with pytest.raises(error, match=message):
            pool.imap(faults.steps, task, report=report)  # at the call, not at next()
        assert pool._workers is None  # no worker was started
        assert pool.map(faults.square, [3]) == [9]  # and the pool still works
    assert not ran.exists()
    assert list(in_tmp.iterdir()) == []
