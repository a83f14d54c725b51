"""Von Neumann stability of a step program, derived by running the program on ``u' = λu``.

Each term t of the equation contributes its *linear differential part*: on a Fourier mode
e^{iθ·x} it is the number λ_t(θ) (the von Neumann symbol of its stencils, with the
coefficients' values).  Running the step program symbolically (:class:`SymbolicMachine`) with
``Rate: k = Σ_t λ_t s``, ``Solve: s/(1 − cΔt Σ λ_t)``, ``Flow: exp(cΔt Σ λ_t) s`` and the
updates as written (with or without the identity part) gives the amplification factor of one
step as a function ``G(z_1, …, z_m)`` of ``z_t = Δt λ_t(θ)``.  The step is stable when
``|G| ≤ 1`` for every θ — and for every smaller Δt — so the largest stable Δt is found from G:

* one *shape* (every λ_t a constant multiple a_t of one real symbol Λ(θ) ≤ 0): with
  ``g(w) = G(a_t w)`` and ``ρ = max_θ |Λ(θ)|`` (exact, Chebyshev), ``Δt* = β/ρ`` where
  ``β = sup{s : |g(−σ)| ≤ 1 on [0, s]}`` — exact roots of ``g(−σ)² − 1`` for a rational g
  (e.g. euler: g = 1 + w, β = 2; without the residual g = w, β = 1; rk4: β ≈ 2.785;
  Strang of a split diffusion: a product of factors), unbounded for implicit stages and
  exact flows (``g = 1/(1 − w)``, ``e^w``: no step size is too large);
* one purely imaginary shape (odd derivatives): the interval ``y₀`` of g on the imaginary
  axis over ``max_θ |Λ|`` (on a fine θ grid);
* anything else (several shapes, complex symbols): for each θ of a grid, the first Δt at
  which |G| crosses 1 (exact roots of ``|G|² − 1`` in Δt for rational G, a scan otherwise),
  and the smallest over θ.

The helpers below take a stability function ``g`` of one variable ``z`` (a SymPy
expression); :func:`stability_function` derives it for a scheme from its step program.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import sympy
import mpmath

from pdelang.compiler.schemes import program as P, exact_constant, SCHEMES

Z = sympy.Symbol("z")


# ----------------------------------------------------------------------------- the machine
class SymbolicMachine:
    """Interprets a step program on the scalar test equation: registers are SymPy
    expressions in the symbols ``z[t]`` (Δt λ_t, with Δt = 1 absorbed: every λ enters with
    exactly one factor Δt)."""

    def __init__(self, program: P.StepProgram, z: dict[str, sympy.Expr],
                 constants: dict[str, sympy.Expr]) -> None:
        self.program = program
        self.z = z
        self.constants = constants

    def _c(self, coefficient: P.Coefficient) -> sympy.Expr:
        return coefficient.evaluate(self.constants,
                                    lambda q: sympy.Rational(q.numerator, q.denominator))

    def combine(self, parts):
        return sympy.Add(*[self._c(c) * value for c, value, _dt in parts])

    def rate(self, terms, state):
        return sympy.Add(*[self.z[t] for t in terms]) * state

    def solve(self, terms, coefficient, rhs):
        return rhs / (1 - self._c(coefficient) * sympy.Add(*[self.z[t] for t in terms]))

    def flow(self, terms, coefficient, state):
        return sympy.exp(self._c(coefficient) * sympy.Add(*[self.z[t] for t in terms])) * state

    def project(self, norm, state):
        return state  # the analysis treats a projection as the identity (and says so)

    def observe(self, index, label, value):
        pass


def exact_constants(program: P.StepProgram) -> dict[str, sympy.Expr]:
    return {c.name: exact_constant(program.scheme, c.name) for c in program.constants}


def amplification_factor(program: P.StepProgram, z: dict[str, sympy.Expr]) -> sympy.Expr:
    """G: one step of ``program`` on ``u' = Σ_t λ_t u`` from u = 1, with z_t = Δt λ_t."""
    machine = SymbolicMachine(program, z, exact_constants(program))
    return sympy.simplify(P.run(program, machine, sympy.Integer(1)))


