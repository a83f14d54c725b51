"""Particle views of a state: the tokens of ``u`` (B, N, C) as N points in R^C.

Read as an interacting particle system (attention + normalization moves tokens on a
sphere, and they cluster: Geshkovski, Letrouit, Polyanskiy and Rigollet, arXiv 2305.05465
and 2312.10794; pure attention loses rank with depth: Dong, Cordonnier and Loukas 2021),
a layer's state is summarised by three numbers, each computed per sequence over its *real*
tokens (``mask`` True; padding never counts) and then averaged over the sequences that have
enough real tokens:

* :func:`mean_pairwise_cosine` — the mean over ordered pairs i ≠ j of
  cos(x_i, x_j) = ⟨x_i, x_j⟩ / (‖x_i‖ ‖x_j‖).  1 when every token points the same way (one
  cluster), about 0 for independent random tokens in high dimension.  A token of norm 0
  has cosine 0 with every other token.  Computed in O(N·C) as
  (‖Σ_i x̂_i‖² − Σ_i ‖x̂_i‖²) / (n(n − 1)), x̂_i = x_i/‖x_i‖.
* :func:`effective_rank` — the effective rank of Roy and Vetterli (2007) of the
  *uncentred* token matrix X (n × C, one row per real token):
  erank(X) = exp(−Σ_k p_k log p_k), p_k = σ_k / Σ_l σ_l, over the singular values σ_k of X
  (0 log 0 = 0).  It lies in [1, min(n, C)]: 1 when the tokens are all multiples of one
  vector (rank one), r for r orthogonal tokens of equal norm.  Uncentred, so identical
  tokens have effective rank 1 (centred, they would be the zero matrix); X = 0 gives 0.
* :func:`rank_collapse_residual` — Dong et al.'s rank-collapse residual in the Frobenius
  norm, ‖X − 1 x̄ᵀ‖_F / ‖X‖_F, x̄ = (1/n) Σ_i x_i the mean real token (the 1 x̄ᵀ closest to
  X in that norm).  The centring is an orthogonal projection, so the residual lies in
  [0, 1]: 0 when all tokens are equal, 1 when they sum to zero.  (Dong et al. bound the
  composite ℓ1,∞ norm; the Frobenius norm is the one whose minimiser is the mean.)  X = 0
  gives 0.

All three are invariant under a global rescaling X → sX (s ≠ 0) and under an orthogonal
change of the channel basis.  :func:`particle_metrics` returns the three (plus the mean
token norm and max |u| that ``pdelang run`` always reported).  The computations run in
float64 on the state's device, each sequence first divided by its largest |value| (exact
for scale-invariant quantities; no overflow or subnormal loss).
"""

from __future__ import annotations

import math


def _torch():
    import torch  # lazy: torch

    return torch


def _sequences(u, mask):
    """(state as float64 (B, N, C), mask as bool (B, N)) with the shapes checked."""
    torch = _torch()
    if u.dim() != 3:
        raise ValueError(f"a state must have shape (B, N, C), got {tuple(u.shape)}")
    x = u.detach().to(torch.float64)
    if mask is None:
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    else:
        keep = torch.as_tensor(mask, device=x.device).to(torch.bool)
        if keep.shape != x.shape[:2]:
            raise ValueError(f"mask must have shape {tuple(x.shape[:2])}, "
                             f"got {tuple(keep.shape)}")
    return x, keep


def _rescaled(x, keep):
    """Each sequence divided by its largest |value| over real tokens (all three metrics are
    scale invariant): no overflow of squared norms for huge states, no loss of precision
    for subnormal ones."""
    torch = _torch()
    scale = (x.abs() * keep[..., None]).amax(dim=(1, 2), keepdim=True)
    return torch.where(scale > 0, x / torch.where(scale > 0, scale, torch.ones_like(scale)),
                       torch.zeros_like(x))


