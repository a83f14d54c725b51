"""A ``torch.nn.TransformerEncoder`` reference with a seeded random embedding.

The model is ``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer(d_model, nhead,
dim_feedforward, dropout=0, activation, batch_first=True, norm_first)``:

* ``torch:post`` (default): post-LN, ``v = norm1(u + A(u)); u' = norm2(v + F(v))``, no final norm;
* ``torch:pre``: pre-LN, ``v = u + A(norm1(u)); u' = v + F(norm2(v))``, followed by a final
  LayerNorm (the encoder's ``norm``), as is usual for pre-LN stacks.

``norm1`` is the attention sub-block's norm and ``norm2`` the MLP's, in both placements.

``nn.TransformerEncoder`` deep-copies one layer, so all layers would start identical; every layer
is re-initialised with its own draw from the seeded generator instead.

Embeddings: ``u(0)_n = E_tok[id_n] + E_pos[n]`` with both tables drawn once from
``N(0, 1)`` under ``torch.manual_seed(0)`` (learned-style absolute positions, no sinusoids).
Text is tokenized by :class:`~pdelang.lab.reference.base.WordHashTokenizer` (``[CLS] .. [SEP]``).

Hidden states come from running the layers one by one (the same calls the encoder makes); the
attention map of a layer is recomputed from its own ``self_attn`` with ``need_weights=True,
average_attn_weights=False`` on the same input the layer feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pdelang.lab.reference.base import (
    LayerWeights,
    Reference,
    ReferenceArchitecture,
    ReferenceRun,
    WordHashTokenizer,
    detach,
    linear_weights,
    norm_weights,
    prepare_model,
)


@dataclass(frozen=True)
class TorchEncoderConfig:
    """Size and switches of the ``torch`` reference."""

    vocab_size: int = 1024
    max_positions: int = 128
    channels: int = 64
    heads: int = 4
    layers: int = 3
    hidden: int = 256
    activation: str = "gelu"  # 'gelu' | 'relu'
    norm_first: bool = False
    final_norm: bool | None = None  # None: a final norm exactly when norm_first
    norm_eps: float = 1e-5
    seed: int = 0

    @property
    def has_final_norm(self) -> bool:
        """Whether a LayerNorm follows the last layer."""
        return self.norm_first if self.final_norm is None else self.final_norm


class TorchEncoderModel(nn.Module):
    """Token + position embedding followed by a ``torch.nn.TransformerEncoder``."""

    def __init__(self, config: TorchEncoderConfig) -> None:
        super().__init__()
        if config.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {config.activation!r}")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.channels)
        self.position_embedding = nn.Embedding(config.max_positions, config.channels)
        layer = nn.TransformerEncoderLayer(
            d_model=config.channels,
            nhead=config.heads,
            dim_feedforward=config.hidden,
            dropout=0.0,
            activation=config.activation,
            layer_norm_eps=config.norm_eps,
            batch_first=True,
            norm_first=config.norm_first,
        )
        final = (
            nn.LayerNorm(config.channels, eps=config.norm_eps) if config.has_final_norm else None
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.layers, norm=final, enable_nested_tensor=False
        )
        for each in self.encoder.layers:  # the clones share one initialisation; redraw each
            each.self_attn._reset_parameters()
            each.linear1.reset_parameters()
            each.linear2.reset_parameters()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``u(0) = E_tok[ids] + E_pos[0 .. N-1]``, shape ``(B, N, C)``."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.token_embedding(input_ids) + self.position_embedding(positions)[None]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The encoder's output (after the final norm, if any)."""
        padding = None if attention_mask is None else ~attention_mask.to(torch.bool)
        return self.encoder(self.embed(input_ids), src_key_padding_mask=padding)


