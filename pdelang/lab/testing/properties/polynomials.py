"""(a) A k-th derivative stencil of accuracy p is exact on polynomials of degree ≤ p + k − 1
(exact rational arithmetic), and on an operator's interior nodes numerically."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from pdelang.lab.testing.properties.results import Operator, PropertyResult, make_result


# ----------------------------------------------------------------------------- (a) polynomials
def _fraction(w) -> Fraction:
    if isinstance(w, Fraction):
        return w
    if hasattr(w, "p") and hasattr(w, "q"):  # sympy Rational
        return Fraction(int(w.p), int(w.q))
    return Fraction(str(w))


def _falling(d: int, k: int) -> int:
    out = 1
    for i in range(k):
        out *= d - i
    return out


def check_polynomial_exactness(stencil, *, accuracy: int | None = None,
                               degree: int | None = None) -> PropertyResult:
    """(a) A stencil for the k-th derivative of accuracy p is exact on every polynomial of
    degree ≤ p + k − 1: ``Σ_j w_j (x₀ + j h)^d / h^k = d!/(d−k)! x₀^(d−k)`` for every such d,
    checked in exact rational arithmetic at several x₀ and h.

    ``stencil`` is a :class:`~pdelang.compiler.discrete.ir.DiscreteStencil` or an
    :class:`~pdelang.compiler.analysis.stencils.Stencil` (``offsets``, ``weights``, ``derivative``,
    ``accuracy``); ``accuracy`` overrides the accuracy it claims.
    """
    k = int(stencil.derivative)
    p = int(accuracy if accuracy is not None else stencil.accuracy)
    degree = p + k - 1 if degree is None else degree
    weights = [_fraction(w) for w in stencil.weights]
    offsets = [int(o) for o in stencil.offsets]
    name = f"polynomial_exactness[k={k},p={p}]"
    for x0 in (Fraction(0), Fraction(1, 3), Fraction(-7, 5)):
        for h in (Fraction(1), Fraction(1, 2), Fraction(3, 7)):
            for d in range(degree + 1):
                approx = sum(w * (x0 + j * h) ** d for j, w in zip(offsets, weights)) / h**k
                exact = _falling(d, k) * x0 ** (d - k) if d >= k else Fraction(0)
                if approx != exact:
                    return make_result(name, False,
                                   f"not exact on x^{d} (degree {d} ≤ {degree}) at x0={x0}, "
                                   f"h={h}: stencil gives {approx}, exact {exact}",
                                   degree=d, max_degree=degree, x0=str(x0), h=str(h))
    return make_result(name, True, f"exact on all polynomials of degree ≤ {degree}",
                   max_degree=degree)


def check_polynomial_exactness_numeric(apply: Operator, *, derivative: int, accuracy: int,
                                       radius: int, h: float, n: int = 24, seed: int = 0,
                                       rtol: float = 1e-9,
                                       extra_tokens: int = 0) -> PropertyResult:
    """(a), on a 1-D operator: ``apply`` (a ``(B, n, 1)`` state → rate, grid spacing ``h``)
    reproduces the k-th derivative of random polynomials of degree ≤ p + k − 1 on the interior
    nodes (those at least ``radius`` from an end, where no ghost value is read).

    ``extra_tokens`` zero tokens are put before the grid (and dropped from the rate)."""
    k, p = derivative, accuracy
    degree = p + k - 1
    rng = np.random.default_rng(seed)
    x = np.arange(n) * h
    centre, scale = x.mean(), (n * h) / 2
    worst = 0.0
    for d in range(degree + 1):
        coefficients = np.zeros(d + 1)
        coefficients[d] = 1.0
        coefficients[:d] = rng.uniform(-1, 1, d)
        poly = np.polynomial.Polynomial(coefficients)
        s = (x - centre) / scale
        values = poly(s)
        exact = poly.deriv(k)(s) / scale**k if d >= k else np.zeros(n)
        state = values.reshape(1, n, 1)
        if extra_tokens:
            state = np.concatenate([np.zeros((1, extra_tokens, 1)), state], axis=1)
        rate = np.asarray(apply(state))[0, extra_tokens:, 0]
        inner = slice(radius, n - radius)
        magnitude = max(np.max(np.abs(values)) / h**k, np.max(np.abs(exact)), 1e-300)
        error = np.max(np.abs(rate[inner] - exact[inner])) / magnitude
        worst = max(worst, error)
        if error > rtol:
            return make_result(f"polynomial_exactness_numeric[k={k},p={p}]", False,
                           f"degree-{d} polynomial: interior error {error:.3g} > {rtol:g}",
                           degree=d, error=error)
    return make_result(f"polynomial_exactness_numeric[k={k},p={p}]", True,
                   f"interior error ≤ {worst:.2g} on polynomials of degree ≤ {degree}",
                   max_error=worst, max_degree=degree)
