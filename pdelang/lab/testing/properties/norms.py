"""(g) Normalized states lie on the normalization manifold; and a 1-D stencil as an
operator for the checks."""

from __future__ import annotations


import numpy as np

from pdelang.interpreters.numpy_oracle import stencil_along
from pdelang.lab.testing.properties.results import Operator, PropertyResult, make_result


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
    if kind == "layernorm":
        mean = z.mean(axis=-1)
        var_x = x.var(axis=-1)
        expected = var_x / (var_x + eps)
        mean_error = float(np.max(np.abs(mean)))
        var_error = float(np.max(np.abs(z.var(axis=-1) - expected)))
        ok = mean_error <= rtol and var_error <= rtol
        return make_result(name, ok, f"per-token |mean| ≤ {mean_error:.2g}, |var − "
                       f"var/(var+ε)| ≤ {var_error:.2g} (tolerance {rtol:g})",
                       mean_error=mean_error, var_error=var_error,
                       min_variance=float(np.min(z.var(axis=-1))) if z.size else 1.0)
    if kind == "rmsnorm":
        ms_x = (x**2).mean(axis=-1)
        error = float(np.max(np.abs((z**2).mean(axis=-1) - ms_x / (ms_x + eps))))
        return make_result(name, error <= rtol, f"per-token |mean(z²) − ms/(ms+ε)| ≤ {error:.2g}",
                       ms_error=error)
    raise ValueError(f"unknown norm kind {kind!r}")


def stencil_operator_1d(offsets, weights, boundary: str) -> Operator:
    """A plain 1-D stencil operator on ``(B, N, C)`` states (weights already ÷ h^k)."""
    def apply(u: np.ndarray) -> np.ndarray:
        return stencil_along(np.asarray(u, dtype=np.float64), 1, offsets, weights, boundary)
    return apply
