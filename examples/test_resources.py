"""Resources the workers of a run share, and those each worker keeps to itself.

- ``catalog``: a SQLite database built once per run (``ploop.run_once``), however many
  workers ask for it; every worker opens the same file.
- ``ploop.lock("catalog")``: orders change the catalog's stock, a read-modify-write that must
  not interleave with another worker's.
- ``scratch``: a database of each worker's own, in ``ploop_worker.tmp_path``: no other
  process ever opens it, so its tests need no lock.

The same code runs serially (``pytest examples/test_resources.py``: one process, the lock
never waits) and in workers (``pytest --ploop-workers=auto examples/``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import pytest_ploop as ploop
from pytest_ploop.plugin import WorkerInfo

PRODUCTS = 5_000
STOCK = 100


def build_catalog(directory: Path) -> Path:
    """The expensive setup: a database of ``PRODUCTS`` products, ``STOCK`` of each."""
    path = directory / "catalog.sqlite"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE product (sku TEXT PRIMARY KEY, price INTEGER, stock INTEGER)")
        db.executemany(
            "INSERT INTO product VALUES (?, ?, ?)",
            ((f"SKU-{i:05d}", 100 + i % 900, STOCK) for i in range(PRODUCTS)),
        )
        db.execute("CREATE TABLE orders (sku TEXT, quantity INTEGER, pid INTEGER)")
    return path


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog's path: built by the first worker that asks, then shared (a session
    fixture alone would build one per worker)."""
    return ploop.run_once("catalog", lambda: build_catalog(tmp_path_factory.mktemp("catalog")))


@pytest.fixture
def db(catalog: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(catalog, timeout=30)) as connection:
        yield connection


@pytest.fixture(scope="session")
def scratch(ploop_worker: WorkerInfo) -> Path:
    """This worker's own database (``<basetemp>/w0/ploop-w0/scratch.sqlite`` on worker w0,
    ``<basetemp>/ploop-main/scratch.sqlite`` in a serial run), kept for its later tests."""
    path = ploop_worker.tmp_path / "scratch.sqlite"
    with closing(sqlite3.connect(path)) as own, own:
        own.execute("CREATE TABLE IF NOT EXISTS seen (test TEXT, pid INTEGER)")
    return path


@pytest.mark.parametrize("i", [0, 899, 4_999])
def test_price_lookup(db: sqlite3.Connection, i: int) -> None:
    (price,) = db.execute("SELECT price FROM product WHERE sku = ?", (f"SKU-{i:05d}",)).fetchone()
    assert price == 100 + i % 900


def test_catalog_is_complete(db: sqlite3.Connection) -> None:
    assert db.execute("SELECT count(*), min(stock) > 0 FROM product").fetchone() == (PRODUCTS, 1)


@pytest.mark.parametrize("quantity", [1, 2, 3, 5])
def test_order_takes_from_stock(db: sqlite3.Connection, quantity: int) -> None:
    sku = "SKU-00042"  # every order here is for the same product
    with ploop.lock("catalog"):  # no other worker's order between our read and our write
        (before,) = db.execute("SELECT stock FROM product WHERE sku = ?", (sku,)).fetchone()
        with db:
            db.execute("UPDATE product SET stock = ? WHERE sku = ?", (before - quantity, sku))
            db.execute("INSERT INTO orders VALUES (?, ?, ?)", (sku, quantity, os.getpid()))
        (after,) = db.execute("SELECT stock FROM product WHERE sku = ?", (sku,)).fetchone()
    assert after == before - quantity
    (ordered,) = db.execute("SELECT sum(quantity) FROM orders WHERE sku = ?", (sku,)).fetchone()
    assert after == STOCK - ordered  # no order lost, whichever worker placed it


@pytest.mark.parametrize("n", range(4))
def test_scratch_is_this_workers_own(scratch: Path, n: int) -> None:
    with closing(sqlite3.connect(scratch)) as own, own:
        own.execute("INSERT INTO seen VALUES (?, ?)", (f"test {n}", os.getpid()))
        pids = {pid for (pid,) in own.execute("SELECT pid FROM seen")}
    assert pids == {os.getpid()}  # only this process's tests ever wrote here
