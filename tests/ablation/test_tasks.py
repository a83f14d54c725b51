"""Tests of pdelang.lab.ablation.tasks with a tiny stand-in stepper (C=32, 2 layers)."""

from __future__ import annotations

import math
import string

import pytest
import torch
from ablation_helpers import StandInStepper, build_task, stepper_class
from torch import nn

from pdelang.lab.ablation.tasks import (
    DigitsTask,
    TextTask,
    digits_patch_layout,
    image_patches,
    make_task,
)
from pdelang.lab.ablation.train import seeded
from pdelang.lab.data import load_pydoc_text


class RecordingStepper(StandInStepper):
    """Remembers the shape of the last input."""

    def forward(self, u, mask=None, **options):
        self.last_shape = tuple(u.shape)
        return super().forward(u, mask, **options)


def recording_class(**structure):
    return type("Recording", (RecordingStepper,),
                {"STRUCTURE": {**StandInStepper.STRUCTURE, **structure}})


# --- digits ------------------------------------------------------------------------------


def test_digits_split_is_deterministic_and_scaled():
    first, second = build_task(DigitsTask), build_task(DigitsTask, seed=5)
    for split in ("train", "test"):
        assert torch.equal(first.splits[split][1], second.splits[split][1])
    images = first.splits["train"][0]
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() == 1.0
    assert first.split_size("train") + first.split_size("test") == 1797
    assert first.split_size("test") == 359


def test_digits_forward_loss_and_parameters():
    task = build_task(DigitsTask)
    batch = next(task.batches("train", 8, torch.Generator().manual_seed(0)))
    assert batch.inputs.shape == (8, 8, 8) and batch.targets.shape == (8,)
    output = task.forward(batch)
    assert output.logits.shape == (8, 10)
    assert output.state.shape == (8, 17, 32)  # CLS + 4x4 patches
    assert output.loss.dim() == 0
    assert output.loss.item() == pytest.approx(math.log(10))  # zero-initialised head
    names = {name for name, _ in task.model.named_parameters()}
    assert {"patch_embedding.weight", "position_embedding", "extra_embedding",
            "head.weight"} <= names
    assert any(name.startswith("stepper.") for name in names)
    assert sum(p.numel() for p in task.parameters()) == sum(
        p.numel() for p in task.model.parameters())
    assert not any(isinstance(m, nn.LayerNorm) for m in task.model.head.modules())


@pytest.mark.parametrize(
    ("grid_shape", "extra_tokens", "tokens"),
    [((4, 4), 1, 17), (None, 0, 16), ((8, 8), 2, 66), ((2, 4), 1, 9), ((64,), 0, 64)],
)
def test_digits_token_layout_follows_structure(grid_shape, extra_tokens, tokens):
    cls = recording_class(grid_shape=grid_shape, extra_tokens=extra_tokens)
    with seeded(0):
        task = DigitsTask(cls())
    task.loss(task.sample_batch("test", 3, torch.Generator().manual_seed(1)))
    assert task.stepper.last_shape == (3, tokens, 32)
    assert task.tokens == tokens


def test_digits_rejects_incompatible_grid():
    with pytest.raises(ValueError, match="divid"):
        build_task(DigitsTask, grid_shape=(3, 3))
    with pytest.raises(ValueError):
        digits_patch_layout((5,))


def test_image_patches_row_major():
    image = torch.arange(64.0).reshape(1, 8, 8)
    patches = image_patches(image, 4, 4)
    assert patches.shape == (1, 16, 4)
    assert patches[0, 0].tolist() == [0, 1, 8, 9]
    assert patches[0, 1].tolist() == [2, 3, 10, 11]
    assert patches[0, 4].tolist() == [16, 17, 24, 25]


def test_digits_mean_pooling_without_extra_tokens():
    task = build_task(DigitsTask, extra_tokens=0)
    batch = task.sample_batch("train", 4, torch.Generator().manual_seed(0))
    output = task.forward(batch)
    expected = task.model.head(output.state.mean(dim=1))
    assert torch.allclose(output.logits, expected)


