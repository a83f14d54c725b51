"""`pdelang validate --mode exact` on Llama-family references: RMSNorm with the model's ε,
SwiGLU, rotary embeddings with the config's θ, grouped-query attention, causal, no biases."""

from __future__ import annotations

import shlex

import pytest
import torch

from pdelang.lab.validation.validate import validate
from pdelang.lab.validation.weights import ReferenceMismatchError


def assert_exact(result, layers: int) -> None:
    assert result.passed, result.layers
    assert len(result.layers) == layers
    for row in result.layers:
        assert row["relative_error"] <= 1e-5
        assert row["attention_cosine"] >= 0.99999
    assert result.tolerances["final_state_relative_error"] <= 1e-5


def test_the_shipped_llama_spec_reproduces_hf_config_llama():
    assert_exact(validate("specs/llama.yaml", "hf-config:llama", "exact", samples=8), 3)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A ``LlamaForCausalLM`` saved by ``save_pretrained``: 6 query heads sharing 2
    key/value heads, rope_theta = 12345, rms_norm_eps = 1e-5."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("llama")
    config = LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                         rope_theta=12345.0, rms_norm_eps=1e-5, initializer_range=0.2,
                         max_position_embeddings=128)
    torch.manual_seed(7)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


DIR_OVERRIDES = ["fields.u.channels=48", "time.layers=2", "time.span=[0, 2]",
                 "stabilizers.norm.eps=1.0e-5",
                 "terms.interaction=attention(u, heads=6, kv_heads=2, rope_theta=12345, "
                 "causal=true, bias=false)",
                 "terms.reaction=glu(u, hidden=96)"]


def test_a_saved_llama_directory_with_gqa_and_its_rope_theta(llama_dir):
    assert_exact(validate("specs/llama.yaml", f"hf:{llama_dir}", "exact",
                          overrides=DIR_OVERRIDES, samples=8), 2)


def test_exact_fails_when_the_llama_model_departs(llama_dir):
    """Control: two sub-steps per layer are not the model, and exact mode says so."""
    result = validate("specs/llama.yaml", f"hf:{llama_dir}", "exact",
                      overrides=[*DIR_OVERRIDES, "time.substeps=2"], samples=4)
    assert result.passed is False
    assert max(r["relative_error"] for r in result.layers) > 1e-3


@pytest.mark.parametrize("wrong, what", [
    ("rope_theta=10000", "attention rope_theta"),
    ("kv_heads=6", "attention kv_heads"),
    ("kv_heads=3", "attention kv_heads"),
])
def test_a_spec_that_differs_from_the_model_is_refused(llama_dir, wrong, what):
    attention = ("terms.interaction=attention(u, heads=6, kv_heads=2, rope_theta=12345, "
                 "causal=true, bias=false)")
    key, value = wrong.split("=")
    edited = attention.replace(f"{key}=" + ("12345" if key == "rope_theta" else "2"),
                               f"{key}={value}")
    overrides = [o if not o.startswith("terms.interaction") else edited for o in DIR_OVERRIDES]
    with pytest.raises(ReferenceMismatchError, match=what):
        validate("specs/llama.yaml", f"hf:{llama_dir}", "exact", overrides=overrides,
                 samples=2)


def test_the_hint_turns_a_gpt2_spec_into_the_llama_model():
    """A GPT-2-shaped spec against a Llama: every difference is named (operator of the
    feed-forward block, norm kind, rotary θ, key/value heads, biases) and the one hint fixes
    them all: applied, exact mode passes."""
    with pytest.raises(ReferenceMismatchError) as info:
        validate("specs/gpt2_preln.yaml", "hf-config:llama", "exact", samples=2)
    message = str(info.value)
    for what in ("mlp operator", "normalization", "attention rope_theta", "attention kv_heads",
                 "attention bias", "norm eps"):
        assert what in message, message
    words = shlex.split(info.value.suggestion)
    assert "and by hand:" not in info.value.suggestion
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert_exact(validate("specs/gpt2_preln.yaml", "hf-config:llama", "exact",
                          overrides=overrides, samples=4), 3)
