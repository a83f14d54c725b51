"""Block ``Conv``: the learned depthwise convolution of ``conv(u, kernel=K)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import BOUNDARY, EXTRA_TOKENS, GRID_SHAPE
from .context import Context
from .ghosts_periodic import ghost_value, with_ghosts


# pdelang: begin Conv
class Conv(nn.Module):
    """A learned stencil: (K * u)_i = Σ_{|j| ≤ r} w_j ⊙ u_{i+j} (+ b), one K-point (1-D) or
    K×K (2-D) kernel per channel, ghosts from the boundary rule; zero rate off the grid,
    on padding tokens and on a held (copy) border, like the fixed stencils."""

    def __init__(self, channels: int, kernel: int, bias: bool) -> None:
        super().__init__()
        self.radius = kernel // 2
        self.dims = (1,) if GRID_SHAPE is None else (1, 2)  # grid axes of (B, *grid, C)
        self.weight = nn.Parameter(torch.empty(channels, *(kernel,) * len(self.dims)))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        nn.init.uniform_(self.weight, -kernel ** -len(self.dims), kernel ** -len(self.dims))

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        batch, _, channels = u.shape  # (B, N, C)
        g = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        if GRID_SHAPE is not None:
            g = g.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        extended = g
        for axis, dim in enumerate(self.dims if self.radius else ()):  # K = 1: no ghosts
            if ctx.lengths is None:
                extended = with_ghosts(extended, dim, self.radius)
            else:
                n = ctx.lengths.reshape(batch, -1)[:, axis]  # (B,) real tokens along dim
                extended = self.ragged_ghosts(extended, dim, n)
        x = extended.movedim(-1, 1)  # (B, C, *extended grid)
        kernel = self.weight[:, None]  # (C, 1, K) or (C, 1, K, K): depthwise
        conv = F.conv1d if GRID_SHAPE is None else F.conv2d
        rate = conv(x, kernel.to(x.dtype), groups=channels).movedim(1, -1)  # (B, *grid, C)
        if self.bias is not None:
            rate = rate + self.bias.to(rate.dtype)
        if BOUNDARY == "copy" or ctx.lengths is not None:  # else every token is inside
            rate = rate * self.inside(g, ctx.lengths)
        rate = rate.reshape(batch, -1, channels)  # (B, L, C)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate

    def ragged_ghosts(self, g: torch.Tensor, dim: int, n: torch.Tensor) -> torch.Tensor:
        """g with r ghosts at both ends of dim, each sequence or image by its own n."""
        moved = g.movedim(dim, 1)  # (B, S, …, C)
        flat = moved.reshape(moved.shape[0], moved.shape[1], -1)  # (B, S, rest)
        positions = torch.arange(-self.radius, flat.shape[1] + self.radius,
                                 device=g.device)[None, :]  # (1, S + 2r)
        values = ghost_value(flat, positions, n.clamp(min=1)[:, None])  # (B, S + 2r, rest)
        return values.reshape(moved.shape[0], -1, *moved.shape[2:]).movedim(1, dim)

    def inside(self, g: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(B or 1, *grid, 1): 1 where the rate is not held at zero (padding, copy border)."""
        mask = None
        for axis, dim in enumerate(self.dims):
            size = g.shape[dim]
            view = [1] * (len(self.dims) + 1)
            view[axis + 1] = size
            p = torch.arange(size, device=g.device).reshape(view)  # along this axis
            n = torch.full((1,), size, device=g.device) if lengths is None \
                else lengths.reshape(g.shape[0], -1)[:, axis]
            n = n.reshape([-1] + [1] * len(self.dims))  # (B or 1, 1, …)
            ok = p < n
            if BOUNDARY == "copy":  # the end tokens are held fixed
                ok = ok & (p > 0) & (p < n - 1)
            mask = ok if mask is None else mask & ok
        return mask[..., None].to(g.dtype)
# pdelang: end Conv

