"""``linear(u, bias=false)``: a learned C×C map applied token-wise, W u (+ b).

Linear in its operand without a bias (SymPy distributes it over sums), affine with one.
"""

from __future__ import annotations

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall


class LinearMap(OperatorCall):
    """A learned C×C matrix applied token-wise (args: operand, instance)."""

    op_name = "linear"
    linear = True


class AffineMap(OperatorCall):
    """A learned C×C matrix plus bias, token-wise (``linear(u, bias=true)``): affine."""

    op_name = "linear"


class LinearOperator(Operator):
    name = "linear"
    category = "learned"
    meaning = "W u (+ b), a learned C×C map, token-wise"
    options = (Option("bias", "bool", False),)
    linear = True
    learned = True
    sympy_class = LinearMap
    affine_class = AffineMap

    def is_linear(self, options) -> bool:
        return not options.get("bias")

    def parameter_shapes(self, channels, options, dims):
        shapes = {"weight": (channels, channels)}
        return shapes | ({"bias": (channels,)} if options["bias"] else {})

    def torch_module(self, module) -> str:
        return f"nn.Linear(CHANNELS, CHANNELS, bias={module.options['bias']!r})"

    def numpy_eval(self, node, x, oracle, layer, ctx):
        options = oracle.module_options(node.module)
        return oracle.linear(x, f"layers.{layer}.{node.module}", bool(options["bias"]))

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        if draw(st.booleans()):
            return f"linear({operand}, bias={drawn_bool(draw)})"
        return f"linear({operand})"


OPERATOR = LinearOperator()
