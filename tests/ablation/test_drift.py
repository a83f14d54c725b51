"""Tests of pdelang.ablation.drift (metrics checked against direct formulas)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from torch import nn

from pdelang.ablation.drift import (
    collect_states,
    drift_against_reference,
    final_layer,
    hidden_cosine,
    rank_collapse_ratio,
    relative_error,
    state_norm,
    variant_drift,
)
from pdelang.ablation.train import seeded


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models run fastest, and immune to CPU contention, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- stand-in stepper (a compiled stepper is not available to these tests) ----------------
class StandInStepper(nn.Module):
    """Pre-norm encoder built from ``nn.TransformerEncoderLayer`` parts, with switchable
    residual connections and normalization, and the compiled steppers' forward signature."""

    STRUCTURE: ClassVar[dict] = {
        "channels": 32, "grid_shape": (4, 4), "extra_tokens": 1, "causal": False,
    }
    LAYERS, HEADS, RESIDUAL, NORM = 2, 4, True, "layernorm"

    def __init__(self):
        super().__init__()
        channels = self.STRUCTURE["channels"]
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(channels, self.HEADS, 4 * channels, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(self.LAYERS)
        )
        for layer in self.layers:
            if self.NORM == "none":
                layer.norm1, layer.norm2 = nn.Identity(), nn.Identity()
            elif self.NORM == "rmsnorm":
                layer.norm1, layer.norm2 = nn.RMSNorm(channels), nn.RMSNorm(channels)

    def forward(self, u, mask=None, *, return_trajectory=False, return_attention=False):
        n = u.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(1) if self.STRUCTURE["causal"] else None
        x, states = u, [u]
        for layer in self.layers:
            h = layer.norm1(x)
            a = layer.self_attn(h, h, h, attn_mask=causal, need_weights=False)[0]
            x = x + a if self.RESIDUAL else a
            f = layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
            x = x + f if self.RESIDUAL else f
            states.append(x)
        return SimpleNamespace(state=x, states=states) if return_trajectory else x


def stepper_class(layers=2, residual=True, norm="layernorm", **structure):
    """A no-argument-constructible stand-in class with the given STRUCTURE overrides."""
    attributes = {"STRUCTURE": {**StandInStepper.STRUCTURE, **structure}, "LAYERS": layers,
                  "RESIDUAL": residual, "NORM": norm}
    return type("Stepper", (StandInStepper,), attributes)


def random_states(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


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


def test_variant_drift_norm_growth():
    u = random_states(2, 4, 3)
    rows = variant_drift([u, 2 * u, 4 * u])
    assert [row["layer"] for row in rows] == [0, 1, 2]
    assert [row["norm_growth"] for row in rows] == pytest.approx([1.0, 2.0, 4.0])
    assert all(row["finite"] for row in rows)
    assert rows[2]["rank_collapse_ratio"] == pytest.approx(rows[0]["rank_collapse_ratio"])
    assert variant_drift([]) == []


def test_drift_against_reference():
    reference = [random_states(2, 4, 3, seed=s) for s in range(3)]
    variant = [reference[0], reference[1] * 1.1, -reference[2]]
    rows = drift_against_reference(reference, variant)
    assert set(rows[0]) >= {"layer", "hidden_cosine", "relative_error",
                            "rank_collapse_ratio", "state_norm"}
    assert rows[0]["relative_error"] == 0.0 and rows[0]["hidden_cosine"] == pytest.approx(1.0)
    assert rows[1]["relative_error"] == pytest.approx(0.1)
    assert rows[2]["hidden_cosine"] == pytest.approx(-1.0)
    assert rows[2]["reference_state_norm"] == pytest.approx(state_norm(reference[2]))
    assert final_layer(rows) == rows[-1] and final_layer(None) is None
    with pytest.raises(ValueError, match="equal depth"):
        drift_against_reference(reference, variant[:2])
    with pytest.raises(ValueError, match="shape"):
        drift_against_reference(reference[:1], [random_states(2, 5, 3)])


def test_non_finite_states_are_reported_not_raised():
    u = random_states(2, 4, 3)
    nan_state = u.clone()
    nan_state[0, 1, 2] = math.nan
    inf_state = u.clone()
    inf_state[1, 0, 0] = math.inf
    rows = drift_against_reference([u, u, u], [u, nan_state, inf_state])
    assert rows[0]["finite"] and not rows[1]["finite"] and not rows[2]["finite"]
    assert math.isnan(rows[1]["rank_collapse_ratio"]) and math.isnan(rows[1]["relative_error"])
    assert rows[2]["state_norm"] == math.inf and rows[2]["relative_error"] == math.inf
    alone = variant_drift([inf_state, u])
    assert math.isnan(alone[1]["norm_growth"]) and not alone[0]["finite"]
    huge = u * 1e30  # overflows float32 squares, not the float64 metrics
    assert math.isfinite(rank_collapse_ratio(huge.float()))


def test_collect_states_and_rank_collapse_without_residual():
    u = random_states(2, 17, 32)
    final = {}
    for residual in (True, False):
        with seeded(0):
            stepper = stepper_class(layers=4, residual=residual)()
        states = collect_states(stepper, u)
        assert len(states) == 5 and torch.equal(states[0], u)
        assert torch.allclose(states[-1], stepper(u), atol=1e-5)
        final[residual] = variant_drift(states)[-1]["rank_collapse_ratio"]
    # Dong et al. 2021: without skip connections the tokens collapse onto their mean.
    assert final[False] < 0.1
    assert final[True] > 0.8
