"""Block ``Stencil`` of a 2-D grid, any boundary but copy.

The printer fills in ``{boundary}`` in the docstring; the ghost rules come from
the boundary's ``ghosts_*`` file (periodic stands in here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS, GRID_SHAPE
from .context import Context
from .ghosts_periodic import ghost_value, with_ghosts


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid, (L u)_i = Σ_t k_t u_{i+t},
    k = s w_j at t = j e_a for each axis a it acts on: w_j the 1-D weights over h^k, s an
    optional scale folded in (D of D Δu).  The ghost values of the {boundary} boundary are built
    once per call, r tokens beyond each end of every axis it acts on; the taps go axis by
    axis in offset order, each product rounded before it is added (no fused multiply-add: a
    constant field gives exactly zero under (a, −2a, a)).  Extra tokens and padding tokens
    are outside the domain: zero rate."""

    def __init__(self, offsets: tuple[int, ...], weights: tuple[float, ...], over: float,
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets = offsets
        # w_j / h^k as Python floats: rounded once, to the state's dtype, where applied
        self.weights = tuple(w / over for w in weights)
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, *grid, C) the stencil acts along
        taps = [(tuple(offset if a == axis else 0 for a in range(len(dims))), weight)
                for axis in range(len(dims))
                for offset, weight in zip(offsets, self.weights, strict=True) if weight != 0]
        taps = taps or [((0,) * len(dims), 0.0)]
        self.shifts = tuple(t for t, _ in taps)  # shift t of each tap: one offset per dim
        self.kernel = tuple(w for _, w in taps)  # one weight per tap

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        """s L u: (B, N, C) → (B, N, C); scale s is a number or a 0-dim tensor."""
        grid = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        batch, _, channels = u.shape  # (B, N, C)
        g = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        kernel = self.kernel if scale is None else tuple(k * scale for k in self.kernel)
        extended = g  # (B, rows + 2r, cols + 2r, C) once ghosted along both axes
        if ctx.lengths is not None:  # (B, 2): each image's rows and cols
            for dim in self.dims:
                extended = self.ragged_ghosts(extended, dim, ctx.lengths[:, dim - 1])
            rate = self.taps(extended, g.shape, self.dims, self.shifts, kernel)
            rate = rate * self.inside(g, ctx.lengths)
        else:
            for dim in self.dims:
                extended = with_ghosts(extended, dim, self.radius)
            rate = self.taps(extended, g.shape, self.dims, self.shifts, kernel)
        rate = rate.reshape(batch, -1, channels)  # (B, L, C)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate

    def taps(self, extended: torch.Tensor, shape: torch.Size, dims: tuple[int, ...],
             shifts: tuple[tuple[int, ...], ...], kernel: tuple) -> torch.Tensor:
        """Σ_t k_t (extended shifted by t along dims, cut to shape), into one tensor."""
        rate = None
        for shift, k in zip(shifts, kernel, strict=True):
            window = extended
            for dim, offset in zip(dims, shift, strict=True):
                window = window.narrow(dim, self.radius + offset, shape[dim])
            rate = window * k if rate is None else rate.add_(window * k)
        return rate

    def ragged_ghosts(self, g: torch.Tensor, dim: int, n: torch.Tensor) -> torch.Tensor:
        """g with r ghosts beyond both ends of dim, image b's at its own extent n[b]: one
        gather for all the taps."""
        moved = g.movedim(dim, 1)  # (B, S, O, C): S along dim, O the other axis
        flat = moved.reshape(moved.shape[0], moved.shape[1], -1)  # (B, S, O·C)
        positions = torch.arange(-self.radius, flat.shape[1] + self.radius,
                                 device=g.device)[None, :]  # (1, S + 2r)
        values = ghost_value(flat, positions, n[:, None])  # (B, S + 2r, O·C)
        return values.reshape(moved.shape[0], -1, *moved.shape[2:]).movedim(1, dim)

    @staticmethod
    def inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, rows, cols, 1): 1 on the tokens of each image whose rate is not held at zero."""
        r = torch.arange(g.shape[1], device=g.device)[None, :, None]  # (1, rows, 1)
        c = torch.arange(g.shape[2], device=g.device)[None, None, :]  # (1, 1, cols)
        rows, cols = lengths[:, 0, None, None], lengths[:, 1, None, None]  # (B, 1, 1)
        inside = (r < rows) & (c < cols)
        return inside[..., None].to(g.dtype)
# pdelang: end Stencil
