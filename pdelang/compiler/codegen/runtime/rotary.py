"""Block ``rotary``: rotary position embeddings of queries and keys (RoFormer, Llama)."""

from __future__ import annotations

import torch

from .context import Context


# pdelang: begin rotary
def rotary(q: torch.Tensor, k: torch.Tensor, theta: float,
           ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the channel pairs (i, i + r/2) of every query and key head by the angle
    n · θ^(−2i/r) at token n = 0 … N−1 (Su et al.; the "rotate-half" layout of Llama):

        x' = x · cos(nω) + rotate_half(x) · sin(nω),  rotate_half(x) = (−x₂, x₁),

    so <q'_n, k'_m> depends on n − m only.  q (B, H, N, r), k (B, G, N, r); the angles are
    formed in float64 and built once a call (``ctx.masks``)."""
    tokens, width = q.shape[-2], q.shape[-1]
    key = ("rotary", theta, tokens, width, q.dtype, q.device)
    if key not in ctx.masks:
        steps = torch.arange(0, width, 2, dtype=torch.float64, device=q.device) / width
        frequencies = theta ** -steps  # (r/2,)
        positions = torch.arange(tokens, dtype=torch.float64, device=q.device)
        angles = torch.outer(positions, frequencies).repeat(1, 2)  # (N, r)
        ctx.masks[key] = (angles.cos().to(q.dtype), angles.sin().to(q.dtype))
    cos, sin = ctx.masks[key]  # (N, r) each

    def rotate(x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-second, first), dim=-1) * sin

    return rotate(q), rotate(k)
# pdelang: end rotary
