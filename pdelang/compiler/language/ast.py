"""The term language's abstract syntax tree (output of stage ``parse``).

Plain frozen dataclasses.  Every node keeps the :class:`SourceLocation` of its text inside
the spec file, so later stages can point at an operand, an option or a name.

A sum of many summands is a chain of many nested :class:`BinOp` nodes, so the helpers here
(:func:`walk`, :func:`unparse` and ``str()`` of a node) use an explicit stack, never Python
recursion: they work at any depth the parser's limits allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping

from pdelang.errors import SourceLocation


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Name:
    id: str
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return unparse(self)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return unparse(self)


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / ^
    left: Expr
    right: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return unparse(self)


@dataclass(frozen=True)
class Neg:
    operand: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return unparse(self)


Expr = Number | Name | Call | BinOp | Neg


@dataclass(frozen=True)
class Equation:
    """``dt(field) = rhs``."""

    field: Name
    rhs: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return unparse(self)


@dataclass(frozen=True)
class SpecAST:
    """The parsed equation and every named term."""

    equation: Equation
    terms: Mapping[str, Expr]


def children(node) -> tuple:
    """The sub-expressions of a node, in source order (a keyword's value stands for it)."""
    if isinstance(node, BinOp):
        return (node.left, node.right)
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Call):
        return (*node.args, *(kw.value for kw in node.keywords))
    if isinstance(node, Keyword):
        return (node.value,)
    if isinstance(node, Equation):
        return (node.rhs,)
    return ()


def walk(node):
    """Every node of an expression, pre-order (iterative: any depth)."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(reversed(children(item)))


def _pieces(node) -> list:
    if isinstance(node, Number):
        return [node.text]
    if isinstance(node, Name):
        return [node.id]
    if isinstance(node, BinOp):
        return ["(", node.left, f" {node.op} ", node.right, ")"]
    if isinstance(node, Neg):
        return ["-", node.operand]
    if isinstance(node, Keyword):
        return [node.name, "=", node.value]
    if isinstance(node, Call):
        out: list = [node.func, "("]
        for i, item in enumerate((*node.args, *node.keywords)):
            out += [", ", item] if i else [item]
        return out + [")"]
    if isinstance(node, Equation):
        return ["dt(", node.field, ") = ", node.rhs]
    return [repr(node)]


def unparse(node) -> str:
    """The text of an expression, fully parenthesized (iterative: any depth)."""
    out = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        else:
            stack.extend(reversed(_pieces(item)))
    return "".join(out)
