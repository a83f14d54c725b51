"""(g) Normalized states lie on the normalization manifold; and a 1-D stencil as an
operator for the checks."""

from __future__ import annotations


import numpy as np

from pdelang.interpreters.numpy_oracle import stencil_along
from pdelang.lab.testing.properties.results import Operator, PropertyResult, make_result
from pdelang.compiler.operators import OPERATORS


# ----------------------------------------------------------------------------- (g) norms
def check_norm_manifold(inputs: np.ndarray, outputs: np.ndarray, *, kind: str, eps: float,
                        weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                        rtol: float = 1e-9, name: str = "norm_manifold") -> PropertyResult:
    """(g) ``outputs = P(inputs)`` lies on the normalization manifold, per token, up to the
    affine map: with ``z = (y − β)/γ``, LayerNorm gives mean(z) = 0 and
    var(z) = var(x)/(var(x) + ε) (→ 1), RMSNorm gives mean(z²) = ms(x)/(ms(x) + ε)."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    z = y
    if bias is not None:
        z = z - bias
    if weight is not None:
        z = z / weight

    operator = OPERATORS.get(kind)
    if operator is None or operator.category != "norm":
        raise ValueError(f"unknown norm kind {kind!r}")
    errors = operator.manifold_errors(x, z, eps)
    worst = max(errors.values(), default=0.0)
    ok = worst <= rtol
    text = ", ".join(f"{key} {value:.2g}" for key, value in errors.items())
    return make_result(name, ok, f"{kind} manifold per token: {text} (tolerance {rtol:g})",
                       **errors)


def stencil_operator_1d(offsets, weights, boundary: str) -> Operator:
    """A plain 1-D stencil operator on ``(B, N, C)`` states (weights already ÷ h^k)."""
    def apply(u: np.ndarray) -> np.ndarray:
        return stencil_along(np.asarray(u, dtype=np.float64), 1, offsets, weights, boundary)
    return apply
