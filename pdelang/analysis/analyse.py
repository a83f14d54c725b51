"""Stage ``analyse``: facts about the symbolic IR and its step program — classification,
stencils, stability.

* Each term is classified with SymPy: linear in the field iff T(εu) = εT(u) (linear
  operators distribute and pull constants out); local unless an operator is non-local; its
  differential order; its learnable parameters and weights (all from the operators' facts).
* Every fixed stencil gets its centred weights at the spec's accuracy, with the leading
  truncation-error term and order from its Taylor expansion (``analysis.stencils``), from
  the operator that needs it.
* Stability: the step program is run symbolically on ``u' = λu`` (``analysis.stability``),
  λ_t(θ) being each term's linear, constant-coefficient differential part (its von Neumann
  symbol).  Zero-order linear parts (growth/decay rates), nonlinear parts and learned
  operators do not enter the bound (the generalized von Neumann condition allows
  |G| ≤ 1 + O(Δt)); where something is left out, or a projection (norm) is in the step, the
  result says so instead of "exact", and an unstable linear part is a verdict only where
  nothing left out can stop the growth.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from pdelang.analysis import stability as stab
from pdelang.analysis.stencils import StencilFacts
from pdelang.errors import SpecError
from pdelang.frozen import frozen_dict
from pdelang.operators import operator_of
from pdelang.schemes import program as P
from pdelang.schemes import restricted
from pdelang.symbolic.functions import OperatorCall, is_field_free
from pdelang.symbolic.ir import SymbolicModel

__all__ = ["Analysis", "StabilityFacts", "StencilFacts", "TermFacts", "analyse", "classify",
           "derive_stencils", "stability"]


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
class StabilityFacts:
    """The largest stable Δt of the step program's linear differential part, and the
    verdict at the spec's Δt (``stable`` | ``unstable`` | ``unknown``)."""

    scheme: str
    dt: float
    max_stable_dt: float | None  # None: no step size is too large (or nothing to bound)
    formula: str | None  # e.g. h**2/(2*D) where derivable
    verdict: str
    interval: float | None  # β (or y₀) of the step's stability function on its shape
    symbol: str | None  # λ(θ) of the linear differential part, per term
    limiting_term: str | None
    method: str  # how the bound was computed
    exact: bool  # the bound is the exact bound of the whole step (nothing left out)
    amplification: str | None = None  # G(z_t) of one step, z_t = Δt λ_t
    caveats: tuple[str, ...] = ()
    limiting_theta: tuple[float, ...] | None = None  # the θ that sets a sampled bound

    @property
    def stable(self) -> bool | None:
        """True (stable), False (unstable) or None (unknown) at the spec's Δt."""
        return {"stable": True, "unstable": False}.get(self.verdict)

    def to_json(self) -> dict:
        return {
            "scheme": self.scheme,
            "dt": self.dt,
            "max_stable_dt": self.max_stable_dt,
            "formula": self.formula,
            "verdict": self.verdict,
            "stable": self.stable,
            "stability_interval": None if self.interval is None or math.isinf(self.interval)
            else self.interval,  # (JSON has no infinity: null with max_stable_dt null)
            "symbol": self.symbol,
            "limiting_term": self.limiting_term,
            "method": self.method,
            "exact": self.exact,
            "amplification": self.amplification,
            "caveats": list(self.caveats),
            "limiting_theta": None if self.limiting_theta is None
            else list(self.limiting_theta),
        }

    def describe(self) -> str:
        """``[exact]``, or the method and ``not exact: …`` for the reports."""
        return describe(self.method, self.exact, self.caveats)


def describe(method: str, exact: bool, caveats) -> str:
    if exact:
        return f"[{method}]"
    what = "" if method == "exact" else f"{method}; "
    return f"[{what}not exact: {'; '.join(caveats)}]" if caveats else f"[{method}]"


@dataclass(frozen=True)
class Analysis:
    terms: tuple[TermFacts, ...]
    stencils: Mapping[str, StencilFacts]
    stability: StabilityFacts
    warnings: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------- classification
