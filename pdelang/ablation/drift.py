"""Per-layer drift metrics of a stepper's trajectory.

A trajectory is the list of states at every layer boundary, initial state included:
``states[0]`` is the input ``u``, ``states[l]`` the state after layer ``l``; each state is a
``(B, N, C)`` tensor.  All metrics are computed in float64.  ``mask`` (optional) is a
``(B, N)`` tensor marking the tokens that count: **True / nonzero = valid token**
(padding positions are False); ``None`` = every token counts.

Notation for one sequence: ``X`` is its ``n x C`` matrix of valid tokens ``x_i``,
``xbar = (1/n) sum_i x_i`` the mean token.

* ``state_norm = mean_i ||x_i||_2`` over every valid token of the batch;
* ``rank_collapse_ratio = ||X - 1 xbar^T||_F / ||X||_F`` per sequence, averaged over the
  batch.  ``1 xbar^T`` is the best rank-1 "all tokens equal" approximation of ``X``
  (Dong, Cordonnier & Loukas 2021, *Attention is not all you need: pure attention loses
  rank doubly exponentially with depth*): the ratio lies in ``[0, 1]`` and goes to 0 when the
  tokens collapse onto one vector.  A zero ``X`` gives 0 (fully collapsed);
* ``norm_growth_l = state_norm_l / state_norm_0``;
* against a reference trajectory ``R`` (same shapes):
  ``hidden_cosine = mean_i <x_i, r_i> / (||x_i|| ||r_i||)`` over valid tokens (1 where both
  tokens are zero, 0 where exactly one is), and
  ``relative_error = ||X - R||_F / ||R||_F`` over all valid tokens of the batch (0 when
  both are zero, ``inf`` when only ``R`` is zero).

Non-finite states never raise: a NaN/Inf state gives ``nan``/``inf`` metrics and the layer's
entry carries ``finite: False`` (``True`` when every valid entry of every state used is
finite).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "collect_states",
    "drift_against_reference",
    "final_layer",
    "hidden_cosine",
    "rank_collapse_ratio",
    "relative_error",
    "state_norm",
    "variant_drift",
]

_TINY = 1e-300  # avoids 0/0 without changing any non-degenerate ratio


def _prepare(states: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(float64 states with invalid tokens zeroed, (B, N, 1) float64 weights)``."""
    if states.dim() != 3:
        raise ValueError(f"expected a (B, N, C) state, got shape {tuple(states.shape)}")
    x = states.detach().to(torch.float64)
    if mask is None:
        weights = torch.ones(x.shape[0], x.shape[1], 1, dtype=torch.float64, device=x.device)
    else:
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match states "
                             f"{tuple(x.shape[:2])}")
        weights = (mask.detach().to(x.device) != 0).to(torch.float64).unsqueeze(-1)
        x = torch.where(weights > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x, weights


def _is_finite(states: Tensor, mask: Tensor | None) -> bool:
    x, _ = _prepare(states, mask)
    return bool(torch.isfinite(x).all())


def state_norm(states: Tensor, mask: Tensor | None = None) -> float:
    """``mean_i ||x_i||_2`` over the valid tokens of the batch (``nan`` for no tokens)."""
    x, weights = _prepare(states, mask)
    count = float(weights.sum())
    if count == 0:
        return math.nan
    norms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return float((norms * weights).sum() / count)


def rank_collapse_ratio(states: Tensor, mask: Tensor | None = None) -> float:
    """``mean_b ||X_b - 1 xbar_b^T||_F / ||X_b||_F`` (sequences without valid tokens skipped)."""
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


def hidden_cosine(reference: Tensor, variant: Tensor, mask: Tensor | None = None) -> float:
    """``mean_i cos(x_i, r_i)`` over valid tokens (both zero -> 1, one zero -> 0)."""
    _check_same_shape(reference, variant)
    r, weights = _prepare(reference, mask)
    x, _ = _prepare(variant, mask)
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


def relative_error(reference: Tensor, variant: Tensor, mask: Tensor | None = None) -> float:
    """``||X - R||_F / ||R||_F`` over all valid tokens of the batch."""
    _check_same_shape(reference, variant)
    r, _ = _prepare(reference, mask)
    x, _ = _prepare(variant, mask)
    difference = float(torch.linalg.vector_norm(x - r))
    scale = float(torch.linalg.vector_norm(r))
    if math.isnan(difference) or math.isnan(scale):
        return math.nan
    if scale == 0:
        return 0.0 if difference == 0 else math.inf
    if math.isinf(scale):
        return math.nan
    return difference / scale


def _check_same_shape(reference: Tensor, variant: Tensor) -> None:
    if tuple(reference.shape) != tuple(variant.shape):
        raise ValueError(f"reference state {tuple(reference.shape)} and variant state "
                         f"{tuple(variant.shape)} differ in shape")


def variant_drift(states: Sequence[Tensor], mask: Tensor | None = None) -> list[dict[str, Any]]:
    """Per layer ``{layer, rank_collapse_ratio, state_norm, norm_growth, finite}``.

    ``norm_growth = state_norm_l / state_norm_0`` (``nan`` if ``state_norm_0`` is 0 or
    not finite).
    """
    if not states:
        return []
    norms = [state_norm(s, mask) for s in states]
    initial = norms[0]
    rows = []
    for layer, (state, norm) in enumerate(zip(states, norms)):
        growth = norm / initial if math.isfinite(initial) and initial > 0 else math.nan
        rows.append({
            "layer": layer,
            "rank_collapse_ratio": rank_collapse_ratio(state, mask),
            "state_norm": norm,
            "norm_growth": growth,
            "finite": _is_finite(state, mask),
        })
    return rows


def drift_against_reference(
    reference_states: Sequence[Tensor],
    variant_states: Sequence[Tensor],
    mask: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Per layer drift of a variant from a reference trajectory (same length and shapes).

    Each entry: ``layer, hidden_cosine, relative_error, rank_collapse_ratio, state_norm,
    norm_growth`` (of the variant), ``reference_rank_collapse_ratio,
    reference_state_norm`` and ``finite`` (variant *and* reference finite at that layer).
    """
    if len(reference_states) != len(variant_states):
        raise ValueError(f"reference has {len(reference_states)} states, variant "
                         f"{len(variant_states)}: compare trajectories of equal depth")
    rows = variant_drift(variant_states, mask)
    for row, reference, variant in zip(rows, reference_states, variant_states):
        row["hidden_cosine"] = hidden_cosine(reference, variant, mask)
        row["relative_error"] = relative_error(reference, variant, mask)
        row["reference_rank_collapse_ratio"] = rank_collapse_ratio(reference, mask)
        row["reference_state_norm"] = state_norm(reference, mask)
        row["finite"] = bool(row["finite"] and _is_finite(reference, mask))
    return rows


@torch.no_grad()
def collect_states(stepper: nn.Module, u: Tensor, mask: Tensor | None = None) -> list[Tensor]:
    """The trajectory ``[u, state_1, ..., state_L]`` of ``stepper`` from ``u`` (eval mode).

    Calls ``stepper(u, mask, return_trajectory=True).states``; restores the training mode.
    """
    was_training = stepper.training
    stepper.eval()
    try:
        result = stepper(u, mask, return_trajectory=True)
    finally:
        stepper.train(was_training)
    states = getattr(result, "states", None)
    if states is None:
        raise TypeError("stepper(return_trajectory=True) returned no `.states`")
    return [s.detach() for s in states]


def final_layer(rows: Sequence[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The last per-layer entry (the stepper output), or ``None``."""
    return dict(rows[-1]) if rows else None
