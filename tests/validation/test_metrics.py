"""Hand-computable cases for pdelang.lab.metrics, the metrics validation and ablation share.

Every comparison takes ``(reference, candidate, mask)``: relative_error normalizes by its first
argument and attention_kl is KL(first ‖ second).
"""

from __future__ import annotations

import math

import pytest
import torch

from pdelang.lab.metrics import (
    attention_cosine,
    attention_kl,
    hidden_cosine,
    layer_metrics,
    linear_cka,
    rank_collapse_ratio,
    relative_error,
    state_norm,
)


def random_maps(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=generator), dim=-1)


def random_states(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_identical_inputs():
    p = random_maps(2, 3, 5, 5)
    x = random_states(2, 5, 8)
    assert attention_cosine(p, p) == pytest.approx(1.0)
    assert attention_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    assert hidden_cosine(x, x) == pytest.approx(1.0)
    assert relative_error(x, x) == 0.0
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_attention_cosine_known_values():
    # one head, two query rows: identical row (cos 1) and disjoint supports (cos 0)
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    q = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    # row 2: (0.5*1) / (sqrt(0.5) * 1) = 1/sqrt(2)
    assert attention_cosine(p, q) == pytest.approx((1.0 + 1 / math.sqrt(2)) / 2)
    disjoint = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    assert attention_cosine(q, disjoint) == pytest.approx(0.0)


def test_attention_kl_known_value_and_asymmetry():
    p = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])
    q = torch.tensor([[[[0.25, 0.75], [0.5, 0.5]]]])
    row1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row2 = 1.0 * math.log(1.0 / 0.5)  # 0 log 0 = 0
    assert attention_kl(p, q) == pytest.approx((row1 + row2) / 2)
    # q has mass where p has none: p is clamped at eps = 1e-12, large but finite
    row1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    row2 = 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / 1e-12)
    assert attention_kl(q, p) == pytest.approx((row1 + row2) / 2)


def test_attention_mask_selects_real_query_rows():
    p = random_maps(1, 2, 4, 4, seed=1)
    q = p.clone()
    q[:, :, 3] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # a padded query row differs
    mask = torch.tensor([[1, 1, 1, 0]])
    assert attention_cosine(p, q, mask) == pytest.approx(1.0)
    assert attention_kl(p, q, mask) == pytest.approx(0.0, abs=1e-12)
    assert attention_cosine(p, q) < 1.0
    # averaged over heads: one head identical, the other disjoint -> 1/2
    a = torch.zeros(1, 2, 2, 2)
    a[..., 0] = 1.0
    b = a.clone()
    b[:, 1] = torch.tensor([0.0, 1.0])
    assert attention_cosine(b, a) == pytest.approx(0.5)


def test_hidden_cosine_and_relative_error_known_values():
    y = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    x = torch.tensor([[[0.0, 3.0], [0.0, 1.0]]])  # orthogonal, then parallel
    assert hidden_cosine(y, x) == pytest.approx(0.5)
    # ||x - y||^2 = (1 + 9) + (0 + 1) = 11, ||y||^2 = 5 (y, the reference, normalizes)
    assert relative_error(y, x) == pytest.approx(math.sqrt(11 / 5))
    mask = torch.tensor([[0, 1]])
    assert hidden_cosine(y, x, mask) == pytest.approx(1.0)
    assert relative_error(y, x, mask) == pytest.approx(0.5)
    assert hidden_cosine(y, -y) == pytest.approx(-1.0)
    assert hidden_cosine(y[0], y[0]) == pytest.approx(1.0)  # (N, C) accepted


def test_linear_cka_invariances():
    x = random_states(3, 10, 6, seed=2)
    rotation, _ = torch.linalg.qr(random_states(6, 6, seed=3))
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, 2.5 * x) == pytest.approx(1.0)
    assert linear_cka(x, x + torch.randn(6)) == pytest.approx(1.0)  # centering
    # a different channel count is allowed: padding with zero channels changes nothing
    padded = torch.cat([x, torch.zeros(3, 10, 2)], dim=-1)
    assert linear_cka(x, padded) == pytest.approx(1.0)
    # independent noise gives a clearly smaller value, still in [0, 1]
    other = random_states(3, 10, 6, seed=4)
    assert 0.0 <= linear_cka(x, other) < 0.9
    # not invariant to anisotropic scaling
    assert linear_cka(x, x * torch.tensor([10.0, 1, 1, 1, 1, 1])) < 0.99


def test_linear_cka_known_value():
    # X = column (1, -1) and Y = (1, 1, -2)-free example: centered 1-D features give cos^2
    x = torch.tensor([[[1.0], [2.0], [3.0]]])
    y = torch.tensor([[[1.0], [3.0], [2.0]]])
    xc = torch.tensor([-1.0, 0.0, 1.0])
    yc = torch.tensor([-1.0, 1.0, 0.0])
    expected = float((xc @ yc) ** 2 / ((xc @ xc) * (yc @ yc)))
    assert linear_cka(x, y) == pytest.approx(expected)  # = 0.25


def test_linear_cka_mask_pools_real_tokens():
    x = random_states(2, 5, 4, seed=5)
    y = x.clone()
    y[0, 4] = 100.0  # padding garbage
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    assert linear_cka(x, y, mask) == pytest.approx(1.0)
    assert linear_cka(x, y) < 0.99


