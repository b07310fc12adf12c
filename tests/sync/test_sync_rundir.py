"""Issue 7: the run directory (locks, run-once values) is private to the user of the run.

This suite runs as root, so "owned by someone else" is a directory chowned to ``nobody``.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sync_support import Project

import pytest_ploop as ploop
from pytest_ploop import _sync

NOBODY = 65534


def _use_lock() -> None:
    with ploop.lock("x"):
        pass


def _use_semaphore() -> None:
    with ploop.semaphore("x", 2):
        pass


def _use_run_once() -> None:
    ploop.run_once("x", lambda: 1)


USES = pytest.mark.parametrize(
    "use", [_use_lock, _use_semaphore, _use_run_once], ids=["lock", "semaphore", "run_once"]
)


def _dir(tmp_path: Path, mode: int, owner: int | None = None) -> Path:
    path = tmp_path / "given"
    path.mkdir()
    path.chmod(mode)
    if owner is not None:
        os.chown(path, owner, -1)
    return path


@pytest.fixture(autouse=True)
def _no_remembered_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sync, "_ONCE", {})


@USES
def test_a_directory_of_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use: Callable[[], None]
) -> None:
    given = _dir(tmp_path, 0o700, owner=NOBODY)
    monkeypatch.setenv("PLOOP_RUN_DIR", str(given))
    with pytest.raises(ploop.PloopError, match=f"belongs to uid {NOBODY}, not to this user"):
        use()
    assert list(given.iterdir()) == []


@USES
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o705, 0o1777])
def test_a_directory_others_may_use_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use: Callable[[], None], mode: int
) -> None:
    given = _dir(tmp_path, mode)
    monkeypatch.setenv("PLOOP_RUN_DIR", str(given))
    with pytest.raises(ploop.PloopError, match=rf"others may use it \(mode {mode:04o}\)"):
        use()
    assert list(given.iterdir()) == []


def test_a_symbolic_link_or_a_missing_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = _dir(tmp_path, 0o700)
    link = tmp_path / "link"
    link.symlink_to(private)
    monkeypatch.setenv("PLOOP_RUN_DIR", str(link))
    with pytest.raises(ploop.PloopError, match="not a directory \\(or it is a symbolic link\\)"):
        _use_lock()
    monkeypatch.setenv("PLOOP_RUN_DIR", str(tmp_path / "missing"))
    with pytest.raises(ploop.PloopError, match="cannot be used"):
        _use_lock()


class _Planted:
    """What someone else left in a shared directory: unpickling it runs their code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_a_value_planted_in_a_shared_directory_is_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = _dir(tmp_path, 0o700)
    monkeypatch.setenv("PLOOP_RUN_DIR", str(given))
    target = _sync._file("once", "config", ".pickle")
    marker = tmp_path / "their-code-ran"
    target.write_bytes(pickle.dumps(_Planted(marker)))
    given.chmod(0o777)
    with pytest.raises(ploop.PloopError, match="others may use it"):
        ploop.run_once("config", lambda: "ours")
    assert not marker.exists()


def test_without_a_given_directory_one_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLOOP_RUN_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    made = _sync.run_dir()
    monkeypatch.setenv("PLOOP_RUN_DIR", str(made))  # undone by monkeypatch at the end
    assert made.parent == tmp_path
    assert made.name.startswith("ploop-run-")
    st = made.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    assert _sync.run_dir() == made  # the same for the rest of the process


RECORD_DIR = """
import json
import os
import stat

import pytest
from conftest import ROOT

import pytest_ploop as ploop


@pytest.mark.parametrize("n", range(4))
def test_where(n):
    with ploop.lock("x"):
        path = os.environ["PLOOP_RUN_DIR"]
        st = os.lstat(path)
        record = dict(path=path, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid)
        with open(os.path.join(ROOT, f"where-{os.getpid()}-{n}.json"), "w") as f:
            json.dump(record, f)
"""


def _where(project: Project) -> list[dict[str, object]]:
    out = []
    for path in sorted(project.path.glob("where-*.json")):
        out.append(json.loads(path.read_text()))
        path.unlink()
    return out


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_run_shares_one_fresh_private_directory_and_removes_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    project.pytester.makepyfile(test_where=RECORD_DIR)
    seen = []
    for _ in range(2):
        project.run(f"--ploop-workers={workers}").assert_outcomes(passed=4)
        where = _where(project)
        assert len(where) == 4
        (record,) = {json.dumps(w, sort_keys=True) for w in where}  # one for the whole run
        seen.append(json.loads(record))
    for record in seen:
        assert record["mode"] == 0o700
        assert record["uid"] == os.getuid()
        path = Path(str(record["path"]))
        assert path.parent == tmp
        assert not path.exists()  # removed at the end of the run
    assert seen[0]["path"] != seen[1]["path"]  # fresh, not a predictable name


SERIAL_AND_LOCK = """
import pytest

import pytest_ploop as ploop


@pytest.mark.ploop_serial
def test_serial():
    pass


def test_lock():
    with ploop.lock("x"):
        pass
"""


@pytest.mark.parametrize("mode", [0o777, 0o700], ids=["writable-by-others", "someone-else"])
def test_a_run_refuses_a_given_directory_that_is_not_private(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
) -> None:
    given = _dir(tmp_path, mode, owner=NOBODY if mode == 0o700 else None)
    monkeypatch.setenv("PLOOP_RUN_DIR", str(given))
    project.pytester.makepyfile(test_both=SERIAL_AND_LOCK)
    result = project.run("--ploop-workers=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*refusing the run directory*Unset PLOOP_RUN_DIR*"])
    assert project.events() == []
    assert list(given.iterdir()) == []  # nothing written there (the serial tests' lock file)
