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
import sys

from pdelang.compiler.analysis import stability as stab
from pdelang.compiler.analysis.stencils import StencilFacts
from pdelang.compiler.analysis.symbols import (
    atom_symbols,
    growth_rate,
    operator_calls,
    symbol_of,
    symbol_range,
    term_symbol,
)
from pdelang.errors import SpecError
from pdelang.compiler.frozen import frozen_dict
from pdelang.compiler.operators import operator_of, OPERATORS
from pdelang.compiler.schemes import program as P
from pdelang.compiler.schemes import restricted
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.symbolic.ir import SymbolicModel

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
    limiting_theta: tuple[float, ...] | None = None  # the θ that sets the bound
    growth_rate: float | None = None  # max_θ Re λ(θ): the equation's own fastest growth
    growth_theta: tuple[float, ...] | None = None  # where it is attained
    growth_exact: bool | None = None

    @property
    def stable(self) -> bool | None:
        """True (stable), False (unstable, or no Δt is stable) or None (unknown) at the
        spec's Δt."""
        return {"stable": True, "unstable": False, "no_stable_dt": False}.get(self.verdict)

    @property
    def grows(self) -> bool:
        """Whether the semi-discrete equation itself grows (max Re λ > 0)."""
        return self.growth_rate is not None and self.growth_rate > 0

    @property
    def limit(self) -> str | None:
        """What limits a run: ``"equation"`` (the equation grows in its own right and the
        step keeps up with it), ``"numerical"`` (the step's bound is exceeded, or no Δt
        is stable), or None (neither)."""
        if self.verdict in ("unstable", "no_stable_dt"):
            return "numerical"
        if self.grows:
            return "equation"
        return None

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
            "growth_rate": self.growth_rate,
            "growth_theta": None if self.growth_theta is None else list(self.growth_theta),
            "growth_exact": self.growth_exact,
            "grows": self.grows,
            "limit": self.limit,
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


def classify(model: SymbolicModel) -> tuple[TermFacts, ...]:
    facts = []
    for term in model.terms:
        expr = term.expr
        calls = operator_calls(expr)
        ops = sorted({op.name for _, op in calls})
        order = differential_order(expr, model)
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


def differential_order(expr: sympy.Expr, model: SymbolicModel) -> int:
    """The differential order, composed: an operator's own order plus its operand's
    (laplace∘laplace is 4), the largest over the arguments of anything else."""
    op = operator_of(expr) if isinstance(expr, OperatorCall) else None
    inner = max((differential_order(a, model) for a in expr.args
                 if isinstance(a, sympy.Expr)), default=0)
    if op is None:
        return inner
    return op.differential_order(op.options_of(expr, model)) + \
        differential_order(expr.args[0], model)


def operator_of_name(name: str):
    return OPERATORS[name]


# ------------------------------------------------------------------------- stencils
def derive_stencils(model: SymbolicModel) -> dict[str, StencilFacts]:
    """Every fixed stencil the terms use, from the operators that need them."""
    out: dict[str, StencilFacts] = {}
    for term in model.terms:
        for call, op in operator_calls(term.expr):
            if op.constant_coefficient:
                for key, facts in op.stencils(call, model).items():
                    out.setdefault(key, facts)
    return dict(sorted(out.items()))


def _check_spacing(model: SymbolicModel, stencils: dict[str, StencilFacts]) -> None:
    """A stencil divides by h^k: for the derivative orders k the spec uses, h^k must be a
    normal float64 (``spacing: 1.0e-320`` makes h² zero and 1/h² a division by zero;
    ``spacing: 1.0e200`` makes h² infinite and every derivative zero)."""
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
        for call, op in operator_calls(term.expr):
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
def _proportional(a: dict, b: dict):
    """The constant r with a = r·b (coefficient dicts over the same keys), else None."""
    if set(a) != set(b):
        return None
    keys = list(b)
    ratio = a[keys[0]] / b[keys[0]]
    if all(sympy.simplify(a[k] - ratio * b[k]) == 0 for k in keys):
        return sympy.nsimplify(ratio)
    return None


