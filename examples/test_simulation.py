"""A numeric simulation checked over a grid of parameters, with ``parametrize_parallel``.

The explicit finite-difference scheme (FTCS) for the heat equation ``u_t = alpha * u_xx`` on
a rod of length 1 with both ends held at 0. A sine mode ``sin(k pi x)`` decays as
``exp(-alpha k^2 pi^2 t)``; the scheme must follow that decay to second order in the grid
spacing, stay stable while ``r = alpha dt / dx^2`` is at most 1/2, and never create heat.

The 120 parameter combinations are one test item: their cases run in worker processes that
fork from the test's process (the ``rod`` fixture is set up once, there, and inherited), and a
failure would come back as one report listing each failing case. Each case takes a few ms.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray

import pytest_ploop as ploop

T_END = 0.02  # alpha * t at the end of each run: the mode has decayed, not vanished


def heat_ftcs(
    u0: NDArray[np.float64], alpha: float, dx: float, r: float, t_end: float
) -> NDArray[np.float64]:
    """Advance ``u0`` (ends fixed at 0) to ``t_end`` by FTCS steps of ``dt = r dx^2 / alpha``."""
    dt = r * dx * dx / alpha
    steps = math.ceil(t_end / dt)
    dt = t_end / steps  # land exactly on t_end; r only shrinks
    r = alpha * dt / (dx * dx)
    u: NDArray[np.float64] = u0.copy()
    for _ in range(steps):
        u[1:-1] += r * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return u


@pytest.fixture(scope="module")
def rod() -> dict[int, NDArray[np.float64]]:
    """The grids, by number of intervals: set up once, inherited by every case's worker."""
    return {n: np.linspace(0.0, 1.0, n + 1) for n in (16, 24, 32, 48)}


CASES = [
    pytest.param(alpha, k, n, r, id=f"a{alpha}-k{k}-n{n}-r{r}")
    for alpha, k, n, r in itertools.product(
        (0.5, 1.0, 2.0), (1, 2, 3, 4, 5), (16, 24, 32, 48), (0.25, 0.45)
    )
]


@ploop.parametrize_parallel("alpha, k, n, r", CASES, timeout=60)
def test_sine_mode_decays_as_the_heat_equation_says(
    alpha: float, k: int, n: int, r: float, rod: dict[int, NDArray[np.float64]]
) -> None:
    x = rod[n]
    dx = 1.0 / n
    u0 = np.sin(k * math.pi * x)
    u0[[0, -1]] = 0.0  # sin(k pi) is 1e-16 or so in floating point; the ends are held at 0
    u = heat_ftcs(u0, alpha, dx, r, T_END / alpha)

    exact = math.exp(-((k * math.pi) ** 2) * T_END)
    amplitude = float(u @ u0 / (u0 @ u0))  # the mode's share of the solution
    # FTCS is second order in space: the decay rate is off by about (k pi dx)^2 / 12.
    rate_error = (k * math.pi * dx) ** 2 / 12 * (k * math.pi) ** 2 * T_END
    assert amplitude == pytest.approx(exact, rel=2 * rate_error + 1e-9)
    assert np.abs(u - amplitude * u0).max() < 1e-9  # the mode stays a pure sine mode
    assert np.abs(u).max() <= np.abs(u0).max()  # no heat created
    assert u[0] == u[-1] == 0.0
