"""Tests of pdelang.lab.ablation.train with a tiny stand-in stepper (C=32, 2 layers)."""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest
import torch
from ablation_helpers import StandInStepper, build_task, stepper_class
from torch import nn

from pdelang.lab.ablation.tasks import DigitsTask, TextTask
from pdelang.lab.ablation.train import (
    TrainingRecord,
    global_norm,
    make_optimizer,
    seeded,
    summarize,
    train,
    train_seeds,
)


class FaultyStepper(StandInStepper):
    """Returns NaN from its (FAIL_AT + 1)-th call on."""

    FAIL_AT = 3

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, u, mask=None, **options):
        out = super().forward(u, mask, **options)
        self.calls += 1
        return out * float("nan") if self.calls > self.FAIL_AT else out


digits = functools.partial(build_task, DigitsTask)  # digits(seed, stepper_cls=None, **structure)


def test_seeded_restores_global_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = (torch.rand(1), random.random(), np.random.rand())
    with seeded(7):
        assert (torch.rand(1), random.random(), np.random.rand()) == inside
    assert torch.equal(torch.rand(3), expected)


def test_training_is_deterministic_for_a_seed():
    options = {"steps": 6, "lr": 3e-3, "batch_size": 8, "eval_examples": 32}
    first = train(digits(0), seed=0, **options)
    second = train(digits(0), seed=0, **options)
    assert first.losses == second.losses
    assert first.grad_norms == second.grad_norms
    assert first.update_norms == second.update_norms
    assert first.eval_accuracy == second.eval_accuracy
    other = train(digits(1), seed=1, **options)
    assert other.losses != first.losses


def test_record_fields_and_learning():
    record = train(digits(0), steps=25, lr=1e-2, seed=0, eval_examples=32)
    assert isinstance(record, TrainingRecord)
    for values in (record.losses, record.grad_norms, record.update_norms,
                   record.max_activations):
        assert len(values) == 25 and all(math.isfinite(v) and v > 0 for v in values)
    assert record.steps == list(range(25)) and record.steps_completed == 25
    assert not record.diverged and record.divergence_step is None
    assert record.final_loss == record.losses[-1]
    assert record.max_grad_norm == max(record.grad_norms)
    assert record.divergence_threshold == pytest.approx(10 * record.losses[0])
    assert 0.0 <= record.eval_accuracy <= 1.0 and math.isfinite(record.eval_loss)
    assert np.mean(record.losses[-5:]) < record.losses[0] - 0.3
    assert set(record.to_dict()) >= {"losses", "grad_norms", "update_norms",
                                     "max_activations", "diverged", "divergence_step",
                                     "final_loss", "max_grad_norm", "eval_accuracy"}


def test_update_norm_is_lr_times_grad_norm_for_plain_sgd():
    record = train(digits(0), steps=3, lr=0.1, optimizer="sgd", seed=0, evaluate=False)
    for grad, update in zip(record.grad_norms, record.update_norms):
        assert update == pytest.approx(0.1 * grad, rel=1e-2)


def test_linear_warmup_scales_the_learning_rate():
    record = train(digits(0), steps=4, lr=0.1, optimizer="sgd", seed=0, warmup_steps=4,
                   evaluate=False)
    for step, (grad, update) in enumerate(zip(record.grad_norms, record.update_norms)):
        assert update == pytest.approx(0.1 * (step + 1) / 4 * grad, rel=2e-2)


def test_grad_norm_is_measured_before_clipping():
    record = train(digits(0), steps=3, lr=1.0, optimizer="sgd", seed=0, grad_clip=1e-2,
                   evaluate=False)
    assert all(grad > 1e-2 for grad in record.grad_norms)
    assert record.update_norms == pytest.approx([1e-2] * 3, rel=2e-2)


def test_nan_loss_marks_divergence_and_stops():
    task = digits(0, type("Faulty", (FaultyStepper,), {}))
    record = train(task, steps=10, lr=1e-3, seed=0, evaluate=False)
    assert record.diverged and record.divergence_step == 3
    assert record.divergence_reason == "non-finite loss"
    assert len(record.losses) == 4 and math.isnan(record.losses[-1])
    assert math.isnan(record.update_norms[-1])  # no update on the diverging step
    assert record.steps_completed == 4 and math.isnan(record.final_loss)
    assert math.isfinite(record.max_grad_norm)