# ------------------------------------------------------------------------- stability
def _caveats(model: SymbolicModel, program: P.StepProgram, term_models) -> tuple[list, bool]:
    """(caveats, whether an unstable linear part is a verdict)."""
    caveats = []
    left_out = [piece for t in program.terms for piece in term_models[t].left_out]
    if left_out:
        caveats.append("left out: " + ", ".join(left_out))
    kind = model.spec.stabilizers.norm.kind
    pre = [t for n in program.norms if n.placement == "pre" for t in n.terms
           if term_models[t].active]
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


def _depends_on_the_sum(G, zs) -> bool:
    """Whether G(z_1, …, z_m) = G(z_1 + … + z_m, 0, …, 0): the scheme treats the terms as
    one right-hand side."""
    if len(zs) < 2:
        return False
    collapsed = G.subs({z: 0 for z in zs[1:]}).subs(zs[0], sympy.Add(*zs))
    return sympy.simplify(sympy.expand(G - collapsed)) == 0


def _theta_text(theta) -> str:
    return "(" + ", ".join(f"{t:.4g}" for t in theta) + ")"


STABLE_AGAIN = "stable again"


def _term_symbols(model: SymbolicModel, stencils):
    """(θ symbol per axis, each term's :class:`TermSymbol`, the stencil keys they use, each
    key's symbol σ(θ))."""
    thetas = {a: sympy.Symbol(f"theta_{a}", real=True) for a in model.axes}
    symbols = {t.name: term_symbol(t, model) for t in model.terms}
    keys = {k for s in symbols.values() for w in s.words for k in w}
    return thetas, symbols, keys, atom_symbols(model, stencils, thetas, keys)


def _amplification(program: P.StepProgram, active):
    """(z_t per term, 0 for the inactive ones; G of one step restricted to the active)."""
    z = {t: sympy.Symbol(f"z_{t}") if t in active else sympy.Integer(0)
         for t in program.terms}
    return z, sympy.simplify(stab.amplification_factor(restricted(program, active), z))


def stability(model: SymbolicModel, program: P.StepProgram, stencils) -> StabilityFacts:
    """:func:`_stability`, with the verdict above the bound checked at the spec's Δt itself:
    a split step can be stable again beyond its first crossing Δt* for every θ (a Lie
    product (1 + z₁)(1 + z₂) is unstable on (Δt*, Δt₂) and within its allowance above), so
    an exceeded bound is "unstable" only where some θ of a fine grid exceeds the allowance
    at Δt."""
    facts = _stability(model, program, stencils)
    if facts.verdict != "unstable" or not facts.max_stable_dt:
        return facts
    import numpy as np  # lazy: numpy

    dims = len(model.axes)
    if dims == 1:
        waves = np.linspace(0, math.pi, 4097)[:, None]
    else:
        a, b = np.meshgrid(np.linspace(0, math.pi, 129), np.linspace(-math.pi, math.pi, 257),
                           indexing="ij")
        waves = np.stack([a.ravel(), b.ravel()], axis=1)
    excess = excess_on_waves(model, program, stencils, waves, facts.dt)
    if excess is None or excess > 1e-9:
        return facts
    note = (f"Δt = {facts.dt:g} lies beyond the first crossing {facts.max_stable_dt:.6g}, in "
            f"a window where the step is {STABLE_AGAIN} for every θ of a fine grid (some "
            "smaller steps are not)")
    return dataclasses.replace(facts, verdict="stable", caveats=(*facts.caveats, note))


