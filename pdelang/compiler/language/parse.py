"""Stage ``parse``: the spec's equation and term strings → :class:`SpecAST`.

The grammar lives in ``grammar.lark`` (LALR(1), ``strict=True``: any conflict in the
grammar is an error when the parser is built).  A syntax error is reported at its line
and column *inside the YAML file*, with a caret under the expression.

Limits (:mod:`pdelang.compiler.spec.limits`), checked before anything recurses: the number of
operators is counted on the token stream before parsing; the nesting depth on the parse
tree, which Lark builds without recursion, while it is turned into the AST with an explicit
stack.  The depth counts what later stages (SymPy, its printers) nest: a call, a power, a
sum inside a product and a product inside a sum each add a level; a long sum or product
does not (SymPy keeps it flat), it counts against the operator limit.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from pdelang.errors import ExpressionSyntaxError
from pdelang.compiler.language import ast
from pdelang.compiler.spec.limits import how_to_raise, limit
from pdelang.compiler.spec.model import SourceString, Spec
from pdelang.compiler.frozen import frozen_dict

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


class _ToAST:
    """Lark tree → AST nodes, each located in the spec file: one method per rule, called
    with the rule's meta and its converted children by :func:`_convert`."""

    def __init__(self, source: SourceString) -> None:
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


# The tokens of the grammar, for counting operators before parsing (same NUMBER and NAME).
_TOKEN = re.compile(r"(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\S")
_OPERATORS = frozenset("+-*/^")
# classes of rules whose nesting SymPy flattens (a sum in a sum, a product in a product)
_FLAT = {"add": "sum", "sub": "sum", "mul": "product", "div": "product", "neg": "product"}
_PASS = frozenset({"expression", "equation", "arguments", "keyword"})  # add no level


def _check_tokens(source: SourceString, what: str) -> None:
    """Refuse, on the token stream and before parsing, an expression with more operators
    than the limit, or parentheses nested far deeper than the nesting limit allows (a
    parenthesis adds a level only around a sum in a product and the like, so the bound is
    generous: 4 × the limit)."""
    most = limit("expression_operators")
    deepest = 4 * limit("expression_nesting")
    count = depth = 0
    for match in _TOKEN.finditer(source.text):
        token = match.group()
        if token in _OPERATORS:
            count += 1
            if count > most:
                raise ExpressionSyntaxError(
                    f"the {what} has more than {most:,} operators", source.locate(match.start()),
                    "split it into named terms; " + how_to_raise("expression_operators"))
        elif token == "(":
            depth += 1
            if depth > deepest:
                raise ExpressionSyntaxError(
                    f"the {what} nests parentheses more than {deepest} deep",
                    source.locate(match.start()),
                    "name the inner parts as terms, or simplify; "
                    + how_to_raise("expression_nesting"))
        elif token == ")":
            depth = max(depth - 1, 0)


def _step(parent: Tree, index: int, child: Tree) -> int:
    """The levels ``child`` adds below ``parent``: none where SymPy flattens the two."""
    if parent.data in _PASS:
        return 0
    kind = _FLAT.get(child.data)
    if kind is None or kind != _FLAT.get(parent.data):
        return 1
    return 1 if parent.data == "div" and index == 1 else 0  # a/(b/c): a power −1 between


def _convert(tree: Tree, builder: _ToAST, source: SourceString, what: str):
    """The AST of a parse tree, built bottom-up with an explicit stack; the nesting depth
    is measured on the way and refused past the limit."""
    most = limit("expression_nesting")
    built: dict[int, object] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[Tree, bool]] = [(tree, False)]
    while stack:
        node, ready = stack.pop()
        subtrees = [c for c in node.children if isinstance(c, Tree)]
        if not ready:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(subtrees))
            continue
        level = 0
        for index, child in enumerate(node.children):
            if isinstance(child, Tree):
                level = max(level, depth.pop(id(child)) + _step(node, index, child))
        if level > most:
            raise ExpressionSyntaxError(
                f"the {what} nests more than {most} levels deep (calls, powers, and sums "
                "and products inside each other)", builder._loc(node.meta),
                "name the inner parts as terms, or simplify; "
                + how_to_raise("expression_nesting"))
        depth[id(node)] = level
        children = [built.pop(id(c)) if isinstance(c, Tree) else c for c in node.children]
        built[id(node)] = getattr(builder, node.data)(node.meta, children)
    return built[id(tree)]


def parse_source(source: SourceString, what: str):
    """Parse an equation (``what='equation'``) or a term expression."""
    if not source.text.strip():
        raise ExpressionSyntaxError(f"the {what} is empty", source.location,
                                    "write an expression such as 'D * laplace(u)'")
    _check_tokens(source, what)
    try:
        tree = parser().parse(source.text, start="equation" if what == "equation" else "expression")
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, what) from None
    return _convert(tree, _ToAST(source), source, what)


def parse_spec(spec: Spec) -> ast.SpecAST:
    """Parse the equation and every term of a spec."""
    equation = parse_source(spec.equation, "equation")
    terms = {name: parse_source(text, "term") for name, text in spec.terms.items()}
    return ast.SpecAST(equation, frozen_dict(terms))
