"""Files on disk through ``tmp_path``: each test gets its own empty directory, in serial
runs and on every worker of a parallel run alike."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
from pathlib import Path

import pytest


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def test_json_lines_round_trip(tmp_path: Path, rng: random.Random) -> None:
    records = [{"id": i, "score": rng.random(), "tags": ["a", "b"][: i % 3]} for i in range(5000)]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [json.loads(line) for line in path.read_text().splitlines()] == records


@pytest.mark.parametrize("level", [1, 9])
def test_gzip_round_trip(tmp_path: Path, rng: random.Random, level: int) -> None:
    data = bytes(rng.choices(b"ACGT", k=400_000))
    path = tmp_path / "reads.fa.gz"
    with gzip.open(path, "wb", compresslevel=level) as f:
        f.write(data)
    assert path.stat().st_size < len(data) / 3
    with gzip.open(path, "rb") as f:
        assert f.read() == data


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b'{"version": 1}')
    write_atomically(path, b'{"version": 2}')
    assert json.loads(path.read_bytes()) == {"version": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_tree_digest_changes_with_content(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"dir{i % 5}").mkdir(exist_ok=True)
        (tmp_path / f"dir{i % 5}" / f"file{i}.txt").write_text(f"content {i}\n" * 100)
    before = tree_digest(tmp_path)
    (tmp_path / "dir3" / "file13.txt").write_text("changed\n")
    assert tree_digest(tmp_path) != before
