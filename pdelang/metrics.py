"""Metrics comparing a PDE model's states and attention maps with a reference Transformer's.

Conventions: hidden states are ``(B, N, C)`` (a ``(N, C)`` tensor is one sequence), attention
maps ``(B, heads, N, N)`` with rows = queries (a ``(heads, N, N)`` tensor is one input).  A
``mask`` is ``(B, N)`` (or ``(N,)``), 1/True on real tokens; ``None`` means every token is real.
Averages over tokens are *pooled*: every real token (or every real query row of every head) of
every input counts once, so longer inputs weigh more.  Everything is computed in float64 and
returned as a Python ``float``.  In the reference-vs-model metrics the second argument ``y`` /
``q`` is the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

EPS = 1e-12


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


def _token_mask(mask: torch.Tensor | None, batch: int, tokens: int) -> torch.Tensor:
    """``(B, N)`` bool mask of real tokens."""
    if mask is None:
        return torch.ones(batch, tokens, dtype=torch.bool)
    mask = torch.as_tensor(mask).detach().to(torch.bool)
    if mask.ndim == 1:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape) != (batch, tokens):
        raise ValueError(f"mask must be ({batch}, {tokens}), got {tuple(mask.shape)}")
    if not mask.any():
        raise ValueError("the mask selects no token")
    return mask


def _same_shape(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")


def _mean_over_rows(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``values`` ``(B, heads, N)`` over heads and the real query rows of ``mask``."""
    rows = mask[:, None, :].expand_as(values)
    return float(values[rows].mean())


def attention_cosine(p: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean cosine similarity of attention rows.

    For every input ``b``, head ``h`` and real query ``i``::

        cos_bhi = Σ_j p_bhij q_bhij / (‖p_bhi·‖ ‖q_bhi·‖)

    averaged over ``b``, ``h`` and the real ``i`` (all keys ``j`` count, so mass a model puts on
    padding lowers the score).  1 for identical maps, 0 for maps with disjoint support.
    """
    p, q = _maps(p), _maps(q)
    _same_shape(p, q)
    mask = _token_mask(mask, p.shape[0], p.shape[-1])
    dot = (p * q).sum(-1)
    norms = p.norm(dim=-1) * q.norm(dim=-1)
    return _mean_over_rows(dot / norms.clamp_min(EPS), mask)


def attention_kl(p: torch.Tensor, q: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean Kullback–Leibler divergence ``KL(p ‖ q)`` of attention rows, in nats.

    ``KL(p_bhi ‖ q_bhi) = Σ_j p_bhij (log p_bhij − log max(q_bhij, ε))`` with ``0 log 0 = 0`` and
    ``ε = 1e-12``, averaged over inputs, heads and real query rows.  0 for identical maps.

    Computed in float64 in the generalized form ``Σ_j p log(p/q) − p + q``, equal to the KL
    divergence for rows that sum to one and never negative: float32 rows sum to 1 only up
    to rounding, and the plain form then gives values like −2e−10.
    """
    p, q = _maps(p).double(), _maps(q).double()
    _same_shape(p, q)
    mask = _token_mask(mask, p.shape[0], p.shape[-1])
    terms = p * (p.clamp_min(EPS).log() - q.clamp_min(EPS).log()) - p + q
    terms = torch.where(p > 0, terms, q)
    return _mean_over_rows(terms.sum(-1), mask)


def hidden_cosine(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean per-token cosine similarity ``x_bn · y_bn / (‖x_bn‖ ‖y_bn‖)`` over real tokens."""
    x, y = _states(x), _states(y)
    _same_shape(x, y)
    mask = _token_mask(mask, x.shape[0], x.shape[1])
    cos = (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(EPS)
    return float(cos[mask].mean())


def relative_error(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Relative Frobenius error ``‖x − y‖_F / ‖y‖_F`` over the real tokens (``y``: reference)."""
    x, y = _states(x), _states(y)
    _same_shape(x, y)
    mask = _token_mask(mask, x.shape[0], x.shape[1])
    diff = (x - y)[mask].norm()
    return float(diff / y[mask].norm().clamp_min(EPS))


def linear_cka(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Linear centered kernel alignment (Kornblith et al. 2019) of token representations.

    Rows of ``X`` (``n × C₁``) and ``Y`` (``n × C₂``) are the real tokens of all inputs; with the
    columns centered (``X ← X − 1 x̄ᵀ``)::

        CKA(X, Y) = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)

    In ``[0, 1]``; 1 when ``Y = s X Q + 1 cᵀ`` for an orthogonal ``Q`` and ``s ≠ 0``.  The
    channel counts of ``x`` and ``y`` may differ.
    """
    x, y = _states(x), _states(y)
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"token shapes differ: {tuple(x.shape[:2])} vs {tuple(y.shape[:2])}")
    mask = _token_mask(mask, x.shape[0], x.shape[1])
    xs, ys = x[mask], y[mask]
    xs = xs - xs.mean(0, keepdim=True)
    ys = ys - ys.mean(0, keepdim=True)
    cross = (ys.T @ xs).square().sum()
    denominator = (xs.T @ xs).norm() * (ys.T @ ys).norm()
    if float(denominator) <= EPS:
        return float("nan")
    return float(cross / denominator)


def rank_collapse_ratio(x: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """How far a sequence is from rank collapse (Dong et al. 2021), averaged over the batch.

    For each sequence ``X`` (its ``n`` real tokens as rows), ``res(X) = X − 1 x̄ᵀ`` with ``x̄``
    the mean token (the Frobenius-optimal rank-one "all tokens equal" approximation) and::

        ratio(X) = ‖res(X)‖_F / ‖X‖_F  ∈ [0, 1]

    0 when all tokens are identical (collapsed), 1 when the mean token is 0.
    """
    x = _states(x)
    mask = _token_mask(mask, x.shape[0], x.shape[1])
    ratios = []
    for sequence, real in zip(x, mask):
        if not real.any():
            continue
        tokens = sequence[real]
        residual = tokens - tokens.mean(0, keepdim=True)
        ratios.append(float(residual.norm() / tokens.norm().clamp_min(EPS)))
    return sum(ratios) / len(ratios)


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
    ``attention_kl`` is ``KL(reference ‖ model)``, the other metrics take the reference as ``y``.
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
            att_cos = attention_cosine(model_map, ref_attn[index], mask)
            att_kl = attention_kl(ref_attn[index], model_map, mask)
        rows.append(
            {
                "layer": index + 1,
                "attention_cosine": att_cos,
                "hidden_cosine": hidden_cosine(model_states[index], ref_states[index], mask),
                "relative_error": relative_error(model_states[index], ref_states[index], mask),
                "cka": linear_cka(model_states[index], ref_states[index], mask),
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
