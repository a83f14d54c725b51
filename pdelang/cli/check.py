"""``pdelang check SPEC [--set …] [--json] [--latex]`` — never imports torch."""

from __future__ import annotations

import json

import sympy

from pdelang.compiler.analysis.analyse import describe
from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec
from pdelang.cli.main import add_common


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--latex", action="store_true", help="print the equation in LaTeX")


def report(spec, symbolic, analysis, program=None) -> dict:
    return {
        "spec": spec.file,
        "name": spec.name,
        "equation": spec.equation.text.strip(),
        "equation_expanded": f"dt({spec.field.name}) = {sympy.sstr(symbolic.rhs)}",
        "terms": [{"name": t.name, "expression": t.expression, "linear": t.linear,
                   "local": t.local, "order": t.order, "operators": list(t.operators),
                   "learnable": list(t.learnable)} for t in analysis.terms],
        "stencils": {k: v.to_json() for k, v in analysis.stencils.items()},
        "scheme": None if program is None else {
            "name": program.scheme, "kind": program.kind, "order": program.order,
            "implicit": list(program.implicit)},
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
    verdict = {"stable": "stable", "unstable": "UNSTABLE", "unknown": "unknown",
               "no_stable_dt": "NO STABLE Δt"}[st["verdict"]]
    how = describe(st["method"], st["exact"], st["caveats"])
    if st["method"].startswith("none"):
        lines.append(f"stability ({st['scheme']}): {st['method'][6:]}; no Δt bound")
    elif st["max_stable_dt"] == 0:
        lines.append(f"stability ({st['scheme']}): Δt = {st['dt']:g}, no Δt is stable: the "
                     f"step grows some mode faster than the equation does at every step size "
                     f"→ {verdict}  {how}")
    elif st["max_stable_dt"] is None:
        lines.append(f"stability ({st['scheme']}): Δt = {st['dt']:g}, no step size is too large "
                     f"→ {verdict}  {how}")
    else:
        formula = f"{st['formula']} = " if st["formula"] else ""
        lines.append(f"stability ({st['scheme']}): Δt = {st['dt']:g}, max stable Δt = "
                     f"{formula}{st['max_stable_dt']:.6g} → {verdict}  {how}")
    if st.get("growth_rate") is not None:
        lines.append("  " + growth_text(st))
    if st["symbol"]:
        lines.append(f"  symbol λ(θ) = {st['symbol']}")
    if st["amplification"]:
        lines.append(f"  amplification per step G = {st['amplification']}")
    for w in data["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def execute(args) -> int:
    """Exit 0 for a stable or unknown verdict, 1 when the spec's Δt is unstable or no Δt
    is."""
    spec = load_spec(args.spec, args.overrides)
    # up to the discrete IR: what compile would refuse, check refuses too (without torch)
    compilation = compile_spec(spec, until="discrete", debug=getattr(args, "debug", None))
    data = report(spec, compilation.symbolic, compilation.analysis, compilation.program)
    if args.latex:
        data["latex"] = latex(spec, compilation.symbolic)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(format_text(data))
        if args.latex:
            print(f"latex: {data['latex']}")
    return 1 if data["stability"]["verdict"] in ("unstable", "no_stable_dt") else 0


def growth_text(st: dict) -> str:
    """The equation's own growth rate and what limits a run, for the reports."""
    rate = st["growth_rate"]
    where = st.get("growth_theta")
    at = f" at θ = ({', '.join(f'{t:.4g}' for t in where)})" if where else ""
    exact = "" if st.get("growth_exact", True) else " (found numerically)"
    if rate > 0:
        own = (f"equation: max Re λ = {rate:.6g}{at}{exact} > 0: the equation grows in its "
               "own right (its nonlinear terms must saturate it)")
    else:
        own = f"equation: max Re λ = {rate:.6g}{at}{exact}: no mode grows"
    limit = {"equation": "the equation's own growth limits a run, not the step",
             "numerical": "the step limits a run (the numerical verdict)"}.get(st.get("limit"))
    return own + (f"; {limit}" if limit else "")
