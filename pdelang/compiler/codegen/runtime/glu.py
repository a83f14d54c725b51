"""Block ``GLU``: the gated token-wise feed-forward network (SwiGLU, GeGLU)."""

from __future__ import annotations

import torch
from torch import nn


# pdelang: begin GLU
class GLU(nn.Module):
    """The gated local reaction R(u) = W_down (σ(W_gate u) ⊙ W_up u), token-wise (Shazeer,
    "GLU variants improve Transformer"; σ = SiLU is Llama's SwiGLU)."""

    def __init__(self, channels: int, hidden: int, activation, bias: bool) -> None:
        super().__init__()
        self.gate = nn.Linear(channels, hidden, bias=bias)
        self.up = nn.Linear(channels, hidden, bias=bias)
        self.down = nn.Linear(hidden, channels, bias=bias)
        self.activation = activation  # σ: a function of one tensor, e.g. F.silu

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(self.gate(u)) * self.up(u)  # (B, N, C) → (B, N, H)
        return self.down(hidden)  # (B, N, C)
# pdelang: end GLU
