"""GPT-2 references: local GPT2Model dirs and a small random GPT-2.

GPT-2 is pre-LN, causal, with the tanh GELU (``gelu_new``) and a final LayerNorm ``ln_f``::

    v  = u + A_causal(LN_att(u))   # ln_1
    u' = v + F(LN_mlp(v))          # ln_2
    final_state = LN_final(u_L)    # ln_f

GPT-2 stores its projections as ``Conv1D`` with weights ``(in, out)`` (``y = x W + b``); the
adapter transposes them into ``nn.Linear`` convention and splits the fused ``c_attn`` (``(C, 3C)``)
into query, key and value, in that order.

Hugging Face's ``output_hidden_states`` for GPT-2 has ``ln_f`` applied to its *last* element;
this adapter captures the output of every block with forward hooks instead, so
``hidden_states[L]`` is the state before ``ln_f`` and ``final_state = ln_f(hidden_states[L])``.
Embeddings are ``wte(ids) + wpe(positions)`` with positions ``0 .. N-1`` (right padding).
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

#: The small configuration of ``hf-config:gpt2`` (randomly initialised, seed 0).
SMALL_GPT2_CONFIG: dict[str, Any] = {
    "vocab_size": 1024,
    "n_positions": 128,
    "n_embd": 64,
    "n_head": 4,
    "n_layer": 3,
    "n_inner": 256,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "bos_token_id": WordHashTokenizer.bos_id,
    "eos_token_id": WordHashTokenizer.eos_id,
    "pad_token_id": WordHashTokenizer.pad_id,
    # 0.15 instead of the default 0.02: with 0.02 every attention map is nearly uniform.
    "initializer_range": 0.15,
}


class GPT2Reference(Reference):
    """A Hugging Face ``GPT2Model`` as a reference (pre-LN, causal, tanh GELU, final norm)."""

    modality = "text"

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        config = model.config
        if not getattr(config, "scale_attn_weights", True):
            raise ValueError(f"{name}: scale_attn_weights=False is not supported")
        if getattr(config, "scale_attn_by_inverse_layer_idx", False):
            raise ValueError(f"{name}: scale_attn_by_inverse_layer_idx=True is not supported")
        if getattr(config, "add_cross_attention", False):
            raise ValueError(f"{name}: cross-attention is not supported")
        self.name = name
        self.model = prepare_model(model)
        self.tokenizer = tokenizer
        channels = config.n_embd
        self.architecture = ReferenceArchitecture(
            kind="gpt2",
            channels=channels,
            heads=config.n_head,
            layers=config.n_layer,
            hidden=config.n_inner if config.n_inner is not None else 4 * channels,
            activation=map_activation(config.activation_function),
            norm_placement="pre",
            norm_eps=float(config.layer_norm_epsilon),
            final_norm=True,
            causal=True,
            grid_shape=None,
            extra_tokens=0,
            qkv_bias=True,
        )
        self.layer_weights = [self._layer_weights(block, channels) for block in self.model.h]
        for weights in self.layer_weights:
            weights.check_shapes(self.architecture)
        self.final_norm_weight = detach(self.model.ln_f.weight)
        self.final_norm_bias = detach(self.model.ln_f.bias)

    @staticmethod
    def _layer_weights(block: Any, channels: int) -> LayerWeights:
        qkv_weight = block.attn.c_attn.weight.detach()  # (C, 3C), Conv1D layout
        qkv_bias = block.attn.c_attn.bias.detach()
        q_w, k_w, v_w = qkv_weight.split(channels, dim=1)
        q_b, k_b, v_b = qkv_bias.split(channels, dim=0)
        return LayerWeights({
            "attention.q.weight": detach(q_w.T), "attention.q.bias": detach(q_b),
            "attention.k.weight": detach(k_w.T), "attention.k.bias": detach(k_b),
            "attention.v.weight": detach(v_w.T), "attention.v.bias": detach(v_b),
            **linear_weights("attention.o", block.attn.c_proj, transpose=True),
            **linear_weights("mlp.fc1", block.mlp.c_fc, transpose=True),
            **linear_weights("mlp.fc2", block.mlp.c_proj, transpose=True),
            **norm_weights("norm_attention", block.ln_1),
            **norm_weights("norm_mlp", block.ln_2),
        })

    @property
    def max_positions(self) -> int:
        """The longest sequence the position table allows."""
        return int(self.model.config.n_positions)

    def inputs_from_text(self, sentences: list[str], max_length: int = 128) -> dict[str, Any]:
        """Tokenize with right padding (GPT-2's own tokenizer pads with its EOS token)."""
        encoded = tokenize(self.tokenizer, sentences, min(max_length, self.max_positions))
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L`` as a differentiable function of ``u0`` (:meth:`Reference.propagate`)."""
        return propagate_with_hooks(self.model.h, lambda: self.model(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
            use_cache=False, return_dict=True), u0)

    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """Run GPT-2; states from hooks on the blocks (the last one before ``ln_f``)."""
        mask = inputs.get("attention_mask")
        return run_with_hooks(
            self,
            self.model.h,
            lambda: self.model(
                input_ids=inputs["input_ids"],
                attention_mask=mask,
                output_attentions=True,
                use_cache=False,
                return_dict=True,
            ),
            mask,
        )


def load_gpt2_dir(path: str | Path, name: str | None = None) -> GPT2Reference:
    """A local Hugging Face directory holding a ``GPT2Model`` (never downloads)."""
    set_offline()
    from transformers import GPT2Model  # lazy: transformers

    path = Path(path)
    with quiet_transformers():
        model = GPT2Model.from_pretrained(
            str(path), attn_implementation="eager", local_files_only=True
        )
    tokenizer = decoder_tokenizer(path, ("tokenizer.json", "vocab.json", "tokenizer_config.json"),
                                  model.config.vocab_size)
    return GPT2Reference(model, tokenizer, name or f"hf:{path}")


def gpt2_from_config(**overrides: Any) -> GPT2Reference:
    """A randomly initialised small GPT-2 (:data:`SMALL_GPT2_CONFIG`, ``torch.manual_seed(0)``).

    Text is tokenized by a :class:`WordHashTokenizer` (BOS, no EOS) into the config's vocabulary.
    """
    set_offline()
    from transformers import GPT2Config, GPT2Model  # lazy: transformers

    settings = {**SMALL_GPT2_CONFIG, **overrides}
    config = GPT2Config(**settings, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2Model(config)
    tokenizer = WordHashTokenizer(config.vocab_size, bos=True, eos=False)
    return GPT2Reference(model, tokenizer, "hf-config:gpt2")
