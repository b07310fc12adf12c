"""Number crunching in pure Python: CPU-bound tests that parallel workers speed up."""

from __future__ import annotations

import math
import random
from decimal import Decimal, getcontext

import pytest


def prime_count(limit: int) -> int:
    """The number of primes <= ``limit``, by the sieve of Eratosthenes."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\0\0"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(sieve)


def longest_collatz(below: int) -> tuple[int, int]:
    """The start below ``below`` with the longest Collatz sequence, and its length."""
    lengths = {1: 1}
    best = (1, 1)
    for start in range(2, below):
        n, path = start, []
        while n not in lengths:
            path.append(n)
            n = n // 2 if n % 2 == 0 else 3 * n + 1
        length = lengths[n]
        for m in reversed(path):
            length += 1
            lengths[m] = length
        best = max(best, (start, length), key=lambda b: b[1])
    return best


def queens(n: int) -> int:
    """The number of ways to place ``n`` non-attacking queens on an n x n board."""

    def place(row: int, cols: set[int], diag: set[int], anti: set[int]) -> int:
        if row == n:
            return 1
        return sum(
            place(row + 1, cols | {c}, diag | {row - c}, anti | {row + c})
            for c in range(n)
            if c not in cols and row - c not in diag and row + c not in anti
        )

    return place(0, set(), set(), set())


def matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    columns = list(zip(*b, strict=True))

    def dot(row: list[float], col: tuple[float, ...]) -> float:
        return math.fsum(x * y for x, y in zip(row, col, strict=True))

    return [[dot(row, col) for col in columns] for row in a]


def fib_iterative(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_doubling(n: int) -> int:
    """F(n) by fast doubling: F(2k) = F(k)(2F(k+1) - F(k)), F(2k+1) = F(k)^2 + F(k+1)^2."""

    def pair(k: int) -> tuple[int, int]:
        if k == 0:
            return 0, 1
        f, g = pair(k // 2)
        f2, g2 = f * (2 * g - f), f * f + g * g
        return (g2, f2 + g2) if k % 2 else (f2, g2)

    return pair(n)[0]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(10, 4), (10_000, 1_229), (100_000, 9_592), (1_000_000, 78_498), (2_000_000, 148_933)],
)
def test_prime_count(limit: int, expected: int) -> None:
    assert prime_count(limit) == expected


@pytest.mark.parametrize(
    ("below", "start", "length"), [(10_000, 6_171, 262), (100_000, 77_031, 351)]
)
def test_longest_collatz_sequence(below: int, start: int, length: int) -> None:
    assert longest_collatz(below) == (start, length)


@pytest.mark.parametrize(("n", "solutions"), [(6, 4), (7, 40), (8, 92), (9, 352)])
def test_n_queens(n: int, solutions: int) -> None:
    assert queens(n) == solutions


@pytest.mark.parametrize("seed", range(4))
def test_monte_carlo_pi(seed: int) -> None:
    rand = random.Random(seed)
    samples = 300_000
    inside = sum(rand.random() ** 2 + rand.random() ** 2 < 1 for _ in range(samples))
    assert 4 * inside / samples == pytest.approx(math.pi, abs=0.02)


def test_matrix_product_is_associative(rng: random.Random) -> None:
    a, b, c = ([[rng.uniform(-1, 1) for _ in range(80)] for _ in range(80)] for _ in range(3))
    left, right = matmul(matmul(a, b), c), matmul(a, matmul(b, c))
    for row_l, row_r in zip(left, right, strict=True):
        assert row_l == pytest.approx(row_r, abs=1e-9)


def test_identity_matrix_is_neutral(rng: random.Random) -> None:
    a = [[rng.uniform(-1, 1) for _ in range(80)] for _ in range(80)]
    identity = [[float(i == j) for j in range(80)] for i in range(80)]
    assert matmul(a, identity) == a
    assert matmul(identity, a) == a


@pytest.mark.parametrize("n", [10, 1_000, 30_000, 100_000])
def test_fibonacci_fast_doubling_matches_the_loop(n: int) -> None:
    assert fib_doubling(n) == fib_iterative(n)


def test_decimal_square_root_to_1000_digits() -> None:
    getcontext().prec = 1_010
    root = Decimal(2).sqrt()
    digits = int(str(root).replace(".", "")[:1_000])
    assert digits == math.isqrt(2 * 10 ** (2 * 999))
