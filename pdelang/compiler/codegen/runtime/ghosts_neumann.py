"""Blocks ``with_ghosts`` and ``ghost_value`` of the neumann boundary."""

from __future__ import annotations

import torch

from .take import take


# pdelang: begin with_ghosts
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Reflecting (neumann) boundary: even mirror about the end tokens, u_{-j} = u_j."""
    size = g.shape[dim]
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    left = g.narrow(dim, 1, r).flip(dim)
    right = g.narrow(dim, size - 1 - r, r).flip(dim)
    return torch.cat([left, g, right], dim=dim)
# pdelang: end with_ghosts


# pdelang: begin ghost_value
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: even mirror."""
    return take(g, torch.where(p < 0, -p, torch.where(p >= n, 2 * (n - 1) - p, p)))
# pdelang: end ghost_value


# pdelang: begin fill_ghosts
def fill_ghosts(extended: torch.Tensor, dim: int, r: int) -> None:
    """Reflecting (neumann) boundary, in place: the r ghosts beyond each end of dim
    (interior r … r+L−1) mirror the end tokens, u_{-j} = u_j."""
    size = extended.shape[dim] - 2 * r  # L
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    extended.narrow(dim, 0, r).copy_(extended.narrow(dim, r + 1, r).flip(dim))
    extended.narrow(dim, r + size, r).copy_(extended.narrow(dim, size - 1, r).flip(dim))
# pdelang: end fill_ghosts
