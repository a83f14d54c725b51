"""Block ``grid_lengths`` of a 1-D grid: real tokens per (right-padded) sequence."""

from __future__ import annotations

import torch

from .constants import STENCIL_RADIUS


# pdelang: begin grid_lengths
def grid_lengths(grid_mask: torch.Tensor) -> torch.Tensor:
    """Number of real grid tokens per sequence; padding must come last (right padding)."""
    lengths = grid_mask.sum(dim=1)  # (B,)
    positions = torch.arange(grid_mask.shape[1], device=grid_mask.device)
    if not bool((grid_mask == (positions[None, :] < lengths[:, None])).all()):
        raise ValueError("padding tokens must follow the real tokens (right padding)")
    if STENCIL_RADIUS and bool(((lengths > 0) & (lengths <= STENCIL_RADIUS)).any()):
        raise ValueError(f"a padded sequence has {int(lengths[lengths > 0].min())} real tokens; "
                         f"the stencils need > {STENCIL_RADIUS}")
    return lengths
# pdelang: end grid_lengths
