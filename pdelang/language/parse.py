"""Stage ``parse``: the spec's equation and term strings → :class:`SpecAST`.

The grammar lives in ``grammar.lark`` (LALR(1), ``strict=True``: any conflict in the
grammar is an error when the parser is built).  A syntax error is reported at its line
and column *inside the YAML file*, with a caret under the expression.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from pdelang.errors import ExpressionSyntaxError, PdelangError
from pdelang.language import ast
from pdelang.spec.model import SourceString, Spec
from pdelang.frozen import frozen_dict

_TOKEN_NAMES = {
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "CIRCUMFLEX": "'^'",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EQUAL": "'='", "NUMBER": "a number",
    "NAME": "a name", "$END": "the end of the expression",
}


@lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    # cache=True: the LALR tables are built (and checked for conflicts) once, then loaded.
    return Lark(grammar, parser="lalr", strict=True, propagate_positions=True, cache=True,
                maybe_placeholders=False, start=["equation", "expression"])


@v_args(meta=True)
class _ToAST(Transformer):
    """Lark tree → AST nodes, each located in the spec file."""

    def __init__(self, source: SourceString) -> None:
        super().__init__()
        self.source = source

    def _loc(self, meta):
        return self.source.locate(meta.start_pos, max(meta.end_pos - meta.start_pos, 1))

    def _tok(self, token: Token):
        return self.source.locate(token.start_pos, len(token))

    def expression(self, meta, children):
        return children[0]

    def equation(self, meta, children):
        dt, field_name, rhs = children
        if str(dt) != "dt":
            raise ExpressionSyntaxError(
                f"the equation must start with dt(<field>), not {dt}(…)", self._tok(dt),
                "write e.g. 'dt(u) = diffusion + interaction'")
        return ast.Equation(ast.Name(str(field_name), self._tok(field_name)), rhs,
                            self._loc(meta))

    def number(self, meta, children):
        (token,) = children
        return ast.Number(float(token), str(token), self._tok(token))

    def name(self, meta, children):
        (token,) = children
        return ast.Name(str(token), self._tok(token))

    def _bin(op):
        def build(self, meta, children):
            left, right = children
            return ast.BinOp(op, left, right, self._loc(meta))
        return build

    add, sub, mul, div, pow = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("^")

    def neg(self, meta, children):
        return ast.Neg(children[0], self._loc(meta))

    def keyword(self, meta, children):
        name, value = children
        return ast.Keyword(str(name), value, self._loc(meta))

    def arguments(self, meta, children):
        return children

    def call(self, meta, children):
        func = children[0]
        arguments = children[1] if len(children) > 1 else []
        args, keywords = [], []
        for item in arguments:
            if isinstance(item, ast.Keyword):
                if any(k.name == item.name for k in keywords):
                    raise ExpressionSyntaxError(f"option '{item.name}' is given twice",
                                                item.loc, "remove one of them")
                keywords.append(item)
            else:
                if keywords:
                    raise ExpressionSyntaxError(
                        "a positional argument follows a keyword argument", item.loc,
                        "put positional arguments first")
                args.append(item)
        return ast.Call(str(func), tuple(args), tuple(keywords), self._loc(meta))


def _describe(token_type: str) -> str:
    return _TOKEN_NAMES.get(token_type, token_type)


def _syntax_error(exc: UnexpectedInput, source: SourceString, what: str) -> ExpressionSyntaxError:
    text = source.text
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                          and exc.token.type == "$END"):
        offset = len(text.rstrip())
        loc = source.locate(max(offset, 0))
        opened = text.count("(") - text.count(")")
        hint = "close it with ')'" if opened > 0 else "complete the expression"
        return ExpressionSyntaxError(f"the {what} ends too early", loc, hint)
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream
        char = text[offset] if offset < len(text) else "?"
        hint = None
        if char == "*" and text[offset:offset + 2] == "**":
            hint = "powers are written with '^'"
        elif char in "[{":
            hint = "use '(' and ')' for grouping"
        elif char == "=" and text[offset:offset + 2] == "==":
            hint = "the equation uses a single '='"
        return ExpressionSyntaxError(f"unexpected character '{char}' in the {what}",
                                     source.locate(offset), hint)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = sorted({_describe(t) for t in exc.expected if not t.startswith("__")})
    hint = None
    start, length = token.start_pos, len(token.value)
    if token.type == "STAR" and text[token.start_pos - 1:token.start_pos + 1] == "**":
        # the parser stops at the second '*' of Python's power operator: point at both
        hint = "powers are written with '^'"
        start, length = token.start_pos - 1, 2
    elif token.type == "STAR" and text[token.start_pos:token.start_pos + 2] == "**":
        hint = "powers are written with '^'"
    elif token.type == "RPAR" and text.count(")") > text.count("("):
        hint = "there is a ')' without a matching '('"
    elif token.type == "EQUAL" and text[token.start_pos - 1:token.start_pos + 1] == "==":
        hint = "the equation uses a single '='"
    elif token.type == "EQUAL":
        hint = ("the '=' of an equation belongs in 'equation:', not in a term" if what == "term"
                else "options are written name=value inside a call")
    elif expected:
        hint = "expected " + (", ".join(expected[:-1]) + " or " + expected[-1]
                              if len(expected) > 1 else expected[0])
    shown = token.value if token.type != "$END" else "end of text"
    kind = {"NUMBER": "number ", "NAME": "name "}.get(token.type, "")
    return ExpressionSyntaxError(f"unexpected {kind}'{shown}' in the {what}",
                                 source.locate(start, length), hint)


def parse_source(source: SourceString, what: str):
    """Parse an equation (``what='equation'``) or a term expression."""
    if not source.text.strip():
        raise ExpressionSyntaxError(f"the {what} is empty", source.location,
                                    "write an expression such as 'D * laplace(u)'")
    try:
        tree = parser().parse(source.text, start="equation" if what == "equation" else "expression")
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, what) from None
    try:
        node = _ToAST(source).transform(tree)
    except VisitError as exc:  # Lark wraps what a transformer method raises
        if isinstance(exc.orig_exc, PdelangError):
            raise exc.orig_exc from None
        raise
    return node


def parse_spec(spec: Spec) -> ast.SpecAST:
    """Parse the equation and every term of a spec."""
    equation = parse_source(spec.equation, "equation")
    terms = {name: parse_source(text, "term") for name, text in spec.terms.items()}
    return ast.SpecAST(equation, frozen_dict(terms))
