"""The particle diagnostics of ``pdelang run`` (pdelang.interpreters.particles): hand-computed
cases, padding masks, and invariances as properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdelang.interpreters.particles import (
    effective_rank,
    mean_pairwise_cosine,
    particle_metrics,
    rank_collapse_residual,
)


def _state(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)[None]  # (1, N, C)


# --------------------------------------------------------------------------- hand-computed
def test_identical_tokens():
    u = _state([[1.0, 2.0, -3.0]] * 5)
    assert mean_pairwise_cosine(u) == pytest.approx(1.0, abs=1e-12)
    assert rank_collapse_residual(u) == pytest.approx(0.0, abs=1e-12)
    assert effective_rank(u) == pytest.approx(1.0, abs=1e-12)


def test_orthogonal_tokens_of_equal_norm():
    u = _state(3.0 * np.eye(4))  # 4 orthogonal tokens, norm 3
    assert mean_pairwise_cosine(u) == pytest.approx(0.0, abs=1e-12)
    assert effective_rank(u) == pytest.approx(4.0, abs=1e-12)
    # x̄ = (3/4)·1: ‖X − 1x̄ᵀ‖_F² = 16·(9/16)·… = 36 − 4·4·(9/16) = 27, ‖X‖_F² = 36
    assert rank_collapse_residual(u) == pytest.approx(math.sqrt(27 / 36), abs=1e-12)


def test_opposite_tokens():
    u = _state([[1.0, 0.0], [-1.0, 0.0]])  # rank one, mean zero
    assert mean_pairwise_cosine(u) == pytest.approx(-1.0, abs=1e-12)
    assert effective_rank(u) == pytest.approx(1.0, abs=1e-12)
    assert rank_collapse_residual(u) == pytest.approx(1.0, abs=1e-12)


def test_known_spectrum():
    """Singular values (2, 1): p = (2/3, 1/3), erank = exp(H) = 3 / 2^(2/3)."""
    u = _state([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = math.exp(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    assert effective_rank(u) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(3 / 2 ** (2 / 3))


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_effective_rank_of_orthonormal_rows_is_the_rank(rank):
    """r orthonormal directions, each token one of them, equally often: σ all equal → r."""
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(rank)))
    rows = torch.cat([q[:rank]] * 3)  # 3r tokens
    assert effective_rank(rows[None]) == pytest.approx(rank, abs=1e-9)


def test_mean_pairwise_cosine_matches_the_direct_sum():
    x = torch.randn(3, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    direct = []
    for seq in x:
        unit = seq / seq.norm(dim=-1, keepdim=True)
        gram = unit @ unit.T
        n = gram.shape[0]
        direct.append(float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1))))
    assert mean_pairwise_cosine(x) == pytest.approx(sum(direct) / 3, abs=1e-12)


def test_zero_state_and_zero_tokens():
    zero = torch.zeros(1, 4, 3, dtype=torch.float64)
    assert rank_collapse_residual(zero) == 0.0 and effective_rank(zero) == 0.0
    assert mean_pairwise_cosine(zero) == 0.0
    one = _state([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # a zero token: cosine 0 with others
    assert mean_pairwise_cosine(one) == pytest.approx(2 / 6, abs=1e-12)


# --------------------------------------------------------------------------- padding masks
def test_padding_tokens_do_not_count():
    real = torch.randn(1, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    padded = torch.cat([real, 100 * torch.randn(1, 3, 4, dtype=torch.float64)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    assert particle_metrics(padded, mask) == pytest.approx(particle_metrics(real))


def test_batch_is_averaged_over_sequences_with_enough_tokens():
    a = _state([[1.0, 0.0]] * 3)  # cosine 1
    b = _state([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # cosine 0 (the zero token has 0)
    both = torch.cat([a, b])
    assert mean_pairwise_cosine(both) == pytest.approx(0.5)
    # a sequence with one real token has no pairs: it does not count for the cosine
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert mean_pairwise_cosine(both, mask) == pytest.approx(1.0)
    assert math.isnan(mean_pairwise_cosine(both, torch.zeros(2, 3, dtype=torch.bool)))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        particle_metrics(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="mask"):
        particle_metrics(torch.zeros(1, 4, 3), torch.ones(1, 3, dtype=torch.bool))


def test_float32_and_float64_agree():
    x = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(4))
    a, b = particle_metrics(x), particle_metrics(x.double())
    assert a == pytest.approx(b, rel=1e-6)


# --------------------------------------------------------------------------- properties
_STATES = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 9), st.integers(1, 6)),
                 elements=st.floats(-10, 10, allow_nan=False, width=64))
_SCALES = st.floats(1e-3, 1e3).flatmap(lambda s: st.sampled_from([s, -s]))


@settings(max_examples=60, deadline=None)
@given(_STATES, _SCALES)
def test_metrics_are_invariant_to_a_global_rescaling(x, scale):
    u = torch.from_numpy(x)
    keys = ("mean_cosine", "effective_rank", "residual")
    before, after = particle_metrics(u), particle_metrics(scale * u)
    for key in keys:
        assert after[key] == pytest.approx(before[key], rel=1e-7, abs=1e-9), key


@settings(max_examples=60, deadline=None)
@given(_STATES)
def test_metrics_stay_in_their_ranges(x):
    u = torch.from_numpy(x)
    m = particle_metrics(u)
    assert -1 - 1e-12 <= m["mean_cosine"] <= 1 + 1e-12
    assert 0 <= m["residual"] <= 1
    rank = min(u.shape[1], u.shape[2])
    assert 0 <= m["effective_rank"] <= rank + 1e-9
    for seq in u:  # one sequence: 0 (all tokens zero) or in [1, min(N, C)]
        value = effective_rank(seq[None])
        assert value == 0 or 1 - 1e-9 <= value <= rank + 1e-9


@settings(max_examples=40, deadline=None)
@given(_STATES, st.integers(0, 2**31 - 1))
def test_metrics_are_invariant_to_a_rotation_of_the_channels(x, seed):
    u = torch.from_numpy(x)
    channels = u.shape[-1]
    q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(seed)))
    before, after = particle_metrics(u), particle_metrics(u @ q)
    for key in ("mean_cosine", "effective_rank", "residual"):
        assert after[key] == pytest.approx(before[key], rel=1e-7, abs=1e-9), key


@pytest.mark.parametrize("scale", [1e-310, 1e-200, 1e200, 1e300])
def test_extreme_magnitudes(scale):
    """Subnormal and huge states: the metrics of a rescaled copy of a unit-size state (each
    sequence is divided by its largest |value| first; the norm without overflow)."""
    x = torch.randn(2, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    a, b = particle_metrics(x), particle_metrics(scale * x)
    for key in ("mean_cosine", "effective_rank", "residual"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
    assert b["norm"] == pytest.approx(scale * a["norm"], rel=1e-6)
