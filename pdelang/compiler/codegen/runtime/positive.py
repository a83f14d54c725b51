"""Block ``Positive``: the softplus parametrization of ``positive: true`` parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# pdelang: begin Positive
class Positive(nn.Module):
    """Parametrization θ ↦ softplus(θ) > 0 (``positive: true`` in the spec)."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return F.softplus(raw)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value + torch.log(-torch.expm1(-value))  # softplus⁻¹
# pdelang: end Positive
