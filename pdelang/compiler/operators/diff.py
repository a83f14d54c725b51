"""``diff(u, AXIS)``, ``diff(u, AXIS, K)``, ``diff(u, AXIS, order=K)``: ∂ᴷu/∂AXISᴷ.

Discretization: the centred K-th derivative stencil of accuracy p
(``discretization.diff.accuracy``) along the named grid axis, ghost values from the grid's
boundary rule.  Von Neumann symbol ``h⁻ᴷ Σ_j w_j e^{i j θ}``: real for even K, purely
imaginary for odd K (the stencil is antisymmetric).
"""

from __future__ import annotations

import sympy

from pdelang.compiler.operators.base import Option, Operator
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.analysis.stencils import StencilFacts, centred_stencil
from pdelang.compiler.discrete import ir as D


class Diff(OperatorCall):
    """∂^k f/∂x_a^k (args: operand, axis symbol, order k)."""

    op_name = "diff"
    linear = True
    annihilates_constants = True

    def doit(self, **hints):
        operand, axis, order = self.args[0], self.args[1], self.args[2]
        return sympy.Derivative(operand.doit(**hints), (axis, int(order)))

    def _latex_body(self, printer):
        k = int(self.args[2])
        power = "" if k == 1 else f"^{{{k}}}"
        return (rf"\frac{{\partial{power}}}{{\partial {printer._print(self.args[1])}{power}}}"
                rf"\left({printer._print(self.args[0])}\right)")


MAX_DERIVATIVE = 16  # a 64th derivative took 17 s to analyse and means nothing on a grid


class DiffOperator(Operator):
    name = "diff"
    category = "differential"
    meaning = "∂^k u/∂x_a^k along the named grid axis a (centred stencil)"
    options = (Option("axis", "axis", required=True, doc="a grid axis name"),
               Option("order", "int", 1, minimum=1, maximum=MAX_DERIVATIVE,
                      doc="derivative order k"))
    positional_options = ("axis", "order")
    linear = True
    constant_coefficient = True
    discretized = True
    sympy_class = Diff

    def differential_order(self, options) -> int:
        return int(options["order"])

    def stencil_radius(self, options, accuracy) -> int:
        k = int(options["order"])
        return (k + 1) // 2 - 1 + accuracy.get("diff", 2) // 2

    def to_sympy(self, operand, options, lowering):
        return Diff(operand, lowering.axis_symbol(options["axis"]),
                    sympy.Integer(options["order"]))

    def options_of(self, call, model) -> dict:
        return {"axis": str(call.args[1]), "order": int(call.args[2])}

    @staticmethod
    def key(call) -> str:
        return f"diff[{call.args[1]},{int(call.args[2])}]"

    def stencils(self, call, model) -> dict:
        axis, k = call.args[1], int(call.args[2])
        stencil = centred_stencil(k, model.spec.accuracy.get("diff", 2))
        error = stencil.error_coefficient * model.h ** stencil.order * sympy.Derivative(
            model.u, (axis, stencil.error_derivative))
        key = self.key(call)
        return {key: StencilFacts(key, "diff", k, (str(axis),), stencil, sympy.sstr(error),
                                  f"d{k}_{axis}")}

    def von_neumann(self, call, model, stencils, thetas) -> list:
        stencil = stencils[self.key(call)].stencil
        axis = call.args[1]
        theta = thetas[axis]
        base = stencil.real_symbol(theta) if stencil.derivative % 2 == 0 \
            else stencil.symbol(theta)
        return [(axis, base / model.h ** stencil.derivative, stencil)]

    def discretize(self, call, operand, model):
        return D.ApplyStencil(self.key(call), operand)

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.{model.stencils[node.stencil].attribute}({operand}, ctx)"

    def torch_scaled_expr(self, node, operand: str, scale: str, model) -> str:
        attribute = model.stencils[node.stencil].attribute
        return f"self.{attribute}({operand}, ctx, scale={scale})"  # folded into the kernel

    def numpy_eval(self, node, operand, oracle, layer, ctx):
        return oracle.stencil(node.stencil, operand, ctx)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        axis = draw(st.sampled_from(ctx.axes))
        k = draw(st.integers(1, 4))
        ctx.note_stencil("diff", k)
        form = draw(st.sampled_from(["positional", "keyword", "default"] if k == 1 else
                                    ["positional", "keyword"]))
        if form == "default":
            return f"diff({operand}, {axis})"
        if form == "keyword":
            return f"diff({operand}, {axis}, order={k})"
        return f"diff({operand}, {axis}, {k})"


OPERATOR = DiffOperator()
