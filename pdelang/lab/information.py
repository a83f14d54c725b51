"""The information module of the research tools: how much a layer's representation tells about
the labels, about the input, and how the input tokens flow to the output tokens.

A lab module next to :mod:`pdelang.lab.metrics` and :mod:`pdelang.lab.data` (validation and
the ablation both measure with it).  It depends on torch, numpy, scipy and — for the probe of
:func:`usable_information` only, imported when called — scikit-learn.

Units
-----
Every information quantity this module returns (mutual information, entropy, cross-entropy,
differential entropy) is in **bits** (logarithms to base 2; 1 nat = 1/ln 2 ≈ 1.4427 bits).
The estimators return a ``dict`` whose key ``'bits'`` is the estimate, with the pieces it was
computed from, the sample sizes, an ``'estimator'`` string naming the method and paper and,
for the estimators of I(X; T), a ``'bias'`` string stating the known bias.

Notation
--------
``X`` the input of a network, ``T = T_ℓ = f_ℓ(X)`` the (deterministic) representation of layer
ℓ, ``Y`` the label.  Features are given as ``n`` samples, an ``(n, d)`` array (any trailing
shape is flattened to ``d``); labels as ``(n,)`` integers.  For a deterministic ``f`` and a
continuous ``X``, ``I(X; T)`` is infinite or ill-posed; the quantity measured instead is that of
the *noisy* representation ``T + Z``, ``Z ~ N(0, σ² I)`` (Goldfeld et al. 2019), which is finite
and depends on ``σ``.

* :func:`usable_information` — ``I(T; Y)``, as the V-usable information of a logistic-regression
  probe (Xu et al. 2020), a variational lower bound (up to estimation error);
* :func:`sample_propagation_mi` — ``I(X; T + Z)`` by the sample-propagation estimator of
  Goldfeld et al. 2019 (a Monte-Carlo Gaussian-mixture entropy);
* :func:`ksg_mi`, :func:`ksg_noisy_mi` — the k-nearest-neighbour estimator 1 of Kraskov,
  Stögbauer & Grassberger 2004, between any two sample sets, and between ``X`` and ``T + Z``;
* :func:`attention_entropy` — the entropy of the attention rows, per head;
* :func:`token_flow`, :func:`flow_cosine` — the token information-flow map
  ``F[x, y] = ‖∂u_L(x)/∂u_0(y)‖_F`` of a whole stack (exact, by reverse-mode autodiff), and the
  cosine similarity of two such maps.

References
----------
* Y. Xu, S. Zhao, J. Song, R. Stewart, S. Ermon, "A Theory of Usable Information under
  Computational Constraints", ICLR 2020.
* Z. Goldfeld, E. van den Berg, K. Greenewald, I. Melnyk, N. Nguyen, B. Kingsbury,
  Y. Polyanskiy, "Estimating Information Flow in Deep Neural Networks", ICML 2019.
* A. Kraskov, H. Stögbauer, P. Grassberger, "Estimating mutual information",
  Phys. Rev. E 69, 066138 (2004).
* S. Gao, G. Ver Steeg, A. Galstyan, "Efficient Estimation of Mutual Information for Strongly
  Dependent Variables", AISTATS 2015 (the k-NN estimators need exponentially many samples in
  the true MI).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch

from pdelang.lab.metrics import token_mask

__all__ = [
    "attention_entropy",
    "flow_cosine",
    "ksg_mi",
    "ksg_noisy_mi",
    "sample_propagation_mi",
    "token_flow",
    "usable_information",
]

LN2 = math.log(2.0)  # nats per bit
_TINY = 1e-300
_TREE_MAX_DIM = 20  # KSG: kd-trees up to this joint dimension, blocked pairwise beyond


def _bits(nats: float) -> float:
    return float(nats) / LN2


def _matrix(values, name: str) -> np.ndarray:
    """``(n, d)`` float64 numpy array of samples (trailing dimensions flattened)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a sample dimension, got a scalar")
    array = array.reshape(len(array), -1)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or Inf values")
    return array


def _scale(values: np.ndarray) -> np.ndarray:
    """Per-column standard deviation, 1 for a constant column."""
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0
    return scale


