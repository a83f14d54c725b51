"""The one metrics module of the research tools: how far one set of token states (or attention
maps) is from another, and how collapsed or large a set of states is.

Validation (:mod:`pdelang.lab.validation.validate`, through :func:`layer_metrics`) and the ablation
drift tables (:mod:`pdelang.lab.ablation.drift`) both measure with these functions.  It is a
top-level module, next to :mod:`pdelang.lab.data`, because neither tool owns it: the research tools
sit on top of the compiler and share one metrics module and one data module.

Argument convention
-------------------
Every comparison takes ``(reference, candidate, mask)``: the reference first (the real
Transformer, or the reference variant of an ablation), then the states or maps measured against
it.  The reference is the normalizer of :func:`relative_error` and the first argument of the
KL divergence in :func:`attention_kl`; the other comparisons are symmetric.

Shapes and masks
----------------
Hidden states are ``(B, N, C)`` (a ``(N, C)`` tensor is one sequence), attention maps
``(B, heads, N, N)`` with rows = queries (a ``(heads, N, N)`` tensor is one input).  A ``mask``
is ``(B, N)`` (or ``(N,)``), **True / nonzero on real tokens**, False on padding; ``None`` means
every token is real.  A mask of the wrong shape, or one that selects no token at all, is a
``ValueError``.  Averages over tokens are *pooled*: every real token (or every real query row of
every head) of every input counts once, so longer inputs weigh more.  Everything is computed in
float64 and returned as a Python ``float``.

Notation for one sequence: ``X`` is the ``n x C`` matrix of its real tokens ``x_i``,
``xbar = (1/n) sum_i x_i`` the mean token; ``R`` / ``r_i`` the reference's.

* :func:`hidden_cosine` ``= mean_i <x_i, r_i> / (||x_i|| ||r_i||)`` over the real tokens of the
  batch (1 where both tokens are zero, 0 where exactly one is);
* :func:`relative_error` ``= ||X - R||_F / ||R||_F`` over all real tokens of the batch (0 when
  both are zero, ``inf`` when only ``R`` is zero);
* :func:`rank_collapse_ratio` ``= ||X - 1 xbar^T||_F / ||X||_F`` per sequence, averaged over the
  batch.  ``1 xbar^T`` is the best rank-1 "all tokens equal" approximation of ``X`` (Dong,
  Cordonnier & Loukas 2021, *Attention is not all you need: pure attention loses rank doubly
  exponentially with depth*): the ratio lies in ``[0, 1]`` and goes to 0 when the tokens
  collapse onto one vector.  A zero ``X`` gives 0 (fully collapsed);
* :func:`state_norm` ``= mean_i ||x_i||_2`` over the real tokens of the batch;
* :func:`attention_cosine`, :func:`attention_kl`: per attention row; :func:`linear_cka`: linear
  centered kernel alignment of the token representations.

Non-finite states never raise: a NaN/Inf in a real token gives a ``nan``/``inf`` metric (the
values at padding positions never matter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "attention_cosine",
    "attention_kl",
    "hidden_cosine",
    "is_finite",
    "layer_metrics",
    "linear_cka",
    "rank_collapse_ratio",
    "relative_error",
    "state_norm",
    "token_mask",
]

EPS = 1e-12  # floor of attention probabilities (KL) and of norms in the cosine of maps / CKA
_TINY = 1e-300  # avoids 0/0 in the state metrics without changing any non-degenerate ratio


def _states(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to(torch.float64)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"hidden states must be (B, N, C) or (N, C), got {tuple(x.shape)}")
    return x


def _maps(p: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(p).detach().to(torch.float64)
    if p.ndim == 3:
        p = p.unsqueeze(0)
    if p.ndim != 4 or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"attention maps must be (B, heads, N, N), got {tuple(p.shape)}")
    return p


def token_mask(mask: torch.Tensor | None, batch: int, tokens: int) -> torch.Tensor:
    """``(B, N)`` bool mask of real tokens from ``None`` (all real), a ``(B, N)`` or an
    ``(N,)`` mask; a wrong shape or a mask without any real token is a ``ValueError``."""
    if mask is None:
        return torch.ones(batch, tokens, dtype=torch.bool)
    mask = torch.as_tensor(mask).detach().to(torch.bool)
    if mask.ndim == 1:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape) != (batch, tokens):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match ({batch}, {tokens})")
    if not mask.any():
        raise ValueError("the mask selects no token")
    return mask


def _same_shape(reference: torch.Tensor, candidate: torch.Tensor) -> None:
    if reference.shape != candidate.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and candidate "
                         f"{tuple(candidate.shape)} differ in shape")


def _prepare(states: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(float64 (B, N, C) states with padding tokens zeroed, (B, N, 1) float64 weights)``."""
    x = _states(states)
    if mask is None:
        weights = torch.ones(x.shape[0], x.shape[1], 1, dtype=torch.float64, device=x.device)
    else:
        real = token_mask(mask, x.shape[0], x.shape[1]).to(x.device)
        weights = real.to(torch.float64).unsqueeze(-1)
        x = torch.where(weights > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x, weights


def _mean_over_rows(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``values`` ``(B, heads, N)`` over heads and the real query rows of ``mask``."""
    rows = mask[:, None, :].expand_as(values)
    return float(values[rows].mean())


def attention_cosine(
    reference: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """Mean cosine similarity of attention rows.

    For every input ``b``, head ``h`` and real query ``i``, with ``p`` the candidate's and ``q``
    the reference's map::

        cos_bhi = Σ_j p_bhij q_bhij / (‖p_bhi·‖ ‖q_bhi·‖)

    averaged over ``b``, ``h`` and the real ``i`` (all keys ``j`` count, so mass a model puts on
    padding lowers the score).  1 for identical maps, 0 for maps with disjoint support.
    """
    p, q = _maps(candidate), _maps(reference)
    _same_shape(q, p)
    mask = token_mask(mask, p.shape[0], p.shape[-1])
    dot = (p * q).sum(-1)
    norms = p.norm(dim=-1) * q.norm(dim=-1)
    return _mean_over_rows(dot / norms.clamp_min(EPS), mask)


def attention_kl(
    reference: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """Mean Kullback–Leibler divergence ``KL(reference ‖ candidate)`` of attention rows, in nats.

    With ``p`` the reference's and ``q`` the candidate's map,
    ``KL(p_bhi ‖ q_bhi) = Σ_j p_bhij (log p_bhij − log max(q_bhij, ε))`` with ``0 log 0 = 0`` and
    ``ε = 1e-12``, averaged over inputs, heads and real query rows.  0 for identical maps.

    Computed in float64 in the generalized form ``Σ_j p log(p/q) − p + q``, equal to the KL
    divergence for rows that sum to one and never negative: float32 rows sum to 1 only up
    to rounding, and the plain form then gives values like −2e−10.
    """
    p, q = _maps(reference).double(), _maps(candidate).double()
    _same_shape(p, q)
    mask = token_mask(mask, p.shape[0], p.shape[-1])
    terms = p * (p.clamp_min(EPS).log() - q.clamp_min(EPS).log()) - p + q
    terms = torch.where(p > 0, terms, q)
    return _mean_over_rows(terms.sum(-1), mask)


def hidden_cosine(
    reference: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """``mean_i cos(x_i, r_i)`` over the real tokens (both zero -> 1, one zero -> 0)."""
    r, x = _states(reference), _states(candidate)
    _same_shape(r, x)
    r, weights = _prepare(r, mask)
    x, _ = _prepare(x, mask)
    count = float(weights.sum())
    if count == 0:
        return math.nan
    dot = (x * r).sum(-1, keepdim=True)
    norm_x = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    norm_r = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
    cosine = dot / (norm_x * norm_r).clamp_min(_TINY)
    both_zero = (norm_x == 0) & (norm_r == 0)
    cosine = torch.where(both_zero, torch.ones_like(cosine), cosine)
    return float((cosine * weights).sum() / count)


def relative_error(
    reference: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """``||X - R||_F / ||R||_F`` over all real tokens of the batch (``R``: the reference)."""
    r, x = _states(reference), _states(candidate)
    _same_shape(r, x)
    r, _ = _prepare(r, mask)
    x, _ = _prepare(x, mask)
    difference = float(torch.linalg.vector_norm(x - r))
    scale = float(torch.linalg.vector_norm(r))
    if math.isnan(difference) or math.isnan(scale):
        return math.nan
    if scale == 0:
        return 0.0 if difference == 0 else math.inf
    if math.isinf(scale):
        return math.nan
    return difference / scale


def linear_cka(
    reference: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """Linear centered kernel alignment (Kornblith et al. 2019) of token representations.

    Rows of ``X`` (``n × C₁``, the candidate) and ``Y`` (``n × C₂``, the reference) are the real
    tokens of all inputs; with the columns centered (``X ← X − 1 x̄ᵀ``)::

        CKA(X, Y) = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)

    In ``[0, 1]``; 1 when ``Y = s X Q + 1 cᵀ`` for an orthogonal ``Q`` and ``s ≠ 0``.  The
    channel counts of the two may differ.
    """
    x, y = _states(candidate), _states(reference)
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"token shapes differ: {tuple(y.shape[:2])} vs {tuple(x.shape[:2])}")
    mask = token_mask(mask, x.shape[0], x.shape[1])
    xs, ys = x[mask], y[mask]
    xs = xs - xs.mean(0, keepdim=True)
    ys = ys - ys.mean(0, keepdim=True)
    cross = (ys.T @ xs).square().sum()
    denominator = (xs.T @ xs).norm() * (ys.T @ ys).norm()
    if float(denominator) <= EPS:
        return float("nan")
    return float(cross / denominator)


def rank_collapse_ratio(states: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """``mean_b ||X_b - 1 xbar_b^T||_F / ||X_b||_F`` (sequences without real tokens skipped).

    How far each sequence is from rank collapse (Dong et al. 2021): 0 when all its tokens are
    identical (or zero), 1 when its mean token is 0; ``nan`` for an empty batch.
    """
    x, weights = _prepare(states, mask)
    counts = weights.sum(dim=1)  # (B, 1)
    present = counts.squeeze(-1) > 0
    if not bool(present.any()):
        return math.nan
    mean = (x * weights).sum(dim=1, keepdim=True) / counts.clamp_min(1).unsqueeze(1)
    residual = torch.linalg.vector_norm((x - mean) * weights, dim=(1, 2))
    total = torch.linalg.vector_norm(x, dim=(1, 2))
    ratio = residual / total.clamp_min(_TINY)
    # inf/inf -> nan, which is what an overflowed state should report.
    return float(ratio[present].mean())


def state_norm(states: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """``mean_i ||x_i||_2`` over the real tokens of the batch (``nan`` for an empty batch)."""
    x, weights = _prepare(states, mask)
    count = float(weights.sum())
    if count == 0:
        return math.nan
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return float((norms * weights).sum() / count)


def is_finite(states: torch.Tensor, mask: torch.Tensor | None = None) -> bool:
    """Whether every entry of every real token of ``states`` is finite."""
    x, _ = _prepare(states, mask)
    return bool(torch.isfinite(x).all())


def layer_metrics(
    ref_run_states: Sequence[torch.Tensor],
    ref_attn: Sequence[torch.Tensor],
    pde_states: Sequence[torch.Tensor],
    pde_attn: Sequence[torch.Tensor | None] | None,
    mask: torch.Tensor | None = None,
) -> list[dict[str, float | int]]:
    """Per-layer comparison of a PDE model with its reference.

    ``ref_run_states`` / ``pde_states``: the states at the layer boundaries, either ``L + 1``
    tensors (element 0 = embeddings, skipped) or ``L`` tensors (the outputs of layers 1..L).
    ``ref_attn`` / ``pde_attn``: ``L`` attention maps, one per layer (a model evaluating
    attention several times per layer passes the last one); ``pde_attn`` (or an entry of it) may
    be ``None``, giving NaN attention metrics.

    Returns, for ``layer = 1 .. L``: ``{layer, attention_cosine, hidden_cosine,
    relative_error, cka, attention_kl}`` comparing the state after layer ``i`` and its maps;
    every metric takes the reference first (``attention_kl`` is ``KL(reference ‖ model)``).
    """
    layers = len(ref_attn)
    ref_states = _layer_outputs(ref_run_states, layers, "ref_run_states")
    model_states = _layer_outputs(pde_states, layers, "pde_states")
    if pde_attn is None:
        pde_attn = [None] * layers
    if len(pde_attn) != layers:
        raise ValueError(f"pde_attn has {len(pde_attn)} maps, the reference {layers}")
    rows: list[dict[str, float | int]] = []
    for index in range(layers):
        model_map = pde_attn[index]
        if model_map is None:
            att_cos = att_kl = math.nan
        else:
            att_cos = attention_cosine(ref_attn[index], model_map, mask)
            att_kl = attention_kl(ref_attn[index], model_map, mask)
        rows.append(
            {
                "layer": index + 1,
                "attention_cosine": att_cos,
                "hidden_cosine": hidden_cosine(ref_states[index], model_states[index], mask),
                "relative_error": relative_error(ref_states[index], model_states[index], mask),
                "cka": linear_cka(ref_states[index], model_states[index], mask),
                "attention_kl": att_kl,
            }
        )
    return rows


def _layer_outputs(
    states: Sequence[torch.Tensor], layers: int, label: str
) -> Sequence[torch.Tensor]:
    if len(states) == layers + 1:
        return states[1:]
    if len(states) == layers:
        return states
    raise ValueError(f"{label} has {len(states)} states; expected {layers + 1} or {layers}")
