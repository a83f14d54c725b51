"""Tests of pdelang.lab.ablation.drift: the per-layer drift tables of a trajectory (the metrics
themselves are tested with pdelang.lab.metrics in tests/validation/test_metrics.py)."""

from __future__ import annotations

import math

import pytest
import torch
from ablation_helpers import stepper_class

from pdelang.lab.ablation.drift import (
    collect_states,
    drift_against_reference,
    final_layer,
    variant_drift,
)
from pdelang.lab.ablation.train import seeded
from pdelang.lab.metrics import rank_collapse_ratio, state_norm


def random_states(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


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
