"""``rmsnorm(u, eps=1e-5, affine=true)``: u / √(mean(u²) + ε) · γ over the channels of each
token.  Also the projection P of the ``norm: {kind: rmsnorm}`` stabilizer."""

from __future__ import annotations

from pdelang.compiler.operators.layernorm import NormOperator
from pdelang.compiler.symbolic.functions import OperatorCall


class RMSNorm(OperatorCall):
    op_name = "rmsnorm"


def rms_norm(x, eps: float, weight=None):
    """x / √(mean(x²) + ε) · γ over the last axis, float64."""
    import numpy as np  # lazy: numpy

    y = x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)
    return y if weight is None else y * weight


class RMSNormOperator(NormOperator):
    name = "rmsnorm"
    meaning = "u / √(mean(u²) + ε) · γ over channels"
    sympy_class = RMSNorm
    affine_parameters = ("weight",)  # γ only
    torch_class = "nn.RMSNorm"

    def manifold_errors(self, x, z, eps):
        """mean(z²) = ms(x)/(ms(x) + ε) per token."""
        ms_x = (x ** 2).mean(axis=-1)
        return {"ms_error": float(abs((z ** 2).mean(axis=-1) - ms_x / (ms_x + eps)).max(
            initial=0.0))}

    def numpy_norm(self, x, eps, affine, prefix, oracle):
        return rms_norm(x, eps, oracle.weight(prefix + ".weight") if affine else None)


OPERATOR = RMSNormOperator()
