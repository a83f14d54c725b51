"""Block ``Attention``: multi-head self-attention, softmax or Sinkhorn kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import GROUPED_QUERIES, ROTARY, SINKHORN, SOFTMAX
from .context import Context
from .finite_logsumexp import finite_logsumexp
from .rotary import rotary


# pdelang: begin Attention
class Attention(nn.Module):
    """Multi-head self-attention, the non-local interaction A[u]:

        A[u](x) = W_O concat_h Σ_y P_h(x, y) W_V^h u(y),
        P_h(x, ·) = softmax_y(<W_Q^h u(x), W_K^h u(y)> / √d_h)   (kernel="softmax")

    or the Sinkhorn-normalized (doubly stochastic) kernel of Sander et al. (kernel="sinkhorn").
    The factor 1/√d_h scales the queries (N·C numbers per sequence), not the scores (H·N²);
    the parameters stay the un-scaled W_Q, b_Q.  ``rank`` r > 0 gives the queries and keys
    r dimensions per head instead of d_h = C/H (a low-rank kernel; 1/√r scales them).
    ``kv_heads`` G < H shares each key/value head among H/G query heads (grouped-query
    attention; query head h reads key/value head h // (H/G)); ``rope_theta`` θ > 0 rotates
    the queries and keys by their token's position (rotary embeddings, see ``rotary``).
    """

    def __init__(self, channels: int, heads: int, *, causal: bool, kernel: str, iterations: int,
                 bias: bool, rank: int = 0, kv_heads: int = 0, rope_theta: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads or heads
        self.head_dim = channels // heads
        self.qk_dim = rank or self.head_dim  # query/key width per head
        self.scale = self.qk_dim**-0.5  # 1/√d_qk
        self.kernel = kernel
        self.iterations = iterations
        self.causal = causal
        self.rope_theta = rope_theta
        self.q = nn.Linear(channels, heads * self.qk_dim, bias=bias)
        self.k = nn.Linear(channels, self.kv_heads * self.qk_dim, bias=bias)
        self.v = nn.Linear(channels, self.kv_heads * self.head_dim, bias=bias)
        self.o = nn.Linear(channels, channels, bias=bias)

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        batch, tokens, channels = u.shape  # (B, N, C)
        shape = (batch, tokens, self.kv_heads, self.head_dim)
        q_shape = (batch, tokens, self.heads, self.qk_dim)
        k_shape = (batch, tokens, self.kv_heads, self.qk_dim)
        q = self.q(u).mul_(self.scale).view(q_shape).transpose(1, 2)  # (B, H, N, r): Q/√r
        k = self.k(u).view(k_shape).transpose(1, 2)  # (B, G, N, r)
        v = self.v(u).view(shape).transpose(1, 2)  # (B, G, N, d)
        if ROTARY and self.rope_theta:
            q, k = rotary(q, k, self.rope_theta, ctx)  # (B, H, N, r), (B, G, N, r)
        if GROUPED_QUERIES and self.kv_heads != self.heads:  # one k/v head per H/G q heads
            group = self.heads // self.kv_heads
            k = k.repeat_interleave(group, dim=1)  # (B, H, N, r)
            v = v.repeat_interleave(group, dim=1)  # (B, H, N, d)
        if SOFTMAX and (not SINKHORN or self.kernel == "softmax") and not ctx.record:
            # Fused kernel, memory O(N): is_causal or a (B, 1, 1, N) key mask, unless the
            # attention is causal and padded: a (B, 1, N, N) bool mask then.
            is_causal = self.causal and ctx.key_mask is None
            mask = None if is_causal else self.allowed(ctx, q)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                               scale=1.0)  # (B, H, N, d)
        else:
            weights = self.attention_weights(q, k, ctx)  # (B, H, N, N)
            if ctx.record:
                ctx.attentions.append(weights)
            y = weights @ v  # (B, H, N, d)
        y = y.transpose(1, 2).reshape(batch, tokens, channels)  # (B, N, C)
        return self.o(y)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor, ctx: Context) -> torch.Tensor:
        """The maps P (B, H, N, N) from the scaled queries q = Q/√d_h and the keys K.

        softmax: P = softmax_y(q Kᵀ + M), M = −inf where attention is blocked (padding keys;
        the future if causal), 0 elsewhere.  The scores are the only (N, N) tensor: the mask
        is filled in place and, unless autograd keeps the scores, so is the softmax.
        """
        scores = q @ k.transpose(-2, -1)  # (B, H, N, N)
        if SINKHORN and (not SOFTMAX or self.kernel != "softmax"):
            # Sinkhorn in the log domain: alternate column and row normalization, rows
            # last, over real tokens only (padding queries and keys are outside the domain).
            blocked = self.blocked(ctx, q, queries=True)
            if blocked is not None:
                scores.masked_fill_(blocked, float("-inf"))
            if self.kernel == "sinkhorn_symmetric":
                # One potential f for symmetric scores S = Sᵀ (W_Q = W_K, b_Q = b_K), the
                # averaged update f ← (f − LSE_y(S + fᵀ))/2: P = exp(S + f + fᵀ) is then
                # doubly stochastic; near it the error contracts by (I − P)/2 (≤ 1/2 when
                # exp(S) is positive semi-definite, e.g. a Gaussian kernel) however large the
                # scores, where alternating normalization slows down as they grow.
                f = torch.zeros_like(scores[..., :1])  # (B, H, N, 1)
                for _ in range(self.iterations):
                    f = 0.5 * (f - finite_logsumexp(scores + f.transpose(-2, -1), dim=-1))
                scores = scores + f + f.transpose(-2, -1)
                return (scores - finite_logsumexp(scores, dim=-1)).exp()  # rows exact
            for _ in range(self.iterations):
                scores = scores - finite_logsumexp(scores, dim=-2)
                scores = scores - finite_logsumexp(scores, dim=-1)
            return scores.exp()
        else:
            blocked = self.blocked(ctx, q)
            if blocked is not None:
                scores.masked_fill_(blocked, float("-inf"))
            if scores.requires_grad:
                return scores.softmax(dim=-1)
            return torch.softmax(scores, dim=-1, out=scores)

    def allowed(self, ctx: Context, q: torch.Tensor, queries: bool = False) -> torch.Tensor | None:
        """Where query x may attend to key y (True), broadcastable to (B, H, N, N); None for
        everywhere.  Real keys; if causal, the past y ≤ x; with ``queries``, real queries only
        (Sinkhorn's domain).  (B or 1, 1, N or 1, N) bool, built once a call (``ctx.masks``)."""
        key = ("allowed", self.causal, queries)
        if key not in ctx.masks:
            allowed = ctx.key_mask  # (B, 1, 1, N) or None
            if queries and ctx.query_mask is not None:
                allowed = allowed & ctx.query_mask  # (B, 1, N, N)
            if self.causal:
                tokens = q.shape[-2]
                past = torch.ones(tokens, tokens, dtype=torch.bool, device=q.device).tril()
                allowed = past if allowed is None else allowed & past  # (N, N) or (B, 1, N, N)
            ctx.masks[key] = allowed
        return ctx.masks[key]

    def blocked(self, ctx: Context, q: torch.Tensor, queries: bool = False) -> torch.Tensor | None:
        """¬allowed: where the scores are filled with −inf; None for nowhere.  Built once a call."""
        key = ("blocked", self.causal, queries)
        if key not in ctx.masks:
            allowed = self.allowed(ctx, q, queries)
            ctx.masks[key] = None if allowed is None else ~allowed
        return ctx.masks[key]
# pdelang: end Attention
