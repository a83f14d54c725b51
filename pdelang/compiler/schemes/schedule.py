"""Stage ``schedule``: symbolic IR → the step program of one time step.

The spec's ``time.scheme`` names a generator in :data:`pdelang.compiler.schemes.SCHEMES` (an unknown
name is a located error, never a default); the generator gets the terms of the equation,
``time.split_order``, the terms named in ``time.implicit``, the residual switch and the norm
modules of the normalization stabilizer, and returns the program every backend interprets.

Checked here, with the spec's locations:

* ``time.implicit`` names terms of the equation, each a linear, constant-coefficient term
  ``c₀ u + Σ_w c_w S_w(u)``: field-free coefficients ``c`` (numbers and parameters) times the
  field or a composition of fixed stencils of it (``laplace``, ``diff``, nested); anything
  else cannot be solved implicitly;
* explicit schemes (euler, rk2, rk4) take no implicit terms; IMEX schemes need at least one;
* an implicit term cannot carry the normalization (a projection is not linear).
"""

from __future__ import annotations

import sympy

from pdelang.errors import SpecError, did_you_mean
from pdelang.compiler.operators import operator_of
from pdelang.compiler.schemes import SCHEMES
from pdelang.compiler.schemes import program as P
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.symbolic.linear import linear_form
from pdelang.compiler.symbolic.ir import SymbolicModel


def linear_structure(expr: sympy.Expr, u: sympy.Expr):
    """``(c₀, [(c_w, word_w)])`` if ``expr = c₀ u + Σ_w c_w S_w(u)`` with field-free
    coefficients and words ``S_w`` of constant-coefficient stencils (``laplace(u)``,
    ``laplace(laplace(u))``, ``diff(laplace(u), x)``: :mod:`pdelang.compiler.symbolic.linear`), each
    word a tuple of unit calls, outer first; else ``(None, offending piece)``."""
    zero_order = sympy.Integer(0)
    parts = []
    for piece in sympy.Add.make_args(sympy.expand(expr)):
        form = linear_form(piece, u)
        if form is None:
            return None, piece
        for word, coefficient in form.words:
            if word:
                parts.append((coefficient, word))
            else:
                zero_order += coefficient
    return zero_order, parts


def normalized_terms(model: SymbolicModel) -> tuple[str, ...]:
    """The terms the normalization stabilizer acts on, in equation order: the spec's
    ``stabilizers.norm.terms``, or every term with a learned operator (not a norm)."""
    norm = model.spec.stabilizers.norm
    names = [t.name for t in model.terms]
    if norm.kind == "none":
        return ()
    if norm.terms is not None:
        for i, name in enumerate(norm.terms):
            if name not in names:
                raise SpecError(f"'stabilizers.norm.terms' names '{name}', which is not a "
                                "term of the equation",
                                model.spec.where(f"stabilizers.norm.terms[{i}]"),
                                did_you_mean(name, names))
        return tuple(n for n in names if n in norm.terms)
    chosen = []
    for term in model.terms:
        calls = [operator_of(c) for c in term.expr.atoms(OperatorCall)]
        if any(op is not None and op.learned and op.category != "norm" for op in calls):
            chosen.append(term.name)
    return tuple(chosen)


def _implicit_terms(model: SymbolicModel, scheme) -> tuple[str, ...]:
    spec = model.spec
    names = [t.name for t in model.terms]
    requested = spec.time.implicit
    if requested and scheme.implicit == "never":
        raise SpecError(
            f"scheme '{scheme.name}' is explicit: it cannot treat {', '.join(requested)} "
            "implicitly", spec.where("time.implicit"),
            "use lie or strang (exact flows) or imex_euler / imex_ars222 (implicit stages)")
    if not requested and scheme.implicit == "required":
        raise SpecError(f"scheme '{scheme.name}' needs the stiff linear terms in "
                        "'time.implicit'", spec.where("time.scheme"),
                        "add e.g. 'implicit: [diffusion]' under time, or use scheme euler")
    for i, name in enumerate(requested):
        where = spec.where(f"time.implicit[{i}]")
        if name not in names:
            raise SpecError(f"'time.implicit' names '{name}', which is not a term of the "
                            "equation", where, did_you_mean(name, names))
        if requested.index(name) != i:
            raise SpecError(f"'time.implicit' lists '{name}' twice", where)
        zero_order, parts = linear_structure(model.term(name).expr, model.u)
        if zero_order is None:
            raise SpecError(
                f"term '{name}' cannot be treated implicitly: {sympy.sstr(parts)} is not a "
                "constant coefficient times the field or fixed stencils of it", where,
                "implicit terms are linear with constant coefficients, built from laplace, "
                "diff (nested as you like), numbers and parameters; leave the others "
                "explicit")
        if not parts:
            raise SpecError(f"term '{name}' has no derivative: nothing stiff to treat "
                            "implicitly", where, "leave it explicit")
    return tuple(n for n in names if n in requested)


def _norm_modules(model: SymbolicModel, scheme, implicit) -> tuple[P.NormModule, ...]:
    norm = model.spec.stabilizers.norm
    if norm.kind == "none":
        return ()
    terms = normalized_terms(model)
    listed = list(norm.terms or ())
    for name in terms:
        if name in implicit:
            where = model.spec.where(f"stabilizers.norm.terms[{listed.index(name)}]"
                                     if name in listed else "stabilizers.norm.terms")
            raise SpecError(f"term '{name}' is implicit and cannot be normalized (a "
                            "projection is not linear)", where,
                            f"leave '{name}' out of stabilizers.norm.terms")
    if norm.placement == "pre" or scheme.kind == "splitting":
        return tuple(P.NormModule(f"norm_{t}", norm.placement, (t,)) for t in terms)
    # one projection after each whole Runge–Kutta step
    return (P.NormModule("norm", "post", terms),)


def schedule(model: SymbolicModel) -> P.StepProgram:
    """The step program of a spec's time scheme with its stabilizers."""
    spec = model.spec
    scheme = SCHEMES.get(spec.time.scheme)
    if scheme is None:
        raise SpecError(f"unknown time scheme '{spec.time.scheme}'", spec.where("time.scheme"),
                        did_you_mean(spec.time.scheme, SCHEMES))
    implicit = _implicit_terms(model, scheme)
    norms = _norm_modules(model, scheme, implicit)
    terms = tuple(t.name for t in model.terms)
    return scheme.program(terms, model.split_order, implicit, spec.stabilizers.residual, norms)

