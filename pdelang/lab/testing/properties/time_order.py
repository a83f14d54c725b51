"""(e) Schemes reach their order on a linear test problem, and a run converges in time at
its claimed order."""

from __future__ import annotations

import math
from fractions import Fraction
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from pdelang.compiler.schemes.program import float_combine
from pdelang.compiler.schemes.program import run as run_program
from pdelang.lab.testing.properties.convergence import least_squares_order
from pdelang.lab.testing.properties.results import (
    ORDER_TOLERANCE,
    PropertyResult,
    make_result,
    not_applicable,
    relative_error,
)
from pdelang.compiler.schemes import SCHEMES


# ----------------------------------------------------------------------------- (e) time order
def check_convergence_in_time(run: Callable[[int], np.ndarray], exact: np.ndarray, *,
                              steps: Sequence[int], span: float, claimed_order: int,
                              tolerance: float = ORDER_TOLERANCE,
                              name: str = "time_order",
                              scale: float | None = None) -> PropertyResult:
    """(e) ``run(n)`` integrates over ``span`` in ``n`` steps; the least-squares slope of
    log error against log Δt must be within ``tolerance`` of ``claimed_order``.  Errors are
    relative to max |exact| (or ``scale`` if larger)."""
    dts, errors = [], []
    for n in steps:
        dts.append(span / n)
        errors.append(relative_error(run(n), exact, scale))
    if min(errors) == 0.0:
        return make_result(name, True, "exact for every Δt (no error to measure)",
                       dts=dts, errors=errors, observed_order=math.inf,
                       claimed_order=claimed_order)
    order = least_squares_order(dts, errors)
    ok = math.isfinite(order) and abs(order - claimed_order) <= tolerance
    return make_result(name, ok, f"observed order {order:.3f}, claimed {claimed_order}; errors "
                   + ", ".join(f"{e:.2e}" for e in errors),
                   dts=dts, errors=errors, observed_order=order, claimed_order=claimed_order)


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential (SciPy's scaling-and-squaring Padé)."""
    import scipy.linalg  # lazy: scipy
    return scipy.linalg.expm(np.asarray(a, dtype=np.float64))


def claimed_order(program) -> int:
    """The order a program's scheme claims on :func:`linear_test_problem`: the scheme's
    nominal order (a splitting's, with nilpotent terms whose Euler sub-steps are exact)."""
    return SCHEMES[program.scheme].order


def linear_test_problem(program, seed: int = 0):
    """(e) A linear test problem ``du/dt = Σ_terms A_t u`` for a step program: the matrices
    of its terms (by name).

    * Splitting programs: the first two terms get non-commuting *nilpotent* maps
      ``A = a·e₁e₂ᵀ`` and ``B = b·e₂e₁ᵀ`` (A² = B² = 0, AB ≠ BA), the others zero.  An
      explicit Euler sub-step of a nilpotent map is its exact flow, so the error measured is
      the splitting error alone: order 1 for Lie–Trotter, 2 for Strang.  (With general
      terms the Euler sub-steps add their own first-order error.)
    * IMEX programs: a stiff symmetric negative definite map (eigenvalues −1 … −20) on the
      implicit terms and a non-commuting skew-dominated map on the explicit ones.
    * Runge–Kutta programs: one 4×4 matrix with eigenvalues in the left half-plane.
    """
    rng = np.random.default_rng(seed)
    names = list(program.terms)
    maps = {name: np.zeros((4, 4) if not program.is_splitting else (2, 2)) for name in names}
    if program.is_splitting:
        if len(names) >= 2:
            order = list(dict.fromkeys(t for t, _ in program.sub_steps))
            maps[order[0]] = np.array([[0.0, 0.9 + 0.2 * rng.random()], [0.0, 0.0]])
            maps[order[1]] = np.array([[0.0, 0.0], [-(0.9 + 0.2 * rng.random()), 0.0]])
        return maps
    m = rng.standard_normal((4, 4)) / 2
    explicit = m - m.T - 0.5 * np.eye(4) - 0.2 * (m @ m.T)
    if program.kind == "imex":
        q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
        stiff = q @ np.diag([-1.0, -4.0, -10.0, -20.0]) @ q.T
        for name in names:
            maps[name] = np.zeros((4, 4))
        maps[program.implicit[0]] = stiff
        others = [t for t in names if t not in program.implicit]
        if others:
            maps[others[0]] = explicit
        return maps
    maps[names[0]] = explicit
    return maps


class VectorMachine:
    """The step program's instructions on vectors, with a matrix per term."""

    def __init__(self, program, maps: Mapping[str, np.ndarray], dt: float) -> None:
        self.program = program
        self.maps = maps
        self.dt = dt
        self.combine = float_combine(dt, program.constant_values)

    def _matrix(self, terms):
        return sum(self.maps[t] for t in terms)

    def rate(self, terms, state):
        return self._matrix(terms) @ state

    def solve(self, terms, coefficient, rhs):
        a = self.program.coefficient(coefficient) * self.dt
        return np.linalg.solve(np.eye(len(rhs)) - a * self._matrix(terms), rhs)

    def flow(self, terms, coefficient, state):
        return expm(self.program.coefficient(coefficient) * self.dt * self._matrix(terms)) @ state

    def project(self, norm, state):
        return state

    def observe(self, index, label, value):
        pass


def check_time_order(program, claimed: int | None = None, *,
                     steps: Sequence[int] = (20, 40, 80, 160), span: float = 1.0,
                     seed: int = 0, tolerance: float = ORDER_TOLERANCE) -> PropertyResult:
    """(e) The step program (its sub-steps with their fractions, its tableau, its implicit
    stages) reaches the order its scheme claims (:func:`claimed_order`) on
    :func:`linear_test_problem`, run by the same interpreter as every other backend."""
    claimed = claimed_order(program) if claimed is None else claimed
    name = f"time_order[{program.scheme}]"
    if program.is_splitting and len(set(program.terms)) < 2:
        return not_applicable(name, "a splitting of a single term is one Euler step")
    if not program.residual:
        return not_applicable(name, "without the residual a step is not a time integrator")
    maps = linear_test_problem(program, seed)
    rng = np.random.default_rng(seed + 1)
    u0 = rng.standard_normal(len(next(iter(maps.values()))))
    exact = expm(span * sum(maps.values())) @ u0

    def run(n: int) -> np.ndarray:
        u = u0
        machine = VectorMachine(program, maps, span / n)
        for _ in range(n):
            u = run_program(program, machine, u)
        return u

    return check_convergence_in_time(run, exact, steps=steps, span=span,
                                     claimed_order=claimed, tolerance=tolerance, name=name)


def tableau_order(tableau, max_order: int = 4) -> int:
    """The order of an explicit Runge–Kutta tableau (:class:`pdelang.compiler.schemes.runge_kutta.
    Tableau`, rational entries) from its order conditions (exact, up to ``max_order`` = 4):
    b·1 = 1; b·c = ½; b·c² = ⅓, b·Ac = ⅙; b·c³ = ¼, b·(c∘Ac) = ⅛, b·Ac² = 1/12, b·A²c = 1/24."""
    s = len(tableau.b)
    A = [[Fraction(tableau.entry(i, j).rational) for j in range(s)] for i in range(s)]
    b = [Fraction(v.rational) for v in tableau.b]
    c = [sum(row, Fraction(0)) for row in A]

    def dot(x, y):
        return sum((p * q for p, q in zip(x, y)), Fraction(0))

    def mat(x):
        return [dot(row, x) for row in A]

    conditions = {
        1: [(dot(b, [1] * s), Fraction(1))],
        2: [(dot(b, c), Fraction(1, 2))],
        3: [(dot(b, [x * x for x in c]), Fraction(1, 3)), (dot(b, mat(c)), Fraction(1, 6))],
        4: [(dot(b, [x**3 for x in c]), Fraction(1, 4)),
            (dot(b, [x * y for x, y in zip(c, mat(c))]), Fraction(1, 8)),
            (dot(b, mat([x * x for x in c])), Fraction(1, 12)),
            (dot(b, mat(mat(c))), Fraction(1, 24))],
    }
    order = 0
    for q in range(1, max_order + 1):
        if all(lhs == rhs for lhs, rhs in conditions[q]):
            order = q
        else:
            break
    return order
