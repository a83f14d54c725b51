"""Llama-family references: local ``LlamaModel`` / ``LlamaForCausalLM`` dirs and a small
random Llama.

Llama is pre-norm and causal, with RMSNorm (the config's ``rms_norm_eps``), no biases,
grouped-query attention with rotary position embeddings and a SwiGLU feed-forward block::

    v  = u + A(RMS_att(u))       # input_layernorm; A: GQA with RoPE (rope_theta), causal
    u' = v + F(RMS_mlp(v))       # post_attention_layernorm; F(x) = down(silu(gate x) ⊙ up x)
    final_state = RMS_final(u_L) # norm

In spec terms a layer is ``attention(u, heads=H, kv_heads=G, rope_theta=θ, causal=true,
bias=false)`` then ``glu(u, hidden=I, activation=silu)`` with ``norm: {kind: rmsnorm,
placement: pre, eps: ε, final: true}`` (``specs/llama.yaml``).  Positions are ``0 … N−1``
(right padding, as Hugging Face assigns them without a cache).  Only the default rotary
embedding is supported: a config with ``rope_scaling`` of another type, a partial rotary
factor or a head width other than ``hidden_size / num_attention_heads`` is refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pdelang.lab.reference.base import (
    LayerWeights,
    Reference,
    ReferenceArchitecture,
    ReferenceRun,
    WordHashTokenizer,
    decoder_tokenizer,
    detach,
    linear_weights,
    map_activation,
    norm_weights,
    prepare_model,
    propagate_with_hooks,
    quiet_transformers,
    run_with_hooks,
    set_offline,
    tokenize,
)

#: The small configuration of ``hf-config:llama`` (randomly initialised, seed 0): grouped-query
#: attention (4 query heads share 2 key/value heads) and a non-default ``rope_theta``.
SMALL_LLAMA_CONFIG: dict[str, Any] = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 500000.0,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": WordHashTokenizer.bos_id,
    "eos_token_id": WordHashTokenizer.eos_id,
    "pad_token_id": WordHashTokenizer.pad_id,
    # 0.15 instead of the default 0.02: with 0.02 every attention map is nearly uniform.
    "initializer_range": 0.15,
}


def rope_theta_of(config: Any, name: str) -> float:
    """The base θ of the config's rotary embedding; ``ValueError`` for any rotary variant
    other than the default one (scaled, partial, YaRN, …)."""
    parameters = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    kind = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    if kind not in (None, "default"):
        raise ValueError(f"{name}: rotary embedding of type {kind!r} is not supported "
                         f"(only the default RoPE)")
    if float(getattr(config, "partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise ValueError(f"{name}: partial_rotary_factor != 1 is not supported")
    theta = parameters.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise ValueError(f"{name}: the config has no rope_theta")
    return float(theta)


class LlamaReference(Reference):
    """A Hugging Face ``LlamaModel`` as a reference (pre-RMSNorm, causal, GQA + RoPE, SwiGLU,
    no biases, final norm)."""

    modality = "text"

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        config = model.config
        channels, heads = config.hidden_size, config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or channels // heads
        if head_dim * heads != channels:
            raise ValueError(f"{name}: head_dim={head_dim} × {heads} heads != hidden_size="
                             f"{channels} is not supported")
        if getattr(config, "attention_bias", False) != getattr(config, "mlp_bias", False):
            raise ValueError(f"{name}: attention_bias != mlp_bias is not supported")
        self.name = name
        self.model = prepare_model(model)
        self.tokenizer = tokenizer
        kv_heads = config.num_key_value_heads or heads
        bias = bool(getattr(config, "attention_bias", False))
        self.architecture = ReferenceArchitecture(
            kind="llama",
            channels=channels,
            heads=heads,
            layers=config.num_hidden_layers,
            hidden=config.intermediate_size,
            activation=map_activation(config.hidden_act),
            norm_placement="pre",
            norm_eps=float(config.rms_norm_eps),
            final_norm=True,
            causal=True,
            grid_shape=None,
            extra_tokens=0,
            qkv_bias=bias,
            norm_kind="rmsnorm",
            kv_heads=kv_heads,
            rope_theta=rope_theta_of(config, name),
            reaction="glu",
            bias=bias,
        )
        self.layer_weights = [self._layer_weights(layer) for layer in self.model.layers]
        for weights in self.layer_weights:
            weights.check_shapes(self.architecture)
        self.final_norm_weight = detach(self.model.norm.weight)
        self.final_norm_bias = None

    @staticmethod
    def _layer_weights(layer: Any) -> LayerWeights:
        attention, mlp = layer.self_attn, layer.mlp
        return LayerWeights({
            **linear_weights("attention.q", attention.q_proj),
            **linear_weights("attention.k", attention.k_proj),
            **linear_weights("attention.v", attention.v_proj),
            **linear_weights("attention.o", attention.o_proj),
            **linear_weights("mlp.gate", mlp.gate_proj),
            **linear_weights("mlp.up", mlp.up_proj),
            **linear_weights("mlp.down", mlp.down_proj),
            **norm_weights("norm_attention", layer.input_layernorm),
            **norm_weights("norm_mlp", layer.post_attention_layernorm),
        })

    @property
    def max_positions(self) -> int:
        """The longest sequence the config declares."""
        return int(self.model.config.max_position_embeddings)

    def inputs_from_text(self, sentences: list[str], max_length: int = 128) -> dict[str, Any]:
        """Tokenize with right padding."""
        encoded = tokenize(self.tokenizer, sentences, min(max_length, self.max_positions))
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _forward(self, inputs: dict[str, Any], record: bool) -> Any:
        return self.model(input_ids=inputs["input_ids"],
                          attention_mask=inputs.get("attention_mask"),
                          output_attentions=record, use_cache=False, return_dict=True)

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L`` as a differentiable function of ``u0`` (:meth:`Reference.propagate`)."""
        return propagate_with_hooks(self.model.layers, lambda: self._forward(inputs, False), u0)

    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """Run the model; states from hooks on the decoder layers (the last before ``norm``)."""
        return run_with_hooks(self, self.model.layers, lambda: self._forward(inputs, True),
                              inputs.get("attention_mask"))


def load_llama_dir(path: str | Path, name: str | None = None) -> LlamaReference:
    """A local Hugging Face directory holding a Llama-architecture model (``LlamaModel`` or
    ``LlamaForCausalLM``; never downloads)."""
    set_offline()
    from transformers import LlamaModel  # lazy: transformers

    path = Path(path)
    with quiet_transformers():
        model = LlamaModel.from_pretrained(
            str(path), attn_implementation="eager", local_files_only=True
        )
    tokenizer = decoder_tokenizer(path, ("tokenizer.json", "tokenizer.model",
                                         "tokenizer_config.json"), model.config.vocab_size)
    return LlamaReference(model, tokenizer, name or f"hf:{path}")


def llama_from_config(**overrides: Any) -> LlamaReference:
    """A randomly initialised small Llama (:data:`SMALL_LLAMA_CONFIG`, ``torch.manual_seed(0)``).

    Text is tokenized by a :class:`WordHashTokenizer` (BOS, no EOS) into the config's vocabulary.
    """
    set_offline()
    from transformers import LlamaConfig, LlamaModel  # lazy: transformers

    settings = {**SMALL_LLAMA_CONFIG, **overrides}
    config = LlamaConfig(**settings, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaModel(config)
    tokenizer = WordHashTokenizer(config.vocab_size, bos=True, eos=False)
    return LlamaReference(model, tokenizer, "hf-config:llama")