def _is_linear(expr: sympy.Expr, u: sympy.Expr) -> bool:
    eps = sympy.Symbol("epsilon_", positive=True)
    scaled = expr.subs(u, eps * u)
    return sympy.expand(scaled - eps * expr) == 0 and bool(expr.has(u))


def _calls(expr: sympy.Expr) -> list:
    """Every operator call in ``expr`` (with its operator), in a canonical order."""
    atoms = expr.atoms(OperatorCall) | expr.atoms(sympy.tanh, sympy.exp)
    out = [(atom, operator_of(atom)) for atom in sorted(atoms, key=sympy.default_sort_key)]
    return [(atom, op) for atom, op in out if op is not None]


def classify(model: SymbolicModel) -> tuple[TermFacts, ...]:
    facts = []
    for term in model.terms:
        expr = term.expr
        calls = _calls(expr)
        ops = sorted({op.name for _, op in calls})
        order = max((op.differential_order(op.options_of(call, model)) for call, op in calls),
                    default=0)
        learnable = [name for name, sym in model.parameters.items()
                     if expr.has(sym) and model.spec.parameters[name].learnable]
        for inst in model.instances.values():
            op = operator_of_name(inst.op)
            if expr.has(sympy.Symbol(inst.name)) and op.learnable(inst.options):
                learnable.append(inst.name)
        facts.append(TermFacts(
            name=term.name, expression=sympy.sstr(expr), latex=sympy.latex(expr),
            linear=_is_linear(expr, model.u), local=all(op.local for _, op in calls),
            order=order, operators=tuple(ops), learnable=tuple(learnable)))
    return tuple(facts)


def operator_of_name(name: str):
    from pdelang.operators import OPERATORS
    return OPERATORS[name]


# ------------------------------------------------------------------------- stencils
def derive_stencils(model: SymbolicModel) -> dict[str, StencilFacts]:
    """Every fixed stencil the terms use, from the operators that need them."""
    out: dict[str, StencilFacts] = {}
    for term in model.terms:
        for call, op in _calls(term.expr):
            if op.constant_coefficient:
                for key, facts in op.stencils(call, model).items():
                    out.setdefault(key, facts)
    return dict(sorted(out.items()))


def _check_spacing(model: SymbolicModel, stencils: dict[str, StencilFacts]) -> None:
    """A stencil divides by h^k: for the derivative orders k the spec uses, h^k must be a
    normal float64 (``spacing: 1.0e-320`` makes h² zero and 1/h² a division by zero;
    ``spacing: 1.0e200`` makes h² infinite and every derivative zero)."""
    import sys

    h = model.spec.grid.spacing
    for key, facts in stencils.items():
        k = facts.derivative
        try:
            power = h ** k
        except OverflowError:
            power = math.inf
        if not (sys.float_info.min <= power < math.inf):
            low = sys.float_info.min ** (1 / k)
            high = sys.float_info.max ** (1 / k)
            raise SpecError(f"grid.spacing {h!r}: the stencil '{key}' divides by h^{k} = "
                            f"{power!r}, which float64 cannot hold as a normal number",
                            model.spec.where("grid.spacing"),
                            f"use a spacing between {low:.3g} and {high:.3g} (rescale the "
                            "coefficients instead)")


def _check_grid_fits(model: SymbolicModel) -> None:
    """Every stencil reads ``radius`` ghost tokens beyond each end, mirrored from inside the
    grid: an axis needs more than ``radius`` tokens."""
    spec = model.spec
    if not spec.grid.shape:
        return
    for term in model.terms:
        for call, op in _calls(term.expr):
            options = op.options_of(call, model)
            radius = op.stencil_radius(options, spec.accuracy)
            if not radius:
                continue
            axes = [options["axis"]] if "axis" in options else list(spec.grid.axes)
            for axis in axes:
                size = spec.grid.shape[spec.grid.axes.index(axis)]
                if size <= radius:
                    what = (f"stencil of accuracy {spec.accuracy.get(op.name, 2)}"
                            if op.discretized else "stencil")
                    raise SpecError(
                        f"grid axis '{axis}' has {size} tokens; the {op.name} {what} needs "
                        f"more than {radius}", spec.where("grid.shape"),
                        "use a larger grid or a lower discretization accuracy" if op.discretized
                        else "use a larger grid or a smaller kernel")


