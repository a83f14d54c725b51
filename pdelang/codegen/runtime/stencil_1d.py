"""Block ``Stencil`` of a 1-D grid, any boundary but copy.

The printer fills in ``{boundary}`` in the docstring; the ghost rules come from
the boundary's ``ghosts_*`` file (periodic stands in here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS
from .context import Context
from .ghosts_periodic import ghost_value, with_ghosts


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid,

        (L u)_i = Σ_axes Σ_j w_j u_{i + j e_axis} / h^k,

    with ghost values from the {boundary} boundary.  Extra tokens (before the grid)
    and padding tokens are outside the domain: their rate is zero."""

    def __init__(self, offsets: tuple[int, ...], weights: tuple[float, ...],
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets = offsets
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, *grid, C) the stencil acts along
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float64),
                             persistent=False)

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        grid = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        if ctx.lengths is not None:
            rate = self.ragged(grid, ctx.lengths)
        else:
            rate = self.along(grid, 1)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate

    def along(self, g: torch.Tensor, dim: int) -> torch.Tensor:
        size = g.shape[dim]
        padded = with_ghosts(g, dim, self.radius)
        rate = torch.zeros_like(g)
        for offset, weight in zip(self.offsets, self.weights, strict=True):
            rate = rate + weight * padded.narrow(dim, self.radius + offset, size)
        return rate

    def ragged(self, g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # g: (B, L, C); sequence b has lengths[b] real grid tokens, then padding
        positions = torch.arange(g.shape[1], device=g.device)[None, :]  # (1, L)
        n = lengths[:, None]  # (B, 1)
        rate = torch.zeros_like(g)
        for offset, weight in zip(self.offsets, self.weights, strict=True):
            rate = rate + weight * ghost_value(g, positions + offset, n)
        inside = positions < n
        return rate * inside[..., None].to(g.dtype)
# pdelang: end Stencil
