"""The base of the SymPy function classes of the operators of the term language.

The field is an undefined function of the grid axes, ``u(seq)`` or ``u(rows, cols)``.
Each operator module (:mod:`pdelang.compiler.operators`) defines its SymPy class as a subclass of
:class:`OperatorCall`.  Linear operators (``Laplace``, ``Diff``, ``LinearMap``, ``Conv``)
distribute over sums and pull out factors that do not depend on the field, so linearity can
be decided by SymPy (``T(εu) = ε T(u)``).  Learned and nonlinear operators are opaque.
``doit()`` turns the differential operators into SymPy ``Derivative`` objects.
"""

from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef


def _real_parts(self, deep=True, **hints):
    return (self, sympy.S.Zero)


def field_function(name: str):
    """The field ``u`` as an undefined SymPy function whose values are real.

    Only ``as_real_imag`` says so: SymPy's assumption queries on nested functions of the
    field (is ``tanh(tanh(u))`` real? zero?) expand real and imaginary parts at every level
    (about 3× per level: 9 nested ``tanh`` took 12 s) and stop at once on a real argument.
    The ``real=True`` assumption would also make SymPy rewrite ``(u^2)^0.5`` as ``Abs(u)``,
    which changes the spec's meaning and has no discretization."""
    return sympy.Function(name, as_real_imag=_real_parts)


def is_field_free(expr: sympy.Expr) -> bool:
    """True for factors made only of numbers and parameter symbols."""
    return not expr.atoms(AppliedUndef) and not expr.atoms(OperatorCall)


class OperatorCall(sympy.Function):
    """Base of every operator; ``args[0]`` is the operand."""

    op_name = ""
    linear = False
    annihilates_constants = False  # a derivative of a constant field is zero

    @classmethod
    def eval(cls, operand, *rest):
        if not cls.linear:
            return None
        if operand.is_Add:
            return sympy.Add(*[cls(term, *rest) for term in operand.args])
        if operand.is_Mul:
            const = [f for f in operand.args if is_field_free(f)]
            if const:
                other = [f for f in operand.args if not is_field_free(f)]
                return sympy.Mul(*const) * cls(sympy.Mul(*other), *rest)
        if is_field_free(operand) and cls.annihilates_constants:
            return sympy.Integer(0)  # a derivative of a constant field
        return None

    @property
    def operand(self):
        return self.args[0]

    def as_real_imag(self, deep=True, **hints):
        """Every operator maps real fields to real fields (see :func:`field_function`: the
        assumption queries of nested functions stop here instead of expanding)."""
        return (self, sympy.S.Zero)

    def _latex_body(self, printer) -> str | None:
        return None  # SymPy's default f(x) rendering

    def _latex(self, printer, exp=None):
        # SymPy passes exp= when the call is raised to a power (laplace(u)^2)
        body = self._latex_body(printer)
        if body is None:
            return printer._print_Function(self, exp=exp)
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"
