"""``validate --metrics info`` and ``ablate --metrics info``: the information flow per layer
through the real pipeline (the estimators themselves: tests/test_information.py)."""

from __future__ import annotations

import json

import pytest
import torch

from pdelang.interpreters.builder import structure_of
from pdelang.lab.ablation.info_plane import digits_observer
from pdelang.lab.ablation.tasks import make_task
from pdelang.lab.ablation.train import train
from pdelang.interpreters.builder import build_module
from pdelang.errors import PdelangError
from pdelang.lab.validation.information_flow import choose_representation, spread
from pdelang.lab.validation.validate import validate

# the spec configured as hf-config:vit without diffusion: the PDE model *is* the reference
AS_REFERENCE = ["time.layers=3", "time.span=[0, 3]", "parameters.D=0.0"]


@pytest.fixture(scope="module")
def info_result():
    return validate("specs/vit2d.yaml", "hf-config:vit", "continuous", overrides=AS_REFERENCE,
                    samples=64, metrics=("info",), probe_samples=128, flow_samples=1)


def test_a_model_equal_to_its_reference_has_the_same_information(info_result):
    info = info_result.information
    assert info.representation == "flat" and info.sigma_scale == "relative"
    assert info.labels.startswith("the digit")
    assert [row["layer"] for row in info.layers] == [0, 1, 2, 3]
    for row in info.layers:
        ref, model = row["reference"], row["model"]
        assert abs(ref["i_xt_bits"] - model["i_xt_bits"]) < 1e-3
        assert abs(ref["i_ty_bits"] - model["i_ty_bits"]) < 1e-3
        assert 0 <= ref["i_xt_bits"] <= ref["i_xt_max_bits"] + 1e-9
        assert ref["i_ty_bits"] <= ref["label_entropy_bits"]
        assert 0.5 < ref["probe_accuracy"] <= 1
    # the flow maps of equal maps are equal, and the reference's is really its own
    # (the hooks in Reference.propagate): cosine 1 to float32 precision
    assert info.flow["samples"] == 1 and info.flow["cosine"] > 0.99999
    # the floor: an all-ones map, a valid cosine strictly between the extremes here
    assert 0 < info.flow["floor"] < info.flow["cosine"]
    reference_map, model_map = info.flow_maps
    assert reference_map.shape == (17, 17)
    torch.testing.assert_close(reference_map, model_map, rtol=1e-4, atol=1e-5)
    entropy = info.attention_entropy
    assert len(entropy["reference"]) == 3 and len(entropy["reference"][0]) == 4
    torch.testing.assert_close(torch.tensor(entropy["reference"]),
                               torch.tensor(entropy["model"]), rtol=1e-4, atol=1e-4)


def test_information_in_json_table_and_plots(info_result, tmp_path):
    from pdelang.lab.validation.validate import format_table, write_plots

    data = json.loads(json.dumps(info_result.to_json()))
    info = data["information"]
    assert info["units"] == "bits" and "bias" not in info  # bias lives in the estimators
    assert "biased low" in info["estimators"]["I(X;T)"]
    assert "log2 n" in info["estimators"]["I(X;T)"]
    assert "Xu et al." in info["estimators"]["I(T;Y)"]
    assert "information flow" in format_table(info_result)
    names = {path.name for path in write_plots(info_result, tmp_path)}
    assert {"information_plane.png", "token_flow.png"} <= names


def test_a_continuous_model_departs_from_its_reference_in_the_flow():
    result = validate("specs/vit2d.yaml", "hf-config:vit", "continuous",
                      overrides=["time.layers=3", "time.span=[0, 3]", "parameters.D=0.5"],
                      samples=16, metrics=("info",), probe_samples=64, flow_samples=1)
    # strong diffusion spreads the influence of a patch to its neighbours
    assert result.information.flow["cosine"] < 0.999


def test_representation_choice():
    same = torch.ones(3, 5, dtype=torch.bool)
    ragged = same.clone()
    ragged[1, -2:] = False
    assert choose_representation("auto", same) == "flat"
    assert choose_representation("auto", ragged) == "mean"
    assert choose_representation("mean", same) == "mean"
    with pytest.raises(PdelangError, match="same real tokens"):
        choose_representation("flat", ragged)
    # the relative scale: samples about √2 apart in any dimension
    features = torch.randn(2000, 300, generator=torch.Generator().manual_seed(0)).numpy()
    assert abs(spread(features) / (300 ** 0.5) - 1) < 0.02


@pytest.mark.parametrize("argv, message", [
    (["--mode", "depth", "--metrics", "info"], "--metrics info with --mode depth"),
    (["--metrics", "info", "--sigma", "0"], "--sigma"),
    (["--metrics", "info", "--probe-samples", "1"], "--probe-samples"),
    (["--metrics", "info", "--samples", "1"], "--samples 1")])
def test_info_option_errors(argv, message, cli):
    code, _, stderr = cli("validate", "specs/vit2d.yaml", "--reference", "hf-config:vit", *argv)
    assert code == 2 and message in stderr
    assert "Traceback" not in stderr


def test_information_plane_along_training():
    module = build_module("specs/vit2d.yaml", ["fields.u.channels=16", "time.layers=2",
                                               "time.span=[0, 2]",
                                               "terms.interaction=attention(u, heads=2)",
                                               "terms.reaction=mlp(u, hidden=32, "
                                               "activation=gelu)"])
    torch.manual_seed(0)
    task = make_task("digits", module.Stepper(), structure_of(module.Stepper))
    observe = digits_observer(task, probe_examples=64, heldout_examples=48)
    record = train(task, steps=4, lr=1e-3, batch_size=16, observe=observe, observe_every=2,
                   evaluate=False)
    assert [o["step"] for o in record.information] == [0, 2, 4]
    first = record.information[0]["layers"]
    assert [row["layer"] for row in first] == [0, 1, 2]
    assert all(0 <= row["i_xt_bits"] <= row["i_xt_max_bits"] + 1e-9 for row in first)
    assert all("i_ty_bits" in row for row in first)
    # training moves the representations (the embedding is trained too)
    assert record.information[0]["layers"][2] != record.information[2]["layers"][2]


def test_ablate_info_needs_labels():
    from pdelang.lab.ablation.ablate import ablate

    with pytest.raises(PdelangError, match="needs labels"):
        ablate("specs/vit2d.yaml", [], train="text", reference="none", metrics=("info",),
               quick=True, out=None, progress=False)


def test_too_few_probe_samples_for_the_classes_is_a_user_error():
    with pytest.raises(PdelangError, match="no example of class"):
        validate("specs/vit2d.yaml", "hf-config:vit", "continuous", overrides=AS_REFERENCE,
                 samples=64, metrics=("info",), probe_samples=8, flow_samples=0)
