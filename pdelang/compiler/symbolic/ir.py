"""The symbolic IR (output of stage ``lower``): the equation as SymPy expressions."""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping

import sympy

from pdelang.errors import SourceLocation
from pdelang.compiler.spec.model import Spec


@dataclass(frozen=True)
class OperatorInstance:
    """One call site of an operator that owns state (weights or options).

    ``name`` becomes the attribute of the generated layer module (``interaction_attention``).
    """

    name: str
    op: str
    options: Mapping[str, object]
    term: str
    loc: SourceLocation = field(compare=False)


@dataclass(frozen=True)
class SymbolicTerm:
    """One additive piece of the right-hand side, ``dt(u) = Σ pieces``."""

    name: str
    expr: sympy.Expr
    loc: SourceLocation = field(compare=False)


@dataclass(frozen=True)
class SymbolicModel:
    spec: Spec
    field: sympy.Function  # the undefined function u
    axes: tuple[sympy.Symbol, ...]
    u: sympy.Expr  # u(axes...)
    h: sympy.Symbol  # grid spacing
    parameters: Mapping[str, sympy.Symbol]
    terms: tuple[SymbolicTerm, ...]  # in equation order
    split_order: tuple[str, ...]
    instances: Mapping[str, OperatorInstance]
    unused_terms: tuple[str, ...] = ()

    @property
    def rhs(self) -> sympy.Expr:
        return sympy.Add(*[t.expr for t in self.terms])

    def term(self, name: str) -> SymbolicTerm:
        return next(t for t in self.terms if t.name == name)
