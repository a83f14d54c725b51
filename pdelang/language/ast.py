"""The term language's abstract syntax tree (output of stage ``parse``).

Plain frozen dataclasses.  Every node keeps the :class:`SourceLocation` of its text inside
the spec file, so later stages can point at an operand, an option or a name.
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
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        inner = ", ".join([str(a) for a in self.args] + [str(k) for k in self.keywords])
        return f"{self.func}({inner})"


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / ^
    left: Expr
    right: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Neg:
    operand: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return f"-{self.operand}"


Expr = Number | Name | Call | BinOp | Neg


@dataclass(frozen=True)
class Equation:
    """``dt(field) = rhs``."""

    field: Name
    rhs: Expr
    loc: SourceLocation = field(compare=False)

    def __str__(self) -> str:
        return f"dt({self.field}) = {self.rhs}"


@dataclass(frozen=True)
class SpecAST:
    """The parsed equation and every named term."""

    equation: Equation
    terms: Mapping[str, Expr]


def walk(node):
    """Every node of an expression, pre-order."""
    yield node
    if isinstance(node, BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Neg):
        yield from walk(node.operand)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
        for kw in node.keywords:
            yield from walk(kw.value)
    elif isinstance(node, Equation):
        yield from walk(node.rhs)
