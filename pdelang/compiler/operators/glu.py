"""``glu(u, hidden=4C, activation=silu|gelu|gelu_tanh|relu|tanh, bias=false)``: the gated
local reaction of Llama-family Transformers, token-wise,

    R(u) = W_down (σ(W_gate u + b_gate) ⊙ (W_up u + b_up)) + b_down,

SwiGLU with σ = SiLU (the default; Shazeer 2020, "GLU variants improve Transformer"), GeGLU
with σ = GELU.  Unlike ``mlp`` it is quadratic in u near 0 (σ(z)·z' with σ(0) = 0): a small
state is damped, not amplified, by the reaction.
"""

from __future__ import annotations

from pdelang.compiler.operators.base import Option, Operator
from pdelang.compiler.operators.mlp import ACTIVATIONS, MLPOperator, numpy_activation
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.codegen import runtime as R


class GLU(OperatorCall):
    op_name = "glu"

    def _latex_body(self, printer):
        return r"\mathcal{R}_{\mathrm{GLU}}\left(" + printer._print(self.args[0]) + r"\right)"


class GLUOperator(Operator):
    name = "glu"
    category = "learned"
    meaning = "R(u) = W_down (σ(W_gate u) ⊙ W_up u), token-wise (SwiGLU: σ = SiLU)"
    options = (Option("hidden", "int", None, minimum=1, doc="hidden width (default 4C)"),
               Option("activation", "choice", "silu", ACTIVATIONS,
                      doc="the gate's σ (silu: SwiGLU, gelu: GeGLU)"),
               Option("bias", "bool", False, doc="biases on the three projections"))
    learned = True
    sympy_class = GLU
    runtime_blocks = (("glu", "GLU"),)
    reference_part = "mlp"

    # the same hidden-width default (4C) and the same drawn options as mlp
    check_call = MLPOperator.check_call
    draw_call = MLPOperator.draw_call

    def parameter_shapes(self, channels, options, dims):
        """gate and up: C → H; down: H → C; their biases with ``bias=true``."""
        hidden = int(options.get("hidden") or 4 * channels)
        shapes = {"gate.weight": (hidden, channels), "up.weight": (hidden, channels),
                  "down.weight": (channels, hidden)}
        if options["bias"]:
            shapes |= {"gate.bias": (hidden,), "up.bias": (hidden,), "down.bias": (channels,)}
        return shapes

    def torch_module(self, module) -> str:
        o = module.options
        activation = R.ACTIVATION_SOURCES[o["activation"]]
        return f"GLU(CHANNELS, {o['hidden']}, {activation}, bias={o['bias']!r})"

    def numpy_eval(self, node, x, oracle, layer, ctx):
        options = oracle.module_options(node.module)
        prefix = f"layers.{layer}.{node.module}"
        bias = bool(options["bias"])
        gate = numpy_activation(str(options["activation"]))(
            oracle.linear(x, prefix + ".gate", bias))
        return oracle.linear(gate * oracle.linear(x, prefix + ".up", bias),
                             prefix + ".down", bias)


OPERATOR = GLUOperator()
