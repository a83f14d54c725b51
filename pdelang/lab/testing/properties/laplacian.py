"""(c) The discrete Laplacian is self-adjoint and negative semi-definite in the boundary's
inner product, annihilates constants, and diffusion conserves the weighted mean and (for a
monotone scheme) does not raise the max norm."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from pdelang.lab.testing.properties.polynomials import _fraction
from pdelang.lab.testing.properties.results import Operator, PropertyResult, make_result
from pdelang.compiler.schemes import SCHEMES


# ----------------------------------------------------------------------------- (c) Laplacian
def operator_matrix(apply: Operator, tokens: int, extra_tokens: int = 0) -> np.ndarray:
    """The matrix of a linear operator on grid tokens (one channel): column j is
    ``apply(e_j)`` (extra tokens, if any, are zero and dropped)."""
    eye = np.eye(tokens)
    u = eye[:, :, None]
    if extra_tokens:
        u = np.concatenate([np.zeros((tokens, extra_tokens, 1)), u], axis=1)
    rate = np.asarray(apply(u))[:, extra_tokens:, 0]  # row b = L e_b
    return rate.T.copy()


def inner_product_weights(boundary: str, shape: Sequence[int]) -> np.ndarray:
    """Diagonal W (flattened, row-major) of the inner product in which the discrete Laplacian
    with this boundary is self-adjoint: 1 everywhere for periodic and dirichlet; for neumann
    (even mirror about the end tokens) the trapezoid weights ½ on the end tokens of each axis
    (¼ in the corners of a 2-D grid).

    Why: even-mirror data are the restriction of a 2(n−1)-periodic even vector v = E u; the
    periodic circulant C is symmetric, so Eᵀ C E is; and Eᵀ v = 2 W v on even vectors (end
    tokens appear once in the period, interior tokens twice), hence W L = ½ Eᵀ C E."""
    per_axis = []
    for n in shape:
        w = np.ones(n)
        if boundary == "neumann":
            w[0] = w[-1] = 0.5
        elif boundary == "copy":
            raise ValueError("with copy the end tokens are held fixed: use the interior block")
        per_axis.append(w)
    out = per_axis[0]
    for w in per_axis[1:]:
        out = np.outer(out, w).ravel()
    return out


def check_symmetric_nsd(matrix: np.ndarray, weights: np.ndarray, *, rtol: float = 1e-10,
                        name: str = "symmetric_nsd") -> PropertyResult:
    """(c) ``W L`` is symmetric and ``L`` is negative semi-definite in ⟨·,·⟩_W:
    eigenvalues of ``W^½ L W^−½`` are ≤ 0 (up to ``rtol`` times the largest)."""
    L = np.asarray(matrix, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    S = w[:, None] * L
    scale = max(np.max(np.abs(S)), 1e-300)
    asymmetry = float(np.max(np.abs(S - S.T)) / scale)
    root = np.sqrt(w)
    symmetric = (root[:, None] * L) / root[None, :]
    eigenvalues = np.linalg.eigvalsh(0.5 * (symmetric + symmetric.T))
    top = float(eigenvalues[-1] / max(np.max(np.abs(eigenvalues)), 1e-300))
    ok = asymmetry <= rtol and top <= rtol
    return make_result(name, ok, f"|WL − (WL)ᵀ|/|WL| = {asymmetry:.2g}, largest eigenvalue / "
                   f"spectral radius = {top:.2g} (tolerance {rtol:g})",
                   asymmetry=asymmetry, largest_eigenvalue=top)


def check_annihilates_constants(matrix: np.ndarray, *, rtol: float = 1e-12,
                                name: str = "annihilates_constants") -> PropertyResult:
    """(c) ``L 1 = 0``."""
    L = np.asarray(matrix, dtype=np.float64)
    residual = float(np.max(np.abs(L.sum(axis=1))) / max(np.max(np.abs(L)), 1e-300))
    return make_result(name, residual <= rtol, f"|L·1| / |L| = {residual:.2g}", residual=residual)


def check_conserves_weighted_mean(step: Callable[[np.ndarray], np.ndarray], u0: np.ndarray,
                                  weights: np.ndarray, *, steps: int = 1, rtol: float = 1e-12,
                                  name: str = "conserves_mean") -> PropertyResult:
    """(c) ``Σ_i W_i u_i`` over the grid is the same after ``steps`` calls of ``step``
    (states ``(B, N, C)`` of grid tokens; W from :func:`inner_product_weights`)."""
    w = np.asarray(weights)[None, :, None]
    before = (w * u0).sum(axis=1)
    u = u0
    for _ in range(steps):
        u = step(u)
    after = (w * u).sum(axis=1)
    scale = max(float((w * np.abs(u0)).sum(axis=1).max()), 1e-300)
    drift = float(np.max(np.abs(after - before)) / scale)
    return make_result(name, drift <= rtol, f"relative drift of the W-mean {drift:.2g} after "
                   f"{steps} step(s)", drift=drift, steps=steps)


def check_max_norm_nonincreasing(step: Callable[[np.ndarray], np.ndarray], u0: np.ndarray, *,
                                 steps: int = 10, rtol: float = 1e-12,
                                 name: str = "max_norm_nonincreasing") -> PropertyResult:
    """(c) ``max |u|`` never increases over ``steps`` steps (per batch element)."""
    u = u0
    worst = -math.inf
    for i in range(steps):
        new = step(u)
        before = np.max(np.abs(u), axis=(1, 2))
        after = np.max(np.abs(new), axis=(1, 2))
        growth = float(np.max((after - before) / np.maximum(before, 1e-300)))
        worst = max(worst, growth)
        if growth > rtol:
            return make_result(name, False, f"max norm grew by a factor 1 + {growth:.3g} at step "
                           f"{i + 1}", growth=growth, step=i + 1)
        u = new
    return make_result(name, True, f"max norm never grew in {steps} steps (largest relative "
                   f"change {worst:.2g})", growth=worst, steps=steps)


def is_monotone(stencil, program) -> bool:
    """Whether stepping ``D Δu`` with this stencil and step program obeys the discrete
    maximum principle for every Δt within the von Neumann bound: all off-centre weights
    non-negative, and a strong-stability-preserving scheme — a convex combination of
    forward-Euler steps of the bound's size (the scheme's ``ssp`` fact: euler, lie, strang,
    rk2 = Heun, imex_euler; exact flows and backward-Euler stages keep the principle too).
    Wider (higher accuracy) Laplacian stencils have negative weights, and classical rk4 is
    not SSP: for those the max norm can grow (the W-norm cannot).  ``program`` is a step
    program or a scheme name."""
    name = program if isinstance(program, str) else program.scheme
    offsets = [int(o) for o in stencil.offsets]
    weights = [_fraction(w) for w in stencil.weights]
    off_centre_ok = all(w >= 0 for o, w in zip(offsets, weights) if o != 0)
    return stencil.derivative == 2 and off_centre_ok and SCHEMES[name].ssp
