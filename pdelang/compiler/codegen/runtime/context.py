"""Block ``Context``: per-call masks and recorded attention maps, shared by the operators."""

from __future__ import annotations

import torch

from .constants import ATTENTION_MASKS, EXTRA_TOKENS, GRID_MASKS, PADDING
from .grid_lengths_1d import grid_lengths


# pdelang: begin Context
class Context:
    """Per-call data the operators share: masks and the recorded attention maps."""

    def __init__(self, u: torch.Tensor, mask: torch.Tensor | None, record: bool,
                 watch=None) -> None:
        batch, tokens, _ = u.shape  # u: (B, N, C)
        self.record = record
        self.watch = watch  # optional callback(layer, substep, term, u) for diagnostics
        self.layer = 0
        self.attentions: list[torch.Tensor] = []
        if ATTENTION_MASKS:
            self.key_mask = None  # (B, 1, 1, N) bool, True for real tokens
            self.query_mask = None  # (B, 1, N, 1) bool
            self.masks: dict[tuple, torch.Tensor | None] = {}  # attention masks, once a call
        if GRID_MASKS:
            self.lengths = None  # (B,) number of real grid tokens, when some are padding
        if mask is not None:
            mask = mask.to(device=u.device, dtype=torch.bool)  # (B, N)
            if mask.shape != (batch, tokens):
                raise ValueError(f"mask must have shape {(batch, tokens)}, "
                                 f"got {tuple(mask.shape)}")
            if not PADDING and not bool(mask.all()):
                raise ValueError("the spec sets grid.padding: false, so every token must be "
                                 "real (an all-ones mask); set grid.padding: true for padding")
            if ATTENTION_MASKS and not bool(mask.all()):
                self.key_mask = mask[:, None, None, :]
                self.query_mask = mask[:, None, :, None]
            if GRID_MASKS and not bool(mask.all()):
                self.lengths = grid_lengths(mask[:, EXTRA_TOKENS:])

    def after(self, substep: int, term: str, u: torch.Tensor) -> None:
        """Diagnostics hook after every sub-step; a no-op unless a watcher is set."""
        if self.watch is not None:
            self.watch(self.layer, substep, term, u)
# pdelang: end Context
