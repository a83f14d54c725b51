"""Stage ``discretize``: symbolic IR + analysis → discrete IR.

* SymPy expressions become plain expression trees over the discrete operators; each
  derivative becomes the stencil the analysis derived (exact rational weights).
* The time scheme becomes a step program: a list of split sub-steps (``lie``: each term
  in ``split_order`` with the full Δt; ``strang``: half steps of all but the last term,
  a full step of the last, then the half steps in reverse) or a Butcher tableau
  (``euler``, ``rk2`` — Heun, ``rk4`` — classical).
* The stabilizers are placed as DESIGN.md says: residual or replacement, normalization
  ``pre`` (inside the vector field of each normalized term) or ``post`` (a projection after
  each sub-step of a normalized term, or after each full Runge–Kutta step).
"""

from __future__ import annotations

import math
from fractions import Fraction

import sympy
from sympy.core.function import AppliedUndef

from pdelang.analysis.analyse import Analysis, stencil_key
from pdelang.discrete import ir as D
from pdelang.errors import AnalysisError, SpecError, did_you_mean
from pdelang.frozen import frozen_dict
from pdelang.operators.registry import OPERATORS
from pdelang.symbolic import functions as F
from pdelang.symbolic.ir import SymbolicModel


def _number(value: sympy.Expr) -> Fraction | float:
    if value.is_Rational:
        return Fraction(int(value.p), int(value.q))
    return float(value)


_ELEMENTWISE_VALUES = {
    "tanh": math.tanh,
    "exp": math.exp,
    "relu": lambda x: max(x, 0.0),
    "gelu": lambda x: 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))),  # exact (erf) GELU
    "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)),
}


def _elementwise(func: str, operand: D.DExpr) -> D.DExpr:
    """An elementwise function node; of a constant (``gelu(u - u)`` is Gelu(0)), its value."""
    if isinstance(operand, D.Const):
        return D.Const(_ELEMENTWISE_VALUES[func](float(operand.value)))
    return D.Elementwise(func, operand)


def to_discrete(expr: sympy.Expr, model: SymbolicModel) -> D.DExpr:
    """SymPy expression → discrete expression tree."""
    if expr.is_Number or expr is sympy.pi or expr is sympy.E:
        return D.Const(_number(sympy.nsimplify(expr)) if expr.is_Rational else float(expr))
    if isinstance(expr, sympy.Symbol):
        if expr.name in model.parameters:
            return D.Param(expr.name)
        raise AnalysisError(f"unexpected symbol {expr} in a term")  # pragma: no cover
    if isinstance(expr, AppliedUndef):
        return D.State()
    if expr.is_Add:
        return D.Sum(tuple(to_discrete(a, model) for a in expr.args))
    if expr.is_Mul:
        return D.Product(tuple(to_discrete(a, model) for a in expr.args))
    if expr.is_Pow:
        base, exponent = expr.args
        if not exponent.is_number:
            raise AnalysisError(f"the exponent of {expr} must be a number")
        return D.Power(to_discrete(base, model), _number(exponent))
    if isinstance(expr, (sympy.tanh, sympy.exp)):
        return _elementwise(type(expr).__name__, to_discrete(expr.args[0], model))
    if isinstance(expr, (F.Relu, F.Gelu, F.Sigmoid)):
        return _elementwise(expr.op_name, to_discrete(expr.args[0], model))
    if isinstance(expr, (F.Laplace, F.Diff)):
        return D.ApplyStencil(stencil_key(expr), to_discrete(expr.args[0], model))
    if isinstance(expr, F.OperatorCall):
        instance = model.instances[str(expr.args[1])]
        return D.ApplyModule(instance.name, instance.op, to_discrete(expr.args[0], model))
    raise AnalysisError(f"cannot discretize {expr}")  # pragma: no cover


def _term_expr(term, model: SymbolicModel) -> D.DExpr:
    """A term's discrete expression; its constants must be finite float64 numbers (infinite
    SymPy constants such as ``zoo`` were refused by the analysis already)."""
    where = model.spec.where(f"terms.{term.name}")
    try:
        expr = to_discrete(term.expr, model)
    except (OverflowError, ValueError):
        expr = None
    if expr is None or any(isinstance(n, D.Const) and not math.isfinite(float(n.value))
                           for n in D.walk(expr)):
        raise SpecError(f"a constant of term '{term.name}' overflows float64", where,
                        "scale the term's constants down")
    return expr