def stability_function(scheme, terms: tuple[str, ...] = ("a",), implicit: tuple[str, ...] = (),
                       residual: bool = True) -> sympy.Expr:
    """R(z) of a scheme (a :class:`pdelang.compiler.schemes.Scheme` or its name) on ``u' = λu`` with
    every term sharing λ: derived from its step program, never written down."""
    if isinstance(scheme, str):
        scheme = SCHEMES[scheme]
    program = scheme.program(terms, terms, implicit, residual, ())
    weights = {t: Z / len(terms) for t in terms}
    return sympy.simplify(amplification_factor(program, weights))


# ----------------------------------------------------------------------------- intervals
def _real_polynomial_roots(poly_expr: sympy.Expr, x: sympy.Symbol) -> list[float]:
    """Real roots of a polynomial (exact when its coefficients are rational)."""
    poly = sympy.Poly(sympy.expand(poly_expr), x)
    if poly.degree() <= 0:
        return []
    try:
        return sorted(float(r) for r in poly.real_roots())
    except (sympy.PolynomialError, NotImplementedError, TypeError):
        roots = [complex(r) for r in poly.nroots(n=30, maxsteps=200)]
        return sorted(r.real for r in roots if abs(r.imag) <= 1e-12 * max(1.0, abs(r)))


def _exact_roots(poly_expr: sympy.Expr, x: sympy.Symbol) -> list[sympy.Expr]:
    poly = sympy.Poly(sympy.expand(poly_expr), x)
    if poly.degree() <= 0:
        return []
    try:
        return sorted(poly.real_roots(), key=float)
    except (sympy.PolynomialError, NotImplementedError, TypeError):
        return [sympy.Float(r, 30) for r in _real_polynomial_roots(poly_expr, x)]


def _first_crossing(p_expr: sympy.Expr, x: sympy.Symbol, value_at) -> sympy.Expr:
    """sup{s : p ≤ 0 on [0, s]} for a polynomial p with p ≤ 0 meaning |g| ≤ 1: 0 if p is
    positive right after 0, else its first positive root where it turns positive (a
    tangency does not count), ∞ if there is none."""
    if _leading_positive(p_expr, x):
        return sympy.Integer(0)
    for root in _exact_roots(p_expr, x):
        r = float(root)
        if r <= 1e-12:
            continue
        if value_at(r * (1 + 1e-7) + 1e-12) > 0:
            return root
    return sympy.oo


def _leading_positive(p_expr, x) -> bool:
    """Whether p > 0 just right of 0: its lowest-order non-zero coefficient is positive."""
    poly = sympy.Poly(sympy.expand(p_expr), x)
    if poly.is_zero:
        return False
    for coefficient in reversed(poly.all_coeffs()):
        value = float(coefficient)
        if abs(value) > 1e-14:
            return value > 0
    return False


def real_stability_interval(g: sympy.Expr, z: sympy.Symbol = Z) -> sympy.Expr:
    """β = sup{s : |g(−σ)| ≤ 1 for σ ∈ [0, s]} for a stability function g(z) real on the
    real axis: exact (algebraic) for a rational g — the negative roots of
    ``num(z)² − den(z)²``, closest to 0 first — a float for one with exponentials; ∞ when the
    whole negative axis is stable, 0 when |g| > 1 right left of 0."""
    h = sympy.together(g)
    if h.has(sympy.exp):
        fn = sympy.lambdify(z, h, "math")
        return sympy.Float(_scan_real(lambda s: abs(fn(-s)) - 1.0))
    num, den = sympy.fraction(h)
    p = sympy.expand(num**2 - den**2)
    poly = sympy.Poly(p, z)
    if poly.is_zero:
        return sympy.oo
    lowest = next((k, c) for k, c in enumerate(reversed(poly.all_coeffs())) if c != 0)
    if float(lowest[1]) * (-1) ** lowest[0] > 0:
        return sympy.Integer(0)  # |g| > 1 just left of 0 (a positive real part)
    fn = sympy.lambdify(z, p, "math")
    negative = [r for r in _exact_roots(p, z) if float(r) < -1e-14]
    for root in sorted(negative, key=lambda r: -float(r)):
        if fn(float(root) * (1 + 1e-7) - 1e-12) > 0:  # crossing, not a tangency
            return -root
    return sympy.oo


