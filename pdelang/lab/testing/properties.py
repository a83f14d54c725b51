"""Property checks of a discretization, callable from any pytest suite.

Every check returns a :class:`PropertyResult` — truthy when the property holds, with the
measured numbers in ``details`` — and ``result.assert_passed()`` raises
:class:`PropertyFailure` (an ``AssertionError``) with a readable message otherwise::

    from pdelang.lab.testing import check_polynomial_exactness
    check_polynomial_exactness(compilation.discrete.stencils["laplace"]).assert_passed()

Operators are passed as plain callables ``apply(u) -> rate`` on float64 NumPy states of shape
``(B, N, C)``, so the same check runs on the generated torch code
(:func:`pdelang.lab.testing.harness.torch_stencil_operator`), on the NumPy reference
(:func:`pdelang.lab.testing.harness.reference_stencil_operator`) or on a hand-written operator.

The properties (the numbering follows the test suite):

(a) :func:`check_polynomial_exactness` — a k-th derivative stencil of accuracy p is exact on
    polynomials of degree ≤ p + k − 1 (exact rational arithmetic), and
    :func:`check_polynomial_exactness_numeric` on an operator's interior nodes;
(b) :func:`check_convergence` — the observed order under grid refinement (least-squares slope
    of log error against log resolution) matches the claimed order within 0.15, on fields with
    the boundary's symmetry (:mod:`pdelang.lab.testing.fields`);
(c) :func:`check_symmetric_nsd`, :func:`check_annihilates_constants`,
    :func:`check_conserves_weighted_mean`, :func:`check_max_norm_nonincreasing` — the discrete
    Laplacian is self-adjoint and negative semi-definite in the inner product
    ⟨u, v⟩_W = Σ W_i u_i v_i (:func:`inner_product_weights`: W = 1 for periodic; for the
    even-mirror neumann rule W = ½ on the end tokens, the trapezoid weights — ``L`` itself is
    not symmetric there), annihilates constants, and diffusion conserves the W-mean;
(d) :func:`check_stability_sharpness`, :func:`empirical_max_dt` — stepping the linear
    differential part at 0.95× the derived bound stays bounded, at 1.05× it grows;
(e) :func:`check_time_order`, :func:`check_convergence_in_time` — schemes reach their order
    on a linear test problem;
(f) :func:`check_attention_maps` — rows are probability distributions, causal attention gives
    the future no weight, Sinkhorn attention is doubly stochastic;
(g) :func:`check_norm_manifold` — normalized states lie on the normalization manifold;
(h) :func:`check_generated_matches_reference` (in :mod:`pdelang.lab.testing.harness` terms) — the
    generated code equals the NumPy reference of the discrete IR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from pdelang.compiler.discrete import ir as D
from pdelang.compiler.schemes.program import float_combine
from pdelang.compiler.schemes.program import run as run_program
from pdelang.lab.testing.fields import resolution_sizes, smooth_field
from pdelang.interpreters.numpy_oracle import NumpyReference, stencil_along

__all__ = [
    "ORDER_TOLERANCE",
    "ConvergenceStudy",
    "LinearStepper",
    "PropertyFailure",
    "PropertyResult",
    "check_annihilates_constants",
    "check_arrays_close",
    "check_attention_maps",
    "check_conserves_weighted_mean",
    "check_convergence",
    "check_convergence_in_time",
    "check_max_norm_nonincreasing",
    "check_norm_manifold",
    "check_polynomial_exactness",
    "check_polynomial_exactness_numeric",
    "check_stability_sharpness",
    "check_stability_threshold",
    "check_symmetric_nsd",
    "check_time_order",
    "check_unconditional_stability",
    "claimed_order",
    "convergence_study",
    "empirical_max_dt",
    "expm",
    "grows",
    "inner_product_weights",
    "ir_parameter_weights",
    "is_monotone",
    "least_squares_order",
    "linear_differential_model",
    "linear_reference",
    "linear_test_problem",
    "not_applicable",
    "operator_matrix",
    "relative_error",
    "stencil_operator_1d",
    "tableau_order",
]

ORDER_TOLERANCE = 0.15

Operator = Callable[[np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- results
class PropertyFailure(AssertionError):
    """A property does not hold; the message says which numbers broke it."""


@dataclass
class PropertyResult:
    name: str
    passed: bool
    message: str = ""
    details: dict = field(default_factory=dict)
    applicable: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def assert_passed(self) -> PropertyResult:
        if not self.passed:
            raise PropertyFailure(f"{self.name}: {self.message}")
        return self

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "applicable": self.applicable,
                "message": self.message, "details": _jsonable(self.details)}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Fraction):
        return str(value)
    return value


def _result(name: str, passed: bool, message: str, **details) -> PropertyResult:
    return PropertyResult(name, bool(passed), message, details)


def not_applicable(name: str, why: str) -> PropertyResult:
    return PropertyResult(name, True, f"not applicable: {why}", {}, applicable=False)


def relative_error(a, b, scale: float | None = None) -> float:
    """max |a − b| / max(max |b|, ``scale``) over the finite entries of ``b``; ∞ if the two
    disagree on which entries are non-finite (identical infinities count as equal)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if not a.size:
        return 0.0
    finite = np.isfinite(b)
    same_special = (np.isnan(a) & np.isnan(b)) | (np.isinf(b) & (a == b))
    if np.any(~finite & ~same_special) or np.any(~np.isfinite(a) & finite):
        return math.inf
    if not finite.any():
        return 0.0
    diff = float(np.max(np.abs(a[finite] - b[finite])))
    reference = max(float(np.max(np.abs(b[finite]))), scale or 0.0)
    return diff / reference if reference > 0 else diff


