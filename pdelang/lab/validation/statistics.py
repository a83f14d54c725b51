"""Intervals for the validation similarities: bootstrap over inputs, mean ± SD over seeds, and
scores rescaled against a floor (what a trivial map scores).

Every similarity of :mod:`pdelang.lab.metrics` is an average over inputs; the value of one run is
one draw from the distribution of such averages.  The functions here say how far it can move:

* :func:`bootstrap_mean` — the mean of per-input values with a **percentile bootstrap**
  confidence interval over the inputs (Efron & Tibshirani 1993, ch. 13);
* :func:`paired_difference` — the mean of ``a − b`` over the *same* inputs, with a **paired**
  bootstrap (one set of resampled indices applied to both);
* :func:`bootstrap_statistic` — the same for a statistic that is not a mean of per-input values
  (linear CKA pools the tokens of all inputs before it divides);
* :func:`across_seeds` — mean ± SD over independent training seeds with a Student-t interval;
* :func:`rescaled` — ``(s − f) / (1 − f)``: 0 at the floor, 1 at a perfect score;
* :func:`decide` — "higher" / "lower" / "no difference" from an interval of a difference.

Conventions
-----------
Values are 1-D (any array-like, torch tensors included), converted to float64.  Resampling is
deterministic: ``numpy.random.default_rng(seed)`` draws a ``(resamples, n)`` array of indices
(in blocks of rows, the same stream for the same ``seed``, ``n`` and ``resamples``).  The
interval at ``level`` is ``[q_{(1−level)/2}, q_{(1+level)/2}]`` of the bootstrap replicates
(``numpy.quantile``, linear interpolation).  A non-finite value (a diverged model) gives a
non-finite mean and NaN ``sd``/``low``/``high``: no interval is claimed for it.  An empty set of
values is a ``ValueError``.

The percentile bootstrap of a mean is accurate to first order; with few inputs (n ≲ 20) its
interval is somewhat too narrow (coverage below ``level``), which is why the tests check
coverage only in a loose band.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "across_seeds",
    "bootstrap_mean",
    "bootstrap_statistic",
    "decide",
    "paired_difference",
    "rescaled",
]

_BLOCK = 1 << 21  # indices drawn per block of resamples (16 MiB of int64)


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Interval:
    """A point estimate with its spread and a confidence interval.

    ``mean`` the point estimate; ``sd`` the standard deviation of the per-input values (ddof 1;
    for :func:`bootstrap_statistic`, the standard deviation of the bootstrap replicates, i.e. the
    bootstrap standard error — there are no per-input values); ``[low, high]`` the confidence
    interval at ``level``; ``n`` the number of inputs (or seeds) it was computed from;
    ``bias`` (only from :func:`bootstrap_statistic`, else ``None``) the bootstrap estimate of the
    statistic's bias, the mean of the replicates minus ``mean``.
    """

    mean: float
    sd: float
    low: float
    high: float
    n: int
    level: float = 0.95
    bias: float | None = None  # bootstrap_statistic: mean of the replicates − mean

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]`` (False when the interval is NaN)."""
        return bool(self.low > 0 or self.high < 0)

    def to_json(self) -> dict:
        """``{mean, sd, low, high, n, level, excludes_zero}`` as Python floats/ints/bools, with
        NaN and ±inf written as ``None`` (strict JSON has neither)."""
        out = {
            "mean": _finite_or_none(self.mean),
            "sd": _finite_or_none(self.sd),
            "low": _finite_or_none(self.low),
            "high": _finite_or_none(self.high),
            "n": int(self.n),
            "level": float(self.level),
            "excludes_zero": self.excludes_zero,
        }
        if self.bias is not None:
            out["bias"] = _finite_or_none(self.bias)
        return out


