"""``pdelang check SPEC [--set …] [--json] [--latex]`` — never imports torch."""

from __future__ import annotations

import json

import sympy

from pdelang.discrete.discretize import discretize
from pdelang.driver import front_end
from pdelang.spec.load import load_spec


def configure(parser) -> None:
    from pdelang.cli.main import add_common
    add_common(parser)
    parser.add_argument("--latex", action="store_true", help="print the equation in LaTeX")


def report(spec, symbolic, analysis) -> dict:
    return {
        "spec": spec.file,
        "name": spec.name,
        "equation": spec.equation.text.strip(),
        "equation_expanded": f"dt({spec.field.name}) = {sympy.sstr(symbolic.rhs)}",
        "terms": [{"name": t.name, "expression": t.expression, "linear": t.linear,
                   "local": t.local, "order": t.order, "operators": list(t.operators),
                   "learnable": list(t.learnable)} for t in analysis.terms],
        "stencils": {k: v.to_json() for k, v in analysis.stencils.items()},
        "stability": analysis.stability.to_json(),
        "warnings": list(analysis.warnings),
    }


def latex(spec, symbolic) -> str:
    lhs = rf"\partial_t {spec.field.name}"
    terms = " + ".join(sympy.latex(t.expr) for t in symbolic.terms)
    return f"{lhs} = {terms}".replace("+ -", "- ")


def format_text(data: dict) -> str:
    lines = [f"{data['spec']}: {data['name']}", f"equation: {data['equation']}",
             f"          {data['equation_expanded']}", "terms:"]
    width = max((len(t["name"]) for t in data["terms"]), default=4)
    for t in data["terms"]:
        linearity = "linear" if t["linear"] else "nonlinear"
        locality = "local" if t["local"] else "non-local"
        kind = f"{linearity:9} {locality:9}"
        learn = f"  learnable: {', '.join(t['learnable'])}" if t["learnable"] else ""
        lines.append(f"  {t['name']:<{width}}  {kind} order {t['order']}  "
                     f"= {t['expression']}{learn}")
    if data["stencils"]:
        lines.append("stencils:")
        for key, s in data["stencils"].items():
            lines.append(f"  {key}: offsets {s['offsets']}  weights [{', '.join(s['weights'])}]"
                         f" / h^{s['derivative']}  accuracy {s['accuracy']}  order {s['order']}")
            lines.append(f"    leading error: {s['leading_error']}")
    st = data["stability"]
    if st["max_stable_dt"] is None:
        lines.append(f"stability ({st['scheme']}): no linear differential part; no Δt bound")
    else:
        formula = f"{st['formula']} = " if st["formula"] else ""
        verdict = "stable" if st["stable"] else "UNSTABLE"
        lines.append(f"stability ({st['scheme']}): Δt = {st['dt']:g}, max stable Δt = "
                     f"{formula}{st['max_stable_dt']:.6g} → {verdict}  [{st['method']}]")
        lines.append(f"  symbol λ(θ) = {st['symbol']}")
    for w in data["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def execute(args) -> int:
    spec = load_spec(args.spec, args.overrides)
    _, symbolic, analysis = front_end(spec)
    discretize(symbolic, analysis)  # what compile would refuse, check refuses too (no torch)
    data = report(spec, symbolic, analysis)
    if args.latex:
        data["latex"] = latex(spec, symbolic)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(format_text(data))
        if args.latex:
            print(f"latex: {data['latex']}")
    return 0
