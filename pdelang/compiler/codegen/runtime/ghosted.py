"""Block ``ghosted``: a grid with r ghost tokens beyond both ends of several axes, built in
one allocation (the boundary's ``fill_ghosts`` rule; periodic stands in here)."""

from __future__ import annotations

import torch

from .ghosts_periodic import fill_ghosts, with_ghosts


# pdelang: begin ghosted
def ghosted(g: torch.Tensor, dims: tuple[int, ...], r: int) -> torch.Tensor:
    """g with r ghosts beyond both ends of each axis in dims, filled axis by axis (a later
    axis's ghosts span the earlier axes' ghosts): one new tensor, one copy of g."""
    if torch.compiler.is_compiling():  # inductor fuses concatenations, not slice writes
        for dim in dims:
            g = with_ghosts(g, dim, r)
        return g
    shape = [size + 2 * r if dim in dims else size for dim, size in enumerate(g.shape)]
    extended = g.new_empty(shape)
    interior = extended
    for dim in dims:
        interior = interior.narrow(dim, r, g.shape[dim])
    interior.copy_(g)
    for dim in dims:
        fill_ghosts(extended, dim, r)
    return extended
# pdelang: end ghosted