# ------------------------------------------------------------------------- linear model
@dataclass
class _TermModel:
    """A term's linear, constant-coefficient differential part ``Σ c · S(u)``: coefficient
    per (axis, stencil key) of its von Neumann symbol, and what was left out."""

    coefficients: dict  # (axis symbol, key) → coefficient (values substituted, exact)
    formulas: dict  # (axis symbol, key) → coefficient with the parameter symbols
    symbolic: dict  # axis → [(coefficient with parameter symbols, stencil)]
    left_out: list  # descriptions of the pieces that do not enter the symbol
    nonconstant: str | None = None  # a derivative that enters otherwise (no analysis)


def _values(model: SymbolicModel) -> dict:
    values = {sym: sympy.Rational(str(model.spec.parameters[name].value))
              for name, sym in model.parameters.items()}
    values[model.h] = sympy.Rational(str(model.spec.grid.spacing))
    return values


def _term_model(term, model: SymbolicModel, stencils, thetas, basis: dict) -> _TermModel:
    values = _values(model)
    out = _TermModel({}, {}, {a: [] for a in model.axes}, [])
    for piece in sympy.Add.make_args(sympy.expand(term.expr)):
        factors = sympy.Mul.make_args(piece)
        fixed = [f for f in factors if isinstance(f, OperatorCall)
                 and operator_of(f) is not None and operator_of(f).constant_coefficient]
        others = [f for f in factors if f not in fixed]
        coefficient = sympy.Mul(*others)
        if not fixed:
            nested = [c for c, op in _calls(piece) if op.constant_coefficient]
            if nested:
                out.nonconstant = (f"the derivative {_call_text(nested[0], model)} enters "
                                   f"term '{term.name}' nonlinearly: it has no von Neumann "
                                   "symbol")
                continue
            learned = sorted({op.name for _, op in _calls(piece) if op.learned})
            if learned:
                out.left_out.append(f"{', '.join(learned)} in '{term.name}' (learned)")
            elif not piece.has(model.u):
                out.left_out.append(f"the constant {sympy.sstr(piece)} in '{term.name}'")
            elif _is_linear(piece, model.u):
                out.left_out.append(f"the zero-order part {sympy.sstr(piece)} of "
                                    f"'{term.name}'")
            else:
                out.left_out.append(f"the nonlinear part {sympy.sstr(piece)} of "
                                    f"'{term.name}'")
            continue
        call = fixed[0]
        if len(fixed) > 1 or call.args[0] != model.u or not is_field_free(coefficient):
            what = ("acts on a nonlinear expression" if not _is_linear(call.args[0], model.u)
                    else "acts on a linear expression, not the field itself (a product of "
                    "stencils)" if call.args[0] != model.u
                    else "has a coefficient that depends on the field (nonlinear)")
            out.nonconstant = (f"the derivative {_call_text(call, model)} in term "
                               f"'{term.name}' {what}: it has no von Neumann symbol")
            continue
        op = operator_of(call)
        for axis, symbol, stencil in op.von_neumann(call, model, stencils, thetas):
            key = (axis, op.key(call))
            basis.setdefault(key, symbol)
            value = sympy.nsimplify(coefficient.subs(values)) if coefficient.free_symbols \
                else coefficient
            out.coefficients[key] = out.coefficients.get(key, 0) + value
            out.formulas[key] = out.formulas.get(key, 0) + coefficient
            out.symbolic[axis].append((coefficient, stencil))
    out.coefficients = {k: v for k, v in out.coefficients.items() if v != 0}
    return out


