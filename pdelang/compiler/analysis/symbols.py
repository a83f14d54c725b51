"""Von Neumann symbols of the terms, built by composition, and their exact ranges.

A term's linear, constant-coefficient part is a polynomial in stencils
(:mod:`pdelang.compiler.symbolic.linear`): ``L = c₀ + Σ_w c_w S_{w_1} ⋯ S_{w_k}``.  On a
Fourier mode
e^{iθ·x} each stencil ``S`` is the number σ_S(θ) (its operator's ``von_neumann``: the
stencil's symbol over h^k, summed over the axes it acts on), so

    λ(θ) = c₀ + Σ_w c_w Π_j σ_{w_j}(θ)

— a product of stencils has the product symbol, a sum the sum, a parameter is a factor,
``diff`` along different axes multiplies symbols of different θ_a (2-D ``laplace(laplace)``
keeps its cross term 2σ_xσ_y, which the composed stencil really applies).  A word is real
when its total derivative order is even, purely imaginary when odd.

:func:`symbol_range` gives min/max over θ of a real symbol: exactly (Chebyshev polynomials
in cos θ, the real roots of the derivative) in 1-D, for separable 2-D symbols, and for a
polynomial in one stencil's symbol (``laplace(laplace(u))`` in 2-D: a polynomial in
σ_x + σ_y, whose range is a box sum); numerically otherwise (said in ``exact``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from pdelang.compiler.operators import operator_of
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.symbolic.linear import linear_form

__all__ = ["Range", "TermSymbol", "operator_calls", "symbol_range", "term_symbol"]


@dataclass
class TermSymbol:
    """What the analysis knows of one term's linear, constant-coefficient part.

    ``words``: canonical word (sorted stencil keys; ``()`` for the zero-order part) → exact
    coefficient (parameter values substituted); ``formulas``: the same with the parameter
    symbols; ``left_out``: pieces that do not enter the symbol (nonlinear, learned,
    constant); ``nonconstant``: why the term has no symbol at all (a derivative entering
    nonlinearly), else None."""

    name: str
    words: dict = field(default_factory=dict)
    formulas: dict = field(default_factory=dict)
    left_out: list = field(default_factory=list)
    nonconstant: str | None = None
    derivatives: dict = field(default_factory=dict)  # stencil key → derivative order

    @property
    def active(self) -> bool:
        return bool(self.words)

    def parity(self, word) -> int:
        return sum(self.derivatives[k] for k in word) % 2


def _values(model) -> dict:
    values = {sym: sympy.Rational(str(model.spec.parameters[name].value))
              for name, sym in model.parameters.items()}
    values[model.h] = sympy.Rational(str(model.spec.grid.spacing))
    return values


def call_text(call, model) -> str:
    """An operator call as the user wrote it: ``laplace(u**2)``, ``diff(u**2, x, 2)``."""
    op = operator_of(call)
    # (printed, then u(x) renamed: substituting a symbol would re-evaluate the operators)
    operand = sympy.sstr(call.args[0]).replace(sympy.sstr(model.u), model.spec.field.name)
    options = op.options_of(call, model)
    extra = [str(options["axis"]), str(options["order"])] if "axis" in options else []
    return f"{op.name}({', '.join([operand, *extra])})"


def operator_calls(expr) -> list:
    """Every operator call in ``expr`` (with its operator), in a canonical order."""
    atoms = expr.atoms(OperatorCall) | expr.atoms(sympy.tanh, sympy.exp)
    out = [(atom, operator_of(atom)) for atom in sorted(atoms, key=sympy.default_sort_key)]
    return [(atom, op) for atom, op in out if op is not None]


def term_symbol(term, model) -> TermSymbol:
    """The term's linear, constant-coefficient part as canonical words (see the class)."""
    values = _values(model)
    out = TermSymbol(term.name)
    for piece in sympy.Add.make_args(sympy.expand(term.expr)):
        form = linear_form(piece, model.u)
        if form is not None:
            for word, coefficient in form.words:
                key = tuple(sorted(operator_of(c).key(c) for c in word))
                for c in word:
                    out.derivatives[operator_of(c).key(c)] = _derivative(c, model)
                value = sympy.nsimplify(coefficient.subs(values)) if coefficient.free_symbols \
                    else coefficient
                out.words[key] = out.words.get(key, 0) + value
                out.formulas[key] = out.formulas.get(key, 0) + coefficient
            continue
        nested = [c for c, op in operator_calls(piece) if op.constant_coefficient]
        if nested:
            out.nonconstant = (f"the derivative {call_text(nested[0], model)} enters term "
                               f"'{term.name}' nonlinearly (or with a field-dependent "
                               "coefficient): it has no von Neumann symbol")
            continue
        learned = sorted({op.name for _, op in operator_calls(piece) if op.learned})
        if learned:
            out.left_out.append(f"{', '.join(learned)} in '{term.name}' (learned)")
        elif not piece.has(model.u):
            out.left_out.append(f"the constant {sympy.sstr(piece)} in '{term.name}'")
        else:
            out.left_out.append(f"the nonlinear part {sympy.sstr(piece)} of '{term.name}'")
    out.words = {k: v for k, v in out.words.items() if v != 0}
    for value in out.words.values():
        try:
            finite = math.isfinite(float(value))
        except (OverflowError, TypeError):
            finite = False
        if not finite:
            out.nonconstant = (f"the coefficient {sympy.sstr(value)} of term '{term.name}' "
                               "is beyond float64: no symbol to analyse")
    out.formulas = {k: v for k, v in out.formulas.items() if k in out.words}
    return out


