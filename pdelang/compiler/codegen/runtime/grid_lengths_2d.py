"""Block ``grid_lengths`` of a 2-D grid: real (rows, cols) of each padded image."""

from __future__ import annotations

import torch

from .constants import GRID_SHAPE, STENCIL_RADIUS


# pdelang: begin grid_lengths
def grid_lengths(grid_mask: torch.Tensor) -> torch.Tensor:
    """Real extent (rows, cols) of each image, (B, 2): a smaller image lies in the top-left
    corner of the grid and padding fills whole trailing rows and columns."""
    grid = grid_mask.reshape(grid_mask.shape[0], *GRID_SHAPE)  # (B, rows, cols)
    rows = grid.any(dim=2).sum(dim=1)  # (B,)
    cols = grid.any(dim=1).sum(dim=1)  # (B,)
    r = torch.arange(GRID_SHAPE[0], device=grid.device)[None, :, None]
    c = torch.arange(GRID_SHAPE[1], device=grid.device)[None, None, :]
    if not bool((grid == ((r < rows[:, None, None]) & (c < cols[:, None, None]))).all()):
        raise ValueError("padding on a 2-D grid must fill whole trailing rows and columns "
                         "(each image in the top-left corner)")
    extents = torch.stack([rows, cols], dim=1)  # (B, 2)
    if STENCIL_RADIUS and bool(((extents > 0) & (extents <= STENCIL_RADIUS)).any()):
        raise ValueError(f"a padded image has {int(extents[extents > 0].min())} real tokens "
                         f"along an axis; the stencils need > {STENCIL_RADIUS}")
    return extents
# pdelang: end grid_lengths