class TorchEncoderReference(Reference):
    """``torch.nn.TransformerEncoder`` as a reference (``torch``, ``torch:pre``, ``torch:post``)."""

    modality = "text"

    def __init__(
        self,
        config: TorchEncoderConfig | None = None,
        name: str | None = None,
        model: TorchEncoderModel | None = None,
    ) -> None:
        """Build the seeded model from ``config``, or wrap an existing ``model``."""
        if model is None:
            config = config or TorchEncoderConfig()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                model = TorchEncoderModel(config)
        config = model.config
        self.name = name or ("torch:pre" if config.norm_first else "torch:post")
        self.model = prepare_model(model)
        self.tokenizer = WordHashTokenizer(config.vocab_size, bos=True, eos=True)
        self.architecture = ReferenceArchitecture(
            kind="torch",
            channels=config.channels,
            heads=config.heads,
            layers=config.layers,
            hidden=config.hidden,
            activation=config.activation,
            norm_placement="pre" if config.norm_first else "post",
            norm_eps=float(config.norm_eps),
            final_norm=config.has_final_norm,
            causal=False,
            grid_shape=None,
            extra_tokens=0,
            qkv_bias=True,
        )
        self.layer_weights = [self._layer_weights(layer) for layer in self.model.encoder.layers]
        for weights in self.layer_weights:
            weights.check_shapes(self.architecture)
        final = self.model.encoder.norm
        self.final_norm_weight = None if final is None else detach(final.weight)
        self.final_norm_bias = None if final is None else detach(final.bias)

    @staticmethod
    def _layer_weights(layer: nn.TransformerEncoderLayer) -> LayerWeights:
        attention = layer.self_attn
        q_w, k_w, v_w = attention.in_proj_weight.chunk(3, dim=0)
        q_b, k_b, v_b = attention.in_proj_bias.chunk(3, dim=0)
        return LayerWeights({
            "attention.q.weight": detach(q_w), "attention.q.bias": detach(q_b),
            "attention.k.weight": detach(k_w), "attention.k.bias": detach(k_b),
            "attention.v.weight": detach(v_w), "attention.v.bias": detach(v_b),
            **linear_weights("attention.o", attention.out_proj),
            **linear_weights("mlp.fc1", layer.linear1),
            **linear_weights("mlp.fc2", layer.linear2),
            **norm_weights("norm_attention", layer.norm1),
            **norm_weights("norm_mlp", layer.norm2),
        })

    def inputs_from_text(self, sentences: list[str], max_length: int = 128) -> dict[str, Any]:
        """Word-hash tokenization (``[CLS] .. [SEP]``, right padding)."""
        max_length = min(max_length, self.model.config.max_positions)
        return self.tokenizer(sentences, max_length=max_length)

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L`` as a differentiable function of ``u0`` (:meth:`Reference.propagate`)."""
        mask = inputs.get("attention_mask")
        padding = None if mask is None else ~mask.to(torch.bool)
        state = u0
        for layer in self.model.encoder.layers:
            state = layer(state, src_key_padding_mask=padding)
        return state

    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """Run the layers one by one, recording states and each layer's attention map."""
        input_ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        padding = None if mask is None else ~mask.to(torch.bool)
        hidden_states: list[torch.Tensor] = []
        attentions: list[torch.Tensor] = []
        with torch.no_grad():
            state = self.model.embed(input_ids)
            hidden_states.append(state)
            for layer in self.model.encoder.layers:
                attention_input = layer.norm1(state) if layer.norm_first else state
                _, weights = layer.self_attn(
                    attention_input,
                    attention_input,
                    attention_input,
                    key_padding_mask=padding,
                    need_weights=True,
                    average_attn_weights=False,
                )
                attentions.append(weights)
                state = layer(state, src_key_padding_mask=padding)
                hidden_states.append(state)
            final = self.model.encoder.norm
            final_state = state if final is None else final(state)
        return ReferenceRun(
            embeddings=hidden_states[0],
            mask=mask,
            hidden_states=hidden_states,
            attentions=attentions,
            final_state=final_state,
        )


def torch_reference(placement: str = "post", activation: str = "gelu") -> TorchEncoderReference:
    """The ``torch`` reference with ``'pre'`` or ``'post'`` norm placement."""
    if placement not in ("pre", "post"):
        raise ValueError(f"placement must be 'pre' or 'post', got {placement!r}")
    config = TorchEncoderConfig(norm_first=placement == "pre", activation=activation)
    suffix = "" if activation == "gelu" else f":{activation}"
    return TorchEncoderReference(config, name=f"torch:{placement}{suffix}")