def test_batches_are_deterministic_for_a_generator():
    task = build_task(DigitsTask)
    first = task.batches("train", 4, torch.Generator().manual_seed(3))
    second = task.batches("train", 4, torch.Generator().manual_seed(3))
    for _ in range(3):
        a, b = next(first), next(second)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def test_evaluate_uses_a_fixed_subset():
    task = build_task(DigitsTask)
    first = task.evaluate("test", max_examples=40)
    assert first == task.evaluate("test", max_examples=40)
    assert first["examples"] == 40 and 0.0 <= first["accuracy"] <= 1.0
    assert task.model.training  # mode restored


# --- text --------------------------------------------------------------------------------


def test_corpus_and_vocabulary():
    corpus = load_pydoc_text()
    assert len(corpus) > 100_000
    assert set(corpus) <= set(string.printable) - set("\t\r\x0b\x0c")
    task = build_task(TextTask)
    assert list(task.vocabulary) == sorted(set(corpus))


def test_text_causal_objective_for_causal_stepper():
    task = build_task(TextTask, causal=True, grid_shape=None, extra_tokens=0)
    assert task.objective == "causal" and task.seq_len == 64 and task.mask_id is None
    batch = task.sample_batch("train", 2, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (2, 64) and batch.loss_mask is None
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])  # shifted by one
    output = task.forward(batch)
    assert output.logits.shape == (2, 64, len(task.vocabulary))
    assert output.count == 2 * 64
    assert output.loss.item() == pytest.approx(math.log(len(task.vocabulary)))


def test_text_masked_objective_for_bidirectional_stepper():
    task = build_task(TextTask, causal=False, grid_shape=None, extra_tokens=1)
    assert task.objective == "masked" and task.masked_per_sequence == round(0.15 * 64)
    batch = task.sample_batch("train", 3, torch.Generator().manual_seed(0))
    assert batch.loss_mask.sum(dim=1).tolist() == [task.masked_per_sequence] * 3
    assert (batch.inputs[batch.loss_mask] == task.mask_id).all()
    assert torch.equal(batch.inputs[~batch.loss_mask], batch.targets[~batch.loss_mask])
    assert (batch.targets < len(task.vocabulary)).all()
    output = task.forward(batch)
    assert output.state.shape == (3, 65, 32)  # extra token + 64 characters
    assert output.count == 3 * task.masked_per_sequence
    assert task.model.token_embedding.num_embeddings == len(task.vocabulary) + 1


def test_text_refuses_causal_objective_on_bidirectional_stepper():
    with seeded(0):
        stepper = stepper_class(causal=False, grid_shape=None)()
    with pytest.raises(ValueError, match="causal"):
        TextTask(stepper, objective="causal")


def test_text_sequence_length_follows_grid():
    task = build_task(TextTask, grid_shape=(4, 4), extra_tokens=0)
    assert task.seq_len == 16
    with seeded(0):
        stepper = stepper_class(grid_shape=(4, 4))()
    with pytest.raises(ValueError, match="seq_len"):
        TextTask(stepper, seq_len=64)


def test_text_evaluate_is_deterministic():
    task = build_task(TextTask, causal=True, grid_shape=None)
    first = task.evaluate("test", max_examples=4)
    assert first == task.evaluate("test", max_examples=4)
    assert first["examples"] == 4 * 64


def test_make_task_and_stepper_inputs():
    with seeded(0):
        task = make_task("digits", stepper_class()())
    batch = task.sample_batch("test", 2, torch.Generator().manual_seed(0))
    u = task.stepper_inputs(batch)
    assert u.shape == (2, 17, 32)
    assert torch.allclose(task.stepper(u), task.forward(batch).state)
    with pytest.raises(ValueError, match="unknown task"):
        make_task("images", stepper_class()())