def real_stability_interval_of(g: sympy.Expr, z: sympy.Symbol = Z) -> tuple[sympy.Expr, bool]:
    """(β, exact): :func:`real_stability_interval`, exact also for ``g = e^{c z} R(z)`` with
    c ≥ 0 and R rational with β_R = ∞ (then |g(−σ)| ≤ |R(−σ)| ≤ 1: β = ∞)."""
    if not g.has(sympy.exp):
        return real_stability_interval(g, z), True
    rational, exponents = sympy.Integer(1), []
    for factor in sympy.Mul.make_args(sympy.powsimp(sympy.factor_terms(g), combine="exp")):
        if isinstance(factor, sympy.exp):
            exponents.append(sympy.expand(factor.args[0]))
        elif factor.has(sympy.exp):
            return real_stability_interval(g, z), False
        else:
            rational *= factor
    decaying = all(sympy.Poly(e, z).degree() <= 1 and e.coeff(z, 1) >= 0
                   and e.coeff(z, 0) == 0 for e in exponents)
    if decaying and real_stability_interval(rational, z) == sympy.oo:
        return sympy.oo, True
    return real_stability_interval(g, z), False


def imaginary_stability_interval(g: sympy.Expr, z: sympy.Symbol = Z) -> sympy.Expr:
    """y₀ = sup{s : |g(iy)| ≤ 1 for |y| ≤ s}: 0 when the region only touches the imaginary
    axis at the origin (euler, rk2), 2√2 for rk4, ∞ for an A-stable step."""
    y = sympy.Symbol("y", real=True)
    h = sympy.together(g.subs(z, sympy.I * y))
    if h.has(sympy.exp):
        fn = sympy.lambdify(y, h, "cmath")
        return sympy.Float(_scan_real(lambda s: abs(complex(fn(s))) - 1.0))
    num, den = sympy.fraction(h)
    p = sympy.expand(num * sympy.conjugate(num) - den * sympy.conjugate(den))
    p = sympy.expand(sympy.re(p))
    fn = sympy.lambdify(y, p, "math")
    return _first_crossing(p, y, lambda s: fn(s))


def _scan_real(excess, upper: float = 1e9) -> float:
    """The first s > 0 where ``excess(s) > 1e-12`` (geometric scan, then bisection); ∞ if
    none up to ``upper``."""
    grid = [10 ** (k / 40) for k in range(-400, int(40 * math.log10(upper)) + 1)]
    previous = 0.0
    for s in grid:
        try:
            value = excess(s)
        except (OverflowError, ZeroDivisionError):
            value = math.inf
        if value > 1e-12:
            if previous == 0.0:
                return 0.0  # |g| > 1 for the smallest step: growth at once
            lo, hi = previous, s
            for _ in range(100):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if excess(mid) > 1e-12 else (mid, hi)
            return lo
        previous = s
    return math.inf


# ----------------------------------------------------------------------------- symbols
@dataclass(frozen=True)
class SymbolRange:
    """Extremes of a real symbol over θ ∈ [−π, π] (exact)."""

    minimum: sympy.Expr
    maximum: sympy.Expr


