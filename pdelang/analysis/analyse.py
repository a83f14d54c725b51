"""Stage ``analyse``: facts about the symbolic IR — classification, stencils, stability.

* Each term is classified with SymPy: linear in the field iff T(εu) = εT(u) (linear
  operators distribute and pull constants out, see ``symbolic.functions``); local unless it
  contains attention; its differential order; its learnable parameters and weights.
* Every derivative gets its centred stencil at the spec's accuracy, with the leading
  truncation-error term and order from its Taylor expansion (``analysis.stencils``).
* The linear, constant-coefficient differential part of the right-hand side gives a von
  Neumann symbol; with the time scheme's stability region it gives the largest stable Δt
  (``analysis.stability``).  Zero-order linear terms (growth/decay rates) and the nonlinear
  terms do not enter the bound (the generalized von Neumann condition allows
  |G| ≤ 1 + O(Δt)).
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass, field
from collections.abc import Mapping

import sympy

from pdelang.analysis import stability as stab
from pdelang.analysis.stencils import Stencil, centred_stencil
from pdelang.errors import SpecError
from pdelang.frozen import frozen_dict
from pdelang.operators.registry import OPERATORS
from pdelang.symbolic import functions as F
from pdelang.symbolic.ir import SymbolicModel


@dataclass(frozen=True)
class TermFacts:
    name: str
    expression: str
    latex: str
    linear: bool
    local: bool
    order: int
    operators: tuple[str, ...]
    learnable: tuple[str, ...]


@dataclass(frozen=True)
class StencilFacts:
    key: str  # laplace | diff[axis,k]
    operator: str
    derivative: int
    axes: tuple[str, ...]
    stencil: Stencil
    leading_error: str

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


@dataclass(frozen=True)
class StabilityFacts:
    scheme: str
    dt: float
    max_stable_dt: float | None  # None: no linear differential part, no bound
    formula: str | None  # e.g. h**2/(2*D) where derivable
    stable: bool
    interval: float | None  # β of the (sub-)step scheme on the negative real axis
    symbol: str | None  # λ(θ) of the linear differential part
    limiting_term: str | None
    method: str  # exact | sampled | none

    def to_json(self) -> dict:
        return {
            "scheme": self.scheme,
            "dt": self.dt,
            "max_stable_dt": self.max_stable_dt,
            "formula": self.formula,
            "stable": self.stable,
            "stability_interval": self.interval,
            "symbol": self.symbol,
            "limiting_term": self.limiting_term,
            "method": self.method,
        }


@dataclass(frozen=True)
class Analysis:
    terms: tuple[TermFacts, ...]
    stencils: Mapping[str, StencilFacts]
    stability: StabilityFacts
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def stencil_for(self, op_call) -> StencilFacts:
        return self.stencils[stencil_key(op_call)]


def stencil_key(call) -> str:
    if isinstance(call, F.Laplace):
        return "laplace"
    return f"diff[{call.args[1]},{int(call.args[2])}]"


# ------------------------------------------------------------------------- classification
def _is_linear(expr: sympy.Expr, u: sympy.Expr) -> bool:
    eps = sympy.Symbol("epsilon_", positive=True)
    scaled = expr.subs(u, eps * u)
    return sympy.expand(scaled - eps * expr) == 0 and bool(expr.has(u))


def _differential_calls(expr: sympy.Expr) -> list[F.OperatorCall]:
    return sorted(expr.atoms(F.Laplace, F.Diff), key=sympy.default_sort_key)


def classify(model: SymbolicModel) -> tuple[TermFacts, ...]:
    facts = []
    for term in model.terms:
        expr = term.expr
        ops = sorted({type(c).op_name for c in expr.atoms(F.OperatorCall)}
                     | {f.func.__name__ for f in expr.atoms(sympy.tanh, sympy.exp)})
        order = 0
        for call in _differential_calls(expr):
            order = max(order, 2 if isinstance(call, F.Laplace) else int(call.args[2]))
        learnable = [name for name, sym in model.parameters.items()
                     if expr.has(sym) and model.spec.parameters[name].learnable]
        for inst in model.instances.values():
            if expr.has(sympy.Symbol(inst.name)) and OPERATORS[inst.op].learned and \
                    inst.options.get("affine", True):
                learnable.append(inst.name)
        facts.append(TermFacts(
            name=term.name, expression=sympy.sstr(expr), latex=sympy.latex(expr),
            linear=_is_linear(expr, model.u), local=not expr.atoms(F.Attention), order=order,
            operators=tuple(ops), learnable=tuple(learnable)))
    return tuple(facts)


# ------------------------------------------------------------------------- stencils
def derive_stencils(model: SymbolicModel) -> dict[str, StencilFacts]:
    spec = model.spec
    out: dict[str, StencilFacts] = {}
    every = set()
    for term in model.terms:
        every |= set(_differential_calls(term.expr))
    for call in sorted(every, key=sympy.default_sort_key):
        key = stencil_key(call)
        if key in out:
            continue
        if isinstance(call, F.Laplace):
            stencil = centred_stencil(2, spec.accuracy.get("laplace", 2))
            axes = model.axes
            error = sympy.Add(*[stencil.error_coefficient * model.h ** stencil.order
                                * sympy.Derivative(model.u, (a, stencil.error_derivative))
                                for a in axes])
            out[key] = StencilFacts(key, "laplace", 2, tuple(map(str, axes)), stencil,
                                    sympy.sstr(error))
        else:
            axis, k = call.args[1], int(call.args[2])
            stencil = centred_stencil(k, spec.accuracy.get("diff", 2))
            error = stencil.error_coefficient * model.h ** stencil.order * sympy.Derivative(
                model.u, (axis, stencil.error_derivative))
            out[key] = StencilFacts(key, "diff", k, (str(axis),), stencil, sympy.sstr(error))
    return out


# ------------------------------------------------------------------------- stability
@dataclass(frozen=True)
class _LinearPart:
    coefficient: sympy.Expr  # field-free, may contain parameter symbols
    call: F.OperatorCall


def _linear_differential_parts(expr: sympy.Expr, u: sympy.Expr) -> list[_LinearPart] | None:
    """``expr``'s additive pieces of the form c · L(u), L a derivative; None if some
    derivative is applied to anything but the field itself (not constant-coefficient)."""
    parts = []
    for piece in sympy.Add.make_args(sympy.expand(expr)):
        calls = [f for f in sympy.Mul.make_args(piece) if isinstance(f, (F.Laplace, F.Diff))]
        if not calls:
            if _differential_calls(piece):
                return None  # a derivative nested inside a nonlinear function
            continue
        coefficient = sympy.Mul(*[f for f in sympy.Mul.make_args(piece) if f not in calls])
        if len(calls) > 1 or calls[0].args[0] != u or not F.is_field_free(coefficient):
            return None
        parts.append(_LinearPart(coefficient, calls[0]))
    return parts


class _Symbol:
    """The von Neumann symbol λ(θ) of a set of linear differential parts."""

    def __init__(self, model: SymbolicModel, stencils, parts: list[_LinearPart]) -> None:
        self.model = model
        self.thetas = {a: sympy.Symbol(f"theta_{a}", real=True) for a in model.axes}
        values = {sym: sympy.Rational(str(model.spec.parameters[name].value))
                  for name, sym in model.parameters.items()}
        values[model.h] = sympy.Rational(str(model.spec.grid.spacing))
        self.values = values
        self.per_axis: dict[sympy.Symbol, sympy.Expr] = {a: sympy.Integer(0) for a in model.axes}
        self.symbolic_per_axis: dict[sympy.Symbol, list] = {a: [] for a in model.axes}
        for part in parts:
            stencil = stencils[stencil_key(part.call)].stencil
            axes = model.axes if isinstance(part.call, F.Laplace) else (part.call.args[1],)
            for a in axes:
                theta = self.thetas[a]
                base = stencil.symbol(theta)
                if stencil.derivative % 2 == 0:
                    base = stencil.real_symbol(theta)
                self.per_axis[a] += part.coefficient * model.h ** (-stencil.derivative) * base
                self.symbolic_per_axis[a].append((part.coefficient, stencil, theta))
        self.total = sympy.Add(*self.per_axis.values())

    @property
    def empty(self) -> bool:
        return self.total == 0

    def is_real(self) -> bool:
        return not self.total.subs(self.values).has(sympy.I)

    def real_minimum(self) -> sympy.Expr:
        """min_θ λ(θ), exactly (separable over axes), with parameter values substituted."""
        total = sympy.Integer(0)
        for a, expr in self.per_axis.items():
            if expr == 0:
                continue
            total += stab.real_symbol_range(sympy.expand(expr.subs(self.values)),
                                            self.thetas[a]).minimum
        return total

    def real_maximum(self) -> sympy.Expr:
        total = sympy.Integer(0)
        for a, expr in self.per_axis.items():
            if expr == 0:
                continue
            total += stab.real_symbol_range(sympy.expand(expr.subs(self.values)),
                                            self.thetas[a]).maximum
        return total

    def symbolic_minimum(self) -> sympy.Expr | None:
        """min_θ λ as a formula in h and the parameters, when every axis has one part."""
        total = sympy.Integer(0)
        for _axis, parts in self.symbolic_per_axis.items():
            if not parts:
                continue
            if len(parts) > 1:
                return None
            coefficient, stencil, theta = parts[0]
            rng = stab.real_symbol_range(stencil.real_symbol(theta), theta)
            value = coefficient.subs(self.values)
            extreme = rng.minimum if value > 0 else rng.maximum
            total += coefficient * self.model.h ** (-stencil.derivative) * extreme
        return total

    def samples(self, points: int = 129) -> list[complex]:
        # complex symbols (odd derivatives) hold exp(i j θ): evaluate with cmath, not math
        complex_math = {"exp": cmath.exp, "cos": cmath.cos, "sin": cmath.sin}
        fn = sympy.lambdify(list(self.thetas.values()), self.total.subs(self.values),
                            [complex_math, "math"])
        grid = [-math.pi + 2 * math.pi * i / (points - 1) for i in range(points)]
        if len(self.thetas) == 1:
            return [complex(fn(t)) for t in grid]
        coarse = grid[:: max(1, points // 48)]
        return [complex(fn(t1, t2)) for t1 in coarse for t2 in coarse]


def _bound_for(model, stencils, scheme: str, parts: list[_LinearPart], fraction):
    """(max Δt, formula, β, symbol text, method) for one (sub-)step scheme."""
    symbol = _Symbol(model, stencils, parts)
    if symbol.empty:
        return None
    beta = stab.real_stability_interval(scheme)
    text = sympy.sstr(sympy.simplify(symbol.total))
    if symbol.is_real():
        if symbol.real_maximum() > 0:
            return 0.0, None, float(beta), text, "exact (the symbol is positive: anti-diffusion)"
        spectral_radius = -symbol.real_minimum()
        if spectral_radius == 0:
            return None
        exact = beta / (fraction * spectral_radius)
        formula = None
        symbolic_min = symbol.symbolic_minimum()
        if symbolic_min is not None:
            formula_expr = sympy.simplify(beta / (fraction * -symbolic_min))
            formula = sympy.sstr(formula_expr)
        return float(exact), formula, float(beta), text, "exact"
    scale = float(fraction)
    samples = [scale * lam for lam in symbol.samples()]
    radius = max(abs(lam) for lam in samples)
    if radius == 0:
        return None
    if all(abs(lam.real) <= 1e-12 * radius for lam in samples):
        # odd derivatives only: λ(θ) is purely imaginary; the scheme's exact interval on
        # the imaginary axis (0 for euler/rk2) over max |λ| (on a fine θ grid)
        y0 = stab.imaginary_stability_interval(scheme)
        if y0 == 0:
            return 0.0, None, float(beta), text, \
                "exact (imaginary symbol outside the scheme's stability region)"
        peak = max(abs(scale * lam.imag) for lam in symbol.samples(2049))
        return (float(y0) / peak, None, float(beta), text,
                "imaginary symbol: exact interval of the scheme over max |λ| on a θ grid")
    return (stab.max_stable_dt_complex(scheme, samples), None, float(beta), text,
            "sampled (complex symbol, bisection over a θ grid)")


def _composite_bound(model, stencils, scheme: str, order: list[str],
                     linear_terms: dict[str, list[_LinearPart]], lower: float) -> float:
    """Largest Δt at which the splitting's composite amplification factor

        G(θ, Δt) = Π_sub-steps (1 + f_s Δt λ_s(θ))      (f_s: the sub-step's fraction of Δt)

    has |G| ≤ 1 for every θ and every smaller step.  For each θ on a grid, |G|² − 1 is a real
    polynomial in Δt; its first positive root where it turns positive is that mode's
    threshold (exact, no bisection); the bound is the smallest over θ.  ``lower`` (every
    sub-step stable on its own) is a bound the result cannot fall below."""
    import numpy as np  # only here: the common cases are exact in SymPy

    fractions = [(t, 0.5) for t in order[:-1]] + [(order[-1], 1.0)] + [
        (t, 0.5) for t in order[-2::-1]] if scheme == "strang" else [(t, 1.0) for t in order]
    samples = {name: np.array(_Symbol(model, stencils, parts).samples(
        1025 if len(model.axes) == 1 else 129)) for name, parts in linear_terms.items()}
    radius = max(float(np.max(np.abs(v))) for v in samples.values())
    if radius == 0:
        return lower
    tiny = 1e-12 * radius  # rounding in the sampled symbols (θ = 0 gives ±1e-16, not 0)
    best = math.inf
    for i in range(len(next(iter(samples.values())))):
        if all(abs(v[i]) <= tiny for v in samples.values()):
            continue  # the constant mode: G ≡ 1
        g = np.polynomial.Polynomial([1.0 + 0j])
        for name, fraction in fractions:
            if name in samples:
                g = g * np.polynomial.Polynomial([1.0, fraction * samples[name][i]])
        # |G(Δt)|² − 1 for real Δt: G(Δt) · conj(G)(Δt) − 1, a real polynomial, 0 at Δt = 0
        p = g * np.polynomial.Polynomial(np.conj(g.coef)) - 1.0
        p = np.polynomial.Polynomial(p.coef.real)
        if p.coef[1] > 1e-9 * radius:
            best = 0.0  # |G| grows for every Δt > 0 (a positive real part)
            break
        for r in sorted(r.real for r in p.roots()
                        if abs(r.imag) <= 1e-9 * max(1.0, abs(r)) and r.real * radius > 1e-9):
            if p(r * (1 + 1e-7)) > 0:  # |G| crosses 1 here (a tangency does not count)
                best = min(best, r)
                break
    return float(max(best, lower))


def stability(model: SymbolicModel, stencils) -> StabilityFacts:
    spec = model.spec
    scheme = spec.time.scheme
    dt = spec.time.dt
    results = []  # (bound, formula, beta, symbol, method, term)
    if scheme in ("euler", "rk2", "rk4"):
        parts = _linear_differential_parts(model.rhs, model.u)
        if parts:
            res = _bound_for(model, stencils, scheme, parts, sympy.Integer(1))
            if res:
                results.append((*res, None))
    else:
        order = list(model.split_order)
        linear_terms = {}
        for name in order:
            fraction = sympy.Integer(1)
            if scheme == "strang" and name != order[-1]:
                fraction = sympy.Rational(1, 2)
            parts = _linear_differential_parts(model.term(name).expr, model.u)
            if parts:
                res = _bound_for(model, stencils, "euler", parts, fraction)
                if res:
                    results.append((*res, name))
                    linear_terms[name] = parts
        if len(linear_terms) > 1:
            # Each sub-step stable on its own is sufficient, not necessary: the composite
            # can be stable beyond the smallest sub-step bound (Strang: (1 + z/2)²(1 + z)).
            lower = min(r[0] for r in results)
            bound = _composite_bound(model, stencils, scheme, order, linear_terms, lower)
            symbols = "; ".join(f"{r[5]}: {r[3]}" for r in results)
            return StabilityFacts(
                scheme, dt, bound, None, bool(dt <= bound * (1 + 1e-12)), 2.0, symbols, None,
                "composite: |Π_sub-steps (1 + f Δt λ_term(θ))| ≤ 1, exact in Δt on a θ grid")
    if not results:
        return StabilityFacts(scheme, dt, None, None, True, None, None, None,
                              "none (no linear differential term)")
    bound, formula, beta, symbol, method, term = min(results, key=lambda r: r[0])
    return StabilityFacts(scheme, dt, bound, formula, dt <= bound * (1 + 1e-12), beta, symbol,
                          term, method)


def _check_grid_fits(model: SymbolicModel, stencils) -> None:
    """Every stencil reads ``radius`` ghost tokens beyond each end, mirrored from inside the
    grid: an axis needs more than ``radius`` tokens."""
    spec = model.spec
    if not spec.grid.shape:
        return
    for facts in stencils.values():
        for axis in facts.axes:
            size = spec.grid.shape[spec.grid.axes.index(axis)]
            if size <= facts.stencil.radius:
                raise SpecError(
                    f"grid axis '{axis}' has {size} tokens; the {facts.operator} stencil of "
                    f"accuracy {facts.stencil.accuracy} needs more than {facts.stencil.radius}",
                    spec.where("grid.shape"),
                    "use a larger grid or a lower discretization accuracy")


def spec_scheme_ignores_split(model: SymbolicModel) -> bool:
    spec = model.spec
    return (spec.time.scheme not in ("lie", "strang")
            and "time.split_order" in spec.locations)


def _check_finite(model: SymbolicModel) -> None:
    """SymPy folds ``0^-1`` to complex infinity: such a term has no value to analyse."""
    for term in model.terms:
        if term.expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise SpecError(f"term '{term.name}' is not finite ({term.expr}): a division by "
                            "zero or an infinite constant", model.spec.where(f"terms.{term.name}"))


def analyse(model: SymbolicModel) -> Analysis:
    _check_finite(model)
    stencils = derive_stencils(model)
    _check_grid_fits(model, stencils)
    terms = classify(model)
    stab_facts = stability(model, stencils)
    warnings = []
    if not stab_facts.stable:
        warnings.append(
            f"Δt = {stab_facts.dt:g} exceeds the largest stable step "
            f"{stab_facts.max_stable_dt:.6g} of the linear part for scheme "
            f"'{stab_facts.scheme}' (von Neumann); raise time.substeps or lower the coefficients")
    if spec_scheme_ignores_split(model):
        warnings.append(f"time.split_order is ignored: scheme '{stab_facts.scheme}' integrates "
                        "the whole right-hand side at once (only lie and strang split it)")
    for name in model.unused_terms:
        warnings.append(f"term '{name}' is defined but not used in the equation")
    return Analysis(terms, frozen_dict(stencils), stab_facts, tuple(warnings))