def _call_text(call, model: SymbolicModel) -> str:
    """An operator call as the user wrote it: ``laplace(u**2)``, ``diff(u**2, x, 2)``."""
    op = operator_of(call)
    # (printed, then u(x) renamed: substituting a symbol would re-evaluate the operators)
    operand = sympy.sstr(call.args[0]).replace(sympy.sstr(model.u), model.spec.field.name)
    options = op.options_of(call, model)
    extra = [str(options["axis"]), str(options["order"])] if "axis" in options else []
    return f"{op.name}({', '.join([operand, *extra])})"


def _symbol_expr(coefficients: dict, basis: dict, values: dict) -> sympy.Expr:
    return sympy.Add(*[c * basis[k].subs(values) for k, c in coefficients.items()])


def _proportional(a: dict, b: dict):
    """The constant r with a = r·b (coefficient dicts over the same keys), else None."""
    if set(a) != set(b):
        return None
    keys = list(b)
    ratio = a[keys[0]] / b[keys[0]]
    if all(sympy.simplify(a[k] - ratio * b[k]) == 0 for k in keys):
        return sympy.nsimplify(ratio)
    return None


def _symbolic_minimum(model, term_model: _TermModel, values) -> sympy.Expr | None:
    """min_θ λ as a formula in h and the parameters, when every axis has one part."""
    total = sympy.Integer(0)
    for _axis, parts in term_model.symbolic.items():
        if not parts:
            continue
        if len(parts) > 1:
            return None
        coefficient, stencil = parts[0]
        theta = sympy.Symbol("theta", real=True)
        rng = stab.real_symbol_range(stencil.real_symbol(theta), theta)
        value = coefficient.subs(values)
        extreme = rng.minimum if value > 0 else rng.maximum
        total += coefficient * model.h ** (-stencil.derivative) * extreme
    return total


# ------------------------------------------------------------------------- stability
def _caveats(model: SymbolicModel, program: P.StepProgram, term_models) -> tuple[list, bool]:
    """(caveats, whether an unstable linear part is a verdict)."""
    caveats = []
    left_out = [piece for t in program.terms for piece in term_models[t].left_out]
    if left_out:
        caveats.append("left out: " + ", ".join(left_out))
    kind = model.spec.stabilizers.norm.kind
    pre = [t for n in program.norms if n.placement == "pre" for t in n.terms
           if term_models[t].coefficients]
    if pre:
        caveats.append(f"{', '.join(pre)} {'acts' if len(pre) == 1 else 'act'} on P(u) "
                       f"({kind}, pre), treated as u")
    post = [n.name for n in program.norms if n.placement == "post"]
    if post:
        caveats.append(f"{', '.join(post)} ({kind}, post) treated as the identity")
    verdict_ok = not program.norms
    if program.norms:
        caveats.append("a projection can stop the growth: instability is no verdict")
    if not program.residual:
        incomplete = [t for t in program.terms if term_models[t].left_out]
        if incomplete:
            caveats.append(f"without the residual the sub-steps of {', '.join(incomplete)} "
                           "replace the state by what the linear part does not describe "
                           "(analysed as the identity)")
            verdict_ok = False
    return caveats, verdict_ok