def real_symbol_range(expr: sympy.Expr, theta: sympy.Symbol) -> SymbolRange:
    """min/max over θ of a real trigonometric polynomial Σ a_j cos(jθ), exactly.

    With c = cos θ, cos(jθ) = T_j(c) (Chebyshev), so the symbol is a polynomial p(c) on
    [−1, 1]; its extremes lie at the ends or at real roots of p'(c).
    """
    c = sympy.Symbol("c", real=True)
    # θ-free transcendental coefficients (e^{-1000} from a spec) are set aside while the
    # trigonometric part is rewritten: rewrite(cos) would turn e^{-1000} into
    # cosh(1000) − sinh(1000), whose sign SymPy cannot decide.
    kept: dict = {}

    def keep(e):
        placeholder = sympy.Dummy(real=True)
        kept[placeholder] = e
        return placeholder

    expr = expr.replace(lambda e: isinstance(e, sympy.Function) and e.is_number
                        and not e.has(theta), keep)
    poly_expr = sympy.expand(sympy.expand_trig(expr.rewrite(sympy.cos)).subs(sympy.cos(theta), c))
    poly_expr = sympy.expand(poly_expr.replace(
        lambda e: isinstance(e, sympy.cos) and e.args[0].has(theta),
        lambda e: sympy.chebyshevt(int(e.args[0] / theta), c)).xreplace(kept))
    poly = sympy.Poly(poly_expr, c)
    points = [sympy.Integer(-1), sympy.Integer(1)]
    derivative = poly.diff(c)
    if derivative.degree() > 0:
        points += [r for r in derivative.real_roots() if -1 < r < 1]
    values = [poly.eval(p) for p in points]
    return SymbolRange(min(values, key=float), max(values, key=float))


READABLE_OPS = 50  # sympy.simplify of a larger symbol takes seconds (33 s at accuracy 32 in 2-D)


def readable(expr: sympy.Expr) -> sympy.Expr:
    """A symbol λ(θ) in the form the reports print: ``sympy.simplify`` for the small ones
    (every shipped spec), over a common denominator with the common factors pulled out for
    the large ones (the same form in most cases, e.g. 2*D*(cos(θx) + cos(θy) − 2)/h**2):
    simplify took 33 s on the accuracy-32 Laplacian of a 2-D grid."""
    if sympy.count_ops(expr) <= READABLE_OPS:
        return sympy.simplify(expr)
    return sympy.factor_terms(sympy.together(expr))


SAMPLES = {1: 1025, 2: 49}  # θ samples per axis: θ = 2π m / (SAMPLES − 1), m = −… … +…


def sample_thetas(dims: int, points: int | None = None) -> list[tuple[float, ...]]:
    """A grid of θ ∈ [−π, π]^dims (SAMPLES[dims] points per axis)."""
    n = points or SAMPLES[dims]
    axis = [-math.pi + 2 * math.pi * i / (n - 1) for i in range(n)]
    if dims == 1:
        return [(a,) for a in axis]
    return [(a, b) for a in axis for b in axis]


def complex_lambdify(args, expr):
    return sympy.lambdify(args, expr, [{"exp": cmath.exp, "cos": cmath.cos, "sin": cmath.sin},
                                       "math"])


__all__ = [
    "SymbolRange",
    "SymbolicMachine",
    "Z",
    "amplification_factor",
    "complex_lambdify",
    "imaginary_stability_interval",
    "readable",
    "real_stability_interval",
    "real_symbol_range",
    "sample_thetas",
    "stability_function",
]


# ----------------------------------------------------------------------------- relative
# Stability relative to the equation: a step is stable at Δt when, for every θ,
#     |G(θ, Δt)| ≤ max(1, |e^{λ(θ)Δt}|)^GROWTH_SLACK,
# λ(θ) the symbol of the whole linear part.  A decaying or neutral mode (Re λ ≤ 0) may not
# grow at all (the classical |G| ≤ 1); a mode the equation itself grows may grow, by at most
# the square of the equation's own factor (a growth rate at most twice the equation's).  The
# slack is needed because every implicit stage over-amplifies a growing mode by O((λΔt)²)
# (backward Euler: 1/(1 − z) > e^z for 0 < z < 1) and has a pole (z = 1) that is a real
# instability: with the slack, backward Euler on a growing mode is stable up to
# λΔt ≈ 0.797, just before the pole is felt.  Exact flows (G = e^z) and explicit
# Runge–Kutta steps on real growing modes (Taylor polynomials, G < e^z) are always within it.
GROWTH_SLACK = 2
ROUNDOFF = 1e-12  # relative tolerance of every comparison of |G| with its allowance


