"""Convergence of the generated heat-equation stepper (``specs/heat1d.yaml``, periodic, D = 0.5).

The initial condition u0 = sin(k x) on the periodic grid x_i = i h of N = 2π/h points has the
exact solution u(t) = exp(−D k² t) sin(k x); it is compared at t = 0.1 (float64).

(a) Time order, on a fine grid (N = 64) with the 8th-order Laplacian and 20, 40, 80, 160
    substeps (Δt = 5e-3 … 6.25e-4, all stable): the least-squares slope of log error against
    log Δt must be 1 (euler), 2 (rk2), 4 (rk4) within 0.15.
    For euler and rk2 the error is measured against the exact solution itself.  For rk4 that
    is impossible with any explicit stable Δt: the ratio of the RK4 time error
    t λ⁵Δt⁴/120 to the 8th-order spatial error t λ (kh)⁸/3150 is ≈ 26 (D Δt / h²)⁴, which
    stability (D Δt / h² ≲ 0.5) keeps ≲ 1.6 at the largest Δt and ≲ 4e-4 at the smallest — the
    spatial error always dominates.  So the time order is measured against the exact solution
    of the *semi-discrete* system, exp(D σ_h t) sin(k x), where σ_h = Σ_j w_j cos(j k h) / h²
    is the symbol of the stencil (a Fourier mode is an eigenvector of the periodic stencil);
    the weights w_j are recomputed here from the moment conditions in exact arithmetic.  The rk4
    result is still checked to agree with exp(−D k² t) sin(k x) to the spatial accuracy.
(b) Space order, rk4 with a small Δt: refining N = 16, 32, 64 (``--set grid.spacing=2π/N``), the
    error against the exact solution falls like h^p for accuracy p = 2, 4, 6, within 0.15.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from pdelang.interpreters.builder import structure_of
import torch

from codegen_helpers import build

D = 0.5
T = 0.1
SUBSTEPS = (20, 40, 80, 160)


def laplace_weights(accuracy: int) -> tuple[list[int], list[Fraction]]:
    """Centred 2nd-derivative weights of the given even accuracy: Σ_j w_j j^p = 2 δ_{p2}."""
    m = accuracy // 2
    offsets = list(range(-m, m + 1))
    n = len(offsets)
    rows = [[Fraction(j) ** p for j in offsets] + [Fraction(2 if p == 2 else 0)] for p in range(n)]
    for i in range(n):
        pivot = next(r for r in range(i, n) if rows[r][i] != 0)
        rows[i], rows[pivot] = rows[pivot], rows[i]
        for r in range(n):
            if r != i and rows[r][i] != 0:
                f = rows[r][i] / rows[i][i]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[i])]
    return offsets, [rows[i][n] / rows[i][i] for i in range(n)]


def solve(scheme: str, substeps: int, n: int, accuracy: int, k: int):
    """(numerical solution, grid x, h) of the generated stepper at t = T."""
    h = 2 * math.pi / n
    stepper_class = build("heat1d", [
        f"time.scheme={scheme}", f"time.substeps={substeps}", f"grid.spacing={h!r}",
        f"discretization.laplace.accuracy={accuracy}"])
    stepper = stepper_class().double()
    assert structure_of(stepper_class)["dt"] == pytest.approx(T / substeps)
    x = torch.arange(n, dtype=torch.float64) * h
    u0 = torch.sin(k * x)[None, :, None]  # (1, N, 1)
    with torch.no_grad():
        u = stepper(u0)
    assert u.shape == (1, n, 1)
    return u[0, :, 0], x, h


def exact(x, k):
    return math.exp(-D * k * k * T) * torch.sin(k * x)


def semi_discrete(x, k, h, accuracy):
    offsets, weights = laplace_weights(accuracy)
    sigma = sum(float(w) * math.cos(j * k * h) for j, w in zip(offsets, weights)) / h**2
    return math.exp(D * sigma * T) * torch.sin(k * x)


def slope(steps, errors) -> float:
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def test_weights_helper_is_right():
    assert laplace_weights(2)[1] == [1, -2, 1]
    assert laplace_weights(4)[1] == [Fraction(-1, 12), Fraction(4, 3), Fraction(-5, 2),
                                     Fraction(4, 3), Fraction(-1, 12)]


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("rk2", 2)])
def test_time_order_against_exact_solution(scheme, order):
    k = 2
    errors = []
    for substeps in SUBSTEPS:
        u, x, _ = solve(scheme, substeps, 64, 8, k)
        errors.append(float((u - exact(x, k)).abs().max()))
    dts = [T / s for s in SUBSTEPS]
    measured = slope(dts, errors)
    assert abs(measured - order) <= 0.15, (scheme, errors, measured)


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("rk2", 2), ("rk4", 4)])
def test_time_order_against_semi_discrete_solution(scheme, order):
    k = 4
    errors, spatial = [], []
    for substeps in SUBSTEPS:
        u, x, h = solve(scheme, substeps, 64, 8, k)
        errors.append(float((u - semi_discrete(x, k, h, 8)).abs().max()))
        spatial.append(float((u - exact(x, k)).abs().max()))
    measured = slope([T / s for s in SUBSTEPS], errors)
    assert abs(measured - order) <= 0.15, (scheme, errors, measured)
    assert min(errors) > 1e-13  # above round-off: the slope is meaningful
    if scheme == "rk4":
        # rk4 matches the true solution to the 8th-order spatial error t·D·k²·(kh)⁸/3150
        bound = T * D * k**2 * (k * h) ** 8 / 3150 * 1.5
        assert max(spatial) <= bound, (spatial, bound)


@pytest.mark.parametrize("accuracy", [2, 4, 6])
def test_space_order(accuracy):
    k = 1
    sizes = (16, 32, 64)
    errors, steps = [], []
    for n in sizes:
        u, x, h = solve("rk4", 20, n, accuracy, k)
        errors.append(float((u - exact(x, k)).abs().max()))
        steps.append(h)
    measured = slope(steps, errors)
    assert abs(measured - accuracy) <= 0.15, (accuracy, errors, measured)


def test_default_spec_matches_exact_solution():
    """The spec as written (euler, 3-point Laplacian, 20 substeps, N = 64) is accurate to
    its first-order time error."""
    u, x, _ = solve("euler", 20, 64, 2, 1)
    assert float((u - exact(x, 1)).abs().max()) < 2e-4
