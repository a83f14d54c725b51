"""pdelang.lab.information: the estimators against closed forms.

Tolerances are set from measured errors, not guessed.  For every Gaussian case below the
estimator was run on 30 independent sample sets (seeds other than the test's), and the
tolerance is about 4 standard deviations of the error around the truth, widened on the low
side by the measured mean bias (both estimators are biased low):

====================================  =========  ===========  ========  ==============
case                                  truth      mean error   std       tolerance
====================================  =========  ===========  ========  ==============
SP  d=1 σ=1   n=1000, 2 draws         0.081 b    −0.001 b     0.010 b   −0.045 / +0.04
SP  d=2 σ=0.5 n=1000, 2 draws         1.987 b    −0.023 b     0.032 b   −0.16 / +0.13
SP  d=3 σ=1   n=1000, 2 draws         1.758 b    −0.009 b     0.034 b   −0.15 / +0.14
KSG d=1 ρ=0   n=2000, k=3             0          −0.002 b     0.024 b   ±0.10
KSG d=1 ρ=0.6 n=2000, k=3             0.322 b    +0.001 b     0.026 b   ±0.10
KSG d=3 ρ=0   n=2000, k=3             0          +0.005 b     0.023 b   ±0.10
KSG d=3 ρ=0.5 n=2000, k=3             0.623 b    −0.035 b     0.036 b   −0.18 / +0.15
====================================  =========  ===========  ========  ==============

(b = bits; SP = sample propagation, Goldfeld et al. 2019; KSG = Kraskov et al. 2004.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pdelang
from pdelang.lab.information import (
    attention_entropy,
    flow_cosine,
    ksg_mi,
    ksg_noisy_mi,
    sample_propagation_mi,
    token_flow,
    usable_information,
)
from pdelang.compiler.spec.load import load_spec_text

LOG2 = math.log(2.0)


# ------------------------------------------------------------------ sample propagation (SP)
def linear_gaussian(d: int, n: int, seed: int):
    """T = A X, X ~ N(0, I_d): samples (n, d) and A."""
    a = np.random.default_rng(d).standard_normal((d, d)) / math.sqrt(d)
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x @ a.T, a


def gaussian_channel_bits(a: np.ndarray, sigma: float) -> float:
    """I(X; AX + Z) = ½ log det(I + A Aᵀ / σ²) for X ~ N(0, I), Z ~ N(0, σ² I), in bits."""
    d = a.shape[0]
    return 0.5 * np.linalg.slogdet(np.eye(d) + a @ a.T / sigma**2)[1] / LOG2


@pytest.mark.parametrize("d,sigma,low,high", [(1, 1.0, 0.045, 0.04), (2, 0.5, 0.16, 0.13),
                                              (3, 1.0, 0.15, 0.14)])
def test_sample_propagation_matches_the_gaussian_channel(d, sigma, low, high):
    t, a = linear_gaussian(d, 1000, seed=7)
    truth = gaussian_channel_bits(a, sigma)
    result = sample_propagation_mi(t, sigma, noise_samples=2, seed=0)
    assert truth - low <= result["bits"] <= truth + high, (result["bits"], truth)
    assert 0 < result["standard_error_bits"] < 0.05
    assert result["entropy_bits"] == pytest.approx(result["bits"] + result["noise_entropy_bits"])
    assert result["noise_entropy_bits"] == pytest.approx(
        0.5 * d * math.log2(2 * math.pi * math.e * sigma**2))
    assert (result["n"], result["d"], result["noise_samples"]) == (1000, d, 2)
    assert "low" in result["bias"] and "log2 n" in result["bias"]


def test_sample_propagation_saturates_at_log2_n():
    """Small σ against the sample spacing: the estimate approaches, never passes, log2 n,
    even where the true I(X; T + Z) is far above it (the bias is downward)."""
    t, a = linear_gaussian(10, 500, seed=3)
    truth = gaussian_channel_bits(a, 0.05)
    result = sample_propagation_mi(t, 0.05, noise_samples=1, seed=1)
    assert truth > 20 and result["max_bits"] == pytest.approx(math.log2(500))
    assert result["max_bits"] - 0.02 <= result["bits"] <= result["max_bits"] + 1e-12
    one_d = sample_propagation_mi(np.linspace(0, 1, 200)[:, None], 1e-4, seed=0)
    assert one_d["bits"] <= math.log2(200) + 1e-12 and one_d["bits"] > math.log2(200) - 1e-6


def test_sample_propagation_is_deterministic_and_batch_independent():
    t = torch.randn(300, 20, generator=torch.Generator().manual_seed(0))
    first = sample_propagation_mi(t, 0.7, seed=5, batch=64)
    again = sample_propagation_mi(t.numpy(), 0.7, seed=5, batch=1000)
    assert first["bits"] == pytest.approx(again["bits"], abs=1e-12)
    assert sample_propagation_mi(t, 0.7, seed=6)["bits"] != first["bits"]
    with pytest.raises(ValueError):
        sample_propagation_mi(t, 0.0)
    with pytest.raises(ValueError):
        sample_propagation_mi(t[:1], 1.0)


# ------------------------------------------------------------------------------------ KSG
def correlated_gaussians(d: int, rho: float, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y, -0.5 * d * math.log(1 - rho**2) / LOG2


@pytest.mark.parametrize("d,rho,low,high", [(1, 0.0, 0.10, 0.10), (1, 0.6, 0.10, 0.10),
                                            (3, 0.0, 0.10, 0.10), (3, 0.5, 0.18, 0.15)])
def test_ksg_matches_correlated_gaussians(d, rho, low, high):
    x, y, truth = correlated_gaussians(d, rho, 2000, seed=11)
    result = ksg_mi(x, y, k=3)
    assert truth - low <= result["bits"] <= truth + high, (result["bits"], truth)
    assert (result["k"], result["n"], result["dx"], result["dy"]) == (3, 2000, d, d)


def test_ksg_counts_strictly_inside_like_the_paper():
    """Brute force of KSG estimator 1 (all pairwise max-norm distances, strict counts)."""
    from scipy.special import digamma

    x, y, _ = correlated_gaussians(2, 0.8, 300, seed=0)
    k, n = 4, 300
    dx = np.abs(x[:, None] - x[None]).max(-1)
    dy = np.abs(y[:, None] - y[None]).max(-1)
    joint = np.maximum(dx, dy)
    np.fill_diagonal(joint, np.inf)
    radius = np.sort(joint, axis=1)[:, k - 1]
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    n_x, n_y = (dx < radius[:, None]).sum(1), (dy < radius[:, None]).sum(1)
    expected = digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_y + 1))
    assert ksg_mi(x, y, k=k)["bits"] == pytest.approx(expected / LOG2, abs=1e-12)


def test_ksg_ties_need_jitter():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(500, 1)).astype(float)
    y = x.copy()
    with pytest.raises(ValueError, match="jitter"):
        ksg_mi(x, y)
    before = x.copy()
    result = ksg_mi(x, y, jitter=1e-10)
    assert np.array_equal(x, before)  # the caller's data is not jittered in place
    # three equiprobable values, y = x: I = H(X) ≈ log2 3 (k-NN on tiny jitter is rough)
    assert abs(result["bits"] - math.log2(3)) < 0.2


def test_ksg_noisy_mi_on_a_gaussian_channel():
    """X ~ N(0, 1), T = X, σ = 1: I(X; T + Z) = ½ log2 2 = 0.5 bit (KSG tolerance of d = 1)."""
    x = np.random.default_rng(4).standard_normal((2000, 1))
    result = ksg_noisy_mi(x, 2.0 * x, 2.0, k=3, seed=0)
    assert abs(result["bits"] - 0.5) <= 0.10
    assert result["sigma"] == 2.0 and "high dimension" in result["bias"]
    assert ksg_noisy_mi(x, 2.0 * x, 2.0, seed=0)["bits"] == result["bits"]


# ---------------------------------------------------------------------- usable information
def test_usable_information_of_independent_labels_is_about_zero():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1000, 10)), rng.integers(0, 4, 1000)
    result = usable_information(x[:800], y[:800], x[800:], y[800:])
    # measured over 5 seeds: −0.06 … −0.01 bits (the probe's overfitting, never clipped)
    assert -0.1 < result["bits"] < 0.02
    assert result["entropy_bits"] == pytest.approx(2.0, abs=0.01)
    assert (result["n_train"], result["n_test"], result["classes"]) == (800, 200, 4)
    assert result["converged"]
    again = usable_information(x[:800], y[:800], x[800:], y[800:])
    assert again == result  # deterministic


def test_usable_information_of_separable_labels_is_about_the_entropy():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3000, 10)), rng.standard_normal((10, 4))
    logits = x @ w
    top = np.sort(logits, axis=1)
    x = x[top[:, -1] - top[:, -2] > 1.0][:1000]  # a margin: linearly separable with room
    y = (x @ w).argmax(axis=1)
    result = usable_information(torch.from_numpy(x[:800]), torch.from_numpy(y[:800]),
                                x[800:], y[800:])
    counts = np.bincount(y[:800])
    p = counts / counts.sum()
    assert result["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), rel=1e-12)
    assert result["accuracy"] >= 0.99
    # the L2 penalty (C = 1) keeps the probe from full confidence: measured CE 0.07–0.09 bits
    assert 0 < result["cross_entropy_bits"] < 0.15
    assert result["bits"] == pytest.approx(
        result["entropy_bits"] - result["cross_entropy_bits"], abs=1e-12)
    sharper = usable_information(x[:800], y[:800], x[800:], y[800:], C=100.0)
    assert sharper["cross_entropy_bits"] < result["cross_entropy_bits"]


def test_usable_information_can_be_negative_and_checks_labels():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((100, 200)), rng.integers(0, 2, 100)
    assert usable_information(x[:50], y[:50], x[50:], y[50:])["bits"] < 0  # overfit probe
    with pytest.raises(ValueError, match="never occur"):
        usable_information(x[:50], np.arange(50) % 2, x[50:], np.arange(50) % 3)
    with pytest.raises(ValueError, match="single class"):
        usable_information(x[:50], np.zeros(50), x[50:], np.zeros(50))


# ------------------------------------------------------------------------ attention entropy
def test_attention_entropy_uniform_one_hot_and_padding():
    batch, heads, n = 2, 3, 8
    uniform = torch.full((batch, heads, n, n), 1.0 / n)
    three = torch.full((heads,), 3.0, dtype=torch.float64)
    assert torch.allclose(attention_entropy(uniform), three)
    one_hot = torch.eye(n).expand(batch, heads, n, n)
    assert torch.equal(attention_entropy(one_hot), torch.zeros(heads, dtype=torch.float64))
    # head 0 uniform, head 1 one-hot: per head
    mixed = torch.stack([uniform[:, 0], one_hot[:, 0]], dim=1)
    assert torch.allclose(attention_entropy(mixed), torch.tensor([3.0, 0.0], dtype=torch.float64))
    assert torch.allclose(attention_entropy(mixed, normalized=True),
                          torch.tensor([1.0, 0.0], dtype=torch.float64))
    # sample 1 has 4 real tokens: its real rows are uniform over them, padding rows are junk
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[1, 4:] = False
    maps = uniform.clone()
    maps[1] = 0.0
    maps[1, :, :4, :4] = 0.25
    maps[1, :, 4:] = torch.rand(heads, 4, n)  # padding queries: excluded
    expected = (8 * 3.0 + 4 * 2.0) / 12  # pooled over the 12 real query rows
    assert torch.allclose(attention_entropy(maps, mask), torch.full((heads,), expected,
                                                                    dtype=torch.float64))
    assert torch.allclose(attention_entropy(maps, mask, normalized=True),
                          torch.ones(heads, dtype=torch.float64))
    assert attention_entropy(uniform[0]).shape == (heads,)  # (heads, N, N): one input


def test_attention_entropy_causal_normalisation():
    n = 5
    causal = torch.tril(torch.ones(n, n))
    causal = (causal / causal.sum(-1, keepdim=True))[None, None]  # row x uniform over y ≤ x
    expected = sum(math.log2(x + 1) for x in range(n)) / n
    assert float(attention_entropy(causal)[0]) == pytest.approx(expected)
    # fractions: row 0 (a single key) counts 0, the others 1
    assert float(attention_entropy(causal, normalized=True, causal=True)[0]) == \
        pytest.approx((n - 1) / n)
    with pytest.raises(ValueError):
        attention_entropy(torch.ones(2, 3, 4))
    with pytest.raises(ValueError):
        attention_entropy(causal, torch.zeros(1, n))


# --------------------------------------------------------------------------- token flow
HEAT = """
pdelang: 1
name: flow_heat
description: pure diffusion, for the token-flow heat-kernel test
grid:
  axes: [x]
  spacing: 0.25
  boundary: periodic
