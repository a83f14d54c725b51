"""Block ``hold_border`` of a 1-D grid (copy boundary): zero rate on the grid's ends."""

from __future__ import annotations

import torch


# pdelang: begin hold_border
def hold_border(rate: torch.Tensor) -> torch.Tensor:
    """Zero rate on the first and last token along every grid axis, in place (rate is a
    stencil's fresh output)."""
    for dim in (1,):
        rate.narrow(dim, 0, 1).zero_()
        rate.narrow(dim, rate.shape[dim] - 1, 1).zero_()
    return rate
# pdelang: end hold_border