def stability(model: SymbolicModel, program: P.StepProgram, stencils) -> StabilityFacts:
    spec = model.spec
    dt = spec.time.dt
    thetas = {a: sympy.Symbol(f"theta_{a}", real=True) for a in model.axes}
    basis: dict = {}
    term_models = {t.name: _term_model(t, model, stencils, thetas, basis) for t in model.terms}
    values = _values(model)

    def facts(bound, verdict, method, exact=False, formula=None, interval=None, symbol=None,
              limiting=None, amplification=None, caveats=()):
        return StabilityFacts(program.scheme, dt, bound, formula, verdict, interval, symbol,
                              limiting, method, exact, amplification, tuple(caveats))

    nonconstant = [m.nonconstant for m in term_models.values() if m.nonconstant]
    if nonconstant:
        return facts(None, "unknown", "none: " + nonconstant[0], caveats=nonconstant)
    active = [t for t in program.terms if term_models[t].coefficients]
    caveats, verdict_ok = _caveats(model, program, term_models)
    z = {t: sympy.Symbol(f"z_{t}") if t in active else sympy.Integer(0)
         for t in program.terms}
    G = sympy.simplify(stab.amplification_factor(restricted(program, active), z))
    symbols_text = "; ".join(
        f"{t}: {sympy.sstr(stab.readable(_symbol_expr(term_models[t].formulas, basis, {})))}"
        for t in active) or None
    if not active:  # nothing to bound: a verdict only if nothing was left out either
        verdict = "stable" if not caveats and abs(complex(G)) <= 1 + 1e-12 else "unknown"
        return facts(None, verdict, "none: no linear differential term", exact=False,
                     amplification=sympy.sstr(G), caveats=caveats)
    odd_nonperiodic = spec.grid.boundary != "periodic" and any(
        stencils[key].stencil.derivative % 2 for t in active
        for (_axis, key) in term_models[t].coefficients)
    if odd_nonperiodic:
        caveats.append("odd derivatives with a non-periodic ghost rule: the von Neumann "
                       "symbol does not give the spectrum of the bounded operator")
        verdict_ok = False
    limiting = active[0] if len(active) == 1 else None
    reference = term_models[active[0]].coefficients
    ratios = {t: _proportional(term_models[t].coefficients, reference) for t in active}
    w = sympy.Symbol("w")
    if all(r is not None for r in ratios.values()):
        shape = _symbol_expr(reference, basis, values)
        per_axis = {a: _symbol_expr({k: c for k, c in reference.items() if k[0] == a},
                                    basis, values) for a in model.axes}
        parities = {stencils[key].stencil.derivative % 2 for (_axis, key) in reference}
        imaginary = parities == {1}
        if parities == {0}:
            lo = sum((stab.real_symbol_range(sympy.expand(e), thetas[a]).minimum
                      for a, e in per_axis.items() if e != 0), sympy.Integer(0))
            hi = sum((stab.real_symbol_range(sympy.expand(e), thetas[a]).maximum
                      for a, e in per_axis.items() if e != 0), sympy.Integer(0))
            sign = 1
            if hi > 0 and lo >= 0:  # a non-negative shape: flip it (Λ ≤ 0)
                sign, lo, hi = -1, -hi, -lo
            if hi <= 0:
                g = G.subs({z[t]: sign * ratios[t] * w for t in active})
                rho = -lo
                if rho == 0:
                    return facts(None, "stable", "exact (the symbol vanishes)", exact=True,
                                 amplification=sympy.sstr(G), caveats=caveats)
                beta, interval_exact = stab.real_stability_interval_of(g, w)
                exact = not caveats and interval_exact
                method = "exact" if interval_exact else \
                    "numeric interval of the step's stability function (exponentials)"
                if beta == 0:
                    return _verdict(facts, 0.0, dt, verdict_ok, "exact (the step grows every "
                                    "mode for any Δt > 0: anti-diffusion)", exact, None, 0.0,
                                    symbols_text, limiting, G, caveats)
                if beta == sympy.oo:
                    return facts(None, "stable", method,
                                 exact=exact, interval=math.inf, symbol=symbols_text,
                                 limiting=limiting, amplification=sympy.sstr(G),
                                 caveats=caveats)
                bound = float(beta / rho)
                formula = None
                if limiting is not None and sign == 1 and interval_exact:
                    symbolic_min = _symbolic_minimum(model, term_models[limiting], values)
                    if symbolic_min is not None and not isinstance(beta, sympy.Float):
                        formula = sympy.sstr(sympy.simplify(beta / (-symbolic_min)))
                return _verdict(facts, bound, dt, verdict_ok, method, exact, formula,
                                float(beta), symbols_text, limiting, G, caveats)
        elif imaginary:
            g = G.subs({z[t]: ratios[t] * w for t in active})
            fn = stab.complex_lambdify(list(thetas.values()), shape)
            peak = max(abs(complex(fn(*theta)).imag)
                       for theta in stab.sample_thetas(len(model.axes), 2049
                                                       if len(model.axes) == 1 else 97))
            y0 = stab.imaginary_stability_interval(g, w)
            method = "imaginary symbol: exact interval of the step over max |λ| on a θ grid"
            if y0 == 0:
                return _verdict(facts, 0.0, dt, verdict_ok, "exact (imaginary symbol outside "
                                "the step's stability region)", not caveats, None, 0.0,
                                symbols_text, limiting, G, caveats)
            if y0 == sympy.oo:
                return facts(None, "stable", method,
                             exact=not caveats, interval=math.inf, symbol=symbols_text,
                             limiting=limiting, amplification=sympy.sstr(G), caveats=caveats)
            return _verdict(facts, float(y0) / peak, dt, verdict_ok, method, not caveats,
                            None, float(y0), symbols_text, limiting, G, caveats)
    bound, theta = _sampled_bound(model, G, z, active, term_models, basis, values, thetas)
    method = "sampled: |G| ≤ 1 on a θ grid, exact in Δt for each θ"
    if bound == math.inf:
        return facts(None, "stable", method,
                     symbol=symbols_text, limiting=limiting, amplification=sympy.sstr(G),
                     caveats=caveats)
    result = _verdict(facts, bound, dt, verdict_ok, method, False, None, None, symbols_text,
                      limiting, G, caveats)
    return dataclasses.replace(result, limiting_theta=theta)