def _stability(model: SymbolicModel, program: P.StepProgram, stencils) -> StabilityFacts:
    """The step's stability relative to the equation (module docstring of
    :mod:`pdelang.compiler.analysis.stability`): the largest Δt at which no mode grows faster than
    its allowance, the verdict at the spec's Δt, and the equation's own growth rate."""
    spec = model.spec
    dt = spec.time.dt
    thetas, symbols, keys, atoms = _term_symbols(model, stencils)
    theta_list = list(thetas.values())
    derivatives = {k: d for s in symbols.values() for k, d in s.derivatives.items()}

    def parity(word) -> int:
        return sum(derivatives[k] for k in word) % 2

    growth = None

    def facts(bound, verdict, method, exact=False, formula=None, interval=None, symbol=None,
              limiting=None, amplification=None, caveats=(), theta=None):
        return StabilityFacts(
            program.scheme, dt, bound, formula, verdict, interval, symbol, limiting, method,
            exact, amplification, tuple(caveats), theta,
            growth_rate=None if growth is None else growth.maximum,
            growth_theta=None if growth is None else growth.argmax,
            growth_exact=None if growth is None else growth.exact)

    nonconstant = [m.nonconstant for m in symbols.values() if m.nonconstant]
    if nonconstant:
        return facts(None, "unknown", "none: " + nonconstant[0], caveats=nonconstant)
    active = [t for t in program.terms if symbols[t].active]
    caveats, verdict_ok = _caveats(model, program, symbols)
    z, G = _amplification(program, active)
    symbolic_atoms = atom_symbols(model, stencils, thetas, keys, symbolic_h=True)
    symbols_text = "; ".join(
        f"{t}: {sympy.sstr(stab.readable(symbol_of(symbols[t].formulas, symbolic_atoms)))}"
        for t in active) or None
    if not active:  # nothing to bound: a verdict only if nothing was left out either
        verdict = "stable" if not caveats and abs(complex(G)) <= 1 + 1e-12 else "unknown"
        return facts(None, verdict, "none: no linear term", exact=False,
                     amplification=sympy.sstr(G), caveats=caveats)
    growth = growth_rate({t: symbols[t].words for t in active}, atoms, theta_list, parity)
    if not growth.exact:
        caveats.append("the equation's growth rate max Re λ was found numerically")
    odd_nonperiodic = spec.grid.boundary != "periodic" and any(
        parity(w) or any(derivatives[k] % 2 for k in w)
        for t in active for w in symbols[t].words)
    if odd_nonperiodic:
        caveats.append("odd derivatives with a non-periodic ghost rule: the von Neumann "
                       "symbol does not give the spectrum of the bounded operator")
        verdict_ok = False
    limiting = active[0] if len(active) == 1 else None
    reference = symbols[active[0]].words
    ratios = {t: _proportional(symbols[t].words, reference) for t in active}
    total_ratio = sum(ratios.values()) if all(r is not None for r in ratios.values()) else 0
    w = sympy.Symbol("w")
    if total_ratio == 0 and _depends_on_the_sum(G, [z[t] for t in active]):
        # an unsplit scheme (euler, rk2, rk4, …): G is R(Σ_t z_t), so one shape — the
        # symbol of the whole linear part — decides, whatever the terms' own shapes
        total: dict = {}
        for t in active:
            for k, c in symbols[t].words.items():
                total[k] = total.get(k, 0) + c
        reference = {k: c for k, c in total.items() if c != 0}
        if reference:
            ratios = {t: sympy.Integer(1) if t == active[0] else sympy.Integer(0)
                      for t in active}
            total_ratio = sympy.Integer(1)
            G = sympy.simplify(G.subs({z[t]: 0 for t in active[1:]}))
    parities = {parity(word) for word in reference}
    common = dict(symbol=symbols_text, limiting=limiting, amplification=sympy.sstr(G))
    if total_ratio != 0 and len(parities) == 1:
        # one shape: every λ_t = a_t Λ(θ), Λ = λ the symbol of the whole linear part
        shape = {k: total_ratio * c for k, c in reference.items()}
        g = G.subs({z[t]: ratios[t] / total_ratio * w for t in active})
        if parities == {0}:
            return _real_shape(facts, model, program, symbols, shape, g, w, atoms,
                               symbolic_atoms, theta_list, limiting, caveats, verdict_ok,
                               common)
        return _imaginary_shape(facts, model, shape, g, w, atoms, theta_list, caveats,
                                verdict_ok, common)
    bound, theta = _sampled_bound(model, G, z, active, symbols, atoms, theta_list)
    method = ("sampled: |G| within its allowance on a θ grid (refined near the limiting "
              "wave), the first crossing in Δt to float precision for each θ")
    return _verdict(facts, bound, dt, verdict_ok, method, False, None, None, caveats, common,
                    theta)


