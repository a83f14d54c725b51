"""Blocks ``Stencil`` and ``grid_inside`` of a 1-D grid with the copy boundary (border held
fixed); ``ragged_ghosts`` is the other boundaries' block (``stencil_1d.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS, GRID_MASKS
from .context import Context
from .weighted_sum import weighted_sum
from .ghosts_copy import with_ghosts
from .hold_border_1d import hold_border
from .stencil_1d import ragged_ghosts  # the same block as the other boundaries'


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid,

        (L u)_i = (s / d) Σ_j n_j u_{i+j},

    n_j the weights' exact numerators over d = c·h^k ((1, −2, 1) / H**2 for the Laplacian)
    and s an optional scale (D of D Δu).  The copy boundary's ghosts, r beyond each end, are
    built once per call; the numerator-weighted sum comes first, centre last (a constant
    field gives exactly zero), then one multiply by s / d.  Extra tokens and padding tokens
    are outside the domain: zero rate."""

    def __init__(self, offsets: tuple[int, ...], numerators: tuple[int, ...], over: float,
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets, self.numerators, self.over = offsets, numerators, over
        self.weights = tuple(n / over for n in numerators)  # w_j = n_j / d
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, L, C) the stencil acts along
        taps = sorted((o, n) for o, n in zip(offsets, numerators, strict=True) if n != 0)
        self.taps = tuple(sorted(taps, key=lambda tap: tap[0] == 0)) or ((0, 0),)

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        """s L u: (B, N, C) → (B, N, C); scale s is a number or a 0-dim tensor."""
        g = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        if GRID_MASKS and ctx.lengths is not None:  # (B,): each sequence's real grid tokens
            extended = ragged_ghosts(g, 1, ctx.lengths, self.radius)  # (B, L + 2r, C)
        else:
            extended = with_ghosts(g, 1, self.radius)  # (B, L + 2r, C)
        windows = [(extended.narrow(1, self.radius + o, g.shape[1]), n) for o, n in self.taps]
        rate = weighted_sum(windows)
        if scale is not None or self.over != 1:
            rate.mul_((1 if scale is None else scale) / self.over)
        if GRID_MASKS and ctx.lengths is not None:
            rate = rate * grid_inside(g, ctx.lengths)
        else:
            rate = hold_border(rate)  # the border tokens are held fixed
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate
# pdelang: end Stencil


# pdelang: begin grid_inside
def grid_inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L, 1): 1 on the tokens of each sequence whose rate is not held at zero."""
    positions = torch.arange(g.shape[1], device=g.device)[None, :]  # (1, L)
    n = lengths[:, None]  # (B, 1)
    inside = (positions > 0) & (positions < n - 1)  # end tokens held fixed
    return inside[..., None].to(g.dtype)
# pdelang: end grid_inside