def _derivative(call, model) -> int:
    op = operator_of(call)
    return op.differential_order(op.options_of(call, model))


# ----------------------------------------------------------------------------- symbols
def atom_symbols(model, stencils, thetas, keys, symbolic_h: bool = False) -> dict:
    """stencil key → σ(θ) (over h^k; the spacing's value unless ``symbolic_h``)."""
    h_value = sympy.Rational(str(model.spec.grid.spacing))
    out = {}
    for term in model.terms:
        for piece in sympy.Add.make_args(sympy.expand(term.expr)):
            form = linear_form(piece, model.u)
            if form is None:
                continue
            for word, _c in form.words:
                for call in word:
                    op = operator_of(call)
                    key = op.key(call)
                    if key in keys and key not in out:
                        parts = op.von_neumann(call, model, stencils, thetas)
                        sigma = sympy.Add(*[symbol for _axis, symbol, _stencil in parts])
                        out[key] = sigma if symbolic_h else sigma.subs(model.h, h_value)
    return out


def symbol_of(words: dict, atoms: dict) -> sympy.Expr:
    """Σ_w c_w Π σ_{w_j}."""
    return sympy.Add(*[c * sympy.Mul(*[atoms[k] for k in w]) for w, c in words.items()])


# ----------------------------------------------------------------------------- ranges
@dataclass(frozen=True)
class Range:
    """min/max over θ of a real symbol, where they are attained, and whether exactly."""

    minimum: float
    maximum: float
    exact: bool
    argmin: tuple[float, ...] | None = None
    argmax: tuple[float, ...] | None = None
    minimum_exact: sympy.Expr | None = None
    maximum_exact: sympy.Expr | None = None


def _cos_polynomial(expr, thetas):
    """expr (a real trigonometric polynomial in each θ) as a polynomial in c_a = cos θ_a."""
    cs = [sympy.Symbol(f"c_{i}", real=True) for i in range(len(thetas))]
    out = sympy.expand(sympy.expand_trig(expr.rewrite(sympy.cos)))
    for theta, c in zip(thetas, cs):
        out = out.replace(lambda e, th=theta: isinstance(e, sympy.cos) and e.args[0].has(th),
                          lambda e, th=theta, cc=c: sympy.chebyshevt(int(e.args[0] / th), cc))
        out = sympy.expand(out.subs(sympy.cos(theta), c))
    if any(out.has(t) for t in thetas):
        return None, cs
    return sympy.Poly(out, *cs), cs


def _univariate_extremes(poly: sympy.Poly, lo, hi):
    """Candidate points (exact) of a univariate polynomial's extremes on [lo, hi]."""
    points = [lo, hi]
    derivative = poly.diff(poly.gens[0])
    if derivative.degree() > 0:
        points += [r for r in derivative.real_roots() if lo < r < hi]
    return points


