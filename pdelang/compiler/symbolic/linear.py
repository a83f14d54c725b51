"""Linear, constant-coefficient expressions of the field as polynomials in stencils.

A term such as ``(r - 1)*u - 2*laplace(u) - laplace(laplace(u))`` is, as an operator on the
field, a sum of *words* of fixed stencils with field-free coefficients,

    L u = Σ_w c_w S_{w_1} S_{w_2} … S_{w_k} u,        (the empty word: c₀ u)

built structurally: the field is the empty word with coefficient 1; a sum adds the forms; a
field-free factor (numbers, parameters) scales one; a constant-coefficient operator
(``laplace``, ``diff``) prepends its stencil to every word of its operand's form.  Anything
else (a product of two field-dependent factors, a learned or nonlinear operator, a constant
without the field) has no such form.

Every consumer reads composition from here: the von Neumann symbol of a word is the product
of its stencils' symbols and the symbol of a form the sum over its words (analysis), the
implicit solves and exact flows apply the polynomial of the stencils (discretize, the
generated code, the NumPy oracle), and the differential order of a word is the sum of its
stencils' orders.  A word keeps the order in which the stencils are applied (outer first):
stencils of one boundary rule commute on a periodic grid and in the symmetric-extension bases,
but a dense matrix product on a bounded grid needs the order as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from pdelang.compiler.symbolic.functions import OperatorCall, is_field_free
from pdelang.compiler.operators import operator_of

__all__ = ["LinearForm", "linear_form", "unit_call"]


@dataclass(frozen=True)
class LinearForm:
    """``Σ_w c_w S_w u``: ``words`` maps a tuple of unit calls (each a constant-coefficient
    operator applied to the bare field, outer first; ``()`` for u itself) to its field-free
    coefficient (non-zero)."""

    words: tuple[tuple[tuple[OperatorCall, ...], sympy.Expr], ...]

    @property
    def zero_order(self) -> sympy.Expr:
        return next((c for w, c in self.words if not w), sympy.Integer(0))

    @property
    def differential(self) -> tuple[tuple[tuple[OperatorCall, ...], sympy.Expr], ...]:
        """The words with at least one stencil."""
        return tuple((w, c) for w, c in self.words if w)

    def as_dict(self) -> dict:
        return dict(self.words)


def unit_call(call: OperatorCall, u: sympy.Expr) -> OperatorCall:
    """The same operator call, applied to the bare field (its options kept)."""
    return call.func(u, *call.args[1:])


def _form(expr: sympy.Expr, u: sympy.Expr) -> dict | None:
    if expr == u:
        return {(): sympy.Integer(1)}
    if is_field_free(expr):
        return None  # a constant: affine, not linear
    if expr.is_Add:
        total: dict = {}
        for arg in expr.args:
            part = _form(arg, u)
            if part is None:
                return None
            for word, c in part.items():
                total[word] = total.get(word, 0) + c
        return total
    if expr.is_Mul:
        fixed = [f for f in expr.args if is_field_free(f)]
        field = [f for f in expr.args if not is_field_free(f)]
        if len(field) != 1:
            return None
        part = _form(field[0], u)
        if part is None:
            return None
        scale = sympy.Mul(*fixed)
        return {word: scale * c for word, c in part.items()}
    if isinstance(expr, OperatorCall):
        op = operator_of(expr)
        if op is None or not op.constant_coefficient:
            return None
        inner = _form(expr.args[0], u)
        if inner is None:
            return None
        unit = unit_call(expr, u)
        return {(unit, *word): c for word, c in inner.items()}
    return None


def linear_form(expr: sympy.Expr, u: sympy.Expr) -> LinearForm | None:
    """The form ``Σ_w c_w S_w u`` of ``expr``, or None when it is not a linear,
    constant-coefficient expression of the field (see the module docstring)."""
    found = _form(sympy.expand(expr), u)
    if found is None:
        return None
    words = []
    for word, c in found.items():
        c = sympy.expand(c)
        if c != 0:
            words.append((word, c))
    words.sort(key=lambda wc: (len(wc[0]), [sympy.default_sort_key(s) for s in wc[0]]))
    return LinearForm(tuple(words))
