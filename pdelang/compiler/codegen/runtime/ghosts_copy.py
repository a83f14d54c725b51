"""Blocks ``with_ghosts`` and ``ghost_value`` of the copy boundary."""

from __future__ import annotations

import torch

from .take import take


# pdelang: begin with_ghosts
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Copy boundary (end tokens held fixed): odd reflection about the end token,
    u_{-j} = 2 u_0 − u_j, so the end token is a Dirichlet value for its neighbours."""
    size = g.shape[dim]
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    first, last = g.narrow(dim, 0, 1), g.narrow(dim, size - 1, 1)
    left = 2 * first - g.narrow(dim, 1, r).flip(dim)
    right = 2 * last - g.narrow(dim, size - 1 - r, r).flip(dim)
    return torch.cat([left, g, right], dim=dim)
# pdelang: end with_ghosts


# pdelang: begin ghost_value
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: odd mirror about the
    end tokens, u_{-j} = 2 u_0 − u_j."""
    inside = (p >= 0) & (p < n)
    value = take(g, torch.where(p < 0, -p, torch.where(p >= n, 2 * (n - 1) - p, p)))
    anchor = take(g, torch.where(p < 0, torch.zeros_like(p), n - 1))  # (B, L)
    return torch.where(inside[..., None], value, 2 * anchor - value)
# pdelang: end ghost_value


# pdelang: begin fill_ghosts
def fill_ghosts(extended: torch.Tensor, dim: int, r: int) -> None:
    """Copy boundary (end tokens held fixed), in place: the r ghosts beyond each end of dim
    (interior r … r+L−1) are the odd reflection about the end token, u_{-j} = 2 u_0 − u_j."""
    size = extended.shape[dim] - 2 * r  # L
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    first, last = extended.narrow(dim, r, 1), extended.narrow(dim, r + size - 1, 1)
    extended.narrow(dim, 0, r).copy_(2 * first - extended.narrow(dim, r + 1, r).flip(dim))
    right = 2 * last - extended.narrow(dim, size - 1, r).flip(dim)
    extended.narrow(dim, r + size, r).copy_(right)
# pdelang: end fill_ghosts