def check_arrays_close(name: str, actual, expected, rtol: float) -> PropertyResult:
    """``relative_error(actual, expected) ≤ rtol``."""
    error = relative_error(actual, expected)
    return _result(name, error <= rtol, f"relative error {error:.3g} (tolerance {rtol:g})",
                   relative_error=error, tolerance=rtol)


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
                    return _result(name, False,
                                   f"not exact on x^{d} (degree {d} ≤ {degree}) at x0={x0}, "
                                   f"h={h}: stencil gives {approx}, exact {exact}",
                                   degree=d, max_degree=degree, x0=str(x0), h=str(h))
    return _result(name, True, f"exact on all polynomials of degree ≤ {degree}",
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
            return _result(f"polynomial_exactness_numeric[k={k},p={p}]", False,
                           f"degree-{d} polynomial: interior error {error:.3g} > {rtol:g}",
                           degree=d, error=error)
    return _result(f"polynomial_exactness_numeric[k={k},p={p}]", True,
                   f"interior error ≤ {worst:.2g} on polynomials of degree ≤ {degree}",
                   max_error=worst, max_degree=degree)


# ----------------------------------------------------------------------------- (b) convergence
def least_squares_order(resolutions: Sequence[float], errors: Sequence[float]) -> float:
    """Slope of the least-squares line through (log resolution, log error)."""
    x = np.log(np.asarray(resolutions, dtype=np.float64))
    errors = np.asarray(errors, dtype=np.float64)
    if not np.all(np.isfinite(errors) & (errors > 0)):
        return math.nan  # an exact (zero) or non-finite error has no slope
    y = np.log(errors)
    return float(np.polyfit(x, y, 1)[0])


@dataclass
class ConvergenceStudy:
    """Errors of an operator on a smooth field under grid refinement."""

    sizes: list  # grid shapes
    thetas: list  # resolution ωh of the field at each size
    errors: list  # max relative error on the compared nodes
    observed_order: float
    claimed_order: int

    def to_json(self) -> dict:
        return _jsonable(dataclasses.asdict(self))


def convergence_study(apply_for_shape: Callable[[tuple[int, ...]], Operator], *,
                      boundary: str, derivative: int, axes: Sequence[int], dims: int,
                      h: float, claimed_order: int, mode: int | None = None,
                      extra_tokens: int = 0, thetas=(0.42, 0.33, 0.26, 0.2),
                      seed: int = 0) -> ConvergenceStudy:
    """(b) Apply ``apply_for_shape(shape)`` (an operator on states of that grid) to the smooth
    field of ``boundary`` (:func:`pdelang.lab.testing.fields.smooth_field`) at grid sizes that
    resolve it with ``θ = ωh`` ≈ each of ``thetas``; error = max relative error against the
    exact derivative on the compared nodes; order = least-squares slope in log θ.

    ``extra_tokens`` zero tokens are put before the grid (and dropped from the rate)."""
    mode = mode or (2 if boundary == "periodic" else 4)
    sizes, resolutions, errors = [], [], []
    for n in resolution_sizes(boundary, mode, thetas):
        shape = (n,) * dims
        sample = smooth_field(boundary, shape, derivative, tuple(axes), h, (mode,), seed)
        apply = apply_for_shape(shape)
        rate = np.asarray(apply(sample.as_state(extra_tokens)))[0, extra_tokens:, 0]
        rate = rate.reshape(shape)
        exact = sample.exact[sample.compare]
        err = np.max(np.abs(rate[sample.compare] - exact)) / np.max(np.abs(exact))
        sizes.append(list(shape))
        resolutions.append(sample.theta)
        errors.append(float(err))
    order = least_squares_order(resolutions, errors)
    return ConvergenceStudy(sizes, resolutions, errors, order, int(claimed_order))


def check_convergence(study: ConvergenceStudy, tolerance: float = ORDER_TOLERANCE,
                      name: str = "convergence") -> PropertyResult:
    """(b) ``|observed − claimed| ≤ tolerance`` (0.15)."""
    ok = math.isfinite(study.observed_order) and \
        abs(study.observed_order - study.claimed_order) <= tolerance
    errors = ", ".join(f"{e:.2e}" for e in study.errors)
    return _result(name, ok, f"observed order {study.observed_order:.3f}, claimed "
                   f"{study.claimed_order} (tolerance {tolerance}); errors {errors}",
                   **study.to_json())


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
    return _result(name, ok, f"|WL − (WL)ᵀ|/|WL| = {asymmetry:.2g}, largest eigenvalue / "
                   f"spectral radius = {top:.2g} (tolerance {rtol:g})",
                   asymmetry=asymmetry, largest_eigenvalue=top)


def check_annihilates_constants(matrix: np.ndarray, *, rtol: float = 1e-12,
                                name: str = "annihilates_constants") -> PropertyResult:
    """(c) ``L 1 = 0``."""
    L = np.asarray(matrix, dtype=np.float64)
    residual = float(np.max(np.abs(L.sum(axis=1))) / max(np.max(np.abs(L)), 1e-300))
    return _result(name, residual <= rtol, f"|L·1| / |L| = {residual:.2g}", residual=residual)


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
    return _result(name, drift <= rtol, f"relative drift of the W-mean {drift:.2g} after "
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
            return _result(name, False, f"max norm grew by a factor 1 + {growth:.3g} at step "
                           f"{i + 1}", growth=growth, step=i + 1)
        u = new
    return _result(name, True, f"max norm never grew in {steps} steps (largest relative "
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
    from pdelang.compiler.schemes import SCHEMES

    name = program if isinstance(program, str) else program.scheme
    offsets = [int(o) for o in stencil.offsets]
    weights = [_fraction(w) for w in stencil.weights]
    off_centre_ok = all(w >= 0 for o, w in zip(offsets, weights) if o != 0)
    return stencil.derivative == 2 and off_centre_ok and SCHEMES[name].ssp


# ----------------------------------------------------------------------------- (d) stability
def _summands(node: D.DExpr) -> list[list[D.DExpr]]:
    """The expression as a sum of products (lists of factors), distributing products."""
    if isinstance(node, D.Sum):
        return [s for t in node.terms for s in _summands(t)]
    if isinstance(node, D.Product):
        out: list[list[D.DExpr]] = [[]]
        for factor in node.factors:
            out = [a + b for a in out for b in _summands(factor)]
        return out
    return [[node]]


def _has_state(node: D.DExpr) -> bool:
    return any(isinstance(n, D.State) for n in D.walk(node))


def _has_stencil(node: D.DExpr) -> bool:
    return any(isinstance(n, D.ApplyStencil) for n in D.walk(node))


def _is_linear_operand(node: D.DExpr) -> bool:
    """The field, or fixed stencils of a linear expression of it (``laplace(laplace(u))``,
    ``diff(2 u + laplace(u), x)``): a linear, constant-coefficient expression."""
    if isinstance(node, D.State):
        return True
    if isinstance(node, D.ApplyStencil):
        operand = node.operand
        return _has_state(operand) and all(
            sum(1 for f in factors if _has_state(f)) <= 1
            and all(_is_linear_operand(f) for f in factors if _has_state(f))
            for factors in _summands(operand))
    return False


def _linear_part(expr: D.DExpr) -> D.DExpr | None:
    """The linear, constant-coefficient part ``c₀ u + Σ c · S(u)`` of an expression, stencils
    composed as written (the constant, nonlinear and learned pieces are dropped, as the
    analysis does); None when a derivative enters in any other way."""
    kept = []
    for factors in _summands(expr):
        stateful = [f for f in factors if _has_state(f)]
        if not stateful:
            continue  # a constant
        linear = len(stateful) == 1 and _is_linear_operand(stateful[0])
        if not linear:
            if any(_has_stencil(f) for f in factors):
                return None
            continue  # nonlinear or learned, without a derivative: left out
        kept.append(D.Product(tuple(factors)))
    return D.Sum(tuple(kept)) if kept else D.Const(Fraction(0))


def linear_differential_model(model: D.DiscreteModel) -> D.DiscreteModel | None:
    """The model with every term replaced by its linear, constant-coefficient part (its
    zero-order part included: it enters the symbol λ), without norms: what the von Neumann
    analysis looks at, stepped by the same step program restricted to the terms that have
    a linear part (:func:`pdelang.compiler.schemes.restricted`: the other sub-steps of a splitting
    become the identity, also without the residual).  None when some derivative is not
    of that form or no term has a differential part."""
    from pdelang.compiler.schemes import restricted

    terms = []
    for term in model.terms:
        part = _linear_part(term.expr)
        if part is None:
            return None
        terms.append(D.DiscreteTerm(term.name, part, False))
    if not any(_has_stencil(t.expr) for t in terms):
        return None
    active = [t.name for t in terms if _has_state(t.expr)]
    norm = D.NormStabilizer("none", "pre", model.norm.eps, False, False)
    return dataclasses.replace(model, terms=tuple(terms), norm=norm, modules=(),
                               program=restricted(model.program, active))


def ir_parameter_weights(model: D.DiscreteModel) -> dict[str, np.ndarray]:
    """Scalar parameter values of the spec, as reference weights."""
    weights = {}
    for p in model.parameters:
        if p.per_layer:
            for layer in range(model.layers):
                weights[f"layers.{layer}.{p.name}"] = np.array(p.value)
        else:
            weights[f"shared.{p.name}"] = np.array(p.value)
    return weights


def linear_reference(model: D.DiscreteModel,
                     weights: Mapping[str, np.ndarray] | None = None) -> NumpyReference | None:
    """A NumPy reference of the linear differential part of ``model`` (see
    :func:`linear_differential_model`), with the spec's parameter values by default."""
    linear = linear_differential_model(model)
    if linear is None:
        return None
    return NumpyReference(linear, ir_parameter_weights(model) if weights is None else weights)


def _grid_length(model: D.DiscreteModel, length: int | None) -> int:
    if len(model.axes) == 2:
        return model.shape[0] * model.shape[1]
    return length or (model.shape[0] if model.shape else 64)


class LinearStepper:
    """The linear differential part of a model, stepped fast enough for 10⁴ steps.

    The matrix of each term's linear part on the grid tokens (one channel) is read off the
    NumPy reference by applying it to unit vectors, and the model's own step program is
    interpreted on those matrices (:class:`MatrixMachine`): rates are products, implicit
    stages dense solves, exact flows matrix exponentials (both cached per Δt).  Small grids
    (≤ 256 tokens) and implicit programs step with dense NumPy products; larger explicit ones
    with torch's sparse CSR product (the matrices have a stencil's few non-zeros per row).
    Parameters take their layer-0 values.  States are opaque: build one with :meth:`state`
    from rows ``(K, n)``, read it back with :meth:`rows`; Δt may differ per row
    (:meth:`dts`)."""

    def __init__(self, reference: NumpyReference, length: int | None = None,
                 backend: str | None = None) -> None:
        model = reference.model
        self.model = model
        self.n = n = _grid_length(model, length)
        extra = model.extra_tokens
        self.matrices: dict[str, np.ndarray | None] = {}
        for term in model.terms:
            columns = []
            for start in range(0, n, 256):
                stop = min(n, start + 256)
                unit = np.zeros((stop - start, extra + n, 1))
                unit[np.arange(stop - start), extra + np.arange(start, stop), 0] = 1.0
                rate = reference.term(term.name, unit, 0)
                columns.append(np.asarray(rate)[:, extra:, 0])
            matrix = np.concatenate(columns, axis=0).T  # (n, n): column j = L e_j
            self.matrices[term.name] = matrix if matrix.any() else None
        implicit = bool(model.program.implicit)
        self.backend = backend or ("numpy" if n <= 256 or implicit else "torch")
        if implicit and self.backend != "numpy":
            raise ValueError("implicit programs step with the numpy backend")
        self.parts: dict[str, object] = {}
        for name, matrix in self.matrices.items():
            if matrix is None:
                self.parts[name] = None
            elif self.backend == "numpy":
                self.parts[name] = matrix.T.copy()  # states are rows: u @ Mᵀ
            else:
                import warnings

                import torch
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
                    self.parts[name] = torch.from_numpy(matrix.copy()).to_sparse_csr()
        self.functions: dict = {}  # (kind, terms, scale) → (n, n) matrix acting on rows

    @contextlib.contextmanager
    def quiet_threads(self):
        """One torch thread while stepping: thousands of tiny sparse products spend more time
        in thread hand-offs than in arithmetic (and a busy machine makes that much worse)."""
        if self.backend != "torch":
            yield
            return
        import torch
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    # ------------------------------------------------------------------ states
    def state(self, rows: np.ndarray):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, self.n)
        if self.backend == "numpy":
            return rows.copy()
        import torch
        return torch.from_numpy(rows.T.copy())  # (n, K)

    def rows(self, state) -> np.ndarray:
        return state.copy() if self.backend == "numpy" else state.numpy().T.copy()

    def dts(self, values) -> object:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.backend == "numpy":
            return values[:, None]
        import torch
        return torch.from_numpy(values[None, :].copy())

    def sizes(self, state) -> np.ndarray:
        """max |u| of each row."""
        if self.backend == "numpy":
            return np.max(np.abs(state), axis=1)
        return state.abs().amax(dim=0).numpy()

    def select(self, state, keep: np.ndarray):
        if self.backend == "numpy":
            return state[keep]
        import torch
        return state[:, torch.from_numpy(np.flatnonzero(keep))]

    # ------------------------------------------------------------------ stepping
    def apply(self, name: str, u):
        part = self.parts[name]
        if part is None:
            return 0.0 * u
        return u @ part if self.backend == "numpy" else part @ u

    def function(self, kind: str, terms, scales: np.ndarray, u):
        """Rows of u times f(L)ᵀ, f(L) = (I − aL)⁻¹ or exp(aL), a = the row's scale."""
        import scipy.linalg

        matrix = sum((self.matrices[t] for t in terms if self.matrices[t] is not None),
                     np.zeros((self.n, self.n)))
        out = np.empty_like(u)
        for i, scale in enumerate(np.asarray(scales).reshape(-1)):
            key = (kind, tuple(terms), float(scale))
            if key not in self.functions:
                if kind == "solve":
                    value = np.linalg.inv(np.eye(self.n) - scale * matrix)
                else:
                    value = scipy.linalg.expm(scale * matrix)
                self.functions[key] = value.T.copy()
            out[i] = u[i] @ self.functions[key]
        return out

    def step(self, u, dt):
        return run_program(self.model.program, MatrixMachine(self, dt), u)

    def advance(self, rows: np.ndarray, dt: float, steps: int = 1) -> np.ndarray:
        """``steps`` steps of rows ``(K, n)`` with one Δt; returns rows."""
        u = self.state(rows)
        dt_ = self.dts(np.full(len(np.atleast_2d(rows)), dt))
        with self.quiet_threads():
            for _ in range(steps):
                u = self.step(u, dt_)
        return self.rows(u)


class MatrixMachine:
    """The step program's instructions on the linear stepper's matrices (states: rows with
    one Δt each, or torch column blocks)."""

    def __init__(self, stepper: LinearStepper, dt) -> None:
        self.stepper = stepper
        self.dt = dt
        self.combine = float_combine(dt, stepper.model.program.constant_values)

    def _scales(self, coefficient) -> np.ndarray:
        return self.stepper.model.program.coefficient(coefficient) * np.asarray(self.dt)

    def rate(self, terms, state):
        total = 0.0 * state
        for t in terms:
            if self.stepper.parts[t] is not None:
                total = total + self.stepper.apply(t, state)
        return total

    def solve(self, terms, coefficient, rhs):
        return self.stepper.function("solve", terms, self._scales(coefficient), rhs)

    def flow(self, terms, coefficient, state):
        return self.stepper.function("flow", terms, self._scales(coefficient), state)

    def project(self, norm, state):
        return state

    def observe(self, index, label, value):
        pass


def grows(stepper: LinearStepper, dts: Sequence[float], *, steps: int, seed: int = 0,
          threshold: float = 1e2) -> np.ndarray:
    """For each Δt, whether ``steps`` steps of the linear ``stepper`` from a random initial
    state (the same for every Δt) make its max norm grow by more than ``threshold`` (or
    overflow).  Every Δt is stepped at once, one per row; a row that has grown is dropped."""
    rng = np.random.default_rng(seed)
    u0 = rng.standard_normal(stepper.n)
    dts = np.asarray(dts, dtype=np.float64)
    start = np.max(np.abs(u0))
    grown = np.zeros(len(dts), dtype=bool)
    active = np.arange(len(dts))
    u = stepper.state(np.repeat(u0[None, :], len(dts), axis=0))
    dt = stepper.dts(dts)
    with np.errstate(over="ignore", invalid="ignore"), stepper.quiet_threads():
        for i in range(steps):
            u = stepper.step(u, dt)
            if i % 25 == 24 or i == steps - 1:
                size = stepper.sizes(u)
                bad = ~np.isfinite(size) | (size > threshold * start)
                if bad.any():
                    grown[active[bad]] = True
                    active = active[~bad]
                    if not len(active):
                        break
                    u = stepper.select(u, ~bad)
                    dt = stepper.dts(dts[active])
    return grown


def empirical_max_dt(stepper: LinearStepper, predicted: float, *, steps: int = 2000,
                     candidates: int = 15, rounds: int = 3, seed: int = 0) -> float:
    """(d) The largest Δt at which the linear ``stepper`` stays bounded, by multisection:
    ``candidates`` Δt values per round, stepped at once, from [0.5, 2]·predicted (widened if
    it does not bracket the threshold).  At (1 + δ)× the threshold a step grows the worst
    mode by ≈ 1 + cδ (c ≈ 2–4), so ``steps`` = 2000 steps detect δ ≳ 0.1 %; the coarser
    early rounds (bracket widths ≈ 10 % and ≈ 0.8 %) use a quarter and a half of them."""
    lo, hi = 0.5 * predicted, 2.0 * predicted
    done = 0
    schedule = [max(steps >> (rounds - 1 - r), 50) for r in range(rounds)]
    for _ in range(8):  # the first round must bracket the threshold
        dts = np.linspace(lo, hi, candidates)
        g = grows(stepper, dts, steps=schedule[0], seed=seed)
        if g[0]:
            lo, hi = lo / 4, lo
        elif not g.any():  # (not just the last: split steps can be stable again above)
            lo, hi = hi, hi * 4
        else:
            break
    for r in range(rounds):
        if r > done:
            dts = np.linspace(lo, hi, candidates)
            g = grows(stepper, dts, steps=schedule[r], seed=seed)
        first = int(np.argmax(g)) if g.any() else len(dts) - 1
        lo, hi = dts[max(first - 1, 0)], dts[first]
    return float(lo)


def _eigenbasis(stepper: LinearStepper):
    """(μ, V, V⁻¹) of the whole linear operator L = Σ_t L_t on the stepped grid (cached)."""
    cached = getattr(stepper, "_eigenbasis", None)
    if cached is not None:
        return cached
    total = sum((m for m in stepper.matrices.values() if m is not None),
                np.zeros((stepper.n, stepper.n)))
    model = stepper.model
    shape = (stepper.n,) if len(model.axes) == 1 else tuple(model.shape)
    if model.boundary != "copy" and not model.extra_tokens:
        # self-adjoint in the boundary's inner product W (symmetric stencils): W^½ L W^-½
        # is symmetric, and eigh is ~10× faster than eig (and exact in its eigenvectors)
        root = np.sqrt(inner_product_weights(model.boundary, shape))
        symmetric = root[:, None] * total / root[None, :]
        if np.allclose(symmetric, symmetric.T, rtol=0, atol=1e-12 * np.abs(total).max()):
            mu, q = np.linalg.eigh((symmetric + symmetric.T) / 2)
            cached = (mu.astype(complex), q / root[:, None], q.T * root[None, :])
    if cached is None:
        mu, vectors = np.linalg.eig(total)
        cached = (mu, vectors, np.linalg.inv(vectors))
    stepper._eigenbasis = cached
    return cached


def mode_amplification(stepper: LinearStepper, dt: float):
    """(g_k, μ_k, residual): the amplification of one step on each eigenvector v_k of the
    whole linear operator L (eigenvalues μ_k), g = diag(V⁻¹ S V) with S V stepped column by
    column, and ‖S V − V diag(g)‖/‖S V‖ (0 when the step is a function of L, as for terms
    that commute)."""
    mu, vectors, inverse = _eigenbasis(stepper)
    n = stepper.n
    both = stepper.advance(np.concatenate([vectors.real.T, vectors.imag.T]), dt, 1)
    stepped = both[:n].T + 1j * both[n:].T  # S V (real and imaginary parts in one pass)
    g = np.einsum("ij,ji->i", inverse, stepped)
    scale = max(float(np.linalg.norm(stepped)), 1e-300)
    return g, mu, float(np.linalg.norm(stepped - vectors * g[None, :]) / scale)


def relative_excess(stepper: LinearStepper, dt: float) -> float:
    """max_k |g_k| / max(1, |e^{μ_k Δt}|)^GROWTH_SLACK − 1: how far one step grows an
    eigenmode beyond the allowance of the analysis (≤ 0: within it)."""
    from pdelang.compiler.analysis.stability import GROWTH_SLACK

    with np.errstate(all="ignore"):
        g, mu, _ = mode_amplification(stepper, dt)
        allowed = np.exp(GROWTH_SLACK * np.maximum(np.real(mu) * dt, 0.0))
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(allowed))):
        return math.nan  # the equation's growth over Δt is beyond float64: no judgement
    # roundoff of diag(V⁻¹ S V) is relative to the largest |g| (e^{150} next to e^{-10⁵}
    # at 1000 Δt): a mode is judged only beyond 1e-10 of it
    noise = 1e-10 * float(np.max(np.abs(g)))
    return float(np.max((np.abs(g) - noise) / allowed) - 1)


