"""Stage ``discretize``: symbolic IR + step program + analysis → discrete IR.

* SymPy expressions become plain expression trees over the discrete operators: each
  operator call becomes the node its operator's ``discretize`` gives (a derivative becomes
  the stencil the analysis derived, with exact rational weights; a learned operator a module
  of the layer; an elementwise function of a constant folds to its value).
* The step program (from ``schedule``) is carried over as it is; the terms it treats
  implicitly get their linear structure ``c₀ u + Σ_i c_i S_i(u)`` (:class:`ImplicitTerm`).
* The normalization stabilizer's placement comes with the program's norm modules.
"""

from __future__ import annotations

import math
from fractions import Fraction

import sympy
from sympy.core.function import AppliedUndef

from pdelang.compiler.analysis.analyse import Analysis
from pdelang.compiler.codegen.names import check_parameter_names
from pdelang.compiler.discrete import ir as D
from pdelang.errors import AnalysisError, SpecError
from pdelang.compiler.frozen import frozen_dict
from pdelang.compiler.operators import OPERATORS, operator_of
from pdelang.compiler.schemes.program import StepProgram
from pdelang.compiler.schemes.schedule import linear_structure
from pdelang.compiler.symbolic.ir import SymbolicModel


def _number(value: sympy.Expr) -> Fraction | float:
    if value.is_Rational:
        return Fraction(int(value.p), int(value.q))
    return float(value)


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
    op = operator_of(expr)
    if op is not None:
        return op.discretize(expr, to_discrete(expr.args[0], model), model)
    raise AnalysisError(f"cannot discretize {expr}")  # pragma: no cover


def _finite(expr_of, name: str, model: SymbolicModel) -> D.DExpr:
    """A discrete expression whose constants are finite float64 numbers (infinite SymPy
    constants such as ``zoo`` were refused by the analysis already)."""
    where = model.spec.where(f"terms.{name}")
    try:
        expr = expr_of()
        finite = all(_finite_node(n) for n in D.walk(expr))
    except (OverflowError, ValueError, ZeroDivisionError):
        finite = False
    if not finite:
        raise SpecError(f"a constant of term '{name}' overflows float64", where,
                        "scale the term's constants down")
    return expr


def _finite_node(node) -> bool:
    """A constant, or a power of a constant, that float64 holds (a power is evaluated
    where the generated module runs: ``pi ** 1000000`` would raise there)."""
    if isinstance(node, D.Const):
        return math.isfinite(float(node.value))
    if isinstance(node, D.Power):
        exponent = float(node.exponent)
        if not math.isfinite(exponent):
            return False
        if isinstance(node.base, D.Const):
            return math.isfinite(float(node.base.value) ** exponent)
    return True


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
            spacing=model.spec.grid.spacing, accuracy=s.accuracy, order=s.order,
            attribute=facts.attribute, operator=facts.operator)
    return out


def _implicit_terms(model: SymbolicModel, program: StepProgram) -> tuple[D.ImplicitTerm, ...]:
    out = []
    for name in program.implicit:
        zero_order, parts = linear_structure(model.term(name).expr, model.u)
        out.append(D.ImplicitTerm(
            name,
            _finite(lambda z=zero_order: to_discrete(z, model), name, model),
            tuple((_finite(lambda c=c: to_discrete(c, model), name, model),
                   tuple(operator_of(call).key(call) for call in word)) for c, word in parts)))
    return tuple(out)


def _module(instance) -> D.OperatorModule:
    """A call site with its operator's facts about the call."""
    operator = OPERATORS[instance.op]
    options = frozen_dict(instance.options)
    return D.OperatorModule(instance.name, instance.op, options, operator.category,
                            operator.records_attention, operator.is_causal(options),
                            operator.attention_heads(options))


def discretize(model: SymbolicModel, program: StepProgram, analysis: Analysis) -> D.DiscreteModel:
    spec = model.spec
    normalized = {t for n in program.norms for t in n.terms}
    terms = tuple(D.DiscreteTerm(t.name, _finite(lambda t=t: to_discrete(t.expr, model),
                                                 t.name, model), t.name in normalized)
                  for t in model.terms)
    modules = tuple(_module(i) for i in sorted(model.instances.values(), key=lambda i: i.name)
                    if any(isinstance(n, D.ApplyModule) and n.module == i.name
                           for t in terms for n in D.walk(t.expr)))
    parameters = tuple(D.ScalarParameter(p.name, p.value, p.learnable, p.positive, p.per_layer,
                                         p.basis)
                       for p in spec.parameters.values()
                       if any(isinstance(n, D.Param) and n.name == p.name
                              for t in terms for n in D.walk(t.expr)))
    stencils = _stencils(model, analysis)
    radius = max([s.radius for s in stencils.values()]
                 + [OPERATORS[m.op].stencil_radius(m.options, spec.accuracy) for m in modules],
                 default=0)
    norm = spec.stabilizers.norm
    facts = {
        "stencils": {k: v.to_json() for k, v in analysis.stencils.items()},
        "stability": analysis.stability.to_json(),
        "terms": [{"name": t.name, "linear": t.linear, "local": t.local, "order": t.order}
                  for t in analysis.terms],
    }
    discrete = D.DiscreteModel(
        name=spec.name, class_name=spec.class_name, description=spec.description,
        spec_file=spec.file, spec_sha256=spec.sha256, equation=spec.equation.text.strip(),
        channels=spec.field.channels, axes=spec.grid.axes, shape=spec.grid.shape,
        spacing=spec.grid.spacing, boundary=spec.grid.boundary,
        extra_tokens=spec.grid.extra_tokens, dt=spec.time.dt, layers=spec.time.layers,
        substeps=spec.time.substeps, residual=spec.stabilizers.residual,
        norm=D.NormStabilizer(norm.kind, norm.placement, norm.eps, norm.affine, norm.final),
        terms=terms, program=program, parameters=parameters, modules=modules,
        stencils=frozen_dict(stencils), implicit=_implicit_terms(model, program),
        stencil_radius=radius, t0=spec.time.span[0], tied=spec.time.tied, facts=frozen_dict(facts),
        padding=spec.grid.padding,
    )
    check_parameter_names(spec, discrete)
    return discrete
