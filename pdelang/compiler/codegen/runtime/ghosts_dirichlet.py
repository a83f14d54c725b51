"""Blocks ``with_ghosts`` and ``ghost_value`` of the dirichlet boundary."""

from __future__ import annotations

import torch

from .take import take


# pdelang: begin with_ghosts
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Zero (dirichlet) boundary: u = 0 one spacing beyond each end token; further ghosts
    by odd reflection about that point, u_{-1-j} = -u_{j-1} (zero padding for r = 1)."""
    size = g.shape[dim]
    if size < r - 1:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r - 1}")
    zero = torch.zeros_like(g.narrow(dim, 0, 1))
    left = torch.cat([-g.narrow(dim, 0, r - 1).flip(dim), zero], dim=dim)
    right = torch.cat([zero, -g.narrow(dim, size - r + 1, r - 1).flip(dim)], dim=dim)
    return torch.cat([left, g, right], dim=dim)
# pdelang: end with_ghosts


# pdelang: begin ghost_value
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: zero one spacing
    beyond the ends, odd mirror about those points further out."""
    outside = (p < 0) | (p >= n)
    index = torch.where(p < 0, -2 - p, torch.where(p >= n, 2 * n - p, p))
    sign = torch.where(outside, -1.0, 1.0).to(g.dtype)
    sign = torch.where((p == -1) | (p == n), torch.zeros_like(sign), sign)
    return sign[..., None] * take(g, index)
# pdelang: end ghost_value


# pdelang: begin fill_ghosts
def fill_ghosts(extended: torch.Tensor, dim: int, r: int) -> None:
    """Zero (dirichlet) boundary, in place: u = 0 one spacing beyond each end of dim
    (interior r … r+L−1); further ghosts by odd reflection, u_{-1-j} = -u_{j-1}."""
    size = extended.shape[dim] - 2 * r  # L
    if size < r - 1:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r - 1}")
    extended.narrow(dim, r - 1, 1).zero_()
    extended.narrow(dim, r + size, 1).zero_()
    if r > 1:
        left = extended.narrow(dim, r, r - 1).flip(dim)
        extended.narrow(dim, 0, r - 1).copy_(-left)
        right = extended.narrow(dim, size + 1, r - 1).flip(dim)
        extended.narrow(dim, r + size + 1, r - 1).copy_(-right)
# pdelang: end fill_ghosts
