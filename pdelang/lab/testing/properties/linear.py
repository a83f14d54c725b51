"""(d, first half) The linear differential part of a discrete model and the stepper that
advances it with matrices (the step program interpreted on dense operators)."""

from __future__ import annotations

import contextlib
import dataclasses
from fractions import Fraction
from collections.abc import Mapping

import numpy as np
import warnings

from pdelang.compiler.discrete import ir as D
from pdelang.compiler.schemes.program import float_combine
from pdelang.compiler.schemes.program import run as run_program
from pdelang.interpreters.numpy_oracle import NumpyOracle
from pdelang.compiler.schemes import restricted


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
                     weights: Mapping[str, np.ndarray] | None = None) -> NumpyOracle | None:
    """A NumPy oracle of the linear differential part of ``model`` (see
    :func:`linear_differential_model`), with the spec's parameter values by default."""
    linear = linear_differential_model(model)
    if linear is None:
        return None
    return NumpyOracle(linear, ir_parameter_weights(model) if weights is None else weights)


def _grid_length(model: D.DiscreteModel, length: int | None) -> int:
    if len(model.axes) == 2:
        return model.shape[0] * model.shape[1]
    return length or (model.shape[0] if model.shape else 64)


class LinearStepper:
    """The linear differential part of a model, stepped fast enough for 10⁴ steps.

    The matrix of each term's linear part on the grid tokens (one channel) is read off the
    NumPy oracle by applying it to unit vectors, and the model's own step program is
    interpreted on those matrices (:class:`MatrixMachine`): rates are products, implicit
    stages dense solves, exact flows matrix exponentials (both cached per Δt).  Small grids
    (≤ 256 tokens) and implicit programs step with dense NumPy products; larger explicit ones
    with torch's sparse CSR product (the matrices have a stencil's few non-zeros per row).
    Parameters take their layer-0 values.  States are opaque: build one with :meth:`state`
    from rows ``(K, n)``, read it back with :meth:`rows`; Δt may differ per row
    (:meth:`dts`)."""

    def __init__(self, reference: NumpyOracle, length: int | None = None,
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
                import torch  # lazy: torch
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
        import torch  # lazy: torch
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
        import torch  # lazy: torch
        return torch.from_numpy(rows.T.copy())  # (n, K)

    def rows(self, state) -> np.ndarray:
        return state.copy() if self.backend == "numpy" else state.numpy().T.copy()

    def dts(self, values) -> object:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.backend == "numpy":
            return values[:, None]
        import torch  # lazy: torch
        return torch.from_numpy(values[None, :].copy())

    def sizes(self, state) -> np.ndarray:
        """max |u| of each row."""
        if self.backend == "numpy":
            return np.max(np.abs(state), axis=1)
        return state.abs().amax(dim=0).numpy()

    def select(self, state, keep: np.ndarray):
        if self.backend == "numpy":
            return state[keep]
        import torch  # lazy: torch
        return state[:, torch.from_numpy(np.flatnonzero(keep))]

    # ------------------------------------------------------------------ stepping
    def apply(self, name: str, u):
        part = self.parts[name]
        if part is None:
            return 0.0 * u
        return u @ part if self.backend == "numpy" else part @ u

    def function(self, kind: str, terms, scales: np.ndarray, u):
        """Rows of u times f(L)ᵀ, f(L) = (I − aL)⁻¹ or exp(aL), a = the row's scale."""
        import scipy.linalg  # lazy: scipy

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
