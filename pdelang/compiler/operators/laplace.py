"""``laplace(u)``: Δu = Σ_axes ∂²u/∂x_a², the centred stencil of the spec's accuracy.

Discretization: on every grid axis the centred second-derivative stencil of accuracy p
(``discretization.laplace.accuracy``, from
:func:`~pdelang.compiler.analysis.stencils.centred_stencil`),
summed over the axes; ghost values from the grid's boundary rule.  Its von Neumann symbol is
``Σ_a h⁻² Σ_j w_j cos(j θ_a)`` (real: the stencil is symmetric).
"""

from __future__ import annotations

import sympy
from sympy.core.function import AppliedUndef

from pdelang.compiler.operators.base import Operator
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.analysis.stencils import StencilFacts, centred_stencil
from pdelang.compiler.discrete import ir as D


class Laplace(OperatorCall):
    """Δ f = Σ_a ∂²f/∂x_a² over the grid axes (args: operand)."""

    op_name = "laplace"
    linear = True
    annihilates_constants = True

    def doit(self, **hints):
        operand = self.args[0].doit(**hints) if hints.get("deep", True) else self.args[0]
        axes = sorted({s for f in operand.atoms(AppliedUndef) for s in f.args
                       if isinstance(s, sympy.Symbol)}, key=str)
        return sympy.Add(*[sympy.Derivative(operand, (a, 2)) for a in axes])

    def _latex_body(self, printer):
        return r"\Delta\left(" + printer._print(self.args[0]) + r"\right)"


class LaplaceOperator(Operator):
    name = "laplace"
    category = "differential"
    meaning = ("Δu = Σ_axes ∂²u/∂x_a², discretized by the centred stencil of the requested "
               "accuracy")
    linear = True
    constant_coefficient = True
    discretized = True
    sympy_class = Laplace

    def differential_order(self, options) -> int:
        return 2

    def stencil_radius(self, options, accuracy) -> int:
        return accuracy.get("laplace", 2) // 2

    def to_sympy(self, operand, options, lowering):
        return Laplace(operand)

    def options_of(self, call, model) -> dict:
        return {}

    @staticmethod
    def key(call) -> str:
        return "laplace"

    def stencils(self, call, model) -> dict:
        stencil = centred_stencil(2, model.spec.accuracy.get("laplace", 2))
        error = sympy.Add(*[stencil.error_coefficient * model.h ** stencil.order
                            * sympy.Derivative(model.u, (a, stencil.error_derivative))
                            for a in model.axes])
        return {"laplace": StencilFacts("laplace", "laplace", 2, tuple(map(str, model.axes)),
                                        stencil, sympy.sstr(error), "laplace")}

    def von_neumann(self, call, model, stencils, thetas) -> list:
        stencil = stencils["laplace"].stencil
        return [(a, stencil.real_symbol(thetas[a]) / model.h ** 2, stencil) for a in model.axes]

    def discretize(self, call, operand, model):
        return D.ApplyStencil("laplace", operand)

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.laplace({operand}, ctx)"

    def torch_scaled_expr(self, node, operand: str, scale: str, model) -> str:
        return f"self.laplace({operand}, ctx, scale={scale})"  # scale folded into the kernel

    def numpy_eval(self, node, operand, oracle, layer, ctx):
        return oracle.stencil(node.stencil, operand, ctx)

    def draw_call(self, draw, ctx, operand: str) -> str:
        ctx.note_stencil("laplace", 2)
        return f"laplace({operand})"


OPERATOR = LaplaceOperator()