def symbol_range(expr: sympy.Expr, thetas: list, atoms: dict | None = None,
                 words: dict | None = None) -> Range:
    """min/max of a real symbol over θ ∈ [−π, π]^d (see the module docstring)."""
    expr = sympy.expand(expr)
    used = [t for t in thetas if expr.has(t)]
    if not used:
        value = sympy.nsimplify(expr)
        zero = tuple(0.0 for _ in thetas)
        return Range(float(value), float(value), True, zero, zero, value, value)
    # a polynomial in one stencil's symbol (laplace(laplace(u)) in 2-D)
    if words is not None and atoms is not None:
        keys = {k for w in words for k in w}
        if len(keys) == 1:
            (key,) = keys
            inner = symbol_range(atoms[key], thetas)
            if inner.exact:
                s = sympy.Symbol("s", real=True)
                q = sympy.Poly(sympy.expand(sympy.Add(*[c * s ** len(w)
                                                        for w, c in words.items()])), s)
                points = _univariate_extremes(q, inner.minimum_exact, inner.maximum_exact)
                values = [(q.eval(p), p) for p in points]
                lo_v, lo_p = min(values, key=lambda v: float(v[0]))
                hi_v, hi_p = max(values, key=lambda v: float(v[0]))

                def where(p):
                    if p == inner.minimum_exact:
                        return inner.argmin
                    if p == inner.maximum_exact:
                        return inner.argmax
                    return None  # an interior level set of the stencil's symbol
                return Range(float(lo_v), float(hi_v), True, where(lo_p), where(hi_p),
                             lo_v, hi_v)
    poly, cs = _cos_polynomial(expr, thetas)
    if poly is not None:
        present = [c for c in cs if poly.degree(c) > 0]
        separable = all(sum(1 for c in cs if m[cs.index(c)]) <= 1 for m in poly.monoms())
        if len(present) == 1 or separable:
            lo_total, hi_total = sympy.Integer(0), sympy.Integer(0)
            argmin, argmax = [0.0] * len(cs), [0.0] * len(cs)
            constant = poly.coeff_monomial(1)
            for i, c in enumerate(cs):
                part = sympy.Poly(sum((coef * c ** m[i] for m, coef in poly.terms()
                                       if m[i] and not any(m[j] for j in range(len(cs))
                                                           if j != i)), sympy.Integer(0)), c)
                if part.is_zero or part.degree() <= 0:
                    continue
                points = _univariate_extremes(part, sympy.Integer(-1), sympy.Integer(1))
                values = [(part.eval(p), p) for p in points]
                lo_v, lo_p = min(values, key=lambda v: float(v[0]))
                hi_v, hi_p = max(values, key=lambda v: float(v[0]))
                lo_total += lo_v
                hi_total += hi_v
                argmin[i] = math.acos(float(lo_p))
                argmax[i] = math.acos(float(hi_p))
            lo_total += constant
            hi_total += constant
            return Range(float(lo_total), float(hi_total), True, tuple(argmin),
                         tuple(argmax), sympy.nsimplify(lo_total), sympy.nsimplify(hi_total))
    return _numeric_range(expr, thetas)


def _numeric_range(expr, thetas) -> Range:
    """min/max on a fine θ grid, refined by a bounded local search (not exact)."""
    import numpy as np  # lazy: numpy
    from scipy.optimize import minimize  # lazy: scipy

    fn = sympy.lambdify(thetas, expr, "numpy")
    n = 257 if len(thetas) == 2 else 4097
    axis = np.linspace(-math.pi, math.pi, n)
    grids = np.meshgrid(*([axis] * len(thetas)), indexing="ij")
    values = np.real(np.broadcast_to(fn(*grids), grids[0].shape))
    out = []
    for sign in (1, -1):
        index = np.unravel_index(np.argmin(sign * values), values.shape)
        start = [g[index] for g in grids]
        found = minimize(lambda x, s=sign: s * float(np.real(fn(*x))), start,
                         bounds=[(-math.pi, math.pi)] * len(thetas), method="L-BFGS-B")
        best = min(sign * values[index], found.fun)
        point = tuple(found.x) if found.fun <= sign * values[index] else tuple(start)
        out.append((sign * best, point))
    (lo, lo_at), (hi, hi_at) = out
    return Range(float(lo), float(hi), False, lo_at, hi_at, None, None)


def growth_rate(words_by_term: dict, atoms: dict, thetas: list, parity) -> Range:
    """The range of Re λ(θ) of the whole linear part (λ = Σ over the terms): its maximum is
    the semi-discrete equation's own fastest growth rate."""
    total: dict = {}
    for words in words_by_term.values():
        for w, c in words.items():
            if parity(w) == 0:
                total[w] = total.get(w, 0) + c
    total = {w: c for w, c in total.items() if c != 0}
    if not total:
        zero = tuple(0.0 for _ in thetas)
        return Range(0.0, 0.0, True, zero, zero, sympy.Integer(0), sympy.Integer(0))
    return symbol_range(symbol_of(total, atoms), thetas, atoms, total)