def test_loss_above_threshold_diverges_without_update():
    task = digits(0)
    before = [p.detach().clone() for p in task.parameters()]
    record = train(task, steps=5, lr=1e-3, seed=0, divergence_threshold=0.5, evaluate=False)
    assert record.diverged and record.divergence_step == 0
    assert record.divergence_reason.startswith("loss above threshold")
    assert len(record.losses) == 1 and math.isfinite(record.grad_norms[0])
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, task.parameters()))


def test_log_every_keeps_last_step():
    record = train(digits(0), steps=12, lr=1e-3, seed=0, log_every=5, evaluate=False)
    assert record.steps == [0, 5, 10, 11] and len(record.losses) == 4


def test_progress_callbacks():
    calls = []
    train(digits(0), steps=3, lr=1e-3, seed=0, evaluate=False,
          progress=lambda step, metrics: calls.append((step, sorted(metrics))))
    assert [step for step, _ in calls] == [0, 1, 2]
    assert calls[0][1] == ["grad_norm", "loss", "max_activation", "update_norm"]

    class Bar:  # tqdm-like
        def __init__(self):
            self.n, self.postfix = 0, None

        def update(self, n):
            self.n += n

        def set_postfix(self, refresh=True, **values):
            self.postfix = values

    bar = Bar()
    train(digits(0), steps=4, lr=1e-3, seed=0, evaluate=False, progress=bar)
    assert bar.n == 4 and "loss" in bar.postfix


def test_text_task_trains():
    with seeded(0):
        task = TextTask(stepper_class(causal=True, grid_shape=None)(), seq_len=16)
    record = train(task, steps=3, lr=1e-3, seed=0, batch_size=4, eval_examples=2)
    assert len(record.losses) == 3 and math.isfinite(record.eval_loss)


def test_train_seeds_and_summarize():
    records = train_seeds(lambda: DigitsTask(stepper_class()()), [0, 1], steps=2, lr=1e-3,
                          batch_size=4, eval_examples=16)
    again = train_seeds(lambda: DigitsTask(stepper_class()()), [0, 1], steps=2, lr=1e-3,
                        batch_size=4, eval_examples=16)
    assert [r.losses for r in records] == [r.losses for r in again]
    assert [r.seed for r in records] == [0, 1]
    summary = summarize(records)
    assert summary["seeds"] == 2 and summary["fraction_diverged"] == 0.0
    assert summary["final_loss_mean"] == pytest.approx(np.mean([r.final_loss for r in records]))


def test_summarize_handles_divergence_and_nan():
    records = [
        TrainingRecord(losses=[2.0, 1.0], grad_norms=[1.0, 3.0], final_loss=1.0,
                       max_grad_norm=3.0, eval_accuracy=0.5, steps_completed=2),
        TrainingRecord(losses=[2.0, 3.0], grad_norms=[1.0, 2.0], final_loss=3.0,
                       max_grad_norm=2.0, eval_accuracy=0.7, steps_completed=2),
        TrainingRecord(losses=[2.0, math.nan], grad_norms=[1.0, math.inf],
                       final_loss=math.nan, max_grad_norm=math.inf, diverged=True,
                       divergence_step=1, steps_completed=2),
    ]
    summary = summarize(records)
    assert summary["final_loss_mean"] == 2.0 and summary["final_loss_std"] == 1.0
    assert summary["final_loss_finite"] == 2
    assert summary["fraction_diverged"] == pytest.approx(1 / 3)
    assert summary["divergence_step"] == 1 and summary["divergence_steps"] == [None, None, 1]
    assert summary["max_grad_norm"] == math.inf
    assert summary["eval_accuracy_mean"] == pytest.approx(0.6)


def test_helpers():
    assert global_norm([torch.tensor([3.0]), torch.tensor([4.0])]) == 5.0
    assert global_norm([]) == 0.0
    assert math.isnan(global_norm([torch.tensor([math.nan])]))
    params = [nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer("AdamW", params, 1e-3, None), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lion", params, 1e-3, None)
