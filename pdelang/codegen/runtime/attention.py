"""Block ``Attention``: multi-head self-attention, softmax or Sinkhorn kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .context import Context
from .finite_logsumexp import finite_logsumexp


# pdelang: begin Attention
class Attention(nn.Module):
    """Multi-head self-attention, the non-local interaction A[u]:

        A[u](x) = W_O concat_h Σ_y P_h(x, y) W_V^h u(y),
        P_h(x, ·) = softmax_y(<W_Q^h u(x), W_K^h u(y)> / √d_h)   (kernel="softmax")

    or the Sinkhorn-normalized (doubly stochastic) kernel of Sander et al. (kernel="sinkhorn").
    """

    def __init__(self, channels: int, heads: int, *, causal: bool, kernel: str, iterations: int,
                 bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = channels // heads
        self.kernel = kernel
        self.iterations = iterations
        self.causal = causal
        self.q = nn.Linear(channels, channels, bias=bias)
        self.k = nn.Linear(channels, channels, bias=bias)
        self.v = nn.Linear(channels, channels, bias=bias)
        self.o = nn.Linear(channels, channels, bias=bias)

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        batch, tokens, channels = u.shape  # (B, N, C)
        shape = (batch, tokens, self.heads, self.head_dim)
        q = self.q(u).view(shape).transpose(1, 2)  # (B, H, N, d)
        k = self.k(u).view(shape).transpose(1, 2)  # (B, H, N, d)
        v = self.v(u).view(shape).transpose(1, 2)  # (B, H, N, d)
        if self.kernel == "softmax" and not ctx.record:
            causal_only = self.causal and ctx.key_mask is None
            mask = None if causal_only else (ctx.attend if self.causal else ctx.key_mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal_only)
        else:
            weights = self.attention_weights(q, k, ctx)  # (B, H, N, N)
            if ctx.record:
                ctx.attentions.append(weights)
            y = weights @ v  # (B, H, N, d)
        y = y.transpose(1, 2).reshape(batch, tokens, channels)  # (B, N, C)
        return self.o(y)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor, ctx: Context) -> torch.Tensor:
        scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, H, N, N)
        attend = ctx.attend if self.causal else ctx.key_mask
        if self.kernel == "softmax":
            if attend is not None:
                scores = scores.masked_fill(~attend, float("-inf"))
            return scores.softmax(dim=-1)
        # Sinkhorn in the log domain: alternate column and row normalization, rows last,
        # over real tokens only (padding queries and keys are outside the domain).
        if ctx.query_mask is not None:
            attend = ctx.query_mask if attend is None else attend & ctx.query_mask
        if attend is not None:
            scores = scores.masked_fill(~attend, float("-inf"))
        for _ in range(self.iterations):
            scores = scores - finite_logsumexp(scores, dim=-2)
            scores = scores - finite_logsumexp(scores, dim=-1)
        return scores.exp()
# pdelang: end Attention