def _real_shape(facts, model, program, symbols, shape, g, w, atoms, symbolic_atoms,
                theta_list, limiting, caveats, verdict_ok, common):
    """Every λ_t a multiple of one real Λ(θ) ∈ [lo, hi] (Λ = λ): the decaying side's
    interval β₋ of g (exact roots for a rational g), the growing side's β₊ against the
    allowance; Δt* = min(β₋/(−lo), β₊/hi)."""
    dt = model.spec.time.dt
    rng = symbol_range(symbol_of(shape, atoms), theta_list, atoms, shape)
    lo, hi = rng.minimum, rng.maximum
    if lo == 0 and hi == 0:
        return facts(None, "stable", "exact (the symbol vanishes)", exact=True,
                     amplification=common["amplification"], caveats=caveats)
    candidates = []  # (bound, side, exact interval, β)
    if lo < 0:
        beta, interval_exact = stab.real_stability_interval_of(g, w)
        bound = math.inf if beta == sympy.oo else float(beta) / -lo
        candidates.append((bound, "decaying", interval_exact, beta))
    if hi > 0:
        beta_plus = stab.growing_interval(g, w)
        candidates.append((beta_plus / hi, "growing", False, beta_plus))
    bound, side, interval_exact, beta = min(candidates, key=lambda c: c[0])
    theta = rng.argmin if side == "decaying" else rng.argmax
    exact = not caveats and rng.exact and (interval_exact or bound == math.inf)
    method = "exact" if rng.exact and interval_exact else (
        "exact symbol range; the step's interval "
        + ("numeric (exponentials)" if side == "decaying" else
           "against the growth allowance, to float precision") if rng.exact else
        "numeric range of the symbol over θ")
    if bound == math.inf:
        return facts(None, "stable", method, exact=exact, interval=math.inf,
                     caveats=caveats, **common)
    formula = None
    if (limiting is not None and side == "decaying" and interval_exact
            and not isinstance(beta, sympy.Float) and theta is not None
            and all(abs(t) < 1e-12 or abs(abs(t) - math.pi) < 1e-12 for t in theta)):
        at = {s: (0 if abs(t) < 1e-12 else sympy.pi) for s, t in zip(theta_list, theta)}
        minimum = sympy.simplify(symbol_of(symbols[limiting].formulas, symbolic_atoms).subs(at))
        if minimum != 0:
            formula = sympy.sstr(sympy.simplify(beta / -minimum))
    interval = float(beta) if side == "decaying" and beta != sympy.oo else None
    return _verdict(facts, bound, dt, verdict_ok, method, exact, formula, interval, caveats,
                    common, theta)


def _imaginary_shape(facts, model, shape, g, w, atoms, theta_list, caveats, verdict_ok,
                     common):
    """Every λ_t a multiple of one purely imaginary Λ(θ) (odd derivatives): the interval y₀
    of g on the imaginary axis over max_θ |Λ| (on a θ grid); Re λ = 0, so the allowance is
    |G| ≤ 1."""
    dt = model.spec.time.dt
    fn = stab.complex_lambdify(theta_list, symbol_of(shape, atoms))
    samples = stab.sample_thetas(len(theta_list), 2049 if len(theta_list) == 1 else 97)
    values = [abs(complex(fn(*theta)).imag) for theta in samples]
    peak = max(values)
    theta = samples[values.index(peak)]
    y0 = stab.imaginary_stability_interval(g, w)
    method = "imaginary symbol: exact interval of the step over max |λ| on a θ grid"
    if y0 == sympy.oo:
        return facts(None, "stable", method, exact=not caveats, interval=math.inf,
                     caveats=caveats, **common)
    bound = 0.0 if y0 == 0 else float(y0) / peak
    return _verdict(facts, bound, dt, verdict_ok, method, not caveats and y0 == 0, None,
                    float(y0), caveats, common, theta)


def _verdict(facts, bound, dt, verdict_ok, method, exact, formula, interval, caveats, common,
             theta=None):
    if not math.isfinite(bound):  # a tiny coefficient: the bound is beyond float64
        if bound == math.inf:
            return facts(None, "stable", method, exact=exact, formula=formula,
                         interval=interval, caveats=caveats, **common)
    if bound == 0:
        verdict = "no_stable_dt" if verdict_ok else "unknown"
    elif dt <= bound * (1 + 1e-12):
        verdict = "stable"
    else:
        verdict = "unstable" if verdict_ok else "unknown"
    return facts(bound, verdict, method, exact=exact, formula=formula, interval=interval,
                 caveats=caveats, theta=theta, **common)


