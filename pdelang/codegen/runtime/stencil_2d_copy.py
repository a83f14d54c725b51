"""Block ``Stencil`` of a 2-D grid with the copy boundary (border held fixed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS, GRID_SHAPE
from .context import Context
from .ghosts_copy import ghost_value, with_ghosts
from .hold_border_2d import hold_border


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid,

        (L u)_i = Σ_axes Σ_j w_j u_{i + j e_axis} / h^k,

    with ghost values from the copy boundary.  Extra tokens (before the grid)
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
        batch, _, channels = u.shape  # (B, N, C)
        g = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        if ctx.lengths is not None:  # (B, 2): each image's rows and cols
            rate = sum(self.ragged(g, dim, ctx.lengths[:, dim - 1])
                       for dim in self.dims)
            rate = rate * self.inside(g, ctx.lengths)
        else:
            rate = sum(self.along(g, dim) for dim in self.dims)
            rate = hold_border(rate)  # the border tokens are held fixed
        rate = rate.reshape(batch, -1, channels)  # (B, L, C)
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

    def ragged(self, g: torch.Tensor, dim: int, n: torch.Tensor) -> torch.Tensor:
        # g: (B, rows, cols, C); image b has n[b] real tokens along dim
        moved = g.movedim(dim, 1)  # (B, S, O, C): S along dim, O the other axis
        flat = moved.reshape(moved.shape[0], moved.shape[1], -1)  # (B, S, O·C)
        positions = torch.arange(flat.shape[1], device=g.device)[None, :]  # (1, S)
        rate = torch.zeros_like(flat)
        for offset, weight in zip(self.offsets, self.weights, strict=True):
            rate = rate + weight * ghost_value(flat, positions + offset, n[:, None])
        return rate.reshape(moved.shape).movedim(1, dim)

    @staticmethod
    def inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, rows, cols, 1): 1 on the tokens of each image whose rate is not held at zero."""
        r = torch.arange(g.shape[1], device=g.device)[None, :, None]  # (1, rows, 1)
        c = torch.arange(g.shape[2], device=g.device)[None, None, :]  # (1, 1, cols)
        rows, cols = lengths[:, 0, None, None], lengths[:, 1, None, None]  # (B, 1, 1)
        inside = (r > 0) & (r < rows - 1) & (c > 0) & (c < cols - 1)  # border held fixed
        return inside[..., None].to(g.dtype)
# pdelang: end Stencil
