"""Controls for the per-layer information measurements of :mod:`.information_flow`: what a
difference of ``I(X; T_ℓ + Z)`` between layers, or a value of ``I(T_ℓ; Y)``, can and cannot
support.

Why controls are needed
-----------------------
* For an **injective** network the Shannon ``I(X; T_ℓ)`` is the same at every layer, and
  ``I(X; T_ℓ + Z)`` (Goldfeld et al. 2019) differs between layers only through the *geometry*
  of the representation relative to the isotropic noise ``Z ~ N(0, σ² I)``: stretching one
  direction (an invertible map) changes the estimate.  So a drop of the estimate from one layer
  to the next ("compression") is a finding only if it survives every σ, both noise scales and
  a control that removes the linear geometry (:func:`anisotropy_control`, :func:`compression`).
* ``I(T; Y)`` measured by a logistic probe depends on the probe's regularisation ``C`` and has
  a sampling error; a **negative** value is a failure of the probe (it overfits: its held-out
  cross-entropy exceeds the label entropy), not a finding (:func:`probe_information`).

Inputs are per-layer feature matrices ``layers = [T_0, …, T_L]``, each ``(n, d_ℓ)`` (numpy or
torch; trailing dimensions flattened), the **same n inputs in the same order** in every layer.
Every information quantity is in **bits**.  The estimators are those of
:mod:`pdelang.lab.information`: :func:`~pdelang.lab.information.sample_propagation_mi` (its
``'standard_error_bits'`` is the Monte-Carlo error over the noise draws only) and
:func:`~pdelang.lab.information.usable_information`.

Noise scales (``scale``)
------------------------
* ``"relative"`` — σ is a multiple of each layer's own RMS spread
  (:func:`~pdelang.lab.validation.information_flow.spread`, ``s_ℓ = sqrt(Σ_features var)``): the
  estimate is that of ``T_ℓ / s_ℓ + Z``, the convention of ``validate --metrics info``;
* ``"absolute"`` — σ is in the units of the features, one σ for every layer; the σ values are
  chosen as the given multiples of the RMS spread ``s_0`` of **layer 0** (``layers[0]``), i.e.
  the applied noise is ``σ_abs = m · s_0`` for every layer (a layer that grows in scale then
  sees relatively less noise).

The two coincide for layer 0.  The estimator is exactly scale-covariant (``I(X; aT + aZ) =
I(X; T + Z)``), so only the ratio of σ to the features matters.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from pdelang.lab import information
from pdelang.lab.validation.information_flow import spread

__all__ = [
    "AnisotropyControl",
    "Compression",
    "ProbeInformation",
    "SigmaSweep",
    "anisotropy_control",
    "compression",
    "participation_ratio",
    "probe_information",
    "sigma_sweep",
    "stretch_top_component",
    "to_json",
    "whitened_pca",
]

DEFAULT_SIGMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
SCALES = ("relative", "absolute")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
SATURATION_MARGIN_BITS = 0.1  # an estimate within this of log2 n is "saturated"
_RANK_TOL = 1e-10  # a PC variance below this fraction of the top one counts as 0


# ------------------------------------------------------------------------------- helpers
def _matrix(values, name: str = "features") -> np.ndarray:
    """``(n, d)`` float64 array (trailing dimensions flattened), finite."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a sample dimension, got a scalar")
    array = array.reshape(len(array), -1)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or Inf values")
    return array


