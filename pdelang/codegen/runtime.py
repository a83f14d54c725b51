'''Source text of the building blocks a generated stepper may contain.

Each block is printed into the generated module only when the spec uses it, and reads
like a hand-written nanoGPT-style module: one small ``nn.Module`` per concept, tensor
shapes in comments.  ``{BOUNDARY}``-specific code is chosen by the printer.
'''

HEADER_IMPORTS = """\
from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
"""

OUTPUT = '''\
class StepperOutput(NamedTuple):
    """What ``forward`` returns when a trajectory or the attention maps are requested."""

    state: torch.Tensor  # (B, N, C) final state, after the final norm if there is one
    states: list[torch.Tensor]  # layers + 1 states (B, N, C) at layer boundaries, u(0) first
    attentions: list[torch.Tensor]  # (B, heads, N, N), one per attention evaluation
'''

CONTEXT = '''\
class Context:
    """Per-call data the operators share: masks and the recorded attention maps."""

    def __init__(self, u: torch.Tensor, mask: torch.Tensor | None, record: bool,
                 watch=None) -> None:
        batch, tokens, _ = u.shape  # u: (B, N, C)
        self.record = record
        self.watch = watch  # optional callback(layer, substep, term, u) for diagnostics
        self.layer = 0
        self.attentions: list[torch.Tensor] = []
        self.key_mask = None  # (B, 1, 1, N) bool, True for real tokens
        self.query_mask = None  # (B, 1, N, 1) bool
        self.lengths = None  # (B,) number of real grid tokens, when some are padding
        if mask is not None:
            mask = mask.to(device=u.device, dtype=torch.bool)  # (B, N)
            if mask.shape != (batch, tokens):
                raise ValueError(f"mask must have shape {(batch, tokens)}, got {tuple(mask.shape)}")
            if not bool(mask.all()):
                self.key_mask = mask[:, None, None, :]
                self.query_mask = mask[:, None, :, None]
                self.lengths = grid_lengths(mask[:, EXTRA_TOKENS:])
        self.causal = None
        if CAUSAL:
            self.causal = torch.ones(tokens, tokens, dtype=torch.bool, device=u.device).tril()
        # The boolean "may attend" mask of the explicit path: (B or 1, 1, N, N) or None.
        self.attend = self.key_mask
        if self.causal is not None:
            self.attend = self.causal if self.attend is None else self.attend & self.causal

    def after(self, substep: int, term: str, u: torch.Tensor) -> None:
        """Diagnostics hook after every sub-step; a no-op unless a watcher is set."""
        if self.watch is not None:
            self.watch(self.layer, substep, term, u)
'''

GRID_LENGTHS_1D = '''\
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
'''

GRID_LENGTHS_2D = '''\
def grid_lengths(grid_mask: torch.Tensor) -> torch.Tensor:
    """Real extent (rows, cols) of each image, (B, 2): a smaller image lies in the top-left
    corner of the grid and padding fills whole trailing rows and columns."""
    grid = grid_mask.reshape(grid_mask.shape[0], *GRID_SHAPE)  # (B, rows, cols)
    rows = grid.any(dim=2).sum(dim=1)  # (B,)
    cols = grid.any(dim=1).sum(dim=1)  # (B,)
    r = torch.arange(GRID_SHAPE[0], device=grid.device)[None, :, None]
    c = torch.arange(GRID_SHAPE[1], device=grid.device)[None, None, :]
    if not bool((grid == ((r < rows[:, None, None]) & (c < cols[:, None, None]))).all()):
        raise ValueError("padding on a 2-D grid must fill whole trailing rows and columns "
                         "(each image in the top-left corner)")
    extents = torch.stack([rows, cols], dim=1)  # (B, 2)
    if STENCIL_RADIUS and bool(((extents > 0) & (extents <= STENCIL_RADIUS)).any()):
        raise ValueError(f"a padded image has {int(extents[extents > 0].min())} real tokens "
                         f"along an axis; the stencils need > {STENCIL_RADIUS}")
    return extents
'''

POSITIVE = '''\
class Positive(nn.Module):
    """Parametrization θ ↦ softplus(θ) > 0 (``positive: true`` in the spec)."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return F.softplus(raw)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value + torch.log(-torch.expm1(-value))  # softplus⁻¹
'''

ATTENTION = '''\
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
'''

