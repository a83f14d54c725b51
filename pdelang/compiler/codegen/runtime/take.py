"""Block ``take``: gather grid tokens of each sequence at given positions."""

from __future__ import annotations

import torch


# pdelang: begin take
def take(g: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """g[b, index[b, i], :] for g (B, L, C) and index (B, L)."""
    index = index.clamp(0, g.shape[1] - 1)
    return torch.gather(g, 1, index[..., None].expand(-1, -1, g.shape[2]))
# pdelang: end take