def torch_tiny(x) -> float:
    return _torch().finfo(x.dtype).tiny


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def mean_pairwise_cosine(u, mask=None) -> float:
    """Mean of cos(x_i, x_j) over ordered pairs of distinct real tokens, averaged over the
    sequences with at least two real tokens (NaN if none has)."""
    torch = _torch()
    x, keep = _sequences(u, mask)
    x = _rescaled(x, keep)
    norms = x.norm(dim=-1, keepdim=True)
    unit = torch.where(norms > 0, x / norms.clamp_min(torch.finfo(x.dtype).tiny),
                       torch.zeros_like(x)) * keep[..., None]
    n = keep.sum(dim=1).to(torch.float64)  # (B,)
    total = unit.sum(dim=1).pow(2).sum(dim=-1)  # ‖Σ x̂_i‖²
    self_terms = unit.pow(2).sum(dim=(1, 2))  # Σ ‖x̂_i‖² (1 per nonzero token)
    values = [float((t - s) / (k * (k - 1)))
              for t, s, k in zip(total.tolist(), self_terms.tolist(), n.tolist()) if k >= 2]
    return _mean(values)


def effective_rank(u, mask=None) -> float:
    """Roy–Vetterli effective rank exp(H(σ/Σσ)) of each sequence's uncentred real-token
    matrix, averaged over the sequences with at least one real token (NaN if none has)."""
    torch = _torch()
    x, keep = _sequences(u, mask)
    x = _rescaled(x, keep)
    values = []
    for b in range(x.shape[0]):
        rows = x[b][keep[b]]
        if rows.shape[0] == 0:
            continue
        sigma = torch.linalg.svdvals(rows)
        total = sigma.sum()
        if float(total) == 0.0:
            values.append(0.0)
            continue
        p = sigma / total
        p = p[p > 0]
        values.append(float(torch.exp(-(p * p.log()).sum())))
    return _mean(values)


def rank_collapse_residual(u, mask=None) -> float:
    """‖X − 1 x̄ᵀ‖_F / ‖X‖_F of each sequence's real tokens (x̄ their mean), in [0, 1],
    averaged over the sequences with at least one real token (NaN if none has)."""
    torch = _torch()
    x, keep = _sequences(u, mask)
    x = _rescaled(x, keep)
    weights = keep[..., None].to(torch.float64)
    n = keep.sum(dim=1)
    mean = (x * weights).sum(dim=1) / n.clamp_min(1)[:, None]  # (B, C)
    centred = (x - mean[:, None, :]) * weights
    whole = (x * weights).flatten(1).norm(dim=1)
    part = centred.flatten(1).norm(dim=1)
    values = [0.0 if w == 0 else min(1.0, p / w)
              for p, w, k in zip(part.tolist(), whole.tolist(), n.tolist()) if k >= 1]
    return _mean(values)


def particle_metrics(u, mask=None) -> dict[str, float]:
    """The per-layer row of ``pdelang run``: mean token norm, max |u| (both over real
    tokens), mean pairwise cosine, effective rank and rank-collapse residual."""
    x, keep = _sequences(u, mask)
    values = x.abs().amax(dim=-1)  # (B, N)
    peak = values.clamp_min(torch_tiny(x))[..., None]  # each token's norm without overflow
    norms = ((x / peak).norm(dim=-1) * peak[..., 0])[keep]
    values = values[keep]
    return {
        "norm": float(norms.mean()) if norms.numel() else math.nan,
        "max_abs": float(values.max()) if values.numel() else math.nan,
        "mean_cosine": mean_pairwise_cosine(x, keep),
        "effective_rank": effective_rank(x, keep),
        "residual": rank_collapse_residual(x, keep),
    }


METRICS = {
    "norm": "mean token norm",
    "max_abs": "max |u|",
    "mean_cosine": "mean pairwise token cosine",
    "effective_rank": "effective rank exp(H(σ/Σσ))",
    "residual": "‖X − 1x̄ᵀ‖_F / ‖X‖_F",
}
