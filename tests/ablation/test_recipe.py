"""The recipe training loop of ``pdelang phase`` (pdelang.lab.ablation.recipe)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from pdelang.lab.ablation.recipe import (
    UNSTABLE_WINDOW,
    DigitsClassifier,
    Recipe,
    digits_splits,
    quick_recipe,
    representation_drift,
    train_recipe,
)


class Identity(nn.Module):
    def forward(self, u):
        return u


class Scaled(nn.Module):
    """u ↦ w·u with one learnable scalar w (blows up under a huge learning rate)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, u):
        return self.w * u


class Poisoned(nn.Module):
    def forward(self, u):
        return u * float("nan")


SMALL = replace(Recipe(), epochs=1, max_train=128, max_heldout=64, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def data():
    return digits_splits(SMALL)


def test_the_first_loss_is_log_ten_whatever_the_body(data):
    """The head starts at zero: uniform logits, so cross-entropy is log 10 with or without
    label smoothing, for any body and either read-out."""
    for readout in ("norm", "raw"):
        torch.manual_seed(0)
        model = DigitsClassifier(Scaled(), 16, readout)
        record = train_recipe(model, SMALL, 1e-3, 0, data=data, measure_drift=False)
        assert record.losses[0] == pytest.approx(math.log(10), rel=1e-6)


def test_zero_learning_rate_is_never_unstable_and_keeps_the_loss(data):
    torch.manual_seed(0)
    model = DigitsClassifier(Scaled(), 16, "raw")
    record = train_recipe(model, replace(SMALL, epochs=3), 0.0, 0, data=data,
                          measure_drift=False)
    assert not record.unstable and len(record.losses) == record.steps_planned == 6
    assert max(record.losses) == pytest.approx(min(record.losses), rel=1e-6)


def test_non_finite_loss_stops_at_the_first_step(data):
    model = DigitsClassifier(Poisoned(), 16, "raw")
    record = train_recipe(model, SMALL, 1e-3, 0, data=data, measure_drift=False)
    assert record.unstable and record.unstable_step == 0
    assert record.unstable_reason == "non-finite loss"
    assert record.heldout_accuracy == 0.0  # non-finite logits count as wrong


def test_a_loss_held_above_loss0_plus_one_nat_is_unstable_after_the_window(data):
    """A raw read-out at an absurd rate: the loss leaves log 10 + 1 and stays; the run
    stops exactly UNSTABLE_WINDOW steps after it first exceeded (or at a non-finite)."""
    torch.manual_seed(0)
    model = DigitsClassifier(Scaled(), 16, "raw")
    record = train_recipe(model, replace(SMALL, epochs=20), 50.0, 0, data=data,
                          measure_drift=False)
    assert record.unstable
    losses = record.losses
    if record.unstable_reason.startswith("loss above"):
        threshold = losses[0] + 1.0
        tail = losses[-UNSTABLE_WINDOW:]
        assert all(v > threshold for v in tail)
        assert len(losses) < UNSTABLE_WINDOW + 1 or losses[-UNSTABLE_WINDOW - 1] <= threshold


def test_drift_of_the_identity_is_zero_and_of_a_collapsed_stream_spread_zero():
    torch.manual_seed(0)
    images = torch.randn(8, 1, 8, 8)
    model = DigitsClassifier(Identity(), 16, "norm")
    assert representation_drift(model, images)["moved"] == 0.0

    class Mean(nn.Module):
        def forward(self, u):
            return u.mean(dim=1, keepdim=True).expand_as(u)
    collapsed = representation_drift(DigitsClassifier(Mean(), 16, "norm"), images)
    assert collapsed["token_spread"] < 1e-6


def test_quick_recipe_is_small():
    quick = quick_recipe(Recipe())
    assert quick.steps(quick.max_train) == 4 * 8 and quick.max_heldout == 128


def test_unknown_readout_is_refused():
    with pytest.raises(ValueError, match="readout"):
        DigitsClassifier(Identity(), 16, "batchnorm")