def allowance(total_rate_dt):
    """max(1, |e^{λΔt}|)^GROWTH_SLACK for z = λΔt (NumPy, elementwise)."""
    import numpy as np  # lazy: numpy

    return np.exp(GROWTH_SLACK * np.maximum(np.real(total_rate_dt), 0.0))


def growing_interval(g: sympy.Expr, z: sympy.Symbol = Z) -> float:
    """sup{s : |g(w)| ≤ e^{GROWTH_SLACK·w} for w ∈ [0, s]}: how far a step of stability
    function g stays within its allowance on the growing side of the real axis (g's
    argument is the whole λΔt); ∞ if no w up to 1e9 exceeds it."""
    fn = sympy.lambdify(z, g, "mpmath")  # e^{1000}: no overflow

    def excess(s: float) -> float:
        try:
            value = abs(fn(mpmath.mpf(s)))
        except ZeroDivisionError:
            return math.inf
        if not mpmath.isfinite(value):
            return math.inf
        return float(mpmath.log(value)) - GROWTH_SLACK * s if value > 0 else -math.inf

    return _scan_real(excess)  # log|g| − 2w > 1e-12: a relative excess of 1e-12


def _over(value, allowed):
    """|G| above its allowance; where the allowance itself overflows float64 (the
    equation grows by more than e^709 in one step) nothing can be judged: not a
    violation."""
    import numpy as np  # lazy: numpy

    return ~(value <= allowed * (1 + ROUNDOFF)) & np.isfinite(allowed)


def first_violation(g_fn, rates, scale: float, *, grid_points: int = 700):
    """For each row of ``rates`` (K, m) — the terms' λ_t(θ) at K wave numbers — the first
    Δt > 0 at which |G(Δt λ_t)| exceeds its allowance (NumPy, vectorized): a geometric scan
    over Δt ∈ [1e-6, 1e8]/scale (steps of 4.7 %: a window of instability narrower than that
    can be missed), then bisection to float precision.  ∞ where none does."""
    import numpy as np  # lazy: numpy

    rates = np.asarray(rates, dtype=complex)
    total = rates.sum(axis=1)

    grid = np.geomspace(1e-6, 1e8, grid_points) / scale
    best = np.full(len(rates), np.inf)
    chunk = max(1, 2_000_000 // grid_points)
    for start in range(0, len(rates), chunk):
        rows = slice(start, start + chunk)
        sub = rates[rows]
        sub_total = total[rows]
        dts = np.broadcast_to(grid, (len(sub), grid_points))
        with np.errstate(all="ignore"):
            zs = [dts * sub[:, t][:, None] for t in range(sub.shape[1])]
            value = np.abs(np.broadcast_to(g_fn(*zs), dts.shape))
            bad = _over(value, allowance(dts * sub_total[:, None]))
        anyb = bad.any(axis=1)
        first = np.argmax(bad, axis=1)
        lo = np.where(first > 0, grid[np.maximum(first - 1, 0)], 0.0)
        hi = grid[first]
        idx = np.flatnonzero(anyb)
        if len(idx):
            a, b = lo[idx], hi[idx]
            rates_idx = sub[idx]
            tot_idx = sub_total[idx]
            for _ in range(80):
                mid = (a + b) / 2
                with np.errstate(all="ignore"):
                    zs = [mid * rates_idx[:, t] for t in range(rates_idx.shape[1])]
                    v = np.abs(np.broadcast_to(g_fn(*zs), mid.shape))
                    over = _over(v, allowance(mid * tot_idx))
                b = np.where(over, mid, b)
                a = np.where(over, a, mid)
            found = np.where(lo[idx] == 0.0, np.where(a <= grid[0] * 1e-3, 0.0, a), a)
            best[start + idx] = found
    return best