FINITE_LOGSUMEXP = '''\
def finite_logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """logsumexp that is 0 (not −inf) over an all-masked row or column.

    The masked rows are zeroed *before* the reduction: logsumexp of an all −inf row is
    finite-valued after a where(), but its gradient (a softmax of −inf) is NaN."""
    empty = (x == float("-inf")).all(dim=dim, keepdim=True)
    lse = torch.logsumexp(x.masked_fill(empty, 0.0), dim=dim, keepdim=True)
    return lse.masked_fill(empty, 0.0)
'''

MLP = '''\
class MLP(nn.Module):
    """The local reaction R(u) = W_2 σ(W_1 u + b_1) + b_2, token-wise."""

    def __init__(self, channels: int, hidden: int, activation: str, bias: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.activation = ACTIVATIONS[activation]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(u)))  # (B, N, C) → (B, N, H) → (B, N, C)
'''

ACTIVATION_SOURCES = {
    "gelu": "F.gelu",
    "gelu_tanh": "lambda x: F.gelu(x, approximate=\"tanh\")",
    "relu": "F.relu",
    "silu": "F.silu",
    "tanh": "torch.tanh",
}

GHOSTS = {
    "periodic": '''\
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Periodic boundary: the grid wraps around, u_{-j} = u_{L-j}."""
    size = g.shape[dim]
    if size < r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r}")
    left = g.narrow(dim, size - r, r)
    right = g.narrow(dim, 0, r)
    return torch.cat([left, g, right], dim=dim)
''',
    "neumann": '''\
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Reflecting (neumann) boundary: even mirror about the end tokens, u_{-j} = u_j."""
    size = g.shape[dim]
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    left = g.narrow(dim, 1, r).flip(dim)
    right = g.narrow(dim, size - 1 - r, r).flip(dim)
    return torch.cat([left, g, right], dim=dim)
''',
    "dirichlet": '''\
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Zero (dirichlet) boundary: u = 0 one spacing beyond each end token; further ghosts
    by odd reflection about that point, u_{-1-j} = -u_{j-1} (zero padding for r = 1)."""
    size = g.shape[dim]
    if size < r - 1:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs ≥ {r - 1}")
    zero = torch.zeros_like(g.narrow(dim, 0, 1))
    left = torch.cat([-g.narrow(dim, 0, r - 1).flip(dim), zero], dim=dim)
    right = torch.cat([zero, -g.narrow(dim, size - r + 1, r - 1).flip(dim)], dim=dim)
    return torch.cat([left, g, right], dim=dim)
''',
    "copy": '''\
def with_ghosts(g: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """Copy boundary (end tokens held fixed): odd reflection about the end token,
    u_{-j} = 2 u_0 − u_j, so the end token is a Dirichlet value for its neighbours."""
    size = g.shape[dim]
    if size <= r:
        raise ValueError(f"the grid has {size} tokens along an axis; the stencil needs > {r}")
    first, last = g.narrow(dim, 0, 1), g.narrow(dim, size - 1, 1)
    left = 2 * first - g.narrow(dim, 1, r).flip(dim)
    right = 2 * last - g.narrow(dim, size - 1 - r, r).flip(dim)
    return torch.cat([left, g, right], dim=dim)
''',
}

RAGGED_VALUE = {
    "periodic": '''\
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: periodic wrap."""
    return take(g, torch.remainder(p, n))
''',
    "neumann": '''\
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: even mirror."""
    return take(g, torch.where(p < 0, -p, torch.where(p >= n, 2 * (n - 1) - p, p)))
''',
    "dirichlet": '''\
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: zero one spacing
    beyond the ends, odd mirror about those points further out."""
    outside = (p < 0) | (p >= n)
    index = torch.where(p < 0, -2 - p, torch.where(p >= n, 2 * n - p, p))
    sign = torch.where(outside, -1.0, 1.0).to(g.dtype)
    sign = torch.where((p == -1) | (p == n), torch.zeros_like(sign), sign)
    return sign[..., None] * take(g, index)
''',
    "copy": '''\
def ghost_value(g: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """u at grid positions p (B, L) of sequences with n real tokens: odd mirror about the
    end tokens, u_{-j} = 2 u_0 − u_j."""
    inside = (p >= 0) & (p < n)
    value = take(g, torch.where(p < 0, -p, torch.where(p >= n, 2 * (n - 1) - p, p)))
    anchor = take(g, torch.where(p < 0, torch.zeros_like(p), n - 1))  # (B, L)
    return torch.where(inside[..., None], value, 2 * anchor - value)
''',
}

TAKE = '''\
def take(g: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """g[b, index[b, i], :] for g (B, L, C) and index (B, L)."""
    index = index.clamp(0, g.shape[1] - 1)
    return torch.gather(g, 1, index[..., None].expand(-1, -1, g.shape[2]))
'''
