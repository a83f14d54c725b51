"""Resolving reference strings, architectures of the small references, and their inputs."""

from __future__ import annotations

import json

import pytest
import torch

from pdelang.lab.reference import REFERENCE_NAMES, Reference, ReferenceArchitecture, load_reference


@pytest.mark.parametrize(
    "name, kind, placement, final_norm, causal, activation",
    [
        ("hf-config:bert", "bert", "post", False, False, "gelu"),
        ("hf-config:gpt2", "gpt2", "pre", True, True, "gelu_tanh"),
        ("hf-config:llama", "llama", "pre", True, True, "silu"),
        ("hf-config:vit", "vit", "pre", True, False, "gelu"),
        ("torch", "torch", "post", False, False, "gelu"),
        ("torch:post", "torch", "post", False, False, "gelu"),
        ("torch:pre", "torch", "pre", True, False, "gelu"),
        ("torch:pre:relu", "torch", "pre", True, False, "relu"),
    ],
)
def test_small_references(name, kind, placement, final_norm, causal, activation):
    reference = load_reference(name)
    arch = reference.architecture
    assert isinstance(reference, Reference) and reference.name == name
    assert (arch.kind, arch.norm_placement, arch.final_norm, arch.causal, arch.activation) == (
        kind, placement, final_norm, causal, activation
    )
    # Llama's SwiGLU width is ≈ 8/3 · C (same parameter count as a 4C MLP)
    hidden = 172 if kind == "llama" else 256
    assert (arch.channels, arch.heads, arch.layers, arch.hidden) == (64, 4, 3, hidden)
    assert len(reference.layer_weights) == arch.layers
    for weights in reference.layer_weights:
        weights.check_shapes(arch)
    assert (reference.final_norm_weight is not None) == final_norm
    assert not reference.model.training
    assert all(p.dtype == torch.float32 for p in reference.model.parameters())
    text = reference.describe()
    assert name in text and kind in text


def test_vit_architecture_grid():
    arch = load_reference("hf-config:vit").architecture
    assert arch.grid_shape == (4, 4) and arch.extra_tokens == 1 and arch.num_grid_tokens == 16


def test_random_references_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = load_reference("hf-config:bert")
    after = torch.rand(3)
    second = load_reference("hf-config:bert")
    assert torch.equal(before, after)
    assert torch.equal(first.layer_weights[2]["mlp.fc2.weight"],
                       second.layer_weights[2]["mlp.fc2.weight"])
    assert torch.equal(
        load_reference("torch:pre").layer_weights[0]["attention.q.weight"],
        load_reference("torch:pre").layer_weights[0]["attention.q.weight"],
    )


def test_unknown_name_suggests():
    with pytest.raises(ValueError, match="did you mean 'minilm'"):
        load_reference("minilmm")
    with pytest.raises(ValueError, match="did you mean 'hf-config:gpt2'"):
        load_reference("hf-config:gpt")
    with pytest.raises(ValueError, match="unknown reference"):
        load_reference("resnet50")
    with pytest.raises(ValueError):
        load_reference("")


def test_hf_path_errors(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        load_reference(f"hf:{tmp_path / 'nowhere'}")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ValueError, match="not supported"):
        load_reference(f"hf:{tmp_path}")


def test_known_names_all_load():
    for name in REFERENCE_NAMES:
        # minilm: loaded (once) in test_reference_equivalence.py; vit-digits (trained, cached):
        # tests/reference/test_vit_digits.py
        if name not in ("minilm", "vit-digits"):
            assert load_reference(name).architecture.layers == 3


def test_text_inputs_pad_right_and_truncate():
    reference = load_reference("hf-config:bert")
    inputs = reference.inputs_from_text(["one two three four five six", "one"])
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape == mask.shape == (2, 8)
    assert mask[1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and ids[1, 3:].eq(0).all()
    assert ids[0, 0] == 1 and ids[0, -1] == 2  # [CLS] ... [SEP]
    short = reference.inputs_from_text(["one two three four five six"], max_length=4)
    assert short["input_ids"].shape == (1, 4) and short["input_ids"][0, -1] == 2
    assert torch.equal(reference.inputs_from_text(["One two."])["input_ids"],
                       reference.inputs_from_text(["one  two ."])["input_ids"])


def test_gpt2_inputs_have_bos_and_no_eos():
    reference = load_reference("hf-config:gpt2")
    ids = reference.inputs_from_text(["hello world"])["input_ids"]
    assert ids.shape == (1, 3) and ids[0, 0] == 1 and ids[0, -1] != 2


def test_modalities():
    vit = load_reference("hf-config:vit")
    bert = load_reference("hf-config:bert")
    with pytest.raises(TypeError):
        vit.inputs_from_text(["a sentence"])
    with pytest.raises(TypeError):
        bert.inputs_from_images(torch.zeros(1, 1, 8, 8))
    assert vit.sample_inputs(3)["pixel_values"].shape == (3, 1, 8, 8)
    assert bert.sample_inputs(3)["input_ids"].shape[0] == 3


def test_vit_images_are_normalised_and_resized():
    vit = load_reference("hf-config:vit")
    pixels = vit.inputs_from_images(torch.ones(2, 8, 8))["pixel_values"]
    assert pixels.shape == (2, 1, 8, 8) and torch.allclose(pixels, torch.ones_like(pixels))
    assert vit.inputs_from_images(torch.zeros(1, 1, 16, 16))["pixel_values"].shape == (1, 1, 8, 8)


def test_architecture_validation():
    good = {
        "kind": "bert", "channels": 8, "heads": 2, "layers": 1, "hidden": 16,
        "activation": "gelu", "norm_placement": "post", "norm_eps": 1e-5, "final_norm": False,
        "causal": False, "grid_shape": None, "extra_tokens": 0, "qkv_bias": True,
    }
    assert ReferenceArchitecture(**good).head_dim == 4
    for key, value in [("activation", "swish"), ("norm_placement", "sandwich"),
                       ("heads", 3), ("kind", "t5")]:
        with pytest.raises(ValueError):
            ReferenceArchitecture(**{**good, key: value})
