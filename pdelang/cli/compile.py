"""``pdelang compile SPEC [-o FILE] [--emit ast|symbolic|program|discrete|python] [--set …]``."""

from __future__ import annotations

import dataclasses
import json
import sys
from fractions import Fraction
from pathlib import Path

import sympy

from pdelang.compiler.driver import compile_spec
from pdelang.errors import PdelangError
from pdelang.io import write_atomically
from pdelang.cli.main import add_common
from pdelang.compiler.schemes.program import describe


def configure(parser) -> None:
    add_common(parser, json_flag=False)
    parser.add_argument("-o", "--output", help="write to FILE (atomically) instead of stdout")
    parser.add_argument("--emit", choices=["ast", "symbolic", "program", "discrete", "python"],
                        default="python", help="which stage's output to print (default: python)")


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"node": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.name in ("loc", "location"):
                continue
            out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit(compilation, stage: str) -> str:
    if stage == "python":
        return compilation.python
    if stage == "program":
        return describe(compilation.program)
    if stage == "ast":
        tree = {"equation": str(compilation.ast.equation),
                "terms": {k: str(v) for k, v in compilation.ast.terms.items()},
                "tree": _plain(compilation.ast)}
        return json.dumps(tree, indent=2, ensure_ascii=False) + "\n"
    if stage == "symbolic":
        s = compilation.symbolic
        data = {
            "field": sympy.sstr(s.u),
            "parameters": list(s.parameters),
            "terms": {t.name: {"sympy": sympy.srepr(t.expr), "text": sympy.sstr(t.expr),
                               "continuous": sympy.sstr(t.expr.doit()),
                               "latex": sympy.latex(t.expr)} for t in s.terms},
            "split_order": list(s.split_order),
            "instances": {k: {"op": v.op, "term": v.term, "options": dict(v.options)}
                          for k, v in s.instances.items()},
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return json.dumps(_plain(compilation.discrete), indent=2, ensure_ascii=False,
                      default=str) + "\n"


def execute(args) -> int:
    compilation = compile_spec(args.spec, args.overrides, debug=args.debug or None)
    text = emit(compilation, args.emit)
    if args.output:
        try:
            write_atomically(Path(args.output), text)
        except OSError as exc:
            raise PdelangError(f"cannot write {args.output}: {exc.strerror}") from None
        for warning in compilation.analysis.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"wrote {args.output} ({compilation.spec.class_name})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
