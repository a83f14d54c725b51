"""Block ``finite_logsumexp``: logsumexp that is 0 over an all-masked row."""

from __future__ import annotations

import torch


# pdelang: begin finite_logsumexp
def finite_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """logsumexp that is 0 (not −inf) over an all-masked row or column.

    The masked rows are zeroed *before* the reduction: logsumexp of an all −inf row is
    finite-valued after a where(), but its gradient (a softmax of −inf) is NaN."""
    empty = (x == float("-inf")).all(dim=dim, keepdim=True)
    lse = torch.logsumexp(x.masked_fill(empty, 0.0), dim=dim, keepdim=True)
    return lse.masked_fill(empty, 0.0)
# pdelang: end finite_logsumexp
