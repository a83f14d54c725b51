"""Blocks ``Stencil`` and ``grid_inside`` of a 2-D grid with the copy boundary (border held
fixed); ``ragged_ghosts`` is the other boundaries' block (``stencil_2d.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS, GRID_MASKS, GRID_SHAPE
from .context import Context
from .weighted_sum import weighted_sum
from .ghosted import ghosted
from .hold_border_2d import hold_border
from .stencil_2d import ragged_ghosts  # the same block as the other boundaries'


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid, summed over the axes a it
    acts on,

        (L u)_i = (s / d) Σ_a Σ_j n_j u_{i + j e_a},

    n_j the 1-D weights' exact numerators over d = c·h^k ((1, −2, 1) / H**2 along both axes
    for the Laplacian) and s an optional scale (D of D Δu).  The copy boundary's ghosts, r
    beyond each end of every axis it acts on, are built once per call; the
    numerator-weighted sum comes first, the axes' centre taps merged and last (a constant
    field gives exactly zero), then one multiply by s / d.  Extra tokens and padding tokens
    are outside the domain: zero rate."""

    def __init__(self, offsets: tuple[int, ...], numerators: tuple[int, ...], over: float,
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets, self.numerators, self.over = offsets, numerators, over
        self.weights = tuple(n / over for n in numerators)  # w_j = n_j / d
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, rows, cols, C) the stencil acts along
        pairs = sorted((o, n) for o, n in zip(offsets, numerators, strict=True) if n != 0)
        taps = [(tuple(o if a == axis else 0 for a in range(len(dims))), n)
                for axis in range(len(dims)) for o, n in pairs if o != 0]
        centre = len(dims) * sum(n for o, n in pairs if o == 0)
        self.taps = tuple(taps) + ((((0,) * len(dims), centre),) if centre or not taps else ())

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        """s L u: (B, N, C) → (B, N, C); scale s is a number or a 0-dim tensor."""
        grid = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        batch, _, channels = u.shape  # (B, N, C)
        g = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        extended = g  # (B, rows + 2r, cols + 2r, C) once ghosted along both axes
        if GRID_MASKS and ctx.lengths is not None:  # (B, 2): each image's rows and cols
            for dim in self.dims:
                extended = ragged_ghosts(extended, dim, ctx.lengths[:, dim - 1], self.radius)
        else:
            extended = ghosted(g, self.dims, self.radius)
        windows = []
        for shift, n in self.taps:
            window = extended
            for dim, offset in zip(self.dims, shift, strict=True):
                window = window.narrow(dim, self.radius + offset, g.shape[dim])
            windows.append((window, n))
        rate = weighted_sum(windows)
        if scale is not None or self.over != 1:
            rate.mul_((1 if scale is None else scale) / self.over)
        if GRID_MASKS and ctx.lengths is not None:
            rate = rate * grid_inside(g, ctx.lengths)
        else:
            rate = hold_border(rate)  # the border tokens are held fixed
        rate = rate.reshape(batch, -1, channels)  # (B, L, C)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate
# pdelang: end Stencil


# pdelang: begin grid_inside
def grid_inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, rows, cols, 1): 1 on the tokens of each image whose rate is not held at zero."""
    r = torch.arange(g.shape[1], device=g.device)[None, :, None]  # (1, rows, 1)
    c = torch.arange(g.shape[2], device=g.device)[None, None, :]  # (1, 1, cols)
    rows, cols = lengths[:, 0, None, None], lengths[:, 1, None, None]  # (B, 1, 1)
    inside = (r > 0) & (r < rows - 1) & (c > 0) & (c < cols - 1)  # border held fixed
    return inside[..., None].to(g.dtype)
# pdelang: end grid_inside
