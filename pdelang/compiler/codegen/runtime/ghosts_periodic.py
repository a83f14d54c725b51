"""Blocks ``with_ghosts`` and ``ghost_value`` of the periodic boundary."""

from __future__ import annotations

import torch

from .take import take


# pdelang: begin with_ghosts
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Periodic boundary: the grid wraps around, u_{-j} = u_{L-j}."""
    size = g.shape[dim]
    if size < r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r}")
    left = g.narrow(dim, size - r, r)
    right = g.narrow(dim, 0, r)
    return torch.cat([left, g, right], dim=dim)
# pdelang: end with_ghosts


# pdelang: begin ghost_value
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: periodic wrap (a
    sequence without grid tokens reads token 0; its rate is masked out)."""
    return take(g, torch.remainder(p, n.clamp(min=1)))
# pdelang: end ghost_value


# pdelang: begin fill_ghosts
def fill_ghosts(extended: torch.Tensor, dim: int, r: int) -> None:
    """Periodic boundary, in place: the r ghosts beyond each end of dim (interior r … r+L−1)
    wrap around, u_{-j} = u_{L-j}."""
    size = extended.shape[dim] - 2 * r  # L
    if size < r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r}")
    extended.narrow(dim, 0, r).copy_(extended.narrow(dim, size, r))
    extended.narrow(dim, r + size, r).copy_(extended.narrow(dim, r, r))
# pdelang: end fill_ghosts