def _verdict(facts, bound, dt, verdict_ok, method, exact, formula, interval, symbol, limiting,
             G, caveats):
    if not math.isfinite(bound):  # a tiny coefficient: the bound is beyond float64
        return facts(None, "stable", method, exact=False, formula=formula, interval=interval,
                     symbol=symbol, limiting=limiting, amplification=sympy.sstr(G),
                     caveats=(*caveats, "the largest stable Δt is beyond float64"))
    if dt <= bound * (1 + 1e-12):
        verdict = "stable"
    else:
        verdict = "unstable" if verdict_ok else "unknown"
    return facts(bound, verdict, method, exact=exact, formula=formula, interval=interval,
                 symbol=symbol, limiting=limiting, amplification=sympy.sstr(G),
                 caveats=caveats)


def _sampled_bound(model, G, z, active, term_models, basis, values, thetas):
    """(min over a θ grid of the first Δt > 0 at which |G(Δt λ(θ))| exceeds 1, the θ that
    sets it)."""
    import numpy as np

    dt = sympy.Symbol("dt", positive=True)
    lam = {t: sympy.Symbol(f"lam_{t}") for t in active}
    g = G.subs({z[t]: dt * lam[t] for t in active})
    symbols = {t: stab.complex_lambdify(list(thetas.values()),
                                        _symbol_expr(term_models[t].coefficients, basis, values))
               for t in active}
    samples = stab.sample_thetas(len(model.axes))
    lams = np.array([[complex(symbols[t](*theta)) for t in active] for theta in samples])
    radius = float(np.max(np.sum(np.abs(lams), axis=1)))
    if radius == 0:
        return math.inf, None
    tiny = 1e-12 * radius
    best, best_theta = math.inf, None
    if not g.has(sympy.exp):
        num, den = sympy.fraction(sympy.together(g))
        num_poly = sympy.Poly(sympy.expand(num), dt)
        den_poly = sympy.Poly(sympy.expand(den), dt)
        args = [lam[t] for t in active]
        num_fns = [sympy.lambdify(args, c) for c in reversed(num_poly.all_coeffs())]
        den_fns = [sympy.lambdify(args, c) for c in reversed(den_poly.all_coeffs())]
        for theta, row in zip(samples, lams):
            if np.all(np.abs(row) <= tiny):
                continue  # the constant mode
            n = np.polynomial.Polynomial([complex(f(*row)) for f in num_fns])
            d = np.polynomial.Polynomial([complex(f(*row)) for f in den_fns])
            p = n * np.polynomial.Polynomial(np.conj(n.coef)) \
                - d * np.polynomial.Polynomial(np.conj(d.coef))
            p = np.polynomial.Polynomial(p.coef.real)
            coefs = p.coef
            lowest = next((c for c in coefs if abs(c) > 1e-12 * max(1.0, np.max(np.abs(coefs)))),
                          0.0)
            if lowest > 0:
                return 0.0, tuple(theta)
            for r in sorted(r.real for r in p.roots()
                            if abs(r.imag) <= 1e-9 * max(1.0, abs(r)) and r.real * radius > 1e-9):
                if p(r * (1 + 1e-7)) > 0:
                    if r < best:
                        best, best_theta = r, tuple(theta)
                    break
        return float(best), best_theta
    fn = sympy.lambdify([dt] + [lam[t] for t in active], g, "numpy")
    scale = 1.0 / radius
    grid = scale * np.geomspace(1e-6, 1e8, 1400)
    for theta, row in zip(samples, lams):
        if np.all(np.abs(row) <= tiny):
            continue
        with np.errstate(all="ignore"):
            values_ = np.abs(fn(grid.astype(complex), *row))
        over = np.flatnonzero(~(values_ <= 1 + 1e-12))
        if len(over):
            i = over[0]
            lo, hi = (grid[i - 1] if i else 0.0), grid[i]
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if not abs(fn(complex(mid), *row)) <= 1 + 1e-12 else (mid, hi)
            if lo < best:
                best, best_theta = lo, tuple(theta)
    return float(best), best_theta