def _sampled_bound(model, G, z, active, symbols, atoms, theta_list):
    """(min over θ of the first Δt > 0 at which |G(Δt λ(θ))| exceeds its allowance, the θ
    that sets it): a grid of θ (1-D: 1025 points on [0, π]; 2-D: 49 × 97 on
    [0, π] × [−π, π] — |G| is even under θ → −θ), refined by a bounded local search."""
    import numpy as np  # lazy: numpy
    from scipy.optimize import minimize  # lazy: scipy

    fns = [sympy.lambdify(theta_list, symbol_of(symbols[t].words, atoms), "numpy")
           for t in active]
    args = [z[t] for t in active]
    g_fn = sympy.lambdify(args, G, "numpy")
    if len(theta_list) == 1:
        grids = [np.linspace(0, math.pi, 1025)]
    else:
        a, b = np.meshgrid(np.linspace(0, math.pi, 49), np.linspace(-math.pi, math.pi, 97),
                           indexing="ij")
        grids = [a.ravel(), b.ravel()]

    def rates_at(points):
        return np.stack([np.broadcast_to(np.asarray(f(*points), dtype=complex),
                                         points[0].shape) for f in fns], axis=1)

    rates = rates_at(grids)
    radius = float(np.max(np.sum(np.abs(rates), axis=1)))
    if radius == 0:
        return math.inf, None
    found = stab.first_violation(g_fn, rates, radius)
    if not np.isfinite(found).any():
        return math.inf, None
    i = int(np.argmin(found))
    best, point = float(found[i]), tuple(float(gr[i]) for gr in grids)
    if best == 0:
        return 0.0, point

    def at(x):
        value = stab.first_violation(g_fn, rates_at([np.array([v]) for v in x]), radius)
        return float(value[0])

    step = [math.pi / 1024] if len(theta_list) == 1 else [math.pi / 48, math.pi / 48]
    bounds = [(max(p - s, -math.pi), min(p + s, math.pi)) for p, s in zip(point, step)]
    refined = minimize(lambda x: at(x), np.array(point), method="Nelder-Mead",
                       bounds=bounds, options={"xatol": 1e-10, "fatol": 1e-14 * best,
                                               "maxiter": 200})
    if refined.fun < best:
        best, point = float(refined.fun), tuple(float(v) for v in refined.x)
    return best, point


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
    if stab_facts.verdict == "no_stable_dt":
        warnings.append(
            f"no Δt is stable for scheme '{stab_facts.scheme}': the step grows some mode "
            "faster than the equation does at every step size (von Neumann); use a scheme "
            "whose stability region covers the spectrum (rk4 for advection) or treat the "
            "stiff terms implicitly (time.implicit)")
    elif stab_facts.verdict == "unstable":
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


def excess_on_waves(model: SymbolicModel, program: P.StepProgram, stencils, thetas, dt: float):
    """max over the given waves θ (an array (K, dims)) of |G(θ, Δt)| / allowance − 1: the
    analysis' own criterion on a chosen set of waves (a grid's modes, for ``verify``), or
    None when the analysis has no symbol.  ≤ 0: every given wave is within its allowance."""
    import numpy as np  # lazy: numpy

    theta_symbols, symbols, _keys, atoms = _term_symbols(model, stencils)
    if any(s.nonconstant for s in symbols.values()):
        return None
    active = [t for t in program.terms if symbols[t].active]
    if not active:
        return None
    z, G = _amplification(program, active)
    g_fn = sympy.lambdify([z[t] for t in active], G, "numpy")
    points = [np.asarray(thetas, dtype=float)[:, i] for i in range(len(model.axes))]
    rates = np.stack([np.broadcast_to(np.asarray(sympy.lambdify(
        list(theta_symbols.values()), symbol_of(symbols[t].words, atoms), "numpy")(*points),
        dtype=complex), points[0].shape) for t in active], axis=1)
    with np.errstate(all="ignore"):
        value = np.abs(np.broadcast_to(g_fn(*[dt * rates[:, i] for i in range(len(active))]),
                                       points[0].shape))
        allowed = stab.allowance(dt * rates.sum(axis=1))
    finite = np.isfinite(allowed)
    if not finite.any():
        return None
    return float(np.max(value[finite] / allowed[finite]) - 1)
