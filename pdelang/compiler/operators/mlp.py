"""``mlp(u, hidden=4C, activation=gelu|gelu_tanh|relu|silu|tanh, bias=true)``: the local
reaction of the master PDE, token-wise,

    R(u) = W_2 σ(W_1 u + b_1) + b_2.
"""

from __future__ import annotations

import math

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.operators.elementwise import numpy_gelu, numpy_sigmoid
from pdelang.compiler.codegen import runtime as R

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "tanh")


class MLP(OperatorCall):
    op_name = "mlp"

    def _latex_body(self, printer):
        return r"\mathcal{R}\left(" + printer._print(self.args[0]) + r"\right)"


def numpy_activation(name: str):
    """σ on float64 arrays, from its definition."""
    import numpy as np  # lazy: numpy

    if name == "gelu":
        return numpy_gelu
    if name == "gelu_tanh":  # ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
        return lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi)
                                                  * (x + 0.044715 * x**3)))
    if name == "relu":
        return lambda x: np.maximum(x, 0.0)
    if name == "silu":
        return lambda x: x * numpy_sigmoid(x)
    if name == "tanh":
        return np.tanh
    raise ValueError(f"unknown activation {name!r}")


class MLPOperator(Operator):
    name = "mlp"
    category = "learned"
    meaning = "R(u) = W_2 σ(W_1 u + b_1) + b_2, token-wise"
    options = (Option("hidden", "int", None, minimum=1, doc="hidden width (default 4C)"),
               Option("activation", "choice", "gelu", ACTIVATIONS),
               Option("bias", "bool", True))
    learned = True
    sympy_class = MLP
    runtime_blocks = (("mlp", "MLP"),)
    reference_part = "mlp"

    def check_call(self, options, site):
        if options["hidden"] is None:
            options["hidden"] = 4 * site.channels
        return options

    def parameter_shapes(self, channels, options, dims):
        hidden = int(options.get("hidden") or 4 * channels)
        shapes = {"fc1.weight": (hidden, channels), "fc2.weight": (channels, hidden)}
        if options["bias"]:
            shapes |= {"fc1.bias": (hidden,), "fc2.bias": (channels,)}
        return shapes

    def torch_module(self, module) -> str:
        o = module.options
        return f"MLP(CHANNELS, {o['hidden']}, {o['activation']!r}, bias={o['bias']!r})"

    def torch_constants(self, modules) -> list[str]:
        activations = sorted({m.options["activation"] for m in modules})
        return (["ACTIVATIONS = {"]
                + [f"    {a!r}: {R.ACTIVATION_SOURCES[a]}," for a in activations] + ["}"])

    def numpy_eval(self, node, x, oracle, layer, ctx):
        options = oracle.module_options(node.module)
        prefix = f"layers.{layer}.{node.module}"
        bias = bool(options["bias"])
        hidden = numpy_activation(str(options["activation"]))(
            oracle.linear(x, prefix + ".fc1", bias))
        return oracle.linear(hidden, prefix + ".fc2", bias)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        opts = []
        if draw(st.booleans()):
            opts.append(f"hidden={draw(st.integers(1, 12))}")
        if draw(st.booleans()):
            opts.append(f"activation={draw(st.sampled_from(ACTIVATIONS))}")
        if draw(st.booleans()):
            opts.append(f"bias={drawn_bool(draw)}")
        return f"{self.name}({', '.join([operand, *opts])})"


OPERATOR = MLPOperator()