def empirical_max_dt_relative(stepper: LinearStepper, predicted: float, *,
                              rounds: int = 16) -> float:
    """(d) For an equation that grows in its own right: the largest Δt at which no
    eigenmode of the stepped linear part exceeds the allowance: the first crossing on a scan
    of [0.5, 2]·predicted (widened until it brackets one), then 16 halvings."""
    def bad(dt):
        return relative_excess(stepper, dt) > 1e-9

    lo, hi = 0.5 * predicted, 2.0 * predicted
    for _ in range(20):  # the first crossing: a scan (split steps can be stable again above)
        dts = np.linspace(lo, hi, 9)
        flags = [bad(dt) for dt in dts]
        if flags[0]:
            lo, hi = lo / 4, lo
        elif not any(flags):
            lo, hi = hi, hi * 4
        else:
            first = flags.index(True)
            lo, hi = dts[first - 1], dts[first]
            break
    for _ in range(rounds):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if bad(mid) else (mid, hi)
    return float(lo)


def check_unconditional_relative(stepper: LinearStepper, dt: float, *,
                                 factors: Sequence[float] = (1, 10, 100, 1000),
                                 name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) An equation that grows, stepped by a program the analysis finds stable at every
    Δt: at 1, 10, 100 and 1000 × ``dt`` no eigenmode exceeds its allowance (a factor at
    which the equation's own growth overflows float64 is not judged: excess nan)."""
    excess = [relative_excess(stepper, f * dt) for f in factors]
    return _result(name, all(e <= 1e-9 for e in excess if not math.isnan(e)),
                   "no step size is too large (relative to the equation's growth): " + ", ".join(
                       f"{f:g}×Δt {'within' if e <= 1e-9 else 'beyond'} (excess {e:.2e})"
                       for f, e in zip(factors, excess)),
                   dts=[f * dt for f in factors], excess=excess)


def check_stability_sharpness(stepper: LinearStepper, predicted: float, *,
                              below: float = 0.95, above: float = 1.05, steps: int = 10_000,
                              seed: int = 0,
                              name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) Stepping at ``below``× the derived bound stays bounded for ``steps`` steps and at
    ``above``× it grows."""
    g = grows(stepper, [below * predicted, above * predicted], steps=steps, seed=seed)
    ok = (not g[0]) and g[1]
    verdict = (f"{below}× bound: {'grows' if g[0] else 'bounded'}; {above}× bound: "
               f"{'grows' if g[1] else 'bounded'} ({steps} steps)")
    return _result(name, ok, verdict, predicted_max_dt=predicted, bounded_below=not g[0],
                   grows_above=bool(g[1]), steps=steps)


def check_unconditional_stability(stepper: LinearStepper, dt: float, *,
                                  factors: Sequence[float] = (1, 10, 100, 1000),
                                  steps: int = 2000, seed: int = 0,
                                  name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) For a program the analysis finds stable at every Δt (implicit stages, exact
    flows): stepping at 1, 10, 100 and 1000 × ``dt`` stays bounded."""
    dts = [f * dt for f in factors]
    g = grows(stepper, dts, steps=steps, seed=seed)
    return _result(name, not g.any(), "no step size is too large: " + ", ".join(
        f"{f:g}×Δt {'grows' if x else 'bounded'}" for f, x in zip(factors, g))
        + f" ({steps} steps)", dts=dts, grows=[bool(x) for x in g])


def check_stability_threshold(empirical: float, predicted: float, *, tolerance: float = 0.05,
                              name: str = "stability_threshold") -> PropertyResult:
    """(d) The empirical threshold is within ``tolerance`` (relative) of the derived bound."""
    ratio = empirical / predicted
    return _result(name, abs(ratio - 1) <= tolerance,
                   f"empirical max Δt {empirical:.6g} vs predicted {predicted:.6g} "
                   f"(ratio {ratio:.4f}, tolerance {tolerance:.0%})",
                   empirical_max_dt=empirical, predicted_max_dt=predicted, ratio=ratio)


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
        return _result(name, True, "exact for every Δt (no error to measure)",
                       dts=dts, errors=errors, observed_order=math.inf,
                       claimed_order=claimed_order)
    order = least_squares_order(dts, errors)
    ok = math.isfinite(order) and abs(order - claimed_order) <= tolerance
    return _result(name, ok, f"observed order {order:.3f}, claimed {claimed_order}; errors "
                   + ", ".join(f"{e:.2e}" for e in errors),
                   dts=dts, errors=errors, observed_order=order, claimed_order=claimed_order)


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential (SciPy's scaling-and-squaring Padé)."""
    import scipy.linalg
    return scipy.linalg.expm(np.asarray(a, dtype=np.float64))


def claimed_order(program) -> int:
    """The order a program's scheme claims on :func:`linear_test_problem`: the scheme's
    nominal order (a splitting's, with nilpotent terms whose Euler sub-steps are exact)."""
    from pdelang.compiler.schemes import SCHEMES
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


# ----------------------------------------------------------------------------- (f) attention
def check_attention_maps(maps: Iterable[np.ndarray], *, causal: bool = False,
                         kernel: str = "softmax", mask: np.ndarray | None = None,
                         rtol: float = 1e-10, sinkhorn_tol: float = 1e-4,
                         name: str = "attention_maps") -> PropertyResult:
    """(f) Each map ``(B, H, N, N)`` (rows = queries): entries ≥ 0; every real query's row
    sums to 1; padding keys get no weight; with ``causal`` no query attends a later token;
    with the Sinkhorn kernel (not causal) the columns of real keys also sum to 1 within
    ``sinkhorn_tol`` (and padding queries get all-zero rows)."""
    problems = []
    count = 0
    for index, p in enumerate(maps):
        p = np.asarray(p, dtype=np.float64)
        count += 1
        batch, _heads, n, _ = p.shape
        real = np.ones((batch, n), dtype=bool) if mask is None else np.asarray(mask, bool)
        if np.min(p) < -rtol:
            problems.append(f"map {index}: negative weight {np.min(p):.3g}")
        rows = p.sum(axis=-1)  # (B, H, N)
        q = np.broadcast_to(real[:, None, :], rows.shape)
        row_error = float(np.max(np.abs(rows[q] - 1.0))) if q.any() else 0.0
        if row_error > rtol:
            problems.append(f"map {index}: a real query's row sums to 1 ± {row_error:.3g}")
        padded_keys = np.broadcast_to(~real[:, None, None, :], p.shape)
        if padded_keys.any() and np.max(np.abs(p[padded_keys])) > rtol:
            problems.append(f"map {index}: a padding key gets weight "
                            f"{np.max(np.abs(p[padded_keys])):.3g}")
        if causal:
            future = np.triu(np.ones((n, n), dtype=bool), 1)
            leak = float(np.max(np.abs(p[..., future]))) if future.any() else 0.0
            if leak > rtol:
                problems.append(f"map {index}: weight {leak:.3g} on a future token")
        if kernel == "sinkhorn" and not causal:
            weights = p * real[:, None, :, None]
            cols = weights.sum(axis=-2)  # (B, H, N) over real queries
            k = np.broadcast_to(real[:, None, :], cols.shape)
            col_error = float(np.max(np.abs(cols[k] - 1.0))) if k.any() else 0.0
            if col_error > sinkhorn_tol:
                problems.append(f"map {index}: a column sums to 1 ± {col_error:.3g} "
                                f"(Sinkhorn tolerance {sinkhorn_tol:g})")
            pad_q = np.broadcast_to(~real[:, None, :, None], p.shape)
            if pad_q.any() and np.max(np.abs(p[pad_q])) > rtol:
                problems.append(f"map {index}: a padding query has non-zero weights")
    if count == 0:
        return _result(name, False, "no attention map to check")
    return _result(name, not problems, "; ".join(problems[:4]) or
                   f"{count} map(s): rows are distributions" + (", causal" if causal else "")
                   + (", doubly stochastic" if kernel == "sinkhorn" and not causal else ""),
                   maps=count, problems=problems[:10])


# ----------------------------------------------------------------------------- (g) norms
def check_norm_manifold(inputs: np.ndarray, outputs: np.ndarray, *, kind: str, eps: float,
                        weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                        rtol: float = 1e-9, name: str = "norm_manifold") -> PropertyResult:
    """(g) ``outputs = P(inputs)`` lies on the normalization manifold, per token, up to the
    affine map: with ``z = (y − β)/γ``, LayerNorm gives mean(z) = 0 and
    var(z) = var(x)/(var(x) + ε) (→ 1), RMSNorm gives mean(z²) = ms(x)/(ms(x) + ε)."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    z = y
    if bias is not None:
        z = z - bias
    if weight is not None:
        z = z / weight
    if kind == "layernorm":
        mean = z.mean(axis=-1)
        var_x = x.var(axis=-1)
        expected = var_x / (var_x + eps)
        mean_error = float(np.max(np.abs(mean)))
        var_error = float(np.max(np.abs(z.var(axis=-1) - expected)))
        ok = mean_error <= rtol and var_error <= rtol
        return _result(name, ok, f"per-token |mean| ≤ {mean_error:.2g}, |var − "
                       f"var/(var+ε)| ≤ {var_error:.2g} (tolerance {rtol:g})",
                       mean_error=mean_error, var_error=var_error,
                       min_variance=float(np.min(z.var(axis=-1))) if z.size else 1.0)
    if kind == "rmsnorm":
        ms_x = (x**2).mean(axis=-1)
        error = float(np.max(np.abs((z**2).mean(axis=-1) - ms_x / (ms_x + eps))))
        return _result(name, error <= rtol, f"per-token |mean(z²) − ms/(ms+ε)| ≤ {error:.2g}",
                       ms_error=error)
    raise ValueError(f"unknown norm kind {kind!r}")


def stencil_operator_1d(offsets, weights, boundary: str) -> Operator:
    """A plain 1-D stencil operator on ``(B, N, C)`` states (weights already ÷ h^k)."""
    def apply(u: np.ndarray) -> np.ndarray:
        return stencil_along(np.asarray(u, dtype=np.float64), 1, offsets, weights, boundary)
    return apply
