"""Block ``MLP``: the token-wise feed-forward network, the local reaction R(u)."""

from __future__ import annotations

import torch
from torch import nn

from .activations import ACTIVATIONS


# pdelang: begin MLP
class MLP(nn.Module):
    """The local reaction R(u) = W_2 σ(W_1 u + b_1) + b_2, token-wise."""

    def __init__(self, channels: int, hidden: int, activation: str, bias: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.activation = ACTIVATIONS[activation]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(u)))  # (B, N, C) → (B, N, H) → (B, N, C)
# pdelang: end MLP