def _labels(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    labels = np.asarray(values)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one label per sample (n,), got {labels.shape}")
    return labels


# ------------------------------------------------------------------------ I(T; Y): a probe
def usable_information(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> dict:
    """``I_V(T → Y)``, the V-usable information of Xu et al. 2020, with V the multinomial
    logistic-regression probes, in **bits**::

        I_V(T → Y) = H_V(Y) − H_V(Y | T) ≈ H(Y) − CE_heldout

    * ``H(Y) = −Σ_y p(y) log2 p(y)``: the plug-in (empirical, no smoothing) entropy of the
      **train** labels.  It is the cross-entropy of the best constant probe (V contains the
      probes that ignore T), so it estimates ``H_V(Y | ∅)``;
    * ``CE_heldout = −(1/n_test) Σ_i log2 q(y_i | t_i)``: the held-out cross-entropy of a
      ``sklearn.linear_model.LogisticRegression(C=C)`` probe (multinomial, L2-regularised,
      lbfgs) fitted on the train features, standardised with the **train** mean and standard
      deviation (a constant feature is left centred, unscaled).  ``log q`` is computed from the
      probe's logits with a log-sum-exp, so a confident wrong prediction gives a large finite
      loss, never ``inf``.

    Since ``I(T; Y) = H(Y) − H(Y | T) ≥ H(Y) − E[−log q(Y | T)]`` for any probe ``q``, the
    estimate is a variational lower bound on the Shannon ``I(T; Y)`` (up to the estimation
    error of the two finite-sample terms); it is what a linear read-out can extract.  It is
    **not clipped**: when the probe overfits (few samples, many features, weak
    regularisation) the held-out cross-entropy exceeds ``H(Y)`` and the estimate is negative.
    Deterministic (lbfgs has no randomness).

    Every label of the test set must occur in the train set (otherwise the probe cannot give it
    a probability); the train set needs at least two classes.

    Returns ``{'bits', 'entropy_bits', 'cross_entropy_bits', 'accuracy' (held-out, a fraction),
    'n_train', 'n_test', 'classes', 'converged' (lbfgs converged within max_iter),
    'estimator'}``.
    """
    from sklearn.exceptions import ConvergenceWarning  # lazy: sklearn
    from sklearn.linear_model import LogisticRegression  # lazy: sklearn

    train = _matrix(train_features, "train_features")
    test = _matrix(test_features, "test_features")
    y_train = _labels(train_labels, "train_labels")
    y_test = _labels(test_labels, "test_labels")
    if len(train) != len(y_train) or len(test) != len(y_test):
        raise ValueError(f"features and labels differ in length: train {len(train)} vs "
                         f"{len(y_train)}, test {len(test)} vs {len(y_test)}")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train features have {train.shape[1]} dimensions, test features "
                         f"{test.shape[1]}")
    if len(test) == 0:
        raise ValueError("the test set is empty")
    classes, counts = np.unique(y_train, return_counts=True)
    if len(classes) < 2:
        raise ValueError("the train labels hold a single class; I(T; Y) needs at least two")
    unseen = np.setdiff1d(np.unique(y_test), classes)
    if len(unseen):
        raise ValueError(f"test labels {unseen.tolist()[:5]} never occur in the train labels; "
                         "the probe cannot predict them")

    mean, scale = train.mean(axis=0), _scale(train)
    train_std = (train - mean) / scale
    test_std = (test - mean) / scale

    probe = LogisticRegression(C=C, max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(train_std, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    logits = probe.decision_function(test_std)
    if logits.ndim == 1:  # binary: one logit z, q(class 1) = sigmoid(z) = softmax([0, z])
        logits = np.stack([np.zeros_like(logits), logits], axis=1)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # (n_test, classes)
    index = np.searchsorted(probe.classes_, y_test)
    cross_entropy = -log_q[np.arange(len(y_test)), index].mean()
    p = counts / counts.sum()
    entropy = -(p * np.log(p)).sum()
    accuracy = float((probe.classes_[log_q.argmax(axis=1)] == y_test).mean())
    return {
        "bits": _bits(entropy - cross_entropy),
        "entropy_bits": _bits(entropy),
        "cross_entropy_bits": _bits(cross_entropy),
        "accuracy": accuracy,
        "n_train": len(train),
        "n_test": len(test),
        "classes": len(classes),
        "converged": converged,
        "estimator": (f"V-usable information (Xu et al. 2020): plug-in H(Y) of the train labels "
                      f"minus the held-out cross-entropy of a logistic-regression probe "
                      f"(C={C}) on standardised features; a lower bound on I(T;Y) up to "
                      f"estimation error, negative when the probe overfits"),
    }


# --------------------------------------------------------- I(X; T + Z): sample propagation
def sample_propagation_mi(
    features,
    sigma: float,
    *,
    noise_samples: int = 4,
    seed: int = 0,
    batch: int = 512,
) -> dict:
    """``I(X; T + Z)``, ``Z ~ N(0, σ² I_d)``, for a deterministic ``T = f(X)`` given as ``n``
    samples ``t_i`` (an ``(n, d)`` array), by the sample-propagation (SP) estimator of
    Goldfeld et al. 2019, in **bits**.

    Since ``T`` is a function of ``X``, ``h(T + Z | X) = h(Z)`` and::

        I(X; T + Z) = h(T + Z) − h(Z),     h(Z) = (d/2) log(2πeσ²).

    SP estimates ``h(T + Z)`` by ``h(P̂_n * N_σ)``, the differential entropy of the Gaussian
    mixture ``g(v) = (1/n) Σ_j φ_σ(v − t_j)`` centred on the samples, itself computed by Monte
    Carlo: for every sample ``i`` and ``noise_samples`` draws ``z ~ N(0, σ² I)``,
    ``ĥ = −mean log g(t_i + z)``.  With ``log φ_σ(z) = −‖z‖²/(2σ²) − (d/2) log(2πσ²)`` this
    gives, per draw::

        log n − LSE_j( −(‖t_i − t_j‖² + 2 zᵀ(t_i − t_j)) / (2σ²) ) ,

    where ``h(Z)``'s ``d/2`` has been replaced by the draw's own ``‖z‖²/(2σ²)`` (the same
    expectation: a control variate that removes the ``O(√d)`` noise of ``‖z‖²``).  The
    log-sum-exp is stable in any dimension, and its ``j = i`` term is ``exp(0) = 1``, so every
    draw — and the estimate — is **at most log2 n** bits.  Computed in float64 on centred
    features (pairwise distances from the Gram matrix), ``batch`` rows at a time: memory
    ``O(n² + batch · n + n · d)``; time ``O(noise_samples · n² · d)`` (n = 2000, d = 1000,
    4 draws: about 10 s and 0.4 GB on 2 busy CPU cores).  Deterministic for a given ``seed``
    (and independent of ``batch``).

    Bias (stated in the returned ``'bias'``):

    * biased **low** in expectation: ``E[h(P̂_n * N_σ)] ≤ h(P * N_σ)`` by concavity of the
      entropy (``E P̂_n = P``); Goldfeld et al. bound the error by
      ``O_{σ,d}((log n)^{d/4} / √n)`` for sub-Gaussian ``T``: it grows quickly with ``d`` and
      as ``σ`` falls;
    * **saturation**: the estimate is ``≤ log2 n``, reached when ``σ`` is small relative to the
      spacing of the samples (each mixture component is then isolated and ``T + Z``
      "identifies" the sample) — a value near ``max_bits`` says nothing beyond "≥ log2 n";
    * the returned ``'standard_error_bits'`` is the Monte-Carlo standard error (over the noise
      draws, the samples fixed), not the sampling error of the ``n`` samples.

    Returns ``{'bits', 'entropy_bits' (h(T + Z) estimate), 'noise_entropy_bits' (h(Z)),
    'standard_error_bits', 'max_bits' (log2 n), 'n', 'd', 'sigma', 'noise_samples',
    'estimator', 'bias'}``.
    """
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    if noise_samples < 1 or batch < 1:
        raise ValueError("noise_samples and batch must be at least 1")
    t = torch.from_numpy(_matrix(features, "features"))  # (n, d) float64
    n, d = t.shape
    if n < 2:
        raise ValueError(f"sample propagation needs at least 2 samples, got {n}")
    t = t - t.mean(dim=0)  # centred: the distances from the Gram matrix lose less precision
    sq = (t * t).sum(dim=1)  # (n,)
    distances = (sq[:, None] + sq[None, :] - 2.0 * t @ t.T).clamp_min_(0.0)  # (n, n) ‖t_i − t_j‖²
    distances.fill_diagonal_(0.0)
    generator = torch.Generator().manual_seed(seed)
    two_var = 2.0 * sigma * sigma
    values = []
    for _ in range(noise_samples):
        noise = torch.randn(n, d, generator=generator, dtype=torch.float64) * sigma  # (n, d)
        for start in range(0, n, batch):
            rows = torch.arange(start, min(start + batch, n))
            z = noise[rows]  # (b, d)
            projections = z @ t.T  # (b, n): zᵀ t_j
            own = projections[torch.arange(len(rows)), rows]  # (b,): zᵀ t_i
            exponent = -(distances[rows] + 2.0 * (own[:, None] - projections)) / two_var
            values.append(math.log(n) - torch.logsumexp(exponent, dim=1))  # (b,) nats
    draws = torch.cat(values)  # (n · noise_samples,)
    mi = float(draws.mean())
    stderr = float(draws.std(unbiased=True) / math.sqrt(len(draws)))
    noise_entropy = 0.5 * d * math.log(2 * math.pi * math.e * sigma * sigma)
    return {
        "bits": _bits(mi),
        "entropy_bits": _bits(mi + noise_entropy),
        "noise_entropy_bits": _bits(noise_entropy),
        "standard_error_bits": _bits(stderr),
        "max_bits": math.log2(n),
        "n": n,
        "d": d,
        "sigma": float(sigma),
        "noise_samples": noise_samples,
        "estimator": ("sample propagation (Goldfeld et al. 2019): I(X;T+Z) = h(T+Z) − h(Z), "
                      "h(T+Z) the Monte-Carlo entropy of the Gaussian mixture on the samples"),
        "bias": (f"biased low in expectation (E[ĥ] ≤ h by concavity of entropy; the gap grows "
                 f"with d and as σ falls); saturates at log2 n = {math.log2(n):.3f} bits when "
                 f"σ is small relative to the sample spacing; standard_error_bits is the "
                 f"Monte-Carlo error only"),
    }


# ----------------------------------------------------------------------- KSG k-NN estimator
def ksg_mi(x, y, *, k: int = 3, jitter: float = 0.0, seed: int = 0) -> dict:
    """``I(X; Y)`` by the Kraskov–Stögbauer–Grassberger estimator 1 (Phys. Rev. E 69, 066138,
    2004, eq. 8), from ``n`` paired samples ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``, in **bits**::

        Î = ψ(k) + ψ(n) − ⟨ψ(n_x(i) + 1) + ψ(n_y(i) + 1)⟩_i

    ``ψ`` the digamma function; ``ε(i)/2`` the distance from ``z_i = (x_i, y_i)`` to its k-th
    nearest neighbour in the joint space with the max-norm
    ``‖z − z'‖ = max(‖x − x'‖_∞, ‖y − y'‖_∞)``; ``n_x(i)`` the number of ``j ≠ i`` with
    ``‖x_i − x_j‖_∞ < ε(i)/2`` **strictly** (likewise ``n_y``), as in the paper.  Up to a joint
    dimension of 20 the counts use ``scipy.spatial.cKDTree`` with radius ``nextafter(ε/2, 0)``,
    so a point exactly at the k-th-neighbour distance is not counted; beyond, blocked pairwise
    max-norm distances (``torch.cdist(p=∞)``; O(n² (dx + dy)) time, O(n) rows of memory at a
    time).  The max-norm is computed identically everywhere, so the strict inequality is exact
    in floating point and both paths give the same counts.

    Ties: the estimator assumes continuous distributions.  When samples repeat (discrete data,
    quantised features) ``ε(i)`` can be 0 and the estimate is meaningless; that is an error
    unless ``jitter > 0``, which adds Gaussian noise of standard deviation ``jitter`` times each
    coordinate's standard deviation (1 for a constant coordinate) to ``x`` and ``y``
    (``numpy.random.default_rng(seed)``); Kraskov et al. use amplitudes around 1e-10.

    Bias: nearly unbiased for independent variables and in low dimension (for k = 3,
    n ≈ 2000, Gaussians in d ≤ 3: errors of a few hundredths of a nat); biased **low** for
    strongly dependent variables (the sample size needed grows exponentially with the MI, Gao
    et al. 2015) and in high dimension.

    Returns ``{'bits', 'k', 'n', 'dx', 'dy', 'estimator', 'bias'}``.
    """
    from scipy.special import digamma  # lazy: scipy

    xs, ys = _matrix(x, "x"), _matrix(y, "y")
    n = len(xs)
    if len(ys) != n:
        raise ValueError(f"x has {n} samples, y has {len(ys)}")
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 ≤ k < n = {n}, got {k}")
    if jitter:
        rng = np.random.default_rng(seed)
        xs, ys = (values + jitter * _scale(values) * rng.standard_normal(values.shape)
                  for values in (xs, ys))  # new arrays: the caller's data stays untouched
    method = "tree" if xs.shape[1] + ys.shape[1] <= _TREE_MAX_DIM else "pairwise"
    radius, n_x, n_y = _ksg_counts(xs, ys, k, method)
    if (radius == 0).any():
        raise ValueError(f"{int((radius == 0).sum())} samples have ≥ k = {k} exact duplicates "
                         "in (x, y); the KSG estimator needs continuous data: pass jitter=1e-10")
    mi = digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_y + 1))
    return {
        "bits": _bits(mi),
        "k": k,
        "n": n,
        "dx": xs.shape[1],
        "dy": ys.shape[1],
        "estimator": f"KSG estimator 1 (Kraskov et al. 2004), k = {k}, max-norm",
        "bias": ("nearly unbiased for independent variables and in low dimension; biased low "
                 "for strong dependence and in high dimension (d ≳ 10)"),
    }


def _ksg_counts(xs: np.ndarray, ys: np.ndarray, k: int,
                method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ε/2, n_x, n_y)`` of KSG estimator 1, each ``(n,)``: the max-norm distance of every
    joint sample to its k-th neighbour, and the neighbours strictly closer than it in x and
    in y (meaningless where ε = 0: exact duplicates).  ``'tree'``: ``scipy.spatial.cKDTree``
    (fast in low dimension); ``'pairwise'``: ``torch.cdist(p=∞)`` over blocks of rows
    (kd-trees degrade to worse than brute force in high dimension).  Both compute
    ``max_m |a_m − b_m|`` exactly, so they agree exactly."""
    n = len(xs)
    if method == "tree":
        from scipy.spatial import cKDTree  # lazy: scipy

        joint = np.hstack([xs, ys])
        distance, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)  # (n, k + 1), self first
        radius = distance[:, k]
        strict = np.nextafter(radius, 0.0)  # "≤ strict" is "< radius"
        n_x = cKDTree(xs).query_ball_point(xs, strict, p=np.inf, return_length=True) - 1
        n_y = cKDTree(ys).query_ball_point(ys, strict, p=np.inf, return_length=True) - 1
        return radius, n_x, n_y
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    radius, n_x, n_y = (torch.empty(n, dtype=torch.float64) for _ in range(3))
    block = max(1, 2**22 // n)  # rows per block: three (block, n) float64 matrices
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n))
        dx = torch.cdist(x[rows], x, p=math.inf)  # (b, n)
        dy = torch.cdist(y[rows], y, p=math.inf)  # (b, n)
        joint = torch.maximum(dx, dy)
        joint[torch.arange(len(rows)), rows] = math.inf  # not its own neighbour
        eps = joint.kthvalue(k, dim=1).values  # (b,)
        radius[rows] = eps
        n_x[rows] = ((dx < eps[:, None]).sum(1) - 1).to(torch.float64)  # less itself
        n_y[rows] = ((dy < eps[:, None]).sum(1) - 1).to(torch.float64)
    return radius.numpy(), n_x.numpy(), n_y.numpy()


def ksg_noisy_mi(inputs, features, sigma: float, *, k: int = 3, seed: int = 0,
                 jitter: float = 0.0) -> dict:
    """``I(X; T + Z)``, ``Z ~ N(0, σ² I)`` drawn **once** (``numpy.random.default_rng(seed)``),
    by :func:`ksg_mi` between the inputs ``X`` ``(n, dx)`` and the noisy features ``T + Z``
    ``(n, d)``, in **bits** — the k-NN alternative to :func:`sample_propagation_mi` named by
    Goldfeld et al. 2019.

    Known bias: the k-NN distances concentrate in high dimension, and the estimator is
    **strongly biased low** once ``dx`` or ``d`` is more than about 10 (and for strong
    dependence, which small ``σ`` means).  For layer representations (``d`` in the hundreds)
    its value is a comparable-across-layers score, not the information.  ``jitter`` is passed
    to :func:`ksg_mi` (for inputs with repeated values, e.g. token ids or discrete pixels).

    Returns the dict of :func:`ksg_mi` plus ``'sigma'`` (its ``'bias'`` says the above).
    """
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    t = _matrix(features, "features")
    noisy = t + sigma * np.random.default_rng(seed).standard_normal(t.shape)
    result = ksg_mi(inputs, noisy, k=k, jitter=jitter, seed=seed + 1)
    result["sigma"] = float(sigma)
    result["estimator"] = (f"KSG estimator 1 (Kraskov et al. 2004), k = {k}, between X and "
                           f"T + Z, Z ~ N(0, σ²I) drawn once, σ = {sigma}")
    result["bias"] = ("strongly biased low in high dimension (d ≳ 10) and for strong "
                      "dependence (small σ); one noise draw (its variance is not reported)")
    return result


# ---------------------------------------------------------------------- attention entropy
def attention_entropy(
    maps: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    normalized: bool = False,
    causal: bool = False,
) -> torch.Tensor:
    """Mean entropy of the attention rows per head, ``(heads,)`` float64, in **bits**::

        H_h = mean_{b, x real} ( −Σ_y p_bhxy log2 p_bhxy ),   0 log 0 = 0,

    for maps ``(B, heads, N, N)`` (rows = queries; a ``(heads, N, N)`` tensor is one input).
    ``mask`` ``(B, N)`` (or ``(N,)``) is True on real tokens: padding query rows are excluded
    from the mean (pooled over the batch, as in :mod:`pdelang.lab.metrics`) and padding keys from
    the sum.  ``log2 N`` for uniform rows over N keys, 0 for one-hot rows.

    ``normalized=True``: each row's entropy is divided by its maximum ``log2 m``, ``m`` the
    number of real keys (``causal=True``: the real keys ``y ≤ x`` the query may attend to),
    giving the fraction of the maximum in ``[0, 1]``; a row with a single key counts as 0.
    """
    p = torch.as_tensor(maps).detach().to(torch.float64)
    if p.ndim == 3:
        p = p.unsqueeze(0)
    if p.ndim != 4 or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"attention maps must be (B, heads, N, N), got {tuple(p.shape)}")
    batch, _, tokens, _ = p.shape
    real = token_mask(mask, batch, tokens).to(p.device)
    keys = real[:, None, None, :]  # (B, 1, 1, N)
    terms = torch.where((p > 0) & keys, -p * torch.log2(p.clamp_min(_TINY)),
                        torch.zeros((), dtype=p.dtype, device=p.device))
    entropy = terms.sum(-1)  # (B, heads, N)
    if normalized:
        allowed = real[:, None, :].expand(batch, tokens, tokens)  # (B, x, y) real keys
        if causal:
            allowed = allowed & torch.ones(tokens, tokens, dtype=torch.bool,
                                           device=p.device).tril()
        maximum = torch.log2(allowed.sum(-1).to(torch.float64).clamp_min(1.0))  # (B, N)
        entropy = torch.where(maximum[:, None, :] > 0,
                              entropy / maximum[:, None, :].clamp_min(_TINY),
                              torch.zeros((), dtype=p.dtype, device=p.device))
    rows = real[:, None, :].to(torch.float64)  # (B, 1, N)
    return (entropy * rows).sum(dim=(0, 2)) / rows.sum(dim=(0, 2))


# ---------------------------------------------------------------------- token information flow
def token_flow(
    map_fn: Callable[..., torch.Tensor],
    u0: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    chunk: int = 256,
) -> torch.Tensor:
    """The token information-flow map ``F`` ``(B, N, N)`` of a map ``u_0 ↦ u_L``, exact::

        F[b, x, y] = ‖∂u_L(x) / ∂u_0(y)‖_F = ( Σ_{c, c'} (∂u_L(x, c) / ∂u_0(y, c'))² )^{1/2},

    the Frobenius norm of the ``C × C`` block of the Jacobian of sample ``b``'s output token
    ``x`` with respect to its input token ``y`` (a dimensionless gain, not an information in
    bits).  For a linear map that acts on every channel alike, ``u_L(x) = Σ_y K[x, y] u_0(y)``,
    ``F[x, y] = |K[x, y]| √C``.

    ``map_fn`` takes ``(B, N, C)`` to ``(B, N, C)`` (called as ``map_fn(u)``, or
    ``map_fn(u, mask)`` when a mask is given), is differentiable, and treats the samples of a
    batch independently (no batch norm, no cross-sample attention): ``F`` is computed for
    every sample of ``u0`` by running ``map_fn`` on ``chunk`` copies of that sample at once and
    back-propagating one one-hot cotangent ``e_(x, c)`` per copy (each copy's input gradient is
    the Jacobian row of output ``(x, c)``), summing the squares over ``c`` and ``c'``.  Only a
    chunk of Jacobian rows ``(chunk, N, C)`` exists at any time — never the
    ``(N C) × (N C)`` Jacobian.  The map is evaluated in ``u0``'s dtype, under
    ``torch.enable_grad()``, without accumulating parameter gradients; put the model in
    ``eval()`` mode first (dropout would make the map random).

    Cost per sample: ``N_real · C`` reverse passes, i.e. ``⌈N_real C / chunk⌉`` forward and
    backward passes of a batch of ``chunk`` copies (about ``2 N_real C`` single-sample
    forward passes of work); memory: the activations of a batch of ``chunk`` sequences.
    Rows and columns of padding tokens (``mask`` False) are 0 and cost nothing.  Measured on
    2 busy CPU cores, float32, ``chunk=256``, one sample: the generated ``specs/vit2d.yaml``
    stepper (N C = 17 · 64) ≈ 4 s; ``specs/bert_postln.yaml`` (MiniLM shape, N C = 32 · 384,
    6 layers) ≈ 490 s and 2 GB — use a handful of samples, or a GPU.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    u0 = torch.as_tensor(u0).detach()
    if u0.ndim != 3:
        raise ValueError(f"u0 must be (B, N, C), got {tuple(u0.shape)}")
    batch, tokens, channels = u0.shape
    real = None
    if mask is not None:
        real = torch.as_tensor(mask).detach().to(device=u0.device, dtype=torch.bool)
        if tuple(real.shape) != (batch, tokens):
            raise ValueError(f"mask shape {tuple(real.shape)} does not match ({batch}, {tokens})")
    flow = torch.zeros(batch, tokens, tokens, dtype=u0.dtype, device=u0.device)
    for b in range(batch):
        valid = (torch.arange(tokens, device=u0.device) if real is None
                 else real[b].nonzero().flatten())
        outputs = (valid[:, None] * channels
                   + torch.arange(channels, device=u0.device)[None, :]).flatten()  # (x, c) flat
        squares = torch.zeros(tokens, tokens, dtype=u0.dtype, device=u0.device)  # (x, y)
        for start in range(0, len(outputs), chunk):
            rows = outputs[start:start + chunk]  # (m,) flat output indices x·C + c
            m = len(rows)
            with torch.enable_grad():
                u = u0[b].expand(m, tokens, channels).clone().requires_grad_(True)  # (m, N, C)
                out = map_fn(u) if real is None else map_fn(u, real[b].expand(m, tokens))
                if out.shape != u.shape:
                    raise ValueError(f"map_fn must return (B, N, C) = {tuple(u.shape)}, got "
                                     f"{tuple(out.shape)}")
                cotangent = torch.zeros(m, tokens * channels, dtype=out.dtype, device=u0.device)
                cotangent[torch.arange(m, device=u0.device), rows] = 1.0
                grad = None
                if out.requires_grad:  # a map that ignores its input has a zero Jacobian
                    (grad,) = torch.autograd.grad(out, u, cotangent.view(m, tokens, channels),
                                                  allow_unused=True)
            if grad is not None:
                squares.index_add_(0, rows // channels, grad.detach().pow(2).sum(-1))  # (m, N)
        if real is not None:
            squares[:, ~real[b]] = 0.0
        flow[b] = squares.sqrt()
    return flow


def flow_cosine(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Cosine similarity of two token-flow maps ``(B, N, N)`` (or ``(N, N)``), a Python float:
    per sample, ``⟨A, B⟩ / (‖A‖_F ‖B‖_F)`` over the entries ``(x, y)`` with both tokens real
    (``mask`` ``(B, N)``, True on real tokens), then averaged over the samples.  1 for maps
    equal up to a positive factor; a sample where both maps are zero counts 1, one zero 0."""
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    if a.ndim == 2:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"flow maps must both be (B, N, N), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    batch, tokens, _ = a.shape
    real = token_mask(mask, batch, tokens).cpu()
    if not real.any(dim=1).all():
        raise ValueError("the mask leaves a sample without real tokens")
    cosines = []
    for index in range(batch):
        keep = real[index].to(a.device)
        va = a[index][keep][:, keep].flatten()
        vb = b[index][keep][:, keep].flatten()
        na, nb = float(va.norm()), float(vb.norm())
        if na == 0 or nb == 0:
            cosines.append(1.0 if na == nb else 0.0)
        else:
            cosines.append(float(va @ vb) / (na * nb))
    return float(np.mean(cosines))
