"""Run a CPU-bound loop with ploop.map and print what parallelism bought.

python examples/loop_speedup.py
"""

from __future__ import annotations

import hashlib

import pytest_ploop as ploop


def work(seed: int) -> str:
    """About 40 ms of hashing on a current CPU."""
    digest = str(seed).encode()
    for _ in range(40_000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:12]


def main() -> None:
    with ploop.Pool(workers="auto") as pool:
        digests = pool.map(work, range(64))
        record = pool.last_run
    assert record is not None
    print(f"{len(digests)} digests, first {digests[0]}")
    print(f"ploop: {record.summary()}")


if __name__ == "__main__":
    main()
