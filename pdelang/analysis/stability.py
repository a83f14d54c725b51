"""Von Neumann stability of the linear stencil part, for each time scheme.

For explicit Runge–Kutta schemes one step multiplies a Fourier mode by R(Δt λ(θ)), with
λ(θ) the von Neumann symbol of the linear operator and R the stability polynomial:

    euler  R(z) = 1 + z
    rk2    R(z) = 1 + z + z²/2
    rk4    R(z) = 1 + z + z²/2 + z³/6 + z⁴/24

The step is stable when |R(Δt λ(θ))| ≤ 1 for every θ.  For a real, non-positive symbol
this reduces to Δt · max_θ |λ(θ)| ≤ β, where β is the length of the scheme's stability
interval on the negative real axis, found exactly from the roots of R(z)² − 1 (β = 2 for
euler and rk2, β ≈ 2.785 for rk4).  A purely imaginary symbol (odd derivatives only) gives
Δt · max_θ |λ(θ)| ≤ y₀, y₀ the scheme's interval on the imaginary axis (0 for euler and
rk2, 2√2 for rk4).  Other complex symbols are handled by a bisection on Δt over a θ grid.
Splitting schemes (lie, strang) advance each term with an explicit Euler sub-step of a
fraction f of Δt.  With one term holding the linear differential part the bound is that
sub-step's (exact); with several, the composite factor Π_s (1 + f_s Δt λ_s(θ)) is what
must stay in the unit disc, and it can allow more than the smallest sub-step bound (see
``analysis.analyse._composite_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy

Z = sympy.Symbol("z")

STABILITY_POLYNOMIALS = {
    "euler": 1 + Z,
    "rk2": 1 + Z + Z**2 / 2,
    "rk4": 1 + Z + Z**2 / 2 + Z**3 / 6 + Z**4 / 24,
}


@cache
def real_stability_interval(scheme: str) -> sympy.Expr:
    """β: the largest s with |R(−σ)| ≤ 1 for all σ ∈ [0, s] (exact algebraic number)."""
    R = STABILITY_POLYNOMIALS[scheme]
    candidates = []
    for target in (1, -1):
        poly = sympy.Poly(R - target, Z)
        for root in poly.real_roots():
            if root < 0:
                candidates.append(root)
    for root in sorted(candidates, key=lambda r: -float(r)):  # closest to 0 first
        beyond = float(root) - 1e-9
        if abs(float(R.subs(Z, beyond))) > 1:
            return -root
    return sympy.oo  # pragma: no cover - every explicit scheme has a finite interval


@cache
def imaginary_stability_interval(scheme: str) -> sympy.Expr:
    """y₀: the largest s with |R(iy)| ≤ 1 for all y ∈ [−s, s] (exact algebraic number).

    0 when the stability region only touches the imaginary axis at the origin (euler,
    rk2: a purely imaginary symbol, e.g. centred advection, is unstable for every Δt > 0);
    2√2 for rk4.
    """
    y = sympy.Symbol("y", real=True)
    R = STABILITY_POLYNOMIALS[scheme]
    # p(y) = |R(iy)|² − 1 = R(iy) R(−iy) − 1 (R has real coefficients)
    p = sympy.Poly(sympy.expand(R.subs(Z, sympy.I * y) * R.subs(Z, -sympy.I * y) - 1), y)
    lowest = next((c for c in reversed(p.all_coeffs()) if c != 0), sympy.Integer(0))
    if lowest > 0:
        return sympy.Integer(0)
    for root in sorted((r for r in p.real_roots() if r > 0), key=float):
        if p.eval(root + sympy.Rational(1, 10**9)) > 0:
            return root
    return sympy.oo  # pragma: no cover - no explicit scheme is stable on the whole axis


@cache
def _coefficients(scheme: str) -> tuple[float, ...]:
    return tuple(float(c) for c in sympy.Poly(STABILITY_POLYNOMIALS[scheme], Z).all_coeffs()[::-1])


def amplification(scheme: str, z: complex) -> float:
    return abs(sum(c * z**n for n, c in enumerate(_coefficients(scheme))))


@dataclass(frozen=True)
class SymbolRange:
    """Extremes of a real symbol over θ ∈ [−π, π]^d (exact where SymPy can)."""

    minimum: sympy.Expr
    maximum: sympy.Expr


def real_symbol_range(expr: sympy.Expr, theta: sympy.Symbol) -> SymbolRange:
    """min/max over θ of a real trigonometric polynomial Σ a_j cos(jθ), exactly.

    With c = cos θ, cos(jθ) = T_j(c) (Chebyshev), so the symbol is a polynomial p(c) on
    [−1, 1]; its extremes lie at the ends or at real roots of p'(c).
    """
    c = sympy.Symbol("c", real=True)
    poly_expr = sympy.expand(sympy.expand_trig(expr.rewrite(sympy.cos)).subs(sympy.cos(theta), c))
    poly_expr = sympy.expand(poly_expr.replace(
        lambda e: isinstance(e, sympy.cos) and e.args[0].has(theta),
        lambda e: sympy.chebyshevt(int(e.args[0] / theta), c)))
    poly = sympy.Poly(poly_expr, c)
    points = [sympy.Integer(-1), sympy.Integer(1)]
    derivative = poly.diff(c)
    if derivative.degree() > 0:
        points += [r for r in derivative.real_roots() if -1 < r < 1]
    values = [poly.eval(p) for p in points]
    return SymbolRange(min(values, key=float), max(values, key=float))


def max_stable_dt_complex(scheme: str, symbol_values, upper: float = 1e6) -> float:
    """Largest Δt with |R(Δt λ)| ≤ 1 for sampled symbol values λ (bisection)."""
    def stable(dt: float) -> bool:
        return all(amplification(scheme, dt * lam) <= 1 + 1e-12 for lam in symbol_values)

    lo, hi = 0.0, 1.0
    if not stable(1e-12):
        return 0.0
    while stable(hi):
        lo, hi = hi, hi * 2
        if hi > upper:
            return float("inf")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return lo
