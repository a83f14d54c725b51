"""Printing within the line width: statements whose expression is too long for one line.

The printers build each statement from its parts (a head such as ``return `` or
``self.laplace = ``, an expression, a comment), so they know where it may break.  A
statement that fits is one line.  Otherwise :func:`statement` breaks its expression the way
a formatter would, reading the expression's structure from Python's own parser (``ast``):
a call or tuple one argument per line, a sum in parentheses one term per line, each piece
again within the width.  A comment that does not fit after the code goes above it, and a
comment line too long for the width is wrapped by :mod:`textwrap`.
"""

from __future__ import annotations

import ast
import textwrap

WIDTH = 99  # the generated module's line width (ruff: line-length 100)
_LOOSE = (ast.BoolOp, ast.IfExp, ast.Compare, ast.Lambda, ast.NamedExpr)


def comment(text: str, indent: str = "", width: int = WIDTH) -> list[str]:
    """``# text`` at ``indent``, wrapped to the width (continuation lines indented)."""
    return textwrap.wrap(text, width, initial_indent=indent + "# ",
                         subsequent_indent=indent + "#     ", break_long_words=False,
                         break_on_hyphens=False) or [indent + "#"]


def statement(indent: str, head: str, expr: str, tail: str = "", note: str = "",
              width: int = WIDTH) -> list[str]:
    """The lines of ``{indent}{head}{expr}{tail}  # {note}`` within ``width``."""
    if note:
        one = f"{indent}{head}{expr}{tail}  # {note}"
        if len(one) <= width:
            return [one]
        return comment(note, indent, width) + statement(indent, head, expr, tail, "", width)
    return _lines(indent, head, expr, tail, width)


def _segment(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node)


def _lines(indent: str, head: str, text: str, tail: str, width: int) -> list[str]:
    line = f"{indent}{head}{text}{tail}"
    if len(line) <= width:
        return [line]
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:  # pragma: no cover - the printers give expressions
        return [line]
    inner = indent + "    "
    if isinstance(node, ast.Call):
        args = [_segment(text, a) for a in node.args]
        args += [(f"{k.arg}=" if k.arg else "**") + _segment(text, k.value)
                 for k in node.keywords]
        if not args:
            return [line]
        out = [f"{indent}{head}{_segment(text, node.func)}("]
        for arg in args:
            out += _lines(inner, "", arg, ",", width)
        return out + [f"{indent}){tail}"]
    if isinstance(node, (ast.Tuple, ast.List)) and text[:1] in "([" and node.elts:
        out = [f"{indent}{head}{text[0]}"]
        for element in node.elts:
            out += _lines(inner, "", _segment(text, element), ",", width)
        return out + [f"{indent}{text[-1]}{tail}"]
    terms = _summands(text, node)
    if len(terms) > 1:
        out = [f"{indent}{head}("]
        for sign, term in terms:
            out += _lines(inner, sign, term, "", width)
        return out + [f"{indent}){tail}"]
    factors = _chain(text, node, _PRODUCT)
    if len(factors) > 1 and _last_call(node) is None:
        out = [f"{indent}{head}("]
        for sign, factor in factors:
            out += _lines(inner, sign, factor, "", width)
        return out + [f"{indent}){tail}"]
    call = _last_call(node)
    if call is not None and "\n" not in text:  # a product or power ending in a call
        raw = text.encode("utf-8")  # ast offsets count UTF-8 bytes
        opening = raw[:call.func.end_col_offset].decode("utf-8") + "("
        out = [f"{indent}{head}{opening}"]
        for arg in call.args:
            out += _lines(inner, "", _segment(text, arg), ",", width)
        for k in call.keywords:
            out += _lines(inner, f"{k.arg}=" if k.arg else "**", _segment(text, k.value),
                          ",", width)
        after = raw[call.end_col_offset:].decode("utf-8")  # closing parentheses, if any
        return out + [f"{indent}){after}{tail}"]
    return [line]


def _last_call(node: ast.expr) -> ast.Call | None:
    """The call with arguments that ends the expression (``2 * torch.sqrt(x)``), if any."""
    while isinstance(node, (ast.BinOp, ast.UnaryOp)):
        node = node.right if isinstance(node, ast.BinOp) else node.operand
    return node if isinstance(node, ast.Call) and (node.args or node.keywords) else None


def _summands(text: str, node: ast.expr) -> list[tuple[str, str]]:
    """[(sign, term)] of a chain ``a + b - c`` (sign "" for the first), each term in
    parentheses where it needs them."""
    return _chain(text, node, _SUM)


_SUM = {ast.Add: "+ ", ast.Sub: "- "}
_PRODUCT = {ast.Mult: "* ", ast.Div: "/ ", ast.FloorDiv: "// ", ast.Mod: "% ",
            ast.MatMult: "@ "}


def _chain(text: str, node: ast.expr, ops: dict) -> list[tuple[str, str]]:
    """[(operator, operand)] of a left-associated chain of the operators ``ops`` (``a * b /
    c``; operator "" for the first), each operand in parentheses where it needs them."""
    level = (_SUM, _PRODUCT).index(ops)
    lower = [_SUM, _SUM | _PRODUCT][level]  # binary operators that bind no tighter

    def needs(operand: ast.expr, right: bool) -> bool:
        if isinstance(operand, _LOOSE):
            return True
        if isinstance(operand, ast.BinOp) and type(operand.op) in lower:
            return right or type(operand.op) not in ops
        return False

    terms = []
    while isinstance(node, ast.BinOp) and type(node.op) in ops:
        piece = _segment(text, node.right)
        terms.append((ops[type(node.op)], f"({piece})" if needs(node.right, True) else piece))
        node = node.left
    first = _segment(text, node)
    terms.append(("", f"({first})" if needs(node, False) else first))
    return terms[::-1]