# ------------------------------------------------------------------------- the stage
def spec_scheme_ignores_split(model: SymbolicModel, program: P.StepProgram) -> bool:
    return not program.is_splitting and "time.split_order" in model.spec.locations


def _check_finite(model: SymbolicModel) -> None:
    """SymPy folds ``0^-1`` to complex infinity: such a term has no value to analyse."""
    for term in model.terms:
        if term.expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise SpecError(f"term '{term.name}' is not finite ({term.expr}): a division by "
                            "zero or an infinite constant", model.spec.where(f"terms.{term.name}"))


def analyse(model: SymbolicModel, program: P.StepProgram) -> Analysis:
    _check_finite(model)
    stencils = derive_stencils(model)
    _check_spacing(model, stencils)
    _check_grid_fits(model)
    terms = classify(model)
    stab_facts = stability(model, program, stencils)
    warnings = []
    if stab_facts.verdict == "unstable":
        warnings.append(
            f"Δt = {stab_facts.dt:g} exceeds the largest stable step "
            f"{stab_facts.max_stable_dt:.6g} of the linear part for scheme "
            f"'{stab_facts.scheme}' (von Neumann); raise time.substeps, lower the "
            "coefficients" + ("" if program.implicit else
                              " or treat the stiff terms implicitly (time.implicit)"))
    elif stab_facts.max_stable_dt is not None and stab_facts.verdict == "unknown":
        warnings.append(
            f"Δt = {stab_facts.dt:g} exceeds the largest stable step "
            f"{stab_facts.max_stable_dt:.6g} of the linear part, but the analysis is not "
            f"exact ({'; '.join(stab_facts.caveats)}): stability unknown")
    if spec_scheme_ignores_split(model, program):
        warnings.append(f"time.split_order is ignored: scheme '{stab_facts.scheme}' integrates "
                        "the whole right-hand side at once (only lie and strang split it)")
    for name in model.unused_terms:
        warnings.append(f"term '{name}' is defined but not used in the equation")
    for name, symbol in model.parameters.items():
        if not any(t.expr.has(symbol) for t in model.terms):
            where = model.spec.where(f"parameters.{name}")
            how = " (set with --set)" if where is not None and where.file == "<--set>" else ""
            warnings.append(f"parameter '{name}'{how} is not used by any term of the "
                            "equation")
    for instance in model.instances.values():
        for text in operator_of_name(instance.op).warnings(instance.options):
            warnings.append(f"{instance.op} in term '{instance.term}': {text}")
    return Analysis(terms, frozen_dict(stencils), stab_facts, tuple(warnings))
