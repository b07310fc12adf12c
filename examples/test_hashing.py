"""Hashing: key derivation, hash chains and a Merkle tree over a shared corpus.

``corpus`` is module-scoped: it is built once per process that runs tests from this
module (once in a serial run, at most once per worker in a parallel one).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import pytest

CHUNK = 4096


def derive_key(password: str, salt: bytes, iterations: int = 160_000) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


def hash_chain(seed: bytes, length: int) -> bytes:
    digest = seed
    for _ in range(length):
        digest = hashlib.sha256(digest).digest()
    return digest


def merkle_root(data: bytes) -> bytes:
    level = [hashlib.sha256(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK)]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        pairs = zip(level[::2], level[1::2], strict=True)
        level = [hashlib.sha256(left + right).digest() for left, right in pairs]
    return level[0]


@pytest.fixture(scope="module")
def corpus() -> Iterator[bytes]:
    """4 MiB of reproducible pseudo-random bytes with some repeated blocks."""
    rand = random.Random(2024)
    blocks = [rand.randbytes(CHUNK) for _ in range(768)]
    yield b"".join(blocks + blocks[:256])


@pytest.mark.parametrize("user", ["ada", "grace", "edsger", "barbara"])
def test_derived_keys_are_stable_and_salted(user: str) -> None:
    salt = hashlib.sha256(user.encode()).digest()[:16]
    key = derive_key(f"{user}-password", salt)
    assert len(key) == 32
    assert key != derive_key(f"{user}-password", salt[::-1])


@pytest.mark.parametrize("length", [50_000, 100_000])
def test_hash_chain_is_deterministic_and_extends(length: int) -> None:
    head = hash_chain(b"seed", length)
    assert hash_chain(b"seed", length) == head
    assert hash_chain(head, 1) == hash_chain(b"seed", length + 1)


def test_merkle_root_detects_a_flipped_bit(corpus: bytes) -> None:
    flipped = bytearray(corpus)
    flipped[len(corpus) // 3] ^= 0x01
    assert merkle_root(corpus) != merkle_root(bytes(flipped))


def test_merkle_root_of_equal_data_is_equal(corpus: bytes) -> None:
    assert merkle_root(corpus) == merkle_root(bytes(bytearray(corpus)))


def test_repeated_chunks_are_stored_once(corpus: bytes) -> None:
    store: dict[str, bytes] = {}
    for i in range(0, len(corpus), CHUNK):
        chunk = corpus[i : i + CHUNK]
        store.setdefault(hashlib.blake2b(chunk).hexdigest(), chunk)
    assert len(store) == 768
    assert len(corpus) // CHUNK == 1024