fields:
  u: {channels: 3}
parameters:
  D: 0.5
terms:
  diffusion: D * laplace(u)
equation: dt(u) = diffusion
time:
  span: [0, 0.3]
  layers: 3
  substeps: 4
  scheme: euler
discretization:
  laplace: {accuracy: 2}
"""


def periodic_kernel(symbol: np.ndarray) -> np.ndarray:
    """K[x, y] = (1/N) Σ_k s_k e^{2πik(x − y)/N}: the circulant matrix of the symbol s."""
    n = len(symbol)
    x = np.arange(n)
    difference = x[:, None] - x[None, :]  # (x, y)
    phase = np.exp(2j * np.pi * difference[..., None] * np.arange(n) / n)  # (x, y, k)
    return np.real((phase * symbol).sum(-1)) / n


@pytest.mark.parametrize("exact_flow", [False, True])
def test_token_flow_of_pure_diffusion_is_the_heat_kernel(exact_flow):
    """∂t u = D Δu, 3-point Laplacian, periodic: u_L = K u_0 on every channel, so
    F[x, y] = |K[x, y]| √C with K the circulant of g_k^n (explicit Euler, n steps of Δt,
    g_k = 1 − (4DΔt/h²) sin²(πk/N)) or of exp(−(4Dt/h²) sin²(πk/N)) (the exact flow)."""
    text = HEAT.replace("scheme: euler", "scheme: lie\n  implicit: [diffusion]") \
        if exact_flow else HEAT
    stepper = pdelang.build(load_spec_text(text))().double().eval()
    n, channels, d, h, t, steps = 16, 3, 0.5, 0.25, 0.3, 12
    k = np.arange(n)
    decay = 4 * d * np.sin(np.pi * k / n) ** 2 / h**2
    symbol = np.exp(-decay * t) if exact_flow else (1 - decay * t / steps) ** steps
    expected = np.abs(periodic_kernel(symbol)) * math.sqrt(channels)
    u0 = torch.randn(2, n, channels, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0))
    flow = token_flow(stepper, u0, chunk=20)  # 48 Jacobian rows: chunks of 20, 20, 8
    assert flow.shape == (2, n, n) and flow.dtype == torch.float64
    for b in range(2):  # linear: the same map for every input
        assert np.abs(flow[b].numpy() - expected).max() < 1e-10
    assert flow_cosine(flow, torch.from_numpy(expected)[None].expand(2, n, n)) == \
        pytest.approx(1.0, abs=1e-12)


class TokenMixer(torch.nn.Module):
    """A small random MLP-only map: mixes tokens, then a per-token MLP with a residual."""

    def __init__(self, tokens: int, channels: int):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.mix = torch.nn.Parameter(torch.randn(tokens, tokens, generator=generator) / 3)
        self.fc1 = torch.nn.Linear(channels, 2 * channels)
        self.fc2 = torch.nn.Linear(2 * channels, channels)

    def forward(self, u, mask=None):
        if mask is not None:
            u = u * mask[..., None]
        v = torch.tanh(torch.einsum("xy,byc->bxc", self.mix, u))
        return u + self.fc2(torch.nn.functional.gelu(self.fc1(v)))


def brute_force_flow(map_fn, u0, mask=None):
    maps = []
    for b in range(len(u0)):
        if mask is None:
            def single(v):
                return map_fn(v[None])[0]
        else:
            def single(v, b=b):
                return map_fn(v[None], mask[b:b + 1])[0]
        jacobian = torch.autograd.functional.jacobian(single, u0[b])  # (N, C, N, C)
        maps.append(jacobian.pow(2).sum(dim=(1, 3)).sqrt())
    return torch.stack(maps)


def test_token_flow_matches_the_brute_force_jacobian():
    torch.manual_seed(0)
    tokens, channels = 5, 4
    model = TokenMixer(tokens, channels).double()
    u0 = torch.randn(3, tokens, channels, dtype=torch.float64)
    expected = brute_force_flow(model, u0)
    for chunk in (1, 7, 1000):
        assert torch.allclose(token_flow(model, u0, chunk=chunk), expected, rtol=1e-12,
                              atol=1e-14)
    with torch.no_grad():  # works under no_grad, leaves no parameter gradients
        flow = token_flow(model, u0, chunk=6)
    assert torch.allclose(flow, expected, rtol=1e-12, atol=1e-14)
    assert all(p.grad is None for p in model.parameters())
    # padding: map_fn gets the mask; padding rows and columns are 0
    mask = torch.ones(3, tokens, dtype=torch.bool)
    mask[1, 3:] = False
    masked = token_flow(model, u0, mask, chunk=7)
    reference = brute_force_flow(model, u0, mask)
    reference[1, :, 3:] = 0.0
    reference[1, 3:, :] = 0.0
    assert torch.allclose(masked, reference, rtol=1e-12, atol=1e-14)
    assert flow_cosine(masked, reference, mask) == pytest.approx(1.0, abs=1e-12)
    constant = token_flow(lambda u: torch.zeros_like(u), u0)
    assert torch.equal(constant, torch.zeros(3, tokens, tokens, dtype=torch.float64))
    with pytest.raises(ValueError, match="map_fn must return"):
        token_flow(lambda u: u[:, :1], u0)


def test_flow_cosine():
    a = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    assert flow_cosine(a, 3.0 * a) == pytest.approx(1.0)
    b = a.clone()
    b[1] = torch.eye(4)
    expected = 0.5 * (1.0 + float((a[1] * b[1]).sum() / (a[1].norm() * b[1].norm())))
    assert flow_cosine(a, b) == pytest.approx(expected)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    c = a.clone()
    c[0, 2:, :] = 5.0  # padding: ignored
    c[0, :, 2:] = 5.0
    assert flow_cosine(a, c, mask) == pytest.approx(1.0)
    assert flow_cosine(torch.zeros(4, 4), torch.zeros(4, 4)) == 1.0
    assert flow_cosine(torch.zeros(4, 4), a[0]) == 0.0
    with pytest.raises(ValueError):
        flow_cosine(a, a[0])


def test_ksg_tree_and_pairwise_counts_agree_even_with_ties():
    """Low dimension uses kd-trees, high dimension blocked pairwise distances: the same
    strict counts, also on integer data full of distance ties."""
    from pdelang.lab.information import _ksg_counts

    rng = np.random.default_rng(3)
    x = rng.integers(0, 12, size=(600, 2)).astype(float)
    y = x + rng.integers(0, 3, size=(600, 2))
    smooth = rng.standard_normal((600, 4))
    for a, b in ((x, y), (smooth, smooth + rng.standard_normal((600, 4)))):
        tree, pairwise = _ksg_counts(a, b, 3, "tree"), _ksg_counts(a, b, 3, "pairwise")
        assert np.array_equal(tree[0], pairwise[0])
        defined = tree[0] > 0  # ε = 0 (duplicates) is an error in ksg_mi
        assert defined.mean() > 0.9
        for first, second in zip(tree[1:], pairwise[1:]):
            assert np.array_equal(first[defined], second[defined])
    high = ksg_mi(smooth, np.hstack([smooth] * 5) + rng.standard_normal((600, 20)))
    assert high["dy"] == 20 and high["bits"] > 0.5
