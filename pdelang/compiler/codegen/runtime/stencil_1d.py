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
    """A centred finite-difference operator on the token grid, (L u)_i = s Σ_j w_j u_{i+j},
    w_j the weights over h^k and s an optional scale folded in (D of D Δu).
    The ghost values of the {boundary} boundary are built once per call, r tokens beyond each
    end; each nonzero weight adds its shifted window in offset order, each product rounded
    before it is added (no fused multiply-add: a constant field gives exactly zero under
    (a, −2a, a)).  Extra tokens and padding tokens are outside the domain: zero rate."""

    def __init__(self, offsets: tuple[int, ...], weights: tuple[float, ...], over: float,
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets = offsets
        # w_j / h^k as Python floats: rounded once, to the state's dtype, where applied
        self.weights = tuple(w / over for w in weights)
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, *grid, C) the stencil acts along
        taps = [(o, w) for o, w in zip(offsets, self.weights, strict=True) if w != 0] or [(0, 0.0)]
        self.shifts = tuple((offset,) for offset, _ in taps)  # shift t of each tap, along dim 1
        self.kernel = tuple(w for _, w in taps)  # one weight per tap

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        """s L u: (B, N, C) → (B, N, C); scale s is a number or a 0-dim tensor."""
        g = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        kernel = self.kernel if scale is None else tuple(k * scale for k in self.kernel)
        if ctx.lengths is not None:  # (B,): each sequence's real grid tokens
            extended = self.ragged_ghosts(g, 1, ctx.lengths)  # (B, L + 2r, C)
            rate = self.taps(extended, g.shape, self.dims, self.shifts, kernel)
            rate = rate * self.inside(g, ctx.lengths)
        else:
            extended = with_ghosts(g, 1, self.radius)  # (B, L + 2r, C)
            rate = self.taps(extended, g.shape, self.dims, self.shifts, kernel)
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
        """g (B, L, C) with r ghosts beyond both ends of dim 1, sequence b's after its n[b]
        real tokens: one gather for all the taps."""
        positions = torch.arange(-self.radius, g.shape[dim] + self.radius,
                                 device=g.device)[None, :]  # (1, L + 2r)
        return ghost_value(g, positions, n[:, None])  # (B, L + 2r, C)

    @staticmethod
    def inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, 1): 1 on the tokens of each sequence whose rate is not held at zero."""
        positions = torch.arange(g.shape[1], device=g.device)[None, :]  # (1, L)
        inside = positions < lengths[:, None]
        return inside[..., None].to(g.dtype)
# pdelang: end Stencil
