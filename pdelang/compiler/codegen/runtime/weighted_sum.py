"""Block ``weighted_sum``: Σ_t n_t w_t of a stencil's shifted windows, one new tensor."""

from __future__ import annotations

import torch


# pdelang: begin weighted_sum
def weighted_sum(windows: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """Σ_t n_t w_t over the (window w_t, numerator n_t) pairs, in their order, as one new
    tensor: the first two in one add, the others added in place (an out-of-place add with
    ``alpha`` is slow on strided windows)."""
    (first, n), *rest = windows
    if not rest:
        return first * n
    (second, m), *rest = rest
    total = first + second if n == m == 1 else (first * n).add_(second, alpha=m)
    for window, k in rest:
        total.add_(window, alpha=k)
    return total
# pdelang: end weighted_sum
