"""Finite-difference stencils derived with SymPy, with their truncation error.

A centred stencil for the k-th derivative of even accuracy p uses the offsets
``-m … m`` with ``m = ⌊(k+1)/2⌋ − 1 + p/2`` and weights from
``sympy.finite_diff_weights`` (Fornberg's algorithm, exact rationals):

    u^(k)(x) ≈ h^(−k) Σ_j w_j u(x + j h).

Truncation error by Taylor expansion: u(x + jh) = Σ_n (jh)^n/n! u^(n)(x), so

    h^(−k) Σ_j w_j u(x + jh) − u^(k)(x) = Σ_{n≠k} c_n h^(n−k) u^(n)(x),  c_n = Σ_j w_j jⁿ / n!

(and c_k = 1 by construction).  The first n > k with c_n ≠ 0 gives the leading error
term c_n h^(n−k) u^(n) and the order n − k.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy


@dataclass(frozen=True)
class Stencil:
    """A 1-D stencil: ``Σ_j weights[j] u(x + offsets[j] h) / h^derivative``."""

    derivative: int
    accuracy: int
    offsets: tuple[int, ...]
    weights: tuple[sympy.Rational, ...]
    order: int  # derived from the Taylor expansion
    error_coefficient: sympy.Rational  # c_n of the leading term
    error_derivative: int  # n of the leading term

    @property
    def radius(self) -> int:
        return max(abs(o) for o in self.offsets)

    def leading_error(self, h: sympy.Symbol | None = None, x: sympy.Symbol | None = None):
        """The leading truncation-error term, e.g. ``h**2*Derivative(u(x), (x, 4))/12``."""
        h = h or sympy.Symbol("h", positive=True)
        x = x or sympy.Symbol("x", real=True)
        u = sympy.Function("u")(x)
        return self.error_coefficient * h ** self.order * sympy.Derivative(
            u, (x, self.error_derivative))

    def symbol(self, theta: sympy.Symbol) -> sympy.Expr:
        """Von Neumann symbol without the h^(−k) factor: Σ_j w_j e^{i j θ}."""
        return sympy.Add(*[w * sympy.exp(sympy.I * j * theta)
                           for j, w in zip(self.offsets, self.weights)])

    def real_symbol(self, theta: sympy.Symbol) -> sympy.Expr:
        """Σ_j w_j cos(jθ) (the real part; the whole symbol for even derivatives)."""
        return sympy.Add(*[w * sympy.cos(j * theta) for j, w in zip(self.offsets, self.weights)])


@dataclass(frozen=True)
class StencilFacts:
    """A stencil the spec needs, as the analysis reports it.

    ``key`` names it in the discrete IR (``laplace``, ``diff[x,2]``), ``attribute`` is the
    generated module attribute that applies it (``laplace``, ``d2_x``)."""

    key: str
    operator: str
    derivative: int
    axes: tuple[str, ...]
    stencil: Stencil
    leading_error: str
    attribute: str = ""

    def to_json(self) -> dict:
        s = self.stencil
        return {
            "operator": self.operator,
            "derivative": self.derivative,
            "axes": list(self.axes),
            "offsets": list(s.offsets),
            "weights": [str(w) for w in s.weights],
            "accuracy": s.accuracy,
            "order": s.order,
            "leading_error": self.leading_error,
        }


def taylor_error(offsets, weights, derivative: int, search: int = 24):
    """(order, coefficient, n) of the leading truncation term of a stencil (see module doc).

    A stencil on m points is exact on polynomials of degree < m at most (a nonzero one
    vanishes at its m points otherwise), so searching n up to m + 1 always finds the term."""
    search = max(search, len(offsets) + 2 - derivative)
    for n in range(0, derivative + search):
        c = sum((w * sympy.Integer(j) ** n for j, w in zip(offsets, weights)),
                sympy.Integer(0)) / sympy.factorial(n)
        if n == derivative:
            if c != 1:
                raise ValueError(f"the stencil is not consistent: Σ w_j j^{n}/{n}! = {c} ≠ 1")
            continue
        if c != 0:
            if n < derivative:
                raise ValueError(f"the stencil is not consistent: c_{n} = {c} ≠ 0")
            return n - derivative, c, n
    return derivative + search, sympy.Integer(0), derivative + search  # exact on polynomials


@cache
def centred_stencil(derivative: int, accuracy: int) -> Stencil:
    """The centred stencil of the given derivative order and even accuracy order."""
    if derivative < 1:
        raise ValueError("derivative order must be ≥ 1")
    if accuracy < 2 or accuracy % 2:
        raise ValueError("accuracy must be even and ≥ 2")
    radius = (derivative + 1) // 2 - 1 + accuracy // 2
    offsets = tuple(range(-radius, radius + 1))
    table = sympy.finite_diff_weights(derivative, [sympy.Integer(o) for o in offsets], 0)
    weights = tuple(sympy.Rational(w) for w in table[derivative][-1])  # exact already
    order, coefficient, n = taylor_error(offsets, weights, derivative)
    return Stencil(derivative, accuracy, offsets, weights, order, coefficient, n)


def stencil_from_weights(derivative: int, offsets, weights, accuracy: int = 0) -> Stencil:
    """A stencil with given (e.g. perturbed) weights; its order is re-derived."""
    # nsimplify would turn a rational with a large denominator into a guessed radical
    weights = tuple(w if isinstance(w, sympy.Rational) else sympy.nsimplify(w, rational=True)
                    for w in map(sympy.sympify, weights))
    order, coefficient, n = taylor_error(offsets, weights, derivative)
    return Stencil(derivative, accuracy or order, tuple(offsets), weights, order, coefficient, n)