def _stencils(model: SymbolicModel, analysis: Analysis) -> dict[str, D.DiscreteStencil]:
    out = {}
    axes = model.spec.grid.axes
    for key, facts in analysis.stencils.items():
        s = facts.stencil
        out[key] = D.DiscreteStencil(
            key=key, derivative=s.derivative,
            axes=tuple(axes.index(a) for a in facts.axes),
            offsets=s.offsets,
            weights=tuple(Fraction(int(w.p), int(w.q)) for w in s.weights),
            spacing=model.spec.grid.spacing, accuracy=s.accuracy, order=s.order)
    return out


def _program(model: SymbolicModel) -> D.StepProgram:
    scheme = model.spec.time.scheme
    if scheme in D.TABLEAUS:
        return D.StepProgram(scheme, tableau=D.TABLEAUS[scheme])
    order = list(model.split_order)
    if scheme == "lie":
        return D.StepProgram(scheme, split_steps=tuple(D.SplitStep(t, Fraction(1)) for t in order))
    half = [D.SplitStep(t, Fraction(1, 2)) for t in order[:-1]]
    return D.StepProgram(scheme, split_steps=tuple(
        half + [D.SplitStep(order[-1], Fraction(1))] + half[::-1]))


def _normalized_terms(model: SymbolicModel) -> set[str]:
    norm = model.spec.stabilizers.norm
    names = [t.name for t in model.terms]
    if norm.kind == "none":
        return set()
    if norm.terms is not None:
        for i, name in enumerate(norm.terms):
            if name not in names:
                raise SpecError(f"'stabilizers.norm.terms' names '{name}', which is not a "
                                "term of the equation",
                                model.spec.where(f"stabilizers.norm.terms[{i}]"),
                                did_you_mean(name, names))
        return set(norm.terms)
    learned = {"attention", "mlp", "linear"}
    return {t.name for t in model.terms
            if any(isinstance(c, F.OperatorCall) and c.op_name in learned
                   for c in t.expr.atoms(F.OperatorCall))}


def discretize(model: SymbolicModel, analysis: Analysis) -> D.DiscreteModel:
    spec = model.spec
    normalized = _normalized_terms(model)
    terms = tuple(D.DiscreteTerm(t.name, _term_expr(t, model), t.name in normalized)
                  for t in model.terms)
    modules = tuple(D.OperatorModule(i.name, i.op, frozen_dict(i.options))
                    for i in sorted(model.instances.values(), key=lambda i: i.name)
                    if any(isinstance(n, D.ApplyModule) and n.module == i.name
                           for t in terms for n in D.walk(t.expr)))
    parameters = tuple(D.ScalarParameter(p.name, p.value, p.learnable, p.positive, p.per_layer)
                       for p in spec.parameters.values()
                       if any(isinstance(n, D.Param) and n.name == p.name
                              for t in terms for n in D.walk(t.expr)))
    stencils = _stencils(model, analysis)
    generated = ({m.name for m in modules} | {s.attribute for s in stencils.values()}
                 | {f"f_{t.name}" for t in terms} | {f"norm_{t.name}" for t in terms})
    for p in parameters:
        if p.name in generated:
            raise SpecError(f"parameter '{p.name}' has the name of a generated submodule or "
                            "method", spec.where(f"parameters.{p.name}#key")
                            or spec.where(f"parameters.{p.name}"),
                            f"rename it, e.g. '{p.name}_param'")
    norm = spec.stabilizers.norm
    for name, module in ((m.name, m) for m in modules):
        assert OPERATORS[module.op].learned, name
    facts = {
        "stencils": {k: v.to_json() for k, v in analysis.stencils.items()},
        "stability": analysis.stability.to_json(),
        "terms": [{"name": t.name, "linear": t.linear, "local": t.local, "order": t.order}
                  for t in analysis.terms],
    }
    return D.DiscreteModel(
        name=spec.name, class_name=spec.class_name, description=spec.description,
        spec_file=spec.file, spec_sha256=spec.sha256, equation=spec.equation.text.strip(),
        channels=spec.field.channels, axes=spec.grid.axes, shape=spec.grid.shape,
        spacing=spec.grid.spacing, boundary=spec.grid.boundary,
        extra_tokens=spec.grid.extra_tokens, dt=spec.time.dt, layers=spec.time.layers,
        substeps=spec.time.substeps, residual=spec.stabilizers.residual,
        norm=D.NormStabilizer(norm.kind, norm.placement, norm.eps, norm.affine, norm.final),
        terms=terms, program=_program(model), parameters=parameters, modules=modules,
        stencils=frozen_dict(stencils), facts=frozen_dict(facts),
    )
