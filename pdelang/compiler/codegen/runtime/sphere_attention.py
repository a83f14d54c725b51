"""Block ``SphereAttention``: weight-free self-attention at inverse temperature β, projected
onto the tangent space of the sphere (Geshkovski, Letrouit, Polyanskiy and Rigollet)."""

from __future__ import annotations

import torch
from torch import nn

from .context import Context


# pdelang: begin SphereAttention
class SphereAttention(nn.Module):
    """S[u](x) = Σ_y softmax_y(β⟨u(x), u(y)⟩) u(y) over the real tokens y, and with
    ``tangent`` its projection P⊥_u S = S − (⟨u, S⟩/⟨u, u⟩) u onto the tangent space of the
    sphere through u(x) (a token u(x) = 0 keeps S unprojected; with one channel, S⁰ has no
    tangent directions and the value is 0).  No weights."""

    def __init__(self, beta: float, tangent: bool) -> None:
        super().__init__()
        self.beta = beta
        self.tangent = tangent

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        scores = self.beta * (u @ u.transpose(-2, -1))  # (B, N, N)
        if ctx.key_mask is not None:  # (B, 1, 1, N): padding keys are outside the domain
            scores = scores.masked_fill(~ctx.key_mask[:, 0], float("-inf"))
        y = scores.softmax(dim=-1) @ u  # (B, N, C)
        if self.tangent and u.shape[-1] == 1:  # the sphere S⁰ has no tangent directions
            return torch.zeros_like(y)
        if self.tangent:
            squared = (u * u).sum(dim=-1, keepdim=True)  # (B, N, 1)
            along = (u * y).sum(dim=-1, keepdim=True) / torch.where(
                squared > 0, squared, torch.ones_like(squared))
            y = y - along * u
        return y
# pdelang: end SphereAttention
