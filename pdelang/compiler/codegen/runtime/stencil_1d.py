"""Blocks ``Stencil``, ``ragged_ghosts`` and ``grid_inside`` of a 1-D grid, any boundary but copy.

The printer fills in ``{boundary}`` in the docstring; the ghost rules come from
the boundary's ``ghosts_*`` file (periodic stands in here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import EXTRA_TOKENS, GRID_MASKS
from .context import Context
from .ghosts_periodic import ghost_value, with_ghosts


# pdelang: begin Stencil
class Stencil(nn.Module):
    """A centred finite-difference operator on the token grid,

        (L u)_i = (s / d) Σ_j n_j u_{i+j},

    n_j the weights' exact numerators over their denominator d = c·h^k (the 3-point
    Laplacian is (1, −2, 1) / H**2) and s an optional scale (D of D Δu), applied with 1/d in
    one multiplication.  The ghost values of the {boundary} boundary are built once per call,
    r tokens beyond each end; the numerator-weighted sum is formed first, one fused add per
    tap and the centre last (a constant field gives exactly zero under (1, −2, 1)).  Extra
    tokens and padding tokens are outside the domain: zero rate."""

    def __init__(self, offsets: tuple[int, ...], numerators: tuple[int, ...], over: float,
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets, self.numerators, self.over = offsets, numerators, over
        self.weights = tuple(n / over for n in numerators)  # w_j = n_j / d
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, L, C) the stencil acts along
        taps = sorted(((o,), n) for o, n in zip(offsets, numerators, strict=True) if n != 0)
        self.taps = tuple(sorted(taps, key=lambda tap: tap[0] == (0,))) or (((0,), 0),)

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        """s L u: (B, N, C) → (B, N, C); scale s is a number or a 0-dim tensor."""
        g = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        if GRID_MASKS and ctx.lengths is not None:  # (B,): each sequence's real grid tokens
            extended = ragged_ghosts(g, 1, ctx.lengths, self.radius)  # (B, L + 2r, C)
            rate = self.scaled(self.combine(extended, g.shape, self.dims, self.taps), scale)
            rate = rate * grid_inside(g, ctx.lengths)
        else:
            extended = with_ghosts(g, 1, self.radius)  # (B, L + 2r, C)
            rate = self.scaled(self.combine(extended, g.shape, self.dims, self.taps), scale)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate

    def scaled(self, rate: torch.Tensor, scale) -> torch.Tensor:
        """rate · s/d in place (nothing to do for s/d = 1 exactly)."""
        if scale is not None:
            return rate.mul_(scale / self.over)
        return rate if self.over == 1 else rate.mul_(1 / self.over)

    def combine(self, extended: torch.Tensor, shape: torch.Size, dims: tuple[int, ...],
                taps) -> torch.Tensor:
        """Σ_t n_t (extended shifted by t along dims, cut to shape) as a new tensor; taps
        (t, n_t), t one offset per dim."""
        windows = []
        for shift, n in taps:
            window = extended
            for dim, offset in zip(dims, shift, strict=True):
                window = window.narrow(dim, self.radius + offset, shape[dim])
            windows.append((window, n))
        (first, n), rest = windows[0], windows[1:]
        if not rest:
            return first * n
        (second, m), rest = rest[0], rest[1:]
        # out-of-place add with alpha is slow on strided windows: alpha only in place
        rate = first + second if n == m == 1 else (first * n).add_(second, alpha=m)
        for window, n in rest:
            rate.add_(window, alpha=n)
        return rate
# pdelang: end Stencil


# pdelang: begin ragged_ghosts
def ragged_ghosts(g: torch.Tensor, dim: int, n: torch.Tensor, r: int) -> torch.Tensor:
    """g (B, L, C) with r ghosts beyond both ends of dim 1, sequence b's after its n[b]
    real tokens: one gather for all the taps."""
    positions = torch.arange(-r, g.shape[dim] + r, device=g.device)[None, :]  # (1, L + 2r)
    return ghost_value(g, positions, n[:, None])  # (B, L + 2r, C)
# pdelang: end ragged_ghosts


# pdelang: begin grid_inside
def grid_inside(g: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L, 1): 1 on the tokens of each sequence whose rate is not held at zero."""
    positions = torch.arange(g.shape[1], device=g.device)[None, :]  # (1, L)
    inside = positions < lengths[:, None]
    return inside[..., None].to(g.dtype)
# pdelang: end grid_inside
