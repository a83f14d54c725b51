"""Block ``legendre_series``: the value of a depth-dependent (``basis``) parameter."""

from __future__ import annotations

import torch


# pdelang: begin legendre_series
def legendre_series(c: torch.Tensor, s: float) -> torch.Tensor:
    """Σ_k c_k P_k(s) for s ∈ [−1, 1], by Bonnet's recursion
    (k + 1) P_{k+1} = (2k + 1) s P_k − k P_{k−1}, P_0 = 1, P_1 = s."""
    total = c[0]
    previous, current = 1.0, s
    for k in range(1, c.shape[0]):
        total = total + c[k] * current
        previous, current = current, ((2 * k + 1) * s * current - k * previous) / (k + 1)
    return total
# pdelang: end legendre_series