def _values(values, name: str = "values") -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per sample (n,), got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def _check_level(level: float, resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def _index_blocks(n: int, resamples: int, seed: int):
    """Yield ``(k, n)`` int64 index arrays, ``resamples`` rows in all, from one generator."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK // n)
    done = 0
    while done < resamples:
        k = min(rows, resamples - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def percentile_interval(replicates, level: float = 0.95) -> tuple[float, float]:
    """The (lower, upper) percentile interval of bootstrap replicates at ``level``
    (non-finite replicates dropped; NaN, NaN when none is left)."""
    replicates = np.asarray(replicates, dtype=float)
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_mean(values, *, resamples: int = 2000, level: float = 0.95,
                   seed: int = 0) -> Interval:
    """Mean of ``values`` (one per input) with a percentile-bootstrap confidence interval.

    ``mean = (1/n) Σ_i v_i``; ``sd`` the sample standard deviation (ddof 1; 0 when ``n = 1``);
    ``[low, high]`` the ``(1 ± level)/2`` quantiles of the means of ``resamples`` resamples of
    the ``n`` values drawn with replacement.  ``n = 1`` gives ``low = high = mean``; ``n``
    identical values give a zero-width interval at their mean.
    """
    v = _values(values)
    _check_level(level, resamples)
    n = v.size
    mean = float(v.mean())
    if not np.isfinite(v).all():
        return Interval(mean, math.nan, math.nan, math.nan, n, level)
    sd = float(v.std(ddof=1)) if n > 1 else 0.0
    if n == 1:
        return Interval(mean, 0.0, mean, mean, 1, level)
    replicates = np.concatenate([v[idx].mean(axis=1) for idx in _index_blocks(n, resamples, seed)])
    low, high = percentile_interval(replicates, level)
    return Interval(mean, sd, low, high, n, level)


def paired_difference(a, b, *, resamples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> Interval:
    """Mean of ``a − b`` over the same inputs, with a paired bootstrap interval.

    ``a[i]`` and ``b[i]`` must be measured on the same input ``i`` (e.g. a model's and a floor's
    per-input attention cosine).  Each resample draws one set of indices and applies it to both,
    so the interval reflects the spread of the *differences*, not of ``a`` and ``b`` separately
    (equivalent to :func:`bootstrap_mean` of ``a − b``).  ``sd`` is the SD of the differences.
    Identical arrays give exactly 0 with a zero-width interval.  Different lengths are a
    ``ValueError``.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    return bootstrap_mean(x - y, resamples=resamples, level=level, seed=seed)


def bootstrap_statistic(fn: Callable, n: int, *, resamples: int = 2000, level: float = 0.95,
                        seed: int = 0, batched: bool = False,
                        method: str = "percentile") -> Interval:
    """A statistic of a data set of ``n`` inputs with a percentile-bootstrap interval.

    ``fn(indices)`` → float: the statistic of the inputs ``indices`` (an int64 array of length
    ``n``, with repeats: a repeated input counts as many times as it appears).  ``mean`` is
    ``fn(arange(n))`` (the statistic of the data set itself, *not* the mean of the replicates);
    ``sd`` the standard deviation of the replicates (ddof 1: the bootstrap standard error);
    ``bias`` the mean of the replicates minus ``mean``.  A replicate may be NaN (e.g. CKA of a
    degenerate resample); those are dropped.  ``method``:

    * ``"percentile"``: ``[low, high]`` = the ``(1 ± level)/2`` quantiles ``q_lo, q_hi`` of the
      replicates — right when the statistic is (nearly) median-unbiased, as a mean is;
    * ``"basic"`` (the pivotal interval, Davison & Hinkley 1997, eq. 5.6):
      ``[2 mean − q_hi, 2 mean − q_lo]`` — corrects for a bias of the statistic, estimated by
      the replicates' shift from ``mean``.  Use it for statistics with a finite-sample bias
      comparable to their spread, e.g. linear CKA (resampled inputs repeat tokens, which
      raises CKA): there the percentile interval can lie entirely above ``mean``, and the basic
      interval entirely below it (the population value it covers is ``mean − bias``).

    ``batched=True``: ``fn`` takes a ``(k, n)`` array of index rows and returns ``k`` values
    (vectorised statistics); the same indices as the unbatched call for the same ``seed``.
    ``n = 1`` gives ``low = high = mean`` and ``sd = 0``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if method not in ("percentile", "basic"):
        raise ValueError(f"method must be 'percentile' or 'basic', got {method!r}")
    _check_level(level, resamples)
    whole = np.arange(n)
    mean = float(np.asarray(fn(whole[None, :]) if batched else fn(whole),
                            dtype=np.float64).reshape(-1)[0])
    if not math.isfinite(mean):
        return Interval(mean, math.nan, math.nan, math.nan, n, level, math.nan)
    if n == 1:
        return Interval(mean, 0.0, mean, mean, 1, level, 0.0)
    parts = []
    for idx in _index_blocks(n, resamples, seed):
        if batched:
            values = np.asarray(fn(idx), dtype=np.float64).reshape(-1)
            if values.size != len(idx):
                raise ValueError(f"a batched fn must return {len(idx)} values, got {values.size}")
        else:
            values = np.array([float(fn(row)) for row in idx], dtype=np.float64)
        parts.append(values)
    replicates = np.concatenate(parts)
    finite = replicates[np.isfinite(replicates)]
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    bias = float(finite.mean()) - mean if finite.size else math.nan
    low, high = percentile_interval(replicates, level)
    if method == "basic":
        low, high = 2.0 * mean - high, 2.0 * mean - low
    return Interval(mean, sd, low, high, n, level, bias)


def _t_quantile(probability: float, df: int) -> float:
    from scipy.stats import t  # lazy: scipy

    return float(t.ppf(probability, df))


def across_seeds(values, *, level: float = 0.95) -> dict:
    """Mean ± SD of one score over independent seeds, with a Student-t confidence interval.

    ``mean = (1/n) Σ v_s``; ``sd`` the sample SD (ddof 1); ``[low, high] = mean ∓
    t_{(1+level)/2, n−1} · sd / √n`` with the t quantile from ``scipy.stats.t.ppf`` (scipy is a
    dependency of :mod:`pdelang.lab.information`), i.e. the interval assumes the per-seed scores are
    roughly normal — with 3–5 seeds nothing else is checkable.  One seed gives ``sd = 0`` and no
    interval (``low = high = None``): a seed's variance cannot be estimated from one seed.

    Returns a JSON-ready ``{mean, sd, n, low, high, level}`` (NaN/inf as ``None``).
    """
    v = _values(values)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    n = v.size
    mean = float(v.mean())
    if n == 1 or not np.isfinite(v).all():
        sd = 0.0 if n == 1 and math.isfinite(mean) else math.nan
        return {"mean": _finite_or_none(mean), "sd": _finite_or_none(sd), "n": n,
                "low": None, "high": None, "level": float(level)}
    sd = float(v.std(ddof=1))
    half = _t_quantile((1.0 + level) / 2.0, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half, "high": mean + half,
            "level": float(level)}


def rescaled(score: float, floor: float) -> float:
    """``(score − floor) / (1 − floor)``: a similarity (best value 1) rescaled so that the
    floor scores 0 and a perfect score 1 (negative below the floor).

    A floor ≥ 1 (the trivial map is already perfect, nothing is left to explain) or a NaN
    input gives NaN.
    """
    score, floor = float(score), float(floor)
    if math.isnan(score) or math.isnan(floor) or floor >= 1.0:
        return math.nan
    return (score - floor) / (1.0 - floor)


def decide(interval: Interval | Mapping) -> str:
    """The verdict of an interval of a difference ``a − b`` (an :class:`Interval` or its
    :meth:`Interval.to_json` dict): ``"higher"`` when it lies above 0, ``"lower"`` when it lies
    below, otherwise (0 inside, or no interval) ``"no difference"``."""
    if isinstance(interval, Mapping):
        low, high = interval.get("low"), interval.get("high")
    else:
        low, high = interval.low, interval.high
    low = math.nan if low is None else float(low)
    high = math.nan if high is None else float(high)
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    return "no difference"
