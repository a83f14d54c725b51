"""pdelang.lab.validation.floors: per-input similarities and the trivial baselines (floors).

Per-input values must reproduce pdelang.lab.metrics' pooled values, padding must not count, and
every floor must be what its definition says on inputs where the answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pdelang.lab import metrics
from pdelang.lab.information import flow_cosine
from pdelang.lab.validation import floors
from pdelang.lab.validation.floors import (
    ATTENTION_FLOORS,
    STATE_FLOORS,
    cka_interval,
    compare_cka_with_floor,
    compare_with_floor,
    dataset_mean_maps,
    floor_values,
    flow_floor,
    flow_floor_values,
    head_mean_maps,
    heads_match,
    layer_floors,
    per_sample_attention_cosine,
    per_sample_hidden_cosine,
    per_sample_relative_error,
    previous_layer_maps,
    state_floors,
    uniform_maps,
)


def padded_mask(batch: int, tokens: int, lengths=None) -> torch.Tensor:
    lengths = lengths or [tokens - (b % 3) for b in range(batch)]
    return torch.arange(tokens)[None, :] < torch.tensor(lengths)[:, None]


def maps_for(mask: torch.Tensor, heads: int, seed: int, garbage_rows: bool = True):
    """Random attention maps, rows summing to 1 over the real keys, 0 on padding keys; the
    rows of padding queries hold garbage (they must never count)."""
    g = torch.Generator().manual_seed(seed)
    batch, tokens = mask.shape
    logits = 2 * torch.randn(batch, heads, tokens, tokens, generator=g)
    p = torch.softmax(logits.masked_fill(~mask[:, None, None, :], -math.inf), dim=-1)
    if garbage_rows:
        rows = ~mask[:, None, :, None].expand_as(p)
        p = torch.where(rows, torch.rand(p.shape, generator=g) * 7, p)
    return p.double()


def states_for(batch: int, tokens: int, channels: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, tokens, channels, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


# --------------------------------------------------------------------- per-input values
def test_per_sample_attention_cosine_reproduces_metrics():
    mask = padded_mask(6, 9)
    q, p = maps_for(mask, 3, 0), maps_for(mask, 3, 1)
    values = per_sample_attention_cosine(q, p, mask)
    assert values.shape == (6,)
    weights = mask.sum(1).numpy()  # metrics pools rows: longer inputs weigh more
    assert np.average(values, weights=weights) == pytest.approx(
        metrics.attention_cosine(q, p, mask), rel=1e-12)
    full = torch.ones(6, 9, dtype=torch.bool)
    q, p = maps_for(full, 3, 2), maps_for(full, 3, 3)
    assert per_sample_attention_cosine(q, p, None).mean() == pytest.approx(
        metrics.attention_cosine(q, p), rel=1e-12)


def test_per_sample_state_values_reproduce_metrics():
    mask = padded_mask(5, 8)
    r, x = states_for(5, 8, 6, 0), states_for(5, 8, 6, 1) + 0.5 * states_for(5, 8, 6, 0)
    cosine = per_sample_hidden_cosine(r, x, mask)
    assert np.average(cosine, weights=mask.sum(1).numpy()) == pytest.approx(
        metrics.hidden_cosine(r, x, mask), rel=1e-12)
    error = per_sample_relative_error(r, x, mask)
    for b in range(5):
        assert error[b] == pytest.approx(metrics.relative_error(r[b:b + 1], x[b:b + 1],
                                                                mask[b:b + 1]), rel=1e-12)
    # the pooled relative error from the per-input ones: sqrt(Σ e_b² ‖R_b‖²) / sqrt(Σ ‖R_b‖²)
    scale = np.array([float(r[b][mask[b]].norm()) for b in range(5)])
    pooled = math.sqrt(np.sum(error ** 2 * scale ** 2) / np.sum(scale ** 2))
    assert pooled == pytest.approx(metrics.relative_error(r, x, mask), rel=1e-12)


def test_padding_does_not_change_a_per_input_value():
    lengths = [5, 7, 3, 9]
    tokens, heads, channels = 9, 2, 4
    mask = padded_mask(4, tokens, lengths)
    q, p = maps_for(mask, heads, 0), maps_for(mask, heads, 1)
    r, x = states_for(4, tokens, channels, 2), states_for(4, tokens, channels, 3)
    # garbage in the padding tokens of the states
    r = torch.where(mask[..., None], r, torch.full_like(r, 1e6))
    batch_att = per_sample_attention_cosine(q, p, mask)
    batch_cos = per_sample_hidden_cosine(r, x, mask)
    batch_err = per_sample_relative_error(r, x, mask)
    for b, n in enumerate(lengths):
        alone_q, alone_p = q[b:b + 1, :, :n, :n], p[b:b + 1, :, :n, :n]
        alone_r, alone_x = r[b:b + 1, :n], x[b:b + 1, :n]
        assert batch_att[b] == pytest.approx(per_sample_attention_cosine(alone_q, alone_p)[0],
                                             rel=1e-12)
        assert batch_cos[b] == pytest.approx(per_sample_hidden_cosine(alone_r, alone_x)[0],
                                             rel=1e-12)
        assert batch_err[b] == pytest.approx(per_sample_relative_error(alone_r, alone_x)[0],
                                             rel=1e-12)


def test_different_head_counts_compare_head_averaged_maps():
    mask = padded_mask(3, 6)
    q = maps_for(mask, 4, 0)
    p = q.reshape(3, 2, 2, 6, 6).mean(2)  # two heads, each the mean of two reference heads
    assert not heads_match(q, p) and heads_match(q, q)
    values = per_sample_attention_cosine(q, p, mask)
    assert values == pytest.approx(np.ones(3), abs=1e-12)  # same head average
    expected = per_sample_attention_cosine(q.mean(1, keepdim=True), maps_for(mask, 1, 5), mask)
    assert per_sample_attention_cosine(q, maps_for(mask, 1, 5), mask) == pytest.approx(expected)


def test_an_input_without_real_tokens_is_an_error():
    mask = padded_mask(2, 4, [4, 0])
    with pytest.raises(ValueError):
        per_sample_hidden_cosine(states_for(2, 4, 3, 0), states_for(2, 4, 3, 1), mask)


# ---------------------------------------------------------------------------------- CKA
def test_cka_interval_point_and_resamples_are_linear_cka():
    mask = padded_mask(7, 6)
    r = states_for(7, 6, 5, 0) + 2.0
    x = r @ torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x + states_for(7, 6, 8, 2)
    interval = cka_interval(r, x, mask, resamples=200)
    assert interval.mean == pytest.approx(metrics.linear_cka(r, x, mask), rel=1e-10)
    statistic = floors._CkaStatistic(r, x, mask)
    draws = np.random.default_rng(0).integers(0, 7, size=(4, 7))
    pooled = [metrics.linear_cka(r[row], x[row], mask[row]) for row in draws]
    assert statistic(draws) == pytest.approx(pooled, rel=1e-10)
    statistic.kernel = False  # the direct path for large batches
    assert statistic(draws) == pytest.approx(pooled, rel=1e-10)


def test_cka_interval_covers_the_population_value():
    # Linear CKA is biased upward in finite samples, and more in resamples that repeat inputs:
    # the basic interval covers the population CKA, the percentile one would not.
    g = torch.Generator().manual_seed(0)
    channels, tokens = 16, 6
    weight = torch.randn(channels, channels, generator=g, dtype=torch.float64) / 4

    def draw(batch):
        r = torch.randn(batch, tokens, channels, generator=g, dtype=torch.float64)
        return r, r @ weight + torch.randn(batch, tokens, channels, generator=g,
                                           dtype=torch.float64)

    population = metrics.linear_cka(*draw(1500))
    covered = {"basic": 0, "percentile": 0}
    repetitions = 30
    for seed in range(repetitions):
        r, x = draw(24)
        for method in covered:
            interval = cka_interval(r, x, None, resamples=300, seed=seed, method=method)
            covered[method] += interval.low <= population <= interval.high
    assert covered["basic"] >= 0.8 * repetitions
    assert covered["percentile"] < covered["basic"]


def test_compare_cka_with_floor():
    mask = padded_mask(5, 6)
    r, floor = states_for(5, 6, 4, 0), states_for(5, 6, 4, 1)
    perfect = compare_cka_with_floor(r, 3.0 * r, floor, mask, resamples=100)
    assert perfect["mean"] == pytest.approx(1.0) and perfect["rescaled"] == pytest.approx(1.0)
    same = compare_cka_with_floor(r, floor, floor, mask, resamples=100)
    assert same["difference"]["mean"] == same["difference"]["low"] == 0.0
    assert same["difference"]["high"] == 0.0 and same["decision"] == "no difference"
    assert same["rescaled"] == 0.0


# ------------------------------------------------------------------------------ the floors
@given(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=5),
       st.integers(min_value=1, max_value=3))
def test_uniform_maps_are_row_stochastic_on_real_keys(lengths, heads):
    tokens = 8
    mask = padded_mask(len(lengths), tokens, lengths)
    maps = uniform_maps(mask, heads, tokens)
    assert maps.shape == (len(lengths), heads, tokens, tokens)
    assert torch.allclose(maps.sum(-1), torch.ones(len(lengths), heads, tokens, dtype=maps.dtype))
    assert (maps * ~mask[:, None, None, :]).abs().sum() == 0  # nothing on padding keys
    values = per_sample_attention_cosine(uniform_maps(mask, 2, tokens), maps, mask)
    assert values == pytest.approx(np.ones(len(lengths)), abs=1e-12)


def test_uniform_floor_of_a_uniform_reference_is_one_and_mask_none():
    reference = uniform_maps(None, 2, 5, batch=3)
    assert per_sample_attention_cosine(reference, uniform_maps(None, 2, 5, batch=3)) == (
        pytest.approx(np.ones(3), abs=1e-12))
    with pytest.raises(ValueError):
        uniform_maps(None, 2, 5)


def test_head_mean_of_identical_heads_is_the_maps():
    mask = padded_mask(3, 7)
    one = maps_for(mask, 1, 0)
    maps = one.expand(3, 4, 7, 7).clone()
    assert torch.allclose(head_mean_maps(maps), maps, rtol=0, atol=1e-15)
    mixed = maps_for(mask, 3, 1)
    mean = head_mean_maps(mixed)
    assert mean.shape == mixed.shape
    assert torch.allclose(mean[:, 0], mixed.mean(1)) and torch.allclose(mean[:, 2], mixed.mean(1))


def test_dataset_mean_of_one_repeated_map_is_that_map():
    mask = padded_mask(1, 6, [6])
    single = maps_for(mask, 2, 0)
    train = single.expand(5, 2, 6, 6)
    evaluated = torch.ones(3, 6, dtype=torch.bool)
    result = dataset_mean_maps(train, None, evaluated)
    assert torch.allclose(result, single.expand(3, 2, 6, 6), atol=1e-14)


def test_dataset_mean_ignores_padding_and_renormalises():
    train_mask = padded_mask(2, 6, [6, 3])
    train = maps_for(train_mask, 1, 0)  # garbage in the padding rows of the short input
    evaluated = padded_mask(2, 8, [8, 4])
    result = dataset_mean_maps(train, train_mask, evaluated)
    assert result.shape == (2, 1, 8, 8)
    # rows over real keys sum to one, padding keys get nothing
    sums = result.sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums))
    assert (result[1, :, :, 4:] == 0).all()
    # position (i, j) with i, j < 3 is averaged over both training inputs, else only the first
    both = (train[0, 0, :3, :3] + train[1, 0, :3, :3]) / 2
    first_only = train[0, 0, 4, :6]
    row = result[0, 0, 4, :6]
    assert torch.allclose(row / row.sum(), first_only / first_only.sum())
    expected = both[1] / both[1].sum()
    assert torch.allclose(result[1, 0, 1, :3] / result[1, 0, 1, :3].sum(), expected)
    # rows and keys beyond the training length (6) have no support: uniform over real keys
    assert torch.allclose(result[0, 0, 7], torch.full((8,), 1 / 8, dtype=result.dtype))


def test_previous_layer_maps():
    attentions = [torch.rand(2, 1, 3, 3) for _ in range(3)]
    assert previous_layer_maps(attentions, 0) is None
    assert previous_layer_maps(attentions, 2) is attentions[1]
    with pytest.raises(IndexError):
        previous_layer_maps(attentions, 3)


def test_state_floors():
    states = [torch.rand(2, 3, 4) for _ in range(4)]
    first = state_floors(states, 1)
    assert first["identity"] is states[0] and first["previous_state"] is states[0]
    assert state_floors(states, 3)["previous_state"] is states[2]


def test_flow_floor():
    g = torch.Generator().manual_seed(0)
    mask = padded_mask(3, 5)
    flow = torch.rand(3, 5, 5, generator=g, dtype=torch.float64)
    assert flow_floor(flow, mask) == pytest.approx(flow_cosine(torch.ones_like(flow), flow, mask))
    assert flow_floor_values(flow, mask).mean() == pytest.approx(flow_floor(flow, mask))
    constant = torch.full((3, 5, 5), 2.5, dtype=torch.float64)
    assert flow_floor_values(constant, mask) == pytest.approx(np.ones(3))
    diagonal = torch.eye(5, dtype=torch.float64).expand(1, 5, 5)
    assert flow_floor(diagonal) == pytest.approx(1 / math.sqrt(5))  # 5 / (√5 · 5)


# ----------------------------------------------------------------------- floors per layer
def stack(batch=5, tokens=7, heads=2, channels=6, layers=3, seed=0):
    mask = padded_mask(batch, tokens)
    states = [states_for(batch, tokens, channels, seed + i) for i in range(layers + 1)]
    attentions = [maps_for(mask, heads, seed + 10 + i) for i in range(layers)]
    return states, attentions, mask


def test_layer_floors_structure_and_strongest():
    states, attentions, mask = stack()
    train_mask = padded_mask(4, 7)
    train = [maps_for(train_mask, 2, 50 + i) for i in range(3)]
    rows = layer_floors(states, attentions, mask, train_attentions=train, train_mask=train_mask,
                        resamples=100)
    json.dumps(rows, allow_nan=False)
    assert [row["layer"] for row in rows] == [1, 2, 3]
    assert rows[0]["previous_layer"] is None and rows[1]["previous_layer"] is not None
    for row in rows:
        available = {name: row[name]["attention_cosine"]["mean"] for name in ATTENTION_FLOORS
                     if row[name] is not None}
        strongest = row["strongest_attention_floor"]
        assert strongest["mean"] == max(available.values())
        assert available[strongest["name"]] == strongest["mean"]
        assert all(row[name]["heads_match"] for name in available)
        for metric in ("hidden_cosine", "cka"):
            best = row["strongest_state_floor"][metric]
            assert best["mean"] == max(row[name][metric]["mean"] for name in STATE_FLOORS)
        lowest = row["strongest_state_floor"]["relative_error"]
        assert lowest["mean"] == min(row[name]["relative_error"]["mean"] for name in STATE_FLOORS)
    # at layer 1 the previous state is u(0): both state floors coincide
    assert rows[0]["identity"] == rows[0]["previous_state"]
    # the intervals are those of the per-input values
    values = floor_values(states, attentions, mask, 2, train_attentions=train,
                          train_mask=train_mask)
    assert rows[1]["head_mean"]["attention_cosine"]["mean"] == pytest.approx(
        values["attention_cosine"]["head_mean"].mean())
    assert rows[1]["identity"]["cka"]["mean"] == pytest.approx(
        metrics.linear_cka(states[2], states[0], mask))


def test_layer_floors_without_training_maps_and_known_values():
    states, attentions, mask = stack(layers=2)
    still = [states[0]] * 3  # a stack that never changes its state
    uniform = [uniform_maps(mask, 2, 7)] * 2
    rows = layer_floors(still, uniform, mask, resamples=50, cka=False)
    for row in rows:
        assert row["dataset_mean"] is None
        assert row["identity"]["hidden_cosine"]["mean"] == pytest.approx(1.0)
        assert row["identity"]["relative_error"]["mean"] == 0.0
        assert row["identity"]["cka"] is None
        assert row["uniform"]["attention_cosine"]["mean"] == pytest.approx(1.0)
    assert rows[1]["previous_layer"]["attention_cosine"]["mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        layer_floors(states[:2], attentions, mask)


def test_compare_with_floor():
    floor = np.array([0.5, 0.6, 0.4, 0.55, 0.45])
    same = compare_with_floor(floor, floor)
    assert same["rescaled"] == 0.0 and same["decision"] == "no difference"
    assert same["difference"]["low"] == same["difference"]["high"] == 0.0
    perfect = compare_with_floor(np.ones(5), floor)
    assert perfect["rescaled"] == pytest.approx(1.0)
    assert perfect["mean"] == 1.0 and perfect["floor_mean"] == pytest.approx(0.5)
    assert perfect["decision"] == "higher"
    # an error metric: half the floor's error removed
    error = compare_with_floor(floor / 2, floor, higher_is_better=False)
    assert error["rescaled"] == pytest.approx(0.5) and error["decision"] == "lower"
    assert compare_with_floor(np.ones(3), np.ones(3))["rescaled"] is None  # floor already 1
    with pytest.raises(ValueError):
        compare_with_floor(np.ones(3), np.ones(4))
