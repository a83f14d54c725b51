"""SymPy function classes for the operators of the term language.

The field is an undefined function of the grid axes, ``u(seq)`` or ``u(rows, cols)``.
Linear operators (``Laplace``, ``Diff``, ``LinearMap``) distribute over sums and pull out
factors that do not depend on the field, so linearity can be decided by SymPy
(``T(εu) = ε T(u)``).  Learned and nonlinear operators are opaque.  ``doit()`` turns the
differential operators into SymPy ``Derivative`` objects (the continuous form).
"""

from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef


def is_field_free(expr: sympy.Expr) -> bool:
    """True for factors made only of numbers and parameter symbols."""
    return not expr.atoms(AppliedUndef) and not expr.atoms(OperatorCall)


class OperatorCall(sympy.Function):
    """Base of every operator; ``args[0]`` is the operand."""

    op_name = ""
    linear = False

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
        if is_field_free(operand):
            # A derivative (and a bias-free linear map) of a constant field is zero.
            return sympy.Integer(0)
        return None

    @property
    def operand(self):
        return self.args[0]

    def _latex_body(self, printer) -> str | None:
        return None  # SymPy's default f(x) rendering

    def _latex(self, printer, exp=None):
        # SymPy passes exp= when the call is raised to a power (laplace(u)^2)
        body = self._latex_body(printer)
        if body is None:
            return printer._print_Function(self, exp=exp)
        return body if exp is None else rf"\left({body}\right)^{{{exp}}}"


class Laplace(OperatorCall):
    """Δ f = Σ_a ∂²f/∂x_a² over the grid axes (args: operand, instance)."""

    op_name = "laplace"
    linear = True

    def doit(self, **hints):
        operand = self.args[0].doit(**hints) if hints.get("deep", True) else self.args[0]
        axes = sorted({s for f in operand.atoms(AppliedUndef) for s in f.args
                       if isinstance(s, sympy.Symbol)}, key=str)
        return sympy.Add(*[sympy.Derivative(operand, (a, 2)) for a in axes])

    def _latex_body(self, printer):
        return r"\Delta\left(" + printer._print(self.args[0]) + r"\right)"


class Diff(OperatorCall):
    """∂^k f/∂x_a^k (args: operand, axis symbol, order k, instance)."""

    op_name = "diff"
    linear = True

    def doit(self, **hints):
        operand, axis, order = self.args[0], self.args[1], self.args[2]
        return sympy.Derivative(operand.doit(**hints), (axis, int(order)))

    def _latex_body(self, printer):
        k = int(self.args[2])
        power = "" if k == 1 else f"^{{{k}}}"
        return (rf"\frac{{\partial{power}}}{{\partial {printer._print(self.args[1])}{power}}}"
                rf"\left({printer._print(self.args[0])}\right)")


class LinearMap(OperatorCall):
    """A learned C×C matrix applied token-wise (args: operand, instance)."""

    op_name = "linear"
    linear = True


class Attention(OperatorCall):
    op_name = "attention"

    def _latex_body(self, printer):
        return r"\mathcal{A}\left[" + printer._print(self.args[0]) + r"\right]"


class MLP(OperatorCall):
    op_name = "mlp"

    def _latex_body(self, printer):
        return r"\mathcal{R}\left(" + printer._print(self.args[0]) + r"\right)"


class LayerNorm(OperatorCall):
    op_name = "layernorm"


class RMSNorm(OperatorCall):
    op_name = "rmsnorm"


class Relu(OperatorCall):
    op_name = "relu"


class Gelu(OperatorCall):
    op_name = "gelu"


class Sigmoid(OperatorCall):
    op_name = "sigmoid"


# Operators that SymPy already knows are printed with SymPy's own functions.
SYMPY_ELEMENTWISE = {"tanh": sympy.tanh, "exp": sympy.exp}

FUNCTION_CLASSES: dict[str, type[OperatorCall]] = {
    cls.op_name: cls
    for cls in (Laplace, Diff, LinearMap, Attention, MLP, LayerNorm, RMSNorm, Relu, Gelu, Sigmoid)
}


class AffineMap(OperatorCall):
    """A learned C×C matrix plus bias, token-wise (``linear(u, bias=true)``): affine, not linear."""

    op_name = "linear"


def function_class(op_name: str, options: dict) -> type[OperatorCall]:
    if op_name == "linear" and options.get("bias"):
        return AffineMap
    return FUNCTION_CLASSES[op_name]
