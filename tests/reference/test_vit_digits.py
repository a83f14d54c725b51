"""``vit-digits``: training into the cache, the ordinary HF directory, reuse, ``--force``, the
missing-cache error, the exact match with ``specs/vit2d.yaml``, and seeds side by side
(``vit-digits@S`` in ``references/vit-digits-seed{S}``).

The fast tests train a couple of optimiser steps (``max_steps``) into a temporary
``PDELANG_CACHE_DIR``; the real training (150 epochs, held-out accuracy ≥ 0.95) is the slow
test at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pdelang.errors import PdelangError
from pdelang.lab.reference import REFERENCE_NAMES, load_reference
from pdelang.lab.reference.vit_digits import (
    METADATA_FILE,
    VIT_DIGITS_CONFIG,
    NotTrainedError,
    load_vit_digits,
    model_dir,
    parse_seed,
    read_metadata,
    reference_name,
    train_vit_digits,
    trained_seeds,
)

REPO = Path(__file__).resolve().parents[2]
VIT2D = REPO / "specs" / "vit2d.yaml"
STEPS = 2
NO_DIFFUSION = ["equation=dt(u) = interaction + reaction",
                "time.split_order=[interaction, reaction]"]


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder holding a vit-digits trained for two steps; PDELANG_CACHE_DIR points
    at it for the whole module."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PDELANG_CACHE_DIR", str(folder))
        result = train_vit_digits(epochs=1, max_steps=STEPS, progress=False)
        assert not result.reused
        assert result.path == folder / "references" / "vit-digits"
        yield folder


def test_name_is_known():
    assert "vit-digits" in REFERENCE_NAMES


def test_the_directory_is_an_ordinary_hugging_face_one(cache):
    from transformers import ViTForImageClassification, ViTModel

    directory = model_dir()
    assert directory == cache / "references" / "vit-digits"
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["config.json", "model.safetensors", METADATA_FILE,
                     "preprocessor_config.json"]
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "vit"
    assert config["architectures"] == ["ViTForImageClassification"]
    for key, value in VIT_DIGITS_CONFIG.items():
        if key != "num_labels":
            assert config[key] == value, key
    processor = json.loads((directory / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.5] and processor["image_std"] == [0.5]
    assert processor["rescale_factor"] == 1 / 16  # raw digits are 0 … 16
    metadata = read_metadata(directory)
    assert metadata["steps"] == STEPS and metadata["seed"] == 0
    assert metadata["heldout_images"] == 359 and metadata["train_images"] == 1438
    assert 0.0 <= metadata["accuracy"] <= 1.0
    assert {"torch", "transformers"} <= set(metadata["versions"])
    base = ViTModel.from_pretrained(str(directory), add_pooling_layer=False)
    classifier = ViTForImageClassification.from_pretrained(str(directory))
    pixels = torch.zeros(2, 1, 8, 8)
    assert base(pixel_values=pixels).last_hidden_state.shape == (2, 17, 64)
    assert classifier(pixel_values=pixels).logits.shape == (2, 10)
    assert torch.equal(base.embeddings.cls_token, classifier.vit.embeddings.cls_token)
    # nothing temporary left beside it
    assert sorted(p.name for p in directory.parent.iterdir()) == ["vit-digits"]


def test_load_reference_reads_the_cache(cache):
    reference = load_reference("vit-digits")
    arch = reference.architecture
    assert reference.name == "vit-digits" and reference.modality == "image"
    assert (arch.kind, arch.channels, arch.heads, arch.layers, arch.hidden) == (
        "vit", 64, 4, 4, 256)
    assert (arch.grid_shape, arch.extra_tokens, arch.norm_eps, arch.qkv_bias) == (
        (4, 4), 1, 1e-12, True)
    assert reference.image_mean.tolist() == [0.5] and reference.image_std.tolist() == [0.5]
    weights = _tensors(model_dir())
    assert torch.equal(reference.layer_weights[3]["mlp.fc2.weight"],
                       weights["vit.encoder.layer.3.output.dense.weight"])


def test_a_trained_copy_is_reused_untouched(cache):
    before = _snapshot(model_dir())

    def never(*_):
        raise AssertionError("reused: no training step")

    result = train_vit_digits(epochs=7, progress=never)
    assert result.reused and result.path == model_dir() and result.name == "vit-digits"
    assert result.accuracy == read_metadata(model_dir())["accuracy"]
    assert result.metadata["epochs"] == 1  # the stored copy's, not the asked epochs
    assert _snapshot(model_dir()) == before


def test_training_is_seeded_and_force_retrains(cache, tmp_path):
    again = train_vit_digits(cache_dir=tmp_path, epochs=1, max_steps=STEPS, progress=False)
    first, second = _tensors(model_dir()), _tensors(again.path)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)  # same seed: same bits
    steps = []
    forced = train_vit_digits(cache_dir=tmp_path, epochs=1, max_steps=1, force=True,
                              progress=lambda step, total, loss: steps.append((step, total)))
    assert not forced.reused and forced.path == again.path and steps == [(1, 1)]
    assert read_metadata(again.path)["steps"] == 1
    third = _tensors(again.path)
    assert not torch.equal(third["vit.encoder.layer.0.output.dense.weight"],
                           first["vit.encoder.layer.0.output.dense.weight"])
    assert sorted(p.name for p in again.path.parent.iterdir()) == ["vit-digits"]


def test_seed_folders_and_names():
    assert model_dir("/c") == Path("/c/references/vit-digits")
    assert model_dir("/c", seed=0) == model_dir("/c")
    assert model_dir("/c", seed=1) == Path("/c/references/vit-digits-seed1")
    assert model_dir("/c", seed=12) == Path("/c/references/vit-digits-seed12")
    assert len({model_dir("/c", seed=s) for s in range(5)}) == 5
    with pytest.raises(ValueError, match="non-negative"):
        model_dir("/c", seed=-1)
    assert [reference_name(s) for s in (0, 1, 7)] == ["vit-digits", "vit-digits@1",
                                                      "vit-digits@7"]
    assert [parse_seed(n) for n in ("vit-digits", "vit-digits@0", "VIT-DIGITS@3", "minilm")] \
        == [0, 0, 3, None]
    for bad in ("vit-digits@", "vit-digits@x", "vit-digits@-1", "vit-digits@1.5",
                "vit-digits@1@2", "vit-digits@²"):
        with pytest.raises(ValueError, match="the form is vit-digits@SEED"):
            parse_seed(bad)


def test_seeds_train_side_by_side(cache):
    """Seed 1 goes to its own folder, leaves seed 0's untouched, and ``vit-digits@1`` loads
    its weights (which differ from seed 0's); ``vit-digits@0`` is ``vit-digits``."""
    before = _snapshot(model_dir())
    one = train_vit_digits(seed=1, epochs=1, max_steps=STEPS, progress=False)
    assert not one.reused and one.name == "vit-digits@1"
    assert one.path == model_dir(seed=1) == cache / "references" / "vit-digits-seed1"
    assert one.metadata["seed"] == 1 and one.to_json()["name"] == "vit-digits@1"
    assert _snapshot(model_dir()) == before
    again = train_vit_digits(seed=1, epochs=1, progress=False)
    assert again.reused and again.path == one.path and again.metadata == one.metadata
    assert [(s, p) for s, p, _ in trained_seeds()] == [(0, model_dir()), (1, one.path)]
    assert sorted(p.name for p in one.path.parent.iterdir()) == ["vit-digits",
                                                                 "vit-digits-seed1"]

    zero, seed1 = load_reference("vit-digits"), load_reference("vit-digits@1")
    assert (zero.name, seed1.name) == ("vit-digits", "vit-digits@1")
    assert load_reference("vit-digits@0").name == "vit-digits"
    name = "vit.encoder.layer.3.output.dense.weight"
    assert torch.equal(seed1.layer_weights[3]["mlp.fc2.weight"], _tensors(one.path)[name])
    assert torch.equal(zero.layer_weights[3]["mlp.fc2.weight"], _tensors(model_dir())[name])
    assert not torch.equal(seed1.layer_weights[3]["mlp.fc2.weight"],
                           zero.layer_weights[3]["mlp.fc2.weight"])
    assert torch.equal(load_reference("vit-digits@0").layer_weights[3]["mlp.fc2.weight"],
                       zero.layer_weights[3]["mlp.fc2.weight"])
    assert load_vit_digits(seed=1).name == "vit-digits@1"


def test_a_missing_seed_says_how_to_train_it(cache):
    assert read_metadata(model_dir()) is not None  # seed 0 is there, seed 5 is not
    with pytest.raises(NotTrainedError) as caught:
        load_reference("vit-digits@5")
    assert "reference 'vit-digits@5' is not trained yet" in str(caught.value)
    assert str(cache / "references" / "vit-digits-seed5") in str(caught.value)
    assert "`pdelang reference train vit-digits --seed 5`" in caught.value.suggestion
    from pdelang.lab.validation.validate import validate

    with pytest.raises(PdelangError) as error:
        validate(str(VIT2D), "vit-digits@5", "exact", samples=2)
    assert "pdelang reference train vit-digits --seed 5" in error.value.suggestion


@pytest.mark.parametrize("name", ["vit-digits@x", "vit-digits@", "vit-digits@-2",
                                  "vit_digits@one"])
def test_a_malformed_seed_is_an_error_naming_the_form(name):
    with pytest.raises(ValueError, match="the form is vit-digits@SEED") as caught:
        load_reference(name)
    assert not isinstance(caught.value, NotTrainedError)
    with pytest.raises(ValueError, match="unknown reference"):
        load_reference("minilm@1")


def test_a_copy_of_another_seed_in_the_seed_folder_is_refused(cache, tmp_path, monkeypatch):
    """The folder of seed 0 can hold another seed's copy, written before seeds had folders of
    their own: it is not loaded as seed 0."""
    import shutil

    copy = tmp_path / "references" / "vit-digits"
    shutil.copytree(model_dir(), copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps(metadata | {"seed": 5}))
    monkeypatch.setenv("PDELANG_CACHE_DIR", str(tmp_path))
    with pytest.raises(NotTrainedError) as caught:
        load_reference("vit-digits")
    assert "trained with seed 5, not 0" in str(caught.value)
    assert "`pdelang reference train vit-digits --force`" in caught.value.suggestion


def test_a_missing_cache_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv("PDELANG_CACHE_DIR", str(tmp_path))
    with pytest.raises(NotTrainedError) as caught:
        load_reference("vit-digits")
    assert isinstance(caught.value, ValueError)
    assert str(tmp_path / "references" / "vit-digits") in str(caught.value)
    assert "pdelang reference train vit-digits" in caught.value.suggestion
    from pdelang.lab.validation.validate import validate

    with pytest.raises(PdelangError) as error:
        validate(str(VIT2D), "vit-digits", "exact", samples=2)
    assert "not trained yet" in error.value.message
    assert "pdelang reference train vit-digits" in error.value.suggestion


def test_a_damaged_cache_says_to_retrain(cache, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "references" / "vit-digits"
    shutil.copytree(model_dir(), copy)
    (copy / "model.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setenv("PDELANG_CACHE_DIR", str(tmp_path))
    with pytest.raises(NotTrainedError) as caught:
        load_reference("vit-digits")
    assert "cannot be loaded" in str(caught.value)
    assert "--force" in caught.value.suggestion


def test_validate_exact_reproduces_the_trained_vit(cache):
    """vit2d.yaml is the trained ViT layer for layer once its diffusion term (the PDE's own
    addition) is off: exact mode switches it off and says so (``left_out``)."""
    from pdelang.lab.validation.validate import EXACT_RELATIVE_ERROR, validate

    assert EXACT_RELATIVE_ERROR <= 1e-5
    result = validate(str(VIT2D), "vit-digits", "exact", samples=8)
    assert result.left_out == ["diffusion"]
    assert result.passed is True, result.to_json()
    assert len(result.layers) == 4
    assert max(row["relative_error"] for row in result.layers) <= 1e-5
    assert min(row["attention_cosine"] for row in result.layers) >= 1 - 1e-5
    assert result.tolerances["final_state_relative_error"] <= 1e-5
    without = validate(str(VIT2D), "vit-digits", "exact", samples=8, overrides=NO_DIFFUSION)
    assert without.passed is True and without.left_out == []
    assert [row["relative_error"] for row in without.layers] == [
        row["relative_error"] for row in result.layers]


@pytest.mark.slow
def test_the_default_training_reaches_95_percent(tmp_path):
    """The real training (150 epochs, a few minutes on 2 CPU cores)."""
    result = train_vit_digits(cache_dir=tmp_path, progress=False)
    assert not result.reused and result.metadata["epochs"] == 150
    assert result.accuracy >= 0.95, result.metadata
