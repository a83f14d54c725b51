"""``layernorm(u, eps=1e-5, affine=true)``: (u − mean(u)) / √(var(u) + ε) · γ + β over the
channels of each token.  Also the projection P of the ``norm: {kind: layernorm}``
stabilizer."""

from __future__ import annotations

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall


class LayerNorm(OperatorCall):
    op_name = "layernorm"


def layer_norm(x, eps: float, weight=None, bias=None):
    """(x − mean) / √(var + ε) · γ + β over the last axis (biased variance), float64."""
    import numpy as np  # lazy: numpy

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class NormOperator(Operator):
    """Shared by layernorm and rmsnorm: a normalization over the channels."""

    category = "norm"
    options = (Option("eps", "float", 1e-5, minimum=0.0), Option("affine", "bool", True))
    learned = True
    torch_class = ""

    def learnable(self, options) -> bool:
        return bool(options.get("affine", True))

    affine_parameters = ("weight", "bias")  # γ, β

    def parameter_shapes(self, channels, options, dims):
        if not options.get("affine", True):
            return {}
        return {name: (channels,) for name in self.affine_parameters}

    def torch_norm(self, eps: float, affine: bool) -> str:
        """Constructor source of the norm (a call site, or a stabilizer's projection P)."""
        return f"{self.torch_class}(CHANNELS, eps={eps!r}, elementwise_affine={affine!r})"

    def torch_module(self, module) -> str:
        return self.torch_norm(float(module.options["eps"]), bool(module.options["affine"]))

    def numpy_norm(self, x, eps: float, affine: bool, prefix: str, oracle):
        raise NotImplementedError  # pragma: no cover - each norm defines it

    def manifold_errors(self, x, z, eps: float) -> dict[str, float]:
        """How far ``z`` (the output with its affine map undone) is from this norm's manifold
        for the inputs ``x``, per quantity (max over tokens), for the property check (g)."""
        raise NotImplementedError  # pragma: no cover - each norm defines it

    def numpy_eval(self, node, x, oracle, layer, ctx):
        options = oracle.module_options(node.module)
        return self.numpy_norm(x, float(options["eps"]), bool(options["affine"]),
                               f"layers.{layer}.{node.module}", oracle)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        opts = []
        if draw(st.booleans()):
            opts.append(f"eps={draw(st.sampled_from(['1e-5', '1.0e-6', '0.001']))}")
        if draw(st.booleans()):
            opts.append(f"affine={drawn_bool(draw)}")
        return f"{self.name}({', '.join([operand, *opts])})"


class LayerNormOperator(NormOperator):
    name = "layernorm"
    meaning = "(u − mean(u)) / √(var(u) + ε) · γ + β over channels"
    sympy_class = LayerNorm
    torch_class = "nn.LayerNorm"

    def numpy_norm(self, x, eps, affine, prefix, oracle):
        weight = oracle.weight(prefix + ".weight") if affine else None
        bias = oracle.optional_weight(prefix + ".bias") if affine else None
        return layer_norm(x, eps, weight, bias)

    def manifold_errors(self, x, z, eps):
        """mean(z) = 0 and var(z) = var(x)/(var(x) + ε) per token (→ 1 as ε → 0)."""
        var_x = x.var(axis=-1)
        return {"mean_error": float(abs(z.mean(axis=-1)).max(initial=0.0)),
                "var_error": float(abs(z.var(axis=-1) - var_x / (var_x + eps)).max(
                    initial=0.0))}


OPERATOR = LayerNormOperator()