def test_rank_collapse_ratio():
    token = torch.tensor([1.0, -2.0, 3.0])
    collapsed = token.expand(1, 4, 3)
    assert rank_collapse_ratio(collapsed) == pytest.approx(0.0, abs=1e-12)
    centred = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # mean token 0
    assert rank_collapse_ratio(centred) == pytest.approx(1.0)
    # X = [[2, 0], [0, 0]]: mean (1, 0), residual [[1, 0], [-1, 0]] -> sqrt(2) / 2
    assert rank_collapse_ratio(torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])) == pytest.approx(
        math.sqrt(2) / 2
    )
    # per-sequence average; the padded token is ignored
    batch = torch.cat([collapsed, torch.tensor([[[1.0, 0.0, 0], [-1.0, 0, 0], [5, 5, 5],
                                                  [7, 7, 7]]])])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert rank_collapse_ratio(batch, mask) == pytest.approx(0.5)


def test_rank_collapse_ratio_matches_formula():
    x = random_states(3, 5, 4)
    expected = []
    for seq in x.double():
        residual = seq - seq.mean(dim=0, keepdim=True)
        expected.append(float(residual.norm() / seq.norm()))
    assert rank_collapse_ratio(x) == pytest.approx(sum(expected) / 3, rel=1e-12)


def test_rank_collapse_ratio_extremes():
    identical = torch.ones(2, 6, 4) * torch.tensor([1.0, -2.0, 3.0, 0.5])
    assert rank_collapse_ratio(identical) == pytest.approx(0.0, abs=1e-12)
    assert rank_collapse_ratio(torch.zeros(2, 3, 4)) == 0.0
    centred = random_states(2, 6, 4)
    centred = centred - centred.mean(dim=1, keepdim=True)
    assert rank_collapse_ratio(centred) == pytest.approx(1.0)


def test_state_norm_cosine_relative_error():
    x = random_states(2, 3, 4)
    assert state_norm(x) == pytest.approx(float(x.double().norm(dim=-1).mean()), rel=1e-12)
    assert hidden_cosine(x, x) == pytest.approx(1.0)
    assert hidden_cosine(x, -2 * x) == pytest.approx(-1.0)
    assert relative_error(x, x) == 0.0
    assert relative_error(x, 1.5 * x) == pytest.approx(0.5)
    assert relative_error(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)) == 0.0
    assert relative_error(torch.zeros(1, 2, 2), torch.ones(1, 2, 2)) == math.inf
    assert hidden_cosine(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)) == 1.0
    assert hidden_cosine(torch.zeros(1, 2, 2), torch.ones(1, 2, 2)) == 0.0


def test_mask_excludes_padding_tokens():
    x = random_states(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    padded = x.clone()
    padded[~mask] = 1e6
    for metric in (rank_collapse_ratio, state_norm):
        assert metric(padded, mask) == pytest.approx(metric(x, mask))
    assert hidden_cosine(x, padded, mask) == pytest.approx(1.0)
    assert relative_error(x, padded, mask) == 0.0
    first = x[:1, :3]
    assert state_norm(x[:1], mask[:1]) == pytest.approx(state_norm(first))
    assert rank_collapse_ratio(x[:1], mask[:1]) == pytest.approx(rank_collapse_ratio(first))
    with pytest.raises(ValueError, match="mask shape"):
        state_norm(x, mask[:, :3])


def test_shape_errors():
    with pytest.raises(ValueError):
        hidden_cosine(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError):
        attention_cosine(torch.zeros(1, 1, 2, 3), torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError):
        relative_error(torch.ones(1, 2, 3), torch.ones(1, 2, 3), torch.ones(1, 3))
    with pytest.raises(ValueError):
        relative_error(torch.ones(1, 2, 3), torch.ones(1, 2, 3), torch.zeros(1, 2))
    for metric in (rank_collapse_ratio, state_norm):  # a mask selecting no token
        with pytest.raises(ValueError, match="no token"):
            metric(torch.ones(1, 2, 3), torch.zeros(1, 2))


def test_layer_metrics():
    layers, batch, tokens, channels, heads = 3, 2, 5, 4, 2
    states = [random_states(batch, tokens, channels, seed=i) for i in range(layers + 1)]
    maps = [random_maps(batch, heads, tokens, tokens, seed=10 + i) for i in range(layers)]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    rows = layer_metrics(states, maps, states, maps, mask)
    assert [row["layer"] for row in rows] == [1, 2, 3]
    assert set(rows[0]) == {
        "layer", "attention_cosine", "hidden_cosine", "relative_error", "cka", "attention_kl"
    }
    for row in rows:
        assert row["attention_cosine"] == pytest.approx(1.0)
        assert row["hidden_cosine"] == pytest.approx(1.0)
        assert row["relative_error"] == 0.0
        assert row["cka"] == pytest.approx(1.0)
        assert row["attention_kl"] == pytest.approx(0.0, abs=1e-12)
    # L states (no embeddings) are accepted; layer i compares state i with reference state i
    model_states = [s.clone() for s in states[1:]]
    model_states[1] = model_states[1] * 2
    rows = layer_metrics(states, maps, model_states, None, mask)
    assert rows[1]["relative_error"] == pytest.approx(1.0)
    assert rows[0]["relative_error"] == 0.0
    assert math.isnan(rows[0]["attention_cosine"]) and math.isnan(rows[2]["attention_kl"])
    with pytest.raises(ValueError):
        layer_metrics(states, maps, states[:2], maps, mask)
