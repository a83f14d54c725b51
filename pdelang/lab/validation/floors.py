"""Per-input similarity values and the floors they must be read against.

A similarity of :mod:`pdelang.lab.metrics` means little on its own: the attention maps of a trained
Transformer are close to uniform in many heads, so a model that attends uniformly already
scores an attention cosine well above 0, and the residual stream changes little per layer, so
"do nothing" (``u_ℓ = u_0``) already scores a high hidden cosine.  This module gives

* the **per-input** values of the similarities (``(B,)`` arrays, one per input), so that
  :mod:`pdelang.lab.validation.statistics` can put bootstrap intervals over inputs on them;
* the **floors**: the scores of trivial candidates built from the reference alone;
* :func:`layer_floors`, every floor's interval for every layer, and :func:`compare_with_floor`,
  a model against a floor on the same inputs.

Shapes and masks follow :mod:`pdelang.lab.metrics`: hidden states ``(B, N, C)``, attention maps
``(B, H, N, N)`` (rows = queries, summing to 1 over the real keys), ``mask`` ``(B, N)`` True on
real tokens (right padding; ``None`` = all real).  A mask leaving one input without any real
token is a ``ValueError`` in the per-input functions (that input has no value).  Everything is
float64.  ``hidden_states`` is the list of ``L + 1`` states (``u(0)``, the embedding output,
first), ``attentions`` the ``L`` maps; layer ``ℓ = 1 .. L`` is ``hidden_states[ℓ]`` and
``attentions[ℓ − 1]``, as in :func:`pdelang.lab.metrics.layer_metrics`.

Per-input definitions (input ``b``, ``n_b`` real tokens, ``H`` heads)
---------------------------------------------------------------------
* attention cosine ``= (1 / (H n_b)) Σ_h Σ_{i real} cos(p_bhi·, q_bhi·)``, the row cosine of
  :func:`pdelang.lab.metrics.attention_cosine` over all keys (mass a candidate puts on padding
  keys lowers it, as there), averaged over heads and the real query rows; rows of padding
  queries never count.  The pooled metric is the mean of these weighted by ``n_b``, so with
  equal ``n_b`` it is their plain mean.  **Head counts that differ** (a model with fewer heads
  than the reference): both maps are averaged over heads first and the ``(B, 1, N, N)``
  head-averaged maps are compared — a weaker comparison, flagged by ``heads_match = False``
  (:func:`heads_match`, and in :func:`layer_floors`);
* hidden cosine ``= (1 / n_b) Σ_{i real} cos(x_bi, r_bi)`` (both zero → 1, one zero → 0);
* relative error ``= ‖X_b − R_b‖_F / ‖R_b‖_F`` over the real tokens of ``b`` (0 when both are
  zero, ``inf`` when only ``R_b`` is).  The pooled metric is *not* their mean but
  ``(Σ_b ‖X_b − R_b‖²)^{1/2} / (Σ_b ‖R_b‖²)^{1/2}``; each input alone gives the pooled value;
* linear CKA pools the tokens of all inputs and has no per-input value: :func:`cka_interval`
  bootstraps it over inputs (a resampled input contributes all its real tokens, as many times
  as it was drawn).

Floors
------
Attention (candidate maps of the reference's shape, for layer ``ℓ``):
``uniform`` (:func:`uniform_maps`), ``dataset_mean`` (:func:`dataset_mean_maps`, from separate
*training* inputs), ``head_mean`` (:func:`head_mean_maps`), ``previous_layer``
(:func:`previous_layer_maps`, layer ``ℓ − 1``'s maps; none at ``ℓ = 1``).
States: ``identity`` (``u_ℓ = u_0``) and ``previous_state`` (``u_ℓ = u_{ℓ−1}``, the reference's
state one layer back; at ``ℓ = 1`` the two coincide).  Token flow: the all-ones map
(:func:`flow_floor`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pdelang.lab.information import flow_cosine
from pdelang.lab.metrics import EPS, token_mask
from pdelang.lab.validation.statistics import (
    Interval,
    bootstrap_mean,
    bootstrap_statistic,
    decide,
    paired_difference,
    rescaled,
)

__all__ = [
    "ATTENTION_FLOORS",
    "STATE_FLOORS",
    "attention_floor_maps",
    "cka_interval",
    "compare_cka_with_floor",
    "compare_with_floor",
    "dataset_mean_maps",
    "floor_values",
    "flow_floor",
    "flow_floor_values",
    "head_mean_maps",
    "heads_match",
    "layer_floors",
    "per_sample_attention_cosine",
    "per_sample_flow_cosine",
    "per_sample_hidden_cosine",
    "per_sample_relative_error",
    "previous_layer_maps",
    "state_floors",
    "uniform_maps",
]

ATTENTION_FLOORS = ("uniform", "dataset_mean", "head_mean", "previous_layer")
STATE_FLOORS = ("identity", "previous_state")
_TINY = 1e-300
_CKA_KERNEL_BATCH = 256  # CKA bootstrap from B x B x B tensors up to this many inputs
_CKA_BLOCK = 1 << 22  # float64 entries of one block of intermediate results (32 MiB)


# ------------------------------------------------------------------------------------ helpers
def _states(x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to(torch.float64)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"hidden states must be (B, N, C) or (N, C), got {tuple(x.shape)}")
    return x


def _maps(p) -> torch.Tensor:
    p = torch.as_tensor(p).detach().to(torch.float64)
    if p.ndim == 3:
        p = p.unsqueeze(0)
    if p.ndim != 4 or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"attention maps must be (B, heads, N, N), got {tuple(p.shape)}")
    return p


def _real(mask, batch: int, tokens: int, device=None) -> torch.Tensor:
    """``(B, N)`` bool mask; every input must keep at least one real token."""
    real = token_mask(mask, batch, tokens)
    if not bool(real.any(dim=1).all()):
        raise ValueError("the mask leaves an input without real tokens")
    return real.to(device) if device is not None else real


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().cpu().to(torch.float64).numpy()


def heads_match(reference_maps, candidate_maps) -> bool:
    """Whether the two attention maps have the same number of heads (else the per-input
    attention cosine compares head-averaged maps)."""
    return _maps(reference_maps).shape[1] == _maps(candidate_maps).shape[1]


# ------------------------------------------------------------------------ per-input values
def per_sample_attention_cosine(reference_maps, candidate_maps, mask=None) -> np.ndarray:
    """Per-input attention cosine, ``(B,)`` float64: the row cosine of
    :func:`pdelang.lab.metrics.attention_cosine` averaged over the heads and real query rows of
    each input.  Different head counts: both maps are averaged over heads first (see the
    module docstring); batch and token counts must match."""
    q, p = _maps(reference_maps), _maps(candidate_maps)
    if q.shape[1] != p.shape[1]:
        q, p = q.mean(1, keepdim=True), p.mean(1, keepdim=True)
    if q.shape != p.shape:
        raise ValueError(f"reference {tuple(q.shape)} and candidate {tuple(p.shape)} differ in "
                         "batch or token count")
    real = _real(mask, q.shape[0], q.shape[-1], q.device)
    cosine = (p * q).sum(-1) / (p.norm(dim=-1) * q.norm(dim=-1)).clamp_min(EPS)  # (B, H, N)
    rows = real[:, None, :].expand_as(cosine)
    total = torch.where(rows, cosine, cosine.new_zeros(())).sum(dim=(1, 2))
    return _numpy(total / rows.sum(dim=(1, 2)))


def _state_pair(reference, candidate, mask):
    r, x = _states(reference), _states(candidate)
    if r.shape != x.shape:
        raise ValueError(f"reference {tuple(r.shape)} and candidate {tuple(x.shape)} differ in "
                         "shape")
    real = _real(mask, r.shape[0], r.shape[1], r.device)[..., None]
    zero = torch.zeros((), dtype=r.dtype, device=r.device)
    return torch.where(real, r, zero), torch.where(real, x, zero), real


def per_sample_hidden_cosine(reference_states, candidate_states, mask=None) -> np.ndarray:
    """Per-input hidden cosine, ``(B,)``: ``mean`` over the real tokens of each input of
    ``cos(x_i, r_i)`` (both zero → 1, one zero → 0), as
    :func:`pdelang.lab.metrics.hidden_cosine`."""
    r, x, real = _state_pair(reference_states, candidate_states, mask)
    dot = (x * r).sum(-1)
    norm_x, norm_r = x.norm(dim=-1), r.norm(dim=-1)
    cosine = dot / (norm_x * norm_r).clamp_min(_TINY)
    cosine = torch.where((norm_x == 0) & (norm_r == 0), torch.ones_like(cosine), cosine)
    weights = real.squeeze(-1).to(torch.float64)
    return _numpy((cosine * weights).sum(1) / weights.sum(1))


def per_sample_relative_error(reference_states, candidate_states, mask=None) -> np.ndarray:
    """Per-input relative error, ``(B,)``: ``‖X_b − R_b‖_F / ‖R_b‖_F`` over the real tokens of
    each input (0 when both are zero, ``inf`` when only ``R_b`` is, NaN for non-finite states),
    as :func:`pdelang.lab.metrics.relative_error` of that input alone."""
    r, x, _ = _state_pair(reference_states, candidate_states, mask)
    difference = _numpy((x - r).flatten(1).norm(dim=1))
    scale = _numpy(r.flatten(1).norm(dim=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = difference / scale
    ratio = np.where(scale == 0, np.where(difference == 0, 0.0, math.inf), ratio)
    ratio = np.where(np.isinf(scale) | np.isnan(difference) | np.isnan(scale), math.nan, ratio)
    return ratio.astype(np.float64)


def per_sample_flow_cosine(reference_flow, candidate_flow, mask=None) -> np.ndarray:
    """Per-input cosine of two token-flow maps ``(B, N, N)``, ``(B,)``: each input's
    :func:`pdelang.lab.information.flow_cosine` (whose batch value is the plain mean of these)."""
    a = torch.as_tensor(reference_flow).detach().to(torch.float64)
    b = torch.as_tensor(candidate_flow).detach().to(torch.float64)
    if a.ndim == 2:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    real = _real(mask, a.shape[0], a.shape[-1])
    return np.array([flow_cosine(a[i:i + 1], b[i:i + 1], real[i:i + 1])
                     for i in range(a.shape[0])], dtype=np.float64)


# --------------------------------------------------------------------------------- CKA
class _CkaStatistic:
    """Linear CKA of the real tokens of a multiset of inputs (input ``b`` drawn ``w_b`` times),
    for many weight vectors at once, exactly as :func:`pdelang.lab.metrics.linear_cka` of the
    concatenated inputs.

    The tokens are first centered by their overall mean (CKA is translation invariant; this
    keeps the subtraction below well conditioned).  For a pair ``(P, Q)`` of token matrices
    (``(X, Y)``, ``(X, X)``, ``(Y, Y)``), with ``S_b = P_bᵀ Q_b``, token sums ``p_b, q_b``,
    ``A = Σ_b w_b S_b``, ``p = Σ w_b p_b``, ``q = Σ w_b q_b``, ``n = Σ w_b n_b``::

        ‖P_cᵀ Q_c‖_F² = ‖A − p qᵀ/n‖² = wᵀ G w − (2/n) Σ_bcd w_b w_c w_d T_bcd + |p|² |q|² / n²

    with ``G_bb' = ⟨S_b, S_b'⟩ = Σ_{i∈b, j∈b'} (p_i·p_j)(q_i·q_j)`` (from token Gram matrices,
    never a ``C × C`` matrix) and ``T_bcd = Σ_{i∈b} (p_c·p_i)(q_i·q_d)``.  A weight vector then
    costs ``O(B³)``, independent of ``C`` and of the token count.  For ``B > 256`` (the
    ``B³`` tensors would pass 128 MiB) each weight vector reweights the tokens instead
    (``O(n_tokens C²)`` each)."""

    def __init__(self, reference_states, candidate_states, mask):
        y, x = _states(reference_states).cpu(), _states(candidate_states).cpu()
        if x.shape[:2] != y.shape[:2]:
            raise ValueError(f"token shapes differ: {tuple(y.shape[:2])} vs {tuple(x.shape[:2])}")
        real = _real(mask, x.shape[0], x.shape[1]).cpu()
        self.batch = x.shape[0]
        xs, ys = x[real], y[real]
        self.xs = xs - xs.mean(0, keepdim=True)
        self.ys = ys - ys.mean(0, keepdim=True)
        counts = real.sum(1)
        self.owner = torch.arange(self.batch).repeat_interleave(counts)
        self.n = counts.to(torch.float64)
        self.kernel = self.batch <= _CKA_KERNEL_BATCH
        if self.kernel:
            sx = torch.zeros(self.batch, xs.shape[1], dtype=torch.float64)
            sy = torch.zeros(self.batch, ys.shape[1], dtype=torch.float64)
            sx.index_add_(0, self.owner, self.xs)
            sy.index_add_(0, self.owner, self.ys)
            bounds = [0] + torch.cumsum(counts, 0).tolist()
            gxy, gxx, gyy = self._grams()
            self.pairs = {
                "xy": (gxy, self._cube(self.xs, self.ys, sx, sy, bounds), sx @ sx.T, sy @ sy.T),
                "xx": (gxx, self._cube(self.xs, self.xs, sx, sx, bounds), sx @ sx.T, sx @ sx.T),
                "yy": (gyy, self._cube(self.ys, self.ys, sy, sy, bounds), sy @ sy.T, sy @ sy.T),
            }

    def _grams(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = len(self.owner)
        one_hot = torch.zeros(tokens, self.batch, dtype=torch.float64)
        one_hot[torch.arange(tokens), self.owner] = 1.0
        grams = [torch.zeros(self.batch, self.batch, dtype=torch.float64) for _ in range(3)]
        rows = max(1, _CKA_BLOCK // max(tokens, 1))
        for start in range(0, tokens, rows):
            block = slice(start, start + rows)
            kx, ky = self.xs[block] @ self.xs.T, self.ys[block] @ self.ys.T  # (r, tokens)
            for gram, product in zip(grams, (kx * ky, kx * kx, ky * ky)):
                gram.index_add_(0, self.owner[block], product @ one_hot)
        return grams[0], grams[1], grams[2]

    def _cube(self, p, q, sp, sq, bounds) -> torch.Tensor:
        pp, qq = p @ sp.T, q @ sq.T  # (tokens, B): (p_i·p_c), (q_i·q_d)
        cube = torch.zeros(self.batch, self.batch, self.batch, dtype=torch.float64)
        for b in range(self.batch):
            rows = slice(bounds[b], bounds[b + 1])
            cube[b] = pp[rows].T @ qq[rows]
        return cube

    def counts(self, indices: np.ndarray) -> torch.Tensor:
        indices = np.atleast_2d(np.asarray(indices, dtype=np.int64))
        k = indices.shape[0]
        flat = (indices + np.arange(k)[:, None] * self.batch).ravel()
        return torch.from_numpy(
            np.bincount(flat, minlength=k * self.batch).reshape(k, self.batch).astype(np.float64))

    def _square_norm(self, w: torch.Tensor, pair: str, n: torch.Tensor) -> torch.Tensor:
        gram, cube, gp, gq = self.pairs[pair]
        quadratic = ((w @ gram) * w).sum(1)
        folded = (w @ cube.reshape(self.batch, -1)).reshape(-1, self.batch, self.batch)
        cubic = ((folded @ w[:, :, None]).squeeze(-1) * w).sum(1)
        sp2, sq2 = ((w @ gp) * w).sum(1), ((w @ gq) * w).sum(1)
        return quadratic - 2.0 * cubic / n + sp2 * sq2 / n.square()

    @staticmethod
    def _ratio(cross: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> np.ndarray:
        denominator = (xx.clamp_min(0.0) * yy.clamp_min(0.0)).sqrt()
        value = _numpy(cross.clamp_min(0.0) / denominator.clamp_min(_TINY))
        return np.where(_numpy(denominator) <= EPS, math.nan, value)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        """CKA of each row of ``indices`` (``(k, B)`` or ``(B,)`` draws of inputs), ``(k,)``."""
        weights = self.counts(indices)
        if not self.kernel:
            return np.array([self._direct(w) for w in weights], dtype=np.float64)
        rows = max(1, _CKA_BLOCK // (self.batch * self.batch))
        out = []
        for start in range(0, len(weights), rows):
            w = weights[start:start + rows]
            n = w @ self.n
            out.append(self._ratio(self._square_norm(w, "xy", n), self._square_norm(w, "xx", n),
                                   self._square_norm(w, "yy", n)))
        return np.concatenate(out)

    def _direct(self, weights: torch.Tensor) -> float:
        w = weights[self.owner][:, None]
        n = w.sum()
        xs = self.xs - (w * self.xs).sum(0, keepdim=True) / n
        ys = self.ys - (w * self.ys).sum(0, keepdim=True) / n
        cross, xx, yy = (ys * w).T @ xs, (xs * w).T @ xs, (ys * w).T @ ys
        norms = [m.square().sum()[None] for m in (cross, xx, yy)]
        return float(self._ratio(*norms)[0])


def cka_interval(reference_states, candidate_states, mask=None, *, resamples: int = 1000,
                 level: float = 0.95, seed: int = 0, method: str = "basic") -> Interval:
    """Linear CKA (:func:`pdelang.lab.metrics.linear_cka`, tokens of all inputs pooled) with a
    bootstrap interval over **inputs** (:func:`bootstrap_statistic`): each resample draws ``B``
    inputs with replacement and pools all their real tokens.  ``mean`` is the CKA of the batch
    itself (= ``linear_cka``), ``sd`` the bootstrap standard error, ``bias`` the replicates'
    mean shift.

    ``method="basic"`` by default: linear CKA is biased upwards in finite samples, more so
    when inputs repeat, so the replicates sit above ``mean`` (often by more than their spread)
    and a percentile interval would lie entirely above the measured value.  The basic interval
    ``[2 mean − q_hi, 2 mean − q_lo]`` corrects for that bias; it can lie entirely *below*
    ``mean`` (it is an interval for the bias-corrected CKA).  Differences of two CKAs on the
    same inputs (:func:`compare_cka_with_floor`) are much less affected.

    Cost (``B ≤ 256`` inputs): token Gram matrices once (``n_tokens² C``), then ``O(B³)`` per
    resample, independent of ``C`` (``B = 64``, 2048 tokens, ``C = 384``, 1000 resamples:
    about a second on one core)."""
    statistic = _CkaStatistic(reference_states, candidate_states, mask)
    return bootstrap_statistic(statistic, statistic.batch, resamples=resamples, level=level,
                               seed=seed, batched=True, method=method)


# ------------------------------------------------------------------------------ the floors
def uniform_maps(mask, heads: int, tokens: int, *, batch: int | None = None) -> torch.Tensor:
    """``(B, heads, N, N)`` maps in which every query attends uniformly to the real keys of its
    input (``1/n_b`` on each real key, 0 on padding keys); padding query rows get the same row
    (they are never scored).  ``mask=None`` (all real) needs ``batch``."""
    if mask is None and batch is None:
        raise ValueError("uniform_maps needs the batch size when mask is None")
    if mask is None:
        real = torch.ones(batch, tokens, dtype=torch.bool)
    else:
        mask_t = torch.as_tensor(mask)
        real = token_mask(mask_t, mask_t.shape[0] if mask_t.ndim == 2 else 1, tokens)
    row = real.to(torch.float64)
    row = row / row.sum(1, keepdim=True).clamp_min(1.0)
    return row[:, None, None, :].expand(row.shape[0], heads, tokens, tokens).clone()


def dataset_mean_maps(train_maps, train_mask, mask, *, batch: int | None = None,
                      tokens: int | None = None) -> torch.Tensor:
    """The mean reference map of **separate** (training) inputs, fitted to the evaluated inputs.

    ``train_maps`` ``(B_t, H, N_t, N_t)`` (one layer), ``train_mask`` ``(B_t, N_t)`` or
    ``None``.  Position-wise mean over the training inputs in which both the query ``i`` and
    the key ``j`` are real: ``M[h, i, j] = Σ_b m_bi m_bj P_bhij / Σ_b m_bi m_bj`` (0 where no
    training input reaches ``(i, j)``).  For each evaluated input, ``M`` (cropped or padded
    with zeros to its ``N``) is restricted to its real keys and every row renormalised to sum
    to 1; a row without support (e.g. beyond the training length) becomes uniform over the real
    keys.  Returns ``(B, H, N, N)``; ``mask=None`` needs ``batch`` and ``tokens``.

    Using the evaluated inputs themselves as the training inputs leaks them into the floor
    (the floor would be optimistic for the evaluated set): do not.
    """
    t = _maps(train_maps)
    train_batch, heads, train_tokens, _ = t.shape
    pair_real = token_mask(train_mask, train_batch, train_tokens).to(torch.float64)
    pair = pair_real[:, :, None] * pair_real[:, None, :]  # (B_t, N_t, N_t)
    total = torch.where(pair[:, None] > 0, t, torch.zeros((), dtype=t.dtype)).sum(0)
    count = pair.sum(0)
    mean = torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros((), dtype=t.dtype))
    if mask is None:
        if batch is None or tokens is None:
            raise ValueError("dataset_mean_maps needs batch and tokens when mask is None")
        real = torch.ones(batch, tokens, dtype=torch.bool)
    else:
        mask_t = torch.as_tensor(mask)
        if mask_t.ndim == 1:
            mask_t = mask_t.unsqueeze(0)
        real = token_mask(mask_t, mask_t.shape[0], mask_t.shape[1])
    n = real.shape[1]
    fitted = torch.zeros(heads, n, n, dtype=torch.float64)
    m = min(n, train_tokens)
    fitted[:, :m, :m] = mean[:, :m, :m]
    keys = real.to(torch.float64)[:, None, None, :]
    restricted = fitted[None] * keys  # (B, H, N, N)
    sums = restricted.sum(-1, keepdim=True)
    uniform = uniform_maps(real, heads, n)
    return torch.where(sums > 0, restricted / sums.clamp_min(_TINY), uniform)


def head_mean_maps(maps) -> torch.Tensor:
    """Every head replaced by the mean over the heads of the same input and layer, same shape:
    the best a model with one shared map per layer could do, head by head."""
    p = _maps(maps)
    return p.mean(1, keepdim=True).expand_as(p).clone()


def previous_layer_maps(attentions: Sequence, layer: int):
    """The reference maps one layer down: ``attentions[layer − 1]`` for the 0-based position
    ``layer`` in ``attentions`` (layer ``ℓ = layer + 1``); ``None`` at position 0 (the first
    layer has no previous one)."""
    if not 0 <= layer < len(attentions):
        raise IndexError(f"layer {layer} outside 0 .. {len(attentions) - 1}")
    return None if layer == 0 else attentions[layer - 1]


def attention_floor_maps(attentions: Sequence, mask, layer: int, *, train_attentions=None,
                         train_mask=None) -> dict:
    """``{floor name: (B, H, N, N) maps or None}`` for layer ``ℓ = layer`` (1-based, the
    reference maps ``attentions[ℓ − 1]``): ``uniform``, ``dataset_mean`` (``None`` without
    ``train_attentions``, a list of ``L`` training maps), ``head_mean``, ``previous_layer``
    (``None`` at ``ℓ = 1``)."""
    if not 1 <= layer <= len(attentions):
        raise IndexError(f"layer {layer} outside 1 .. {len(attentions)}")
    reference = _maps(attentions[layer - 1])
    batch, heads, tokens, _ = reference.shape
    real = token_mask(mask, batch, tokens)
    previous = previous_layer_maps(attentions, layer - 1)
    dataset = None
    if train_attentions is not None:
        if len(train_attentions) != len(attentions):
            raise ValueError(f"train_attentions has {len(train_attentions)} layers, the "
                             f"reference {len(attentions)}")
        dataset = dataset_mean_maps(train_attentions[layer - 1], train_mask, real)
    return {
        "uniform": uniform_maps(real, heads, tokens),
        "dataset_mean": dataset,
        "head_mean": head_mean_maps(reference),
        "previous_layer": None if previous is None else _maps(previous),
    }


def state_floors(hidden_states: Sequence, layer: int) -> dict:
    """``{"identity": u_0, "previous_state": u_{ℓ−1}}`` — the trivial candidates for the
    reference state ``u_ℓ = hidden_states[ℓ]``, ``ℓ = layer`` in 1 .. L (at ``ℓ = 1`` both are
    ``u_0``)."""
    if not 1 <= layer < len(hidden_states):
        raise IndexError(f"layer {layer} outside 1 .. {len(hidden_states) - 1}")
    return {"identity": hidden_states[0], "previous_state": hidden_states[layer - 1]}


def flow_floor_values(reference_flow, mask=None) -> np.ndarray:
    """Per-input flow cosine ``(B,)`` of the all-ones token-flow map (every output token
    depends equally on every real input token) against ``reference_flow`` ``(B, N, N)``
    (:func:`pdelang.lab.information.token_flow`)."""
    flow = torch.as_tensor(reference_flow).detach().to(torch.float64)
    return per_sample_flow_cosine(flow, torch.ones_like(flow), mask)


def flow_floor(reference_flow, mask=None) -> float:
    """The all-ones token-flow map's :func:`pdelang.lab.information.flow_cosine` against
    ``reference_flow`` over the batch (the mean of :func:`flow_floor_values`)."""
    flow = torch.as_tensor(reference_flow).detach().to(torch.float64)
    return flow_cosine(torch.ones_like(flow), flow, mask)


# ----------------------------------------------------------------------- floors per layer
def floor_values(hidden_states: Sequence, attentions: Sequence, mask, layer: int, *,
                 train_attentions=None, train_mask=None) -> dict:
    """The per-input values ``(B,)`` of every floor at layer ``ℓ = layer`` (1-based)::

        {"attention_cosine": {floor: (B,) or None},  "heads_match": {floor: bool or None},
         "hidden_cosine": {"identity": (B,), "previous_state": (B,)},
         "relative_error": {"identity": (B,), "previous_state": (B,)}}

    (``None`` for an attention floor not available at this layer), to pair with a model's
    values in :func:`compare_with_floor`."""
    reference = attentions[layer - 1]
    maps = attention_floor_maps(attentions, mask, layer, train_attentions=train_attentions,
                                train_mask=train_mask)
    attention = {name: None if m is None else per_sample_attention_cosine(reference, m, mask)
                 for name, m in maps.items()}
    match = {name: None if m is None else heads_match(reference, m) for name, m in maps.items()}
    target = hidden_states[layer]
    states = state_floors(hidden_states, layer)
    return {
        "attention_cosine": attention,
        "heads_match": match,
        "hidden_cosine": {name: per_sample_hidden_cosine(target, s, mask)
                          for name, s in states.items()},
        "relative_error": {name: per_sample_relative_error(target, s, mask)
                           for name, s in states.items()},
    }


def _strongest(entries: dict, metric: str, lowest: bool = False) -> dict:
    best_name, best = None, None
    for name, entry in entries.items():
        if entry is None or entry.get(metric) is None:
            continue
        mean = entry[metric]["mean"]
        if mean is None:
            continue
        if best is None or (mean < best if lowest else mean > best):
            best_name, best = name, mean
    return {"name": best_name, "mean": best}


def layer_floors(hidden_states: Sequence, attentions: Sequence, mask=None, *,
                 train_attentions=None, train_mask=None, resamples: int = 1000,
                 level: float = 0.95, seed: int = 0, cka: bool = True) -> list[dict]:
    """Every floor of every layer ``ℓ = 1 .. L``, with bootstrap intervals over the inputs.

    Returns one JSON-ready dict per layer::

        {"layer": ℓ,
         "uniform" | "dataset_mean" | "head_mean" | "previous_layer":
             {"attention_cosine": Interval json, "heads_match": bool}  or None (not available:
             dataset_mean without train_attentions, previous_layer at ℓ = 1),
         "identity" | "previous_state":
             {"hidden_cosine": Interval json, "relative_error": Interval json,
              "cka": Interval json (None when cka=False)},
         "strongest_attention_floor": {"name", "mean"}   (highest mean attention cosine),
         "strongest_state_floor": {"hidden_cosine": {"name", "mean"} (highest),
                                   "cka": {"name", "mean"} (highest),
                                   "relative_error": {"name", "mean"} (lowest)}}

    Interval json = :meth:`Interval.to_json` of :func:`bootstrap_mean` of the per-input values
    (:func:`floor_values`), CKA of :func:`cka_interval`.  ``train_attentions`` (``L`` maps of
    inputs *other than* the evaluated ones) and ``train_mask`` feed ``dataset_mean``.  Ties in
    "strongest" go to the first name in :data:`ATTENTION_FLOORS` / :data:`STATE_FLOORS`.
    """
    layers = len(attentions)
    if len(hidden_states) != layers + 1:
        raise ValueError(f"hidden_states has {len(hidden_states)} states; expected "
                         f"{layers + 1} (u(0) first) for {layers} attention maps")
    first = _states(hidden_states[0])
    real = _real(mask, first.shape[0], first.shape[1])
    options = {"resamples": resamples, "level": level, "seed": seed}
    rows = []
    for layer in range(1, layers + 1):
        values = floor_values(hidden_states, attentions, real, layer,
                              train_attentions=train_attentions, train_mask=train_mask)
        row: dict = {"layer": layer}
        for name in ATTENTION_FLOORS:
            v = values["attention_cosine"][name]
            row[name] = None if v is None else {
                "attention_cosine": bootstrap_mean(v, **options).to_json(),
                "heads_match": values["heads_match"][name],
            }
        states = state_floors(hidden_states, layer)
        for name in STATE_FLOORS:
            row[name] = {
                "hidden_cosine": bootstrap_mean(values["hidden_cosine"][name], **options).to_json(),
                "relative_error": bootstrap_mean(values["relative_error"][name],
                                                 **options).to_json(),
                "cka": (cka_interval(hidden_states[layer], states[name], real, **options).to_json()
                        if cka else None),
            }
        attention_entries = {name: row[name] for name in ATTENTION_FLOORS}
        state_entries = {name: row[name] for name in STATE_FLOORS}
        row["strongest_attention_floor"] = _strongest(attention_entries, "attention_cosine")
        row["strongest_state_floor"] = {
            "hidden_cosine": _strongest(state_entries, "hidden_cosine"),
            "cka": _strongest(state_entries, "cka"),
            "relative_error": _strongest(state_entries, "relative_error", lowest=True),
        }
        rows.append(row)
    return rows


# --------------------------------------------------------------------- model against floor
def _rescale(score: float, floor: float, higher_is_better: bool) -> float | None:
    if higher_is_better:
        value = rescaled(score, floor)
    else:
        value = 1.0 - score / floor if math.isfinite(floor) and floor > 0 else math.nan
    return value if math.isfinite(value) else None


def compare_with_floor(model_values, floor_values, *, higher_is_better: bool = True,
                       resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """A model's per-input values against a floor's on the **same** inputs.

    Returns a JSON-ready ``{"mean", "floor_mean", "rescaled", "difference", "decision"}``:
    the raw means; ``rescaled`` the model's mean against the floor's — for a similarity
    (``higher_is_better``) :func:`rescaled` ``(s − f)/(1 − f)`` (0 at the floor, 1 perfect,
    None when ``f ≥ 1``), for an error (relative error, best 0) ``1 − s/f`` (the fraction of
    the floor's error removed; None when ``f ≤ 0``); ``difference`` the
    :func:`paired_difference` Interval json of ``model − floor``; ``decision``
    :func:`decide` of it ("higher" / "lower" / "no difference" — for an error, "lower" is
    the better)."""
    model = np.asarray(model_values, dtype=np.float64)
    floor = np.asarray(floor_values, dtype=np.float64)
    difference = paired_difference(model, floor, resamples=resamples, level=level, seed=seed)
    mean, floor_mean = float(model.mean()), float(floor.mean())
    return {
        "mean": mean if math.isfinite(mean) else None,
        "floor_mean": floor_mean if math.isfinite(floor_mean) else None,
        "rescaled": _rescale(mean, floor_mean, higher_is_better),
        "difference": difference.to_json(),
        "decision": decide(difference),
    }


def compare_cka_with_floor(reference_states, model_states, floor_states, mask=None, *,
                           resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """CKA (pooled over inputs, so no per-input values) of a model against a floor on the same
    inputs: ``{"mean", "floor_mean", "rescaled", "difference", "decision"}`` as
    :func:`compare_with_floor`, the difference ``CKA(model) − CKA(floor)`` bootstrapped with
    the two CKAs computed on the **same** resampled inputs (a paired bootstrap; the basic
    interval, see :func:`cka_interval`)."""
    model = _CkaStatistic(reference_states, model_states, mask)
    floor = _CkaStatistic(reference_states, floor_states, mask)
    everything = np.arange(model.batch)[None]
    mean, floor_mean = float(model(everything)[0]), float(floor(everything)[0])
    difference = bootstrap_statistic(lambda idx: model(idx) - floor(idx), model.batch,
                                     resamples=resamples, level=level, seed=seed, batched=True,
                                     method="basic")
    return {
        "mean": mean if math.isfinite(mean) else None,
        "floor_mean": floor_mean if math.isfinite(floor_mean) else None,
        "rescaled": _rescale(mean, floor_mean, True),
        "difference": difference.to_json(),
        "decision": decide(difference),
    }