def _layers(layers) -> list[np.ndarray]:
    mats = [_matrix(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
    if not mats:
        raise ValueError("layers is empty")
    sizes = {len(m) for m in mats}
    if len(sizes) != 1:
        raise ValueError(f"every layer must hold the same n inputs, got sizes {sorted(sizes)}")
    return mats


def _check_scales(scales) -> tuple[str, ...]:
    scales = (scales,) if isinstance(scales, str) else tuple(scales)
    bad = [s for s in scales if s not in SCALES]
    if bad or not scales:
        raise ValueError(f"scales must be a non-empty subset of {SCALES}, got {scales}")
    return scales


def _check_sigmas(sigmas) -> tuple[float, ...]:
    sigmas = (float(sigmas),) if np.isscalar(sigmas) else tuple(float(s) for s in sigmas)
    if not sigmas or not all(s > 0 and math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigmas must be positive numbers, got {sigmas}")
    return sigmas


def _nonzero(value: float) -> float:
    """A spread of 0 (a constant layer) is replaced by 1, as in information_flow."""
    return value if value > 0 else 1.0


def _sp(features: np.ndarray, sigma_units: float, *, seed: int, noise_samples: int) -> dict:
    """sample_propagation_mi at the σ given in the units of ``features``."""
    return information.sample_propagation_mi(features, sigma_units, seed=seed,
                                             noise_samples=noise_samples)


def _absolute_spread(mats, unit: str) -> float:
    """The absolute scale's unit: the RMS spread of layer 0 (``"layer0"``), or the geometric
    mean of every given layer's spread (``"mean"``: a σ range of 0.1–1 then straddles the
    scale of every layer, not only of layer 0, when the layers' scales differ a lot)."""
    if unit == "layer0":
        return _nonzero(spread(mats[0]))
    if unit == "mean":
        return _nonzero(float(np.exp(np.mean([np.log(_nonzero(spread(m))) for m in mats]))))
    raise ValueError(f"absolute_unit must be 'layer0' or 'mean', got {unit!r}")


def _sigma_units(features: np.ndarray, multiple: float, scale: str,
                 reference_spread: float) -> float:
    """σ in feature units: ``m · s_ℓ`` (relative) or ``m · s_0`` (absolute)."""
    base = spread(features) if scale == "relative" else reference_spread
    return multiple * _nonzero(base)


def _plain(value):
    """JSON-ready copy: dataclasses → dicts, numpy scalars/arrays → Python, NaN/Inf → None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def to_json(result) -> dict | list:
    """A JSON-ready (``json.dumps``-able) copy of any result of this module (a dataclass, or a
    list/dict of them): nested dicts, lists, floats (NaN/Inf → None), ints, bools, strings."""
    return _plain(result)


# ------------------------------------------------------------------ effective dimension
def participation_ratio(features) -> float:
    """Effective dimension of ``(n, d)`` samples, the participation ratio of the eigenvalues
    ``λ_i`` of their covariance matrix::

        PR = (Σ_i λ_i)² / Σ_i λ_i²,        1 ≤ PR ≤ rank ≤ min(n − 1, d).

    ``PR = d`` for exactly isotropic covariance, ``1`` when all variance lies along one
    direction (rank-1 data); it is invariant to rotations and to a global scale.  For ``n``
    samples of an isotropic Gaussian the *sample* covariance's PR is biased low, ≈ ``d·n/(n+d)``
    (Marchenko–Pastur: ``E Σλ² ≈ d(1 + d/n)``).  The eigenvalues are the squared singular
    values of the centred data (more accurate than an eigensolver on the covariance);
    constant data (all λ = 0) gives ``nan``.
    """
    x = _matrix(features)
    if len(x) < 2:
        raise ValueError("the participation ratio needs at least 2 samples")
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    lam = s * s  # ∝ covariance eigenvalues (the 1/(n−1) cancels in the ratio)
    total = lam.sum()
    if total == 0:
        return float("nan")
    return float(total * total / (lam * lam).sum())


# ------------------------------------------------------------------------ σ sweep
@dataclass
class SigmaSweep:
    """I(X; T_ℓ + Z) per scale, per σ multiple, per layer.

    ``rows``: one dict per (scale, σ, layer): ``{'scale', 'sigma' (the multiple m),
    'sigma_units' (the σ applied, in the layer's feature units: m·s_ℓ relative, m·s_0
    absolute), 'layer', 'bits', 'standard_error_bits' (Monte-Carlo SE of the estimator),
    'max_bits' (log2 n), 'saturated' (bits ≥ max_bits − 0.1), 'spread' (s_ℓ),
    'participation_ratio'}``."""

    rows: list[dict]
    reference_spread: float  # s_0, the RMS spread of layer 0 (the absolute scale's unit)
    n: int
    noise_samples: int
    seed: int
    scales_note: str = ("relative: σ = m × each layer's RMS spread; absolute: σ = m × the RMS "
                        "spread of layer 0, one σ in feature units for every layer")

    def table(self, scale: str, sigma: float) -> list[dict]:
        """The rows of one (scale, σ multiple), by layer."""
        return [r for r in self.rows if r["scale"] == scale and r["sigma"] == sigma]

    def to_json(self) -> dict:
        return to_json(self)


def sigma_sweep(layers, sigmas=DEFAULT_SIGMAS, scales=SCALES, *,
                absolute_unit: str = "layer0", seed: int = 0,
                noise_samples: int = 4) -> SigmaSweep:
    """``I(X; T_ℓ + Z)`` (bits, Goldfeld et al.'s sample propagation) of every layer, at every
    σ multiple in ``sigmas`` and every scale in ``scales`` (see the module docstring: relative
    = m × the layer's own RMS spread; absolute = m × the RMS spread of layer 0, in feature
    units, the same for every layer), with the estimator's Monte-Carlo standard error.

    Every estimate uses the same noise ``seed`` (common random numbers: layers of the same
    width get the same noise draws, which reduces the MC noise of their differences).  A value
    near ``log2 n`` is flagged ``saturated`` (it only says ``≥ log2 n``).  Cost:
    ``len(sigmas) · len(scales) · (L + 1)`` estimator calls.
    """
    mats = _layers(layers)
    sigmas, scales = _check_sigmas(sigmas), _check_scales(scales)
    s0 = _absolute_spread(mats, absolute_unit)
    spreads = [spread(m) for m in mats]
    ratios = [participation_ratio(m) for m in mats]
    rows = []
    for scale in scales:
        for m in sigmas:
            for layer, feats in enumerate(mats):
                units = _sigma_units(feats, m, scale, s0)
                mi = _sp(feats, units, seed=seed, noise_samples=noise_samples)
                rows.append({"scale": scale, "sigma": m, "sigma_units": units, "layer": layer,
                             "bits": mi["bits"],
                             "standard_error_bits": mi["standard_error_bits"],
                             "max_bits": mi["max_bits"],
                             "saturated": mi["bits"] >= mi["max_bits"] - SATURATION_MARGIN_BITS,
                             "spread": spreads[layer],
                             "participation_ratio": ratios[layer]})
    return SigmaSweep(rows=rows, reference_spread=s0, n=len(mats[0]),
                      noise_samples=noise_samples, seed=seed)


# ----------------------------------------------------------------- anisotropy control
def _principal(x: np.ndarray):
    """Centred data, its PC scores ``U·S`` and directions ``V`` (rows), with a fixed sign:
    each direction's largest-magnitude loading is positive (so the PCs of two data sets with
    the same principal directions come out with the same signs)."""
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    pivot = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(len(vt)), pivot])
    signs[signs == 0] = 1.0
    return centred, u * signs, s, vt * signs[:, None]


def stretch_top_component(features, factor: float = 2.0) -> np.ndarray:
    """The features with their coordinate along the top principal component multiplied by
    ``factor`` (about the mean)::

        T' = T + (factor − 1) · ((T − μ) v₁) v₁ᵀ,     v₁ the top PC direction (unit).

    An invertible linear map for ``factor ≠ 0`` (``I(X; T') = I(X; T)`` for the Shannon
    information) that changes only the geometry seen by isotropic noise.  For ``factor ≥ 1``
    ``v₁`` stays the top PC and every principal direction is unchanged (only ``λ₁`` becomes
    ``factor² λ₁``), so :func:`whitened_pca` of the result equals that of the input."""
    if not math.isfinite(factor) or factor == 0:
        raise ValueError(f"factor must be finite and non-zero (invertible), got {factor}")
    x = _matrix(features)
    centred, _, _, vt = _principal(x)
    v1 = vt[0]
    return x + (factor - 1.0) * np.outer(centred @ v1, v1)


def whitened_pca(features, k: int) -> np.ndarray:
    """The ``(n, k)`` whitened top-``k`` principal-component scores::

        W = (T − μ) V_k Λ_k^{-1/2},   so   cov(W) = I_k  (ddof = 1)   and   spread(W) = √k,

    ``V_k`` the top ``k`` principal directions, ``Λ_k`` their variances.  Whitening removes
    every invertible linear map *within* the top-k subspace (``W`` of ``T A`` is ``W`` of
    ``T`` times an orthogonal matrix when the subspace is preserved — for ``k = d`` always),
    so ``I(X; W + Z)`` compares layers without their linear geometry.  Signs are fixed (each
    direction's largest loading positive).

    ``k ≤ n / 10`` is required (a ValueError otherwise): the top PCs and their variances of
    fewer than ~10 samples per dimension are too noisy to whiten by.  Also ``k ≤ d`` and the
    k-th PC variance must be positive (above 1e-10 of the top one): a rank-deficient layer
    cannot be whitened to ``k`` dimensions.
    """
    x = _matrix(features)
    n, d = x.shape
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if 10 * k > n:
        raise ValueError(f"whitened PCA needs k ≤ n/10 = {n / 10:g} (n = {n} samples), got "
                         f"k = {k}")
    if k > d:
        raise ValueError(f"k = {k} exceeds the feature dimension d = {d}")
    _, u, s, _ = _principal(x)
    if s[0] == 0 or s[k - 1] ** 2 <= _RANK_TOL * s[0] ** 2:
        raise ValueError(f"the layer has fewer than k = {k} principal components of non-zero "
                         f"variance; choose a smaller k")
    # (T − μ) v_i / sqrt(λ_i) with λ_i = s_i² / (n − 1): = u_i · sqrt(n − 1)
    return u[:, :k] * math.sqrt(n - 1)


def default_k(layers) -> int:
    """The largest whitening dimension every layer allows: ``min(n // 10, min_ℓ d_ℓ)``, at
    least 1 (it may still exceed a rank-deficient layer's rank)."""
    mats = _layers(layers)
    n = len(mats[0])
    return max(1, min(n // 10, *(m.shape[1] for m in mats)))


@dataclass
class AnisotropyControl:
    """I(X; T_ℓ + Z) of every layer under three geometries, with the participation ratio.

    ``rows``: one dict per (σ, layer): ``{'sigma', 'layer', 'raw', 'whitened', 'stretched',
    'geometry_effect_bits'}``; each of ``raw``/``whitened``/``stretched`` is ``{'bits',
    'standard_error_bits', 'participation_ratio', 'sigma_units'}``; ``geometry_effect_bits =
    stretched − raw`` (what an invertible stretch alone does to the estimate).
    ``summary``: per σ, the layer-to-layer range (max − min over layers) of the raw and of the
    whitened estimates, and the largest |geometry effect| — a raw range not larger than the
    geometry effect is not evidence of a change of information."""

    rows: list[dict]
    summary: list[dict]
    k: int
    factor: float
    scale: str
    seed: int
    noise_samples: int

    def to_json(self) -> dict:
        return to_json(self)


def anisotropy_control(layers, sigmas=(0.3,), *, absolute_unit: str = "layer0",
                       scale: str = "relative", k: int | None = None,
                       factor: float = 2.0, seed: int = 0,
                       noise_samples: int = 4) -> AnisotropyControl:
    """``I(X; T_ℓ + Z)`` of every layer under (a) the raw features, (b) the layer's
    :func:`whitened_pca` to the same ``k`` for every layer (default :func:`default_k`), and
    (c) the layer with its top PC stretched by ``factor`` (:func:`stretch_top_component`), at
    each σ multiple, with the participation ratio of each variant next to it.  (b) and (c)
    have the same Shannon information as (a) for an injective layer; the differences show how
    much of a layer-to-layer difference geometry alone produces.

    ``scale``: for (a) and (c) as in :func:`sigma_sweep` (``relative``: m × the variant's own
    spread; ``absolute``: m × the raw layer 0's spread).  For (b) every layer is whitened to
    spread √k, so both scales apply σ = m·√k (they coincide).  Same noise seed everywhere.
    """
    mats = _layers(layers)
    sigmas = _check_sigmas(sigmas)
    (scale,) = _check_scales((scale,))
    k = default_k(mats) if k is None else int(k)
    s0 = _absolute_spread(mats, absolute_unit)
    variants = []
    for feats in mats:
        white = whitened_pca(feats, k)
        stretched = stretch_top_component(feats, factor)
        variants.append({"raw": (feats, participation_ratio(feats)),
                         "whitened": (white, participation_ratio(white)),
                         "stretched": (stretched, participation_ratio(stretched))})
    rows, summary = [], []
    for m in sigmas:
        block = []
        for layer, variant in enumerate(variants):
            row: dict = {"sigma": m, "layer": layer}
            for name, (feats, ratio) in variant.items():
                units = (m * math.sqrt(k) if name == "whitened"
                         else _sigma_units(feats, m, scale, s0))
                mi = _sp(feats, units, seed=seed, noise_samples=noise_samples)
                row[name] = {"bits": mi["bits"], "standard_error_bits": mi["standard_error_bits"],
                             "participation_ratio": ratio, "sigma_units": units}
            row["geometry_effect_bits"] = row["stretched"]["bits"] - row["raw"]["bits"]
            block.append(row)
        raw = [r["raw"]["bits"] for r in block]
        white = [r["whitened"]["bits"] for r in block]
        summary.append({"sigma": m, "raw_range_bits": max(raw) - min(raw),
                        "whitened_range_bits": max(white) - min(white),
                        "max_geometry_effect_bits": max(abs(r["geometry_effect_bits"])
                                                        for r in block)})
        rows.extend(block)
    return AnisotropyControl(rows=rows, summary=summary, k=k, factor=factor, scale=scale,
                             seed=seed, noise_samples=noise_samples)


# ------------------------------------------------------------------------ compression
@dataclass
class Compression:
    """ΔI = I(X; T_to + Z) − I(X; T_from + Z) with 95 % CIs, and the verdict.

    ``rows``: one dict per (scale, σ multiple) of the raw features: ``{'scale', 'sigma',
    'from_bits', 'to_bits', 'delta_bits', 'se_bits', 'ci_low', 'ci_high', 'saturated',
    'decrease' (ci_high < 0 and not saturated)}``; ``control_rows``: the same per σ for the
    whitened-PCA control (scale ``'whitened'``, k dimensions).  ``verdict`` ∈
    {"compression", "no compression", "inconclusive"}, ``reason`` one line."""

    from_layer: int
    to_layer: int
    rows: list[dict]
    control_rows: list[dict]
    k: int
    resamples: int
    ci_method: str
    verdict: str
    reason: str
    n: int
    seed: int
    noise_samples: int

    def to_json(self) -> dict:
        return to_json(self)


def _delta_row(scale, m, point_from, point_to, deltas, n_boot) -> dict:
    delta = point_to["bits"] - point_from["bits"]
    if n_boot:
        se = float(np.std(deltas, ddof=1))
    else:  # Monte-Carlo only (the inputs fixed)
        se = math.hypot(point_from["standard_error_bits"], point_to["standard_error_bits"])
    low, high = delta - Z95 * se, delta + Z95 * se
    saturated = any(p["bits"] >= p["max_bits"] - SATURATION_MARGIN_BITS
                    for p in (point_from, point_to))
    return {"scale": scale, "sigma": m, "from_bits": point_from["bits"],
            "to_bits": point_to["bits"], "delta_bits": delta, "se_bits": se,
            "ci_low": low, "ci_high": high, "saturated": saturated,
            "decrease": bool(high < 0 and not saturated)}


def _verdict(rows: list[dict], control: list[dict]) -> tuple[str, str]:
    """The decision rule of :func:`compression` (see there)."""
    def where(rs):
        return ", ".join(f"{r['scale']} σ={r['sigma']:g}" for r in rs)

    raw_dec = [r for r in rows if r["decrease"]]
    ctl_dec = [r for r in control if r["decrease"]]
    if len(raw_dec) == len(rows) and len(ctl_dec) == len(control):
        return "compression", ("ΔI < 0 with the 95 % CI excluding 0 at every σ, both scales, "
                               "and under the whitened-PCA control")
    if not raw_dec:
        return "no compression", ("no σ/scale shows ΔI < 0 with a 95 % CI excluding 0 "
                                  "(the raw estimates)")
    if not ctl_dec:
        return "no compression", (f"the raw ΔI < 0 is significant at {where(raw_dec)} but the "
                                  f"whitened-PCA control shows no significant decrease at any "
                                  f"σ: geometry, not information")
    saturated = [r for r in rows + control if r["saturated"]]
    missing = [r for r in rows + control if not r["decrease"]]
    reason = f"ΔI not significantly < 0 at {where(missing)}"
    if saturated:
        reason += f" (saturated near log2 n at {where(saturated)})"
    return "inconclusive", reason + "; significant decrease only at some σ/scales"


def compression(layers, from_layer: int, to_layer: int, sigmas=DEFAULT_SIGMAS, scales=SCALES,
                *, absolute_unit: str = "layer0", k: int | None = None,
                resamples: int = 50, seed: int = 0,
                noise_samples: int = 4) -> Compression:
    """Does ``I(X; T + Z)`` decrease from layer ``from_layer`` to ``to_layer``?

    ``ΔI = I(X; T_to + Z) − I(X; T_from + Z)`` (bits) per σ multiple and scale (as in
    :func:`sigma_sweep`), and under the **whitened-PCA control** (both layers
    :func:`whitened_pca`'d to ``k`` dimensions, default :func:`default_k`, σ = m·√k: the two
    scales coincide there), each with a 95 % confidence interval.

    CI (``ci_method``): with ``resamples > 0`` (default 50, kept small for speed: every
    resample re-runs the estimator for each σ, scale and both layers, about
    ``resamples · len(sigmas) · (2 len(scales) + 2)`` calls — ≈ 1 ms each for n = 120, d = 8,
    seconds to minutes for n in the hundreds and d in the thousands), a **bootstrap over the
    inputs**: resample the n inputs with replacement (the same indices for both layers),
    recompute both estimates with a new noise seed (so the MC error is included; the
    relative σ and the whitening are recomputed on the resample as part of the estimator;
    the absolute σ stays fixed in feature units), and take ``ΔI ± 1.96 · SD(ΔI*)`` — a
    normal interval centred on the full-sample ΔI, not percentiles, because duplicated inputs
    shift every resampled estimate down (the shift is common to both layers and mostly cancels
    in ΔI*, but not in its location).  The rows share their noise draws (one seed, scaled by
    σ), so their errors are correlated across σ: "every σ" is not as many independent tests.
    The Monte-Carlo part is not small at the default ``noise_samples = 4`` (n = 120, d = 8:
    SD of ΔI ≈ 0.07–0.12 bits between two layers that are rotations of each other); raise
    ``noise_samples`` for small effects.  With ``resamples = 0``: ``ΔI ± 1.96 ·
    sqrt(SE_from² + SE_to²)`` from the estimator's Monte-Carlo SEs, which ignores the
    sampling error of the n inputs (narrower; use only when a bootstrap is too slow).

    Decision rule (``verdict``):

    * ``"compression"`` is claimed **only if** ΔI < 0 with the 95 % CI excluding 0 at EVERY σ
      in BOTH scales (every raw row), AND it survives the whitened-PCA control: the control's
      ΔI is also < 0 with its CI excluding 0 at every σ.  A row where either estimate is
      within 0.1 bit of ``log2 n`` (saturated) never counts as a significant decrease;
    * ``"no compression"`` if no raw row shows a significant decrease, or if the control
      shows no significant decrease at any σ (the raw decrease is then geometry: e.g. two
      layers that are invertible linear maps of each other);
    * ``"inconclusive"`` otherwise (a significant decrease at some σ/scales or under the
      control, not at all of them; or saturation).
    """
    mats = _layers(layers)
    count = len(mats)
    for name, index in (("from_layer", from_layer), ("to_layer", to_layer)):
        if not -count <= index < count:
            raise ValueError(f"{name} = {index} is not a layer of 0 … {count - 1}")
    from_layer, to_layer = from_layer % count, to_layer % count
    sigmas, scales = _check_sigmas(sigmas), _check_scales(scales)
    if resamples < 0 or resamples == 1:
        raise ValueError(f"resamples must be 0 (Monte-Carlo CI) or at least 2, got {resamples}")
    pair = (mats[from_layer], mats[to_layer])
    n = len(pair[0])
    k = default_k(list(pair)) if k is None else int(k)
    s0 = _absolute_spread(mats, absolute_unit)  # absolute σ: fixed in feature units

    def estimates(a: np.ndarray, b: np.ndarray, noise_seed: int) -> dict:
        out = {}
        for scale in scales:
            for m in sigmas:
                out[scale, m] = tuple(
                    _sp(f, _sigma_units(f, m, scale, s0), seed=noise_seed,
                        noise_samples=noise_samples) for f in (a, b))
        wa, wb = whitened_pca(a, k), whitened_pca(b, k)
        for m in sigmas:
            out["whitened", m] = tuple(
                _sp(w, m * math.sqrt(k), seed=noise_seed, noise_samples=noise_samples)
                for w in (wa, wb))
        return out

    point = estimates(*pair, seed)
    boot: dict = {key: [] for key in point}
    rng = np.random.default_rng(seed)
    for r in range(resamples):
        index = rng.integers(0, n, size=n)
        for key, (ea, eb) in estimates(pair[0][index], pair[1][index], seed + 1 + r).items():
            boot[key].append(eb["bits"] - ea["bits"])
    rows, control = [], []
    for (scale, m), (pa, pb) in point.items():
        row = _delta_row(scale, m, pa, pb, boot[scale, m], resamples)
        (control if scale == "whitened" else rows).append(row)
    verdict, reason = _verdict(rows, control)
    ci_method = (f"bootstrap over the {n} inputs, {resamples} resamples: ΔI ± 1.96·SD(ΔI*)"
                 if resamples else
                 "Monte-Carlo: ΔI ± 1.96·sqrt(SE_from² + SE_to²) (input sampling error "
                 "ignored)")
    return Compression(from_layer=from_layer, to_layer=to_layer, rows=rows,
                       control_rows=control, k=k, resamples=resamples, ci_method=ci_method,
                       verdict=verdict, reason=reason, n=n, seed=seed,
                       noise_samples=noise_samples)


# ------------------------------------------------------------------------------ probe
@dataclass
class ProbeInformation:
    """I(T; Y) of a logistic probe with C chosen by cross-validation, and its bootstrap SE.

    ``failed``: True when ``bits < −2·standard_error_bits`` or the probe did not converge —
    a probe failure, not a finding; ``reason`` says which (None when not failed)."""

    bits: float
    standard_error_bits: float
    C: float
    accuracy: float
    failed: bool
    reason: str | None
    entropy_bits: float
    cross_entropy_bits: float
    converged: bool
    cv_cross_entropy_bits: dict  # C → mean held-out cross-entropy over the folds (bits)
    folds: int
    resamples: int
    n_train: int
    n_test: int
    estimator: str

    def to_json(self) -> dict:
        return to_json(self)


def _per_sample_cross_entropy(train, y_train, test, y_test, C: float,
                              max_iter: int) -> np.ndarray:
    """``−log2 q(y_i | t_i)`` per test sample of the probe of usable_information (same
    standardisation, the same deterministic lbfgs fit)."""
    from sklearn.linear_model import LogisticRegression  # lazy: sklearn

    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale[scale == 0] = 1.0
    probe = LogisticRegression(C=C, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe.fit((train - mean) / scale, y_train)
    logits = probe.decision_function((test - mean) / scale)
    if logits.ndim == 1:
        logits = np.stack([np.zeros_like(logits), logits], axis=1)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    index = np.searchsorted(probe.classes_, y_test)
    return -log_q[np.arange(len(y_test)), index] / math.log(2.0)


def probe_information(train_features, train_labels, test_features, test_labels, *,
                      Cs=(0.01, 0.1, 1, 10), folds: int = 5, resamples: int = 200,
                      seed: int = 0, max_iter: int = 2000) -> ProbeInformation:
    """``I(T; Y)`` (bits) as the V-usable information of a logistic probe
    (:func:`~pdelang.lab.information.usable_information`), with its regularisation chosen on the
    train set and a standard error.

    1. **C by cross-validation on the TRAIN set only**: stratified ``folds``-fold split
       (shuffled with ``seed``; ``folds`` lowered to the smallest class count if needed), for
       every C in ``Cs`` the mean held-out cross-entropy (log-loss) of the probe fitted on the
       other folds; the C with the lowest one is chosen (ties: the smallest C).
    2. ``I(T; Y) = H(Y) − CE_test`` by ``usable_information`` at that C, fitted on the whole
       train set.
    3. **Bootstrap SE over the test set**: the fixed probe's per-sample cross-entropies
       ``ℓ_i = −log2 q(y_i | t_i)`` are computed once; ``resamples`` resamples of the test rows
       (with replacement, ``numpy.random.default_rng(seed)``) give ``H(Y) − mean(ℓ*)``; the SE
       is their SD (``H(Y)``, from the train labels, is fixed; no refit).  It is ≈
       ``SD(ℓ)/√n_test``, so it shrinks as 1/√n_test.  It does not include the variability of
       the fit (the train set).

    ``failed = True`` when the estimate is negative by more than 2 SE (``bits < −2·SE``: the
    held-out cross-entropy exceeds the label entropy — the probe overfits or is miscalibrated)
    or the final probe did not converge: **a probe failure, not a finding**.
    """
    train = _matrix(train_features, "train_features")
    test = _matrix(test_features, "test_features")
    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    Cs = tuple(float(c) for c in Cs)
    if not Cs or not all(c > 0 and math.isfinite(c) for c in Cs):
        raise ValueError(f"Cs must be positive numbers, got {Cs}")
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    _, counts = np.unique(y_train, return_counts=True)
    folds = min(int(folds), int(counts.min()))
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 train samples of every class")

    from sklearn.model_selection import StratifiedKFold  # lazy: sklearn

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(train, y_train))
    cv = {}
    for c in Cs:
        losses = [information.usable_information(train[a], y_train[a], train[b], y_train[b],
                                                 C=c, max_iter=max_iter)["cross_entropy_bits"]
                  for a, b in splits]
        cv[c] = float(np.mean(losses))
    chosen = min(Cs, key=lambda c: (cv[c], c))

    result = information.usable_information(train, y_train, test, y_test, C=chosen,
                                            max_iter=max_iter)
    losses = _per_sample_cross_entropy(train, y_train, test, y_test, chosen, max_iter)
    if abs(losses.mean() - result["cross_entropy_bits"]) > 1e-6:
        raise RuntimeError("the per-sample cross-entropies do not reproduce usable_information's "
                           f"({losses.mean()} vs {result['cross_entropy_bits']} bits)")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(losses), size=(resamples, len(losses)))
    boot = result["entropy_bits"] - losses[index].mean(axis=1)
    se = float(np.std(boot, ddof=1))

    bits = result["bits"]
    reasons = []
    if bits < -2.0 * se:
        reasons.append(f"I(T;Y) = {bits:.3f} bits < −2 SE = {-2 * se:.3f}: the held-out "
                       f"cross-entropy exceeds H(Y) (overfitting/miscalibration)")
    if not result["converged"]:
        reasons.append(f"the probe (C = {chosen:g}) did not converge in {max_iter} iterations")
    failed = bool(reasons)
    reason = ("; ".join(reasons) + " — a probe failure, not a finding") if failed else None
    return ProbeInformation(
        bits=bits, standard_error_bits=se, C=chosen, accuracy=result["accuracy"],
        failed=failed, reason=reason, entropy_bits=result["entropy_bits"],
        cross_entropy_bits=result["cross_entropy_bits"], converged=result["converged"],
        cv_cross_entropy_bits=cv, folds=folds, resamples=resamples, n_train=len(train),
        n_test=len(test),
        estimator=(f"V-usable information (Xu et al. 2020) of a logistic probe, C = {chosen:g} "
                   f"chosen from {list(Cs)} by {folds}-fold stratified CV log-loss on the train "
                   f"set; SE: bootstrap over the {len(test)} test rows ({resamples} resamples) "
                   f"of the fixed probe's per-sample cross-entropy"))
