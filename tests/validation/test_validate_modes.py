"""`pdelang validate`: exact reproduction of reference Transformers, continuous and fit modes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pdelang.errors import PdelangError
from pdelang.lab.validation.validate import validate
from pdelang.lab.validation.weights import ReferenceMismatchError

SMALL = ["fields.u.channels=64", "time.layers=3", "time.span=[0, 3]"]


def small(interaction: str, reaction: str, *extra: str) -> list[str]:
    return SMALL + [f"terms.interaction={interaction}", f"terms.reaction={reaction}", *extra]


def assert_exact(result) -> None:
    assert result.passed, result.layers
    assert len(result.layers) == 3 or len(result.layers) == 6
    for row in result.layers:
        assert row["relative_error"] <= 1e-5
        assert row["attention_cosine"] >= 0.99999
    assert result.tolerances["final_state_relative_error"] <= 1e-5


def test_minilm_exact_reproduces_the_pretrained_model():
    result = validate("specs/bert_postln.yaml", "minilm", "exact", samples=8)
    assert_exact(result)
    assert len(result.layers) == 6


def test_minilm_exact_64_sentences_under_60_seconds():
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pdelang", "validate", "specs/bert_postln.yaml", "--reference",
         "minilm", "--mode", "exact", "--json"], capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["samples"] == 64 and data["passed"] is True
    assert {"layer", "attention_cosine", "hidden_cosine", "relative_error", "cka",
            "attention_kl"} <= set(data["layers"][0])
    assert elapsed < 60, f"validate took {elapsed:.1f} s"


def test_hf_config_bert_exact():
    overrides = small("attention(u, heads=4)", "mlp(u, hidden=256, activation=gelu)")
    assert_exact(validate("specs/bert_postln.yaml", "hf-config:bert", "exact",
                          overrides=overrides, samples=6))


def test_hf_config_gpt2_exact_causal_pre_ln():
    overrides = small("attention(u, heads=4, causal=true)",
                      "mlp(u, hidden=256, activation=gelu_tanh)")
    assert_exact(validate("specs/gpt2_preln.yaml", "hf-config:gpt2", "exact",
                          overrides=overrides, samples=6))


def test_hf_config_vit_exact_cls_token_off_the_grid():
    overrides = ["time.layers=3", "time.span=[0, 3]", "equation=dt(u) = interaction + reaction",
                 "time.split_order=[interaction, reaction]"]
    assert_exact(validate("specs/vit2d.yaml", "hf-config:vit", "exact", overrides=overrides,
                          samples=6))


@pytest.mark.parametrize("reference, spec", [("torch:post", "specs/bert_postln.yaml"),
                                             ("torch:pre", "specs/pre_ln.yaml")])
def test_torch_encoder_exact(reference, spec):
    overrides = small("attention(u, heads=4)", "mlp(u, hidden=256, activation=gelu)",
                      "stabilizers.norm.eps=1.0e-5")
    assert_exact(validate(spec, reference, "exact", overrides=overrides, samples=6))


def test_exact_fails_when_the_model_departs():
    overrides = small("attention(u, heads=4)", "mlp(u, hidden=256, activation=gelu)",
                      "stabilizers.norm.eps=1.0e-5", "time.substeps=2")
    result = validate("specs/bert_postln.yaml", "torch:post", "exact", overrides=overrides,
                      samples=4)
    assert result.passed is False
    assert max(r["relative_error"] for r in result.layers) > 1e-3


def test_mismatch_names_both_sides():
    with pytest.raises(ReferenceMismatchError) as info:
        validate("specs/pre_ln.yaml", "minilm", "exact", samples=2)
    message = str(info.value)
    assert "norm placement" in message and "pre" in message and "post" in message
    assert "specs/pre_ln.yaml:" in message  # located at the spec's placement value
    with pytest.raises(ReferenceMismatchError, match=r"channels: the spec has 384.*64"):
        validate("specs/bert_postln.yaml", "hf-config:bert", "exact", samples=2)


def test_unknown_reference_is_a_user_error():
    with pytest.raises(PdelangError, match="did you mean 'minilm'"):
        validate("specs/bert_postln.yaml", "minilmm", "exact", samples=2)


def test_continuous_mode_measures_the_departure_of_diffusion():
    overrides = small("alpha * attention(u, heads=4)", "mlp(u, hidden=256, activation=gelu)")
    result = validate("specs/master.yaml", "hf-config:bert", "continuous", overrides=overrides,
                      samples=4)
    assert result.passed is None
    assert result.layers[0]["relative_error"] > 1e-3  # D = 0.1 diffuses the states
    assert result.layers[-1]["attention_cosine"] < 0.99999
    assert result.fitted["D"] == pytest.approx(0.1, rel=1e-6)


def test_fit_mode_learns_the_scalar_coefficients_and_writes_plots(tmp_path, cli):
    out = tmp_path / "fit"
    code, stdout, stderr = cli(
        "validate", "specs/master.yaml", "--reference",
        "hf-config:bert", "--mode", "fit", "--steps", "8", "--samples", "4",
        "--train-samples", "4", "--out", str(out), "--json",
        *[arg for o in small("alpha * attention(u, heads=4)",
                             "mlp(u, hidden=256, activation=gelu)") for arg in ("--set", o)])
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["mode"] == "fit" and len(data["layers"]) == 3
    assert data["fit_loss"][-1] < data["fit_loss"][0]
    assert data["fitted"]["D"] < 0.1  # the reference has no diffusion: D shrinks
    assert len(data["fitted"]["alpha"]) == 3
    for name in ("results.json", "metrics.png", "attention_maps.png"):
        assert (out / name).stat().st_size > 0


def test_texts_shorter_than_the_stencil_are_a_user_error(tmp_path, cli):
    """A padded sentence with no more tokens than the stencil's radius (accuracy 8: radius 4)
    is refused with a message and exit code 2, not a traceback."""
    text = tmp_path / "short.txt"
    text.write_text("Hi.\n\nOk.\n\nThe quick brown fox jumps over the lazy dog, again and again.\n")
    overrides = small("alpha * attention(u, heads=4)", "mlp(u, hidden=256, activation=gelu)",
                      "discretization.laplace.accuracy=8")
    code, _, stderr = cli(
        "validate", "specs/master.yaml", "--reference",
        "hf-config:bert", "--mode", "continuous", "--text", str(text),
        *[arg for o in overrides for arg in ("--set", o)])  # a traceback would raise here
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "the stencils need > 4" in stderr and "hint:" in stderr


def test_exact_mode_switches_off_and_lists_the_pdes_own_terms():
    """vit2d's diffusion is the PDE's addition: exact mode checks the Transformer part (and
    says what it left out); continuous mode keeps the diffusion and departs."""
    overrides = ["time.layers=3", "time.span=[0, 3]"]
    result = validate("specs/vit2d.yaml", "hf-config:vit", "exact", overrides=overrides,
                      samples=4)
    assert_exact(result)
    assert result.left_out == ["diffusion"] and result.to_json()["left_out"] == ["diffusion"]
    assert result.problems == [] and result.hint is None
    continuous = validate("specs/vit2d.yaml", "hf-config:vit", "continuous",
                          overrides=overrides, samples=4)
    assert continuous.left_out == []
    assert continuous.layers[0]["relative_error"] > 1e-3
