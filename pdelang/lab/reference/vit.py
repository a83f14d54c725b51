"""ViT references: local ViTModel dirs and a small random ViT on scikit-learn's 8x8 digits.

ViT is pre-LN with a final LayerNorm::

    v  = u + A(LN_att(u))          # layernorm_before
    u' = v + F(LN_mlp(v))          # layernorm_after
    final_state = LN_final(u_L)    # model.layernorm

Token 0 is the CLS token (``extra_tokens = 1``); tokens ``1 ..`` are the patches on a
``(rows, cols)`` grid in row-major order (the patch convolution's output is flattened row by
row).  Hugging Face's ``output_hidden_states`` for ViT holds the layer outputs *before*
``model.layernorm`` (the final norm only enters ``last_hidden_state``); the adapter captures the
states with forward hooks anyway and applies the final norm only to ``final_state``.

Images in ``[0, 1]`` are normalised as ViTImageProcessor does by default,
``x ↦ (x - mean) / std`` (mean = std = 0.5, or the values of a ``preprocessor_config.json``),
resized bilinearly to the model's image size and repeated over channels if needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pdelang.lab.reference.base import (
    LayerWeights,
    Reference,
    ReferenceArchitecture,
    ReferenceRun,
    detach,
    linear_weights,
    map_activation,
    norm_weights,
    prepare_model,
    propagate_with_hooks,
    quiet_transformers,
    run_with_hooks,
    set_offline,
)

#: The small configuration of ``hf-config:vit``: 8x8 single-channel images, 2x2 patches.
SMALL_VIT_CONFIG: dict[str, Any] = {
    "image_size": 8,
    "patch_size": 2,
    "num_channels": 1,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "intermediate_size": 256,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
    # 0.15 instead of the default 0.02: with 0.02 every attention map is nearly uniform.
    "initializer_range": 0.15,
}


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _per_channel(values: float | Sequence[float] | None, channels: int) -> torch.Tensor:
    """A ``(channels,)`` float tensor from a scalar or a list (``None`` -> 0.5 everywhere)."""
    if values is None:
        values = 0.5
    if isinstance(values, (int, float)):
        values = [float(values)] * channels
    if len(values) != channels:
        raise ValueError(f"expected {channels} per-channel values, got {list(values)}")
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def _attr(obj: Any, *paths: str) -> Any:
    """The first dotted attribute path of ``paths`` that exists on ``obj``."""
    for path in paths:
        current = obj
        try:
            for part in path.split("."):
                current = getattr(current, part)
        except AttributeError:
            continue
        return current
    raise AttributeError(f"{type(obj).__name__} has none of {paths}")


def _vit_layers(model: Any) -> Any:
    """The layer list (``model.layers`` in transformers 5, ``model.encoder.layer`` in 4)."""
    return _attr(model, "layers", "encoder.layer")


class ViTReference(Reference):
    """A Hugging Face ``ViTModel`` as a reference (pre-LN, CLS + patch grid, final norm)."""

    modality = "image"

    def __init__(
        self,
        model: Any,
        name: str,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        config = model.config
        self.name = name
        self.model = prepare_model(model)
        self.image_size = _pair(config.image_size)
        self.patch_size = _pair(config.patch_size)
        self.num_channels = int(config.num_channels)
        channels = self.num_channels
        self.image_mean = _per_channel(image_mean, channels)
        self.image_std = _per_channel(image_std, channels)
        grid = (
            self.image_size[0] // self.patch_size[0],
            self.image_size[1] // self.patch_size[1],
        )
        self.architecture = ReferenceArchitecture(
            kind="vit",
            channels=config.hidden_size,
            heads=config.num_attention_heads,
            layers=config.num_hidden_layers,
            hidden=config.intermediate_size,
            activation=map_activation(config.hidden_act),
            norm_placement="pre",
            norm_eps=float(config.layer_norm_eps),
            final_norm=True,
            causal=False,
            grid_shape=grid,
            extra_tokens=1,
            qkv_bias=bool(getattr(config, "qkv_bias", True)),
        )
        self.layer_weights = [self._layer_weights(layer) for layer in _vit_layers(self.model)]
        for weights in self.layer_weights:
            weights.check_shapes(self.architecture)
        self.final_norm_weight = detach(self.model.layernorm.weight)
        self.final_norm_bias = detach(self.model.layernorm.bias)

    @staticmethod
    def _layer_weights(layer: Any) -> LayerWeights:
        query = _attr(layer, "attention.q_proj", "attention.attention.query")
        key = _attr(layer, "attention.k_proj", "attention.attention.key")
        value = _attr(layer, "attention.v_proj", "attention.attention.value")
        out = _attr(layer, "attention.o_proj", "attention.output.dense")
        fc1 = _attr(layer, "mlp.fc1", "intermediate.dense")
        fc2 = _attr(layer, "mlp.fc2", "output.dense")
        return LayerWeights({
            **linear_weights("attention.q", query),
            **linear_weights("attention.k", key),
            **linear_weights("attention.v", value),
            **linear_weights("attention.o", out),
            **linear_weights("mlp.fc1", fc1),
            **linear_weights("mlp.fc2", fc2),
            **norm_weights("norm_attention", layer.layernorm_before),
            **norm_weights("norm_mlp", layer.layernorm_after),
        })

    def inputs_from_images(self, images: torch.Tensor) -> dict[str, Any]:
        """``{'pixel_values': (B, channels, H, W)}`` from images in ``[0, 1]``.

        Accepts ``(B, H, W)`` or ``(B, c, H, W)``; single-channel images are repeated to the
        model's channel count and resized bilinearly to its image size, then normalised.
        """
        pixels = torch.as_tensor(images, dtype=torch.float32)
        if pixels.ndim == 3:
            pixels = pixels.unsqueeze(1)
        if pixels.ndim != 4:
            raise ValueError(f"images must be (B, H, W) or (B, C, H, W), got {tuple(pixels.shape)}")
        if pixels.shape[1] != self.num_channels:
            if pixels.shape[1] != 1:
                raise ValueError(
                    f"images have {pixels.shape[1]} channels, the model takes {self.num_channels}"
                )
            pixels = pixels.expand(-1, self.num_channels, -1, -1)
        if tuple(pixels.shape[-2:]) != self.image_size:
            pixels = F.interpolate(
                pixels, size=self.image_size, mode="bilinear", align_corners=False
            )
        mean = self.image_mean.view(1, -1, 1, 1)
        std = self.image_std.view(1, -1, 1, 1)
        return {"pixel_values": ((pixels - mean) / std).contiguous()}

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L`` as a differentiable function of ``u0`` (:meth:`Reference.propagate`)."""
        return propagate_with_hooks(_vit_layers(self.model), lambda: self.model(
            pixel_values=inputs["pixel_values"], return_dict=True), u0)

    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """Run ViT; states from hooks on the layers (before ``layernorm``), eager maps."""
        return run_with_hooks(
            self,
            _vit_layers(self.model),
            lambda: self.model(
                pixel_values=inputs["pixel_values"], output_attentions=True, return_dict=True
            ),
            None,
        )


def load_vit_dir(path: str | Path, name: str | None = None) -> ViTReference:
    """A local Hugging Face directory holding a ``ViTModel`` (never downloads)."""
    set_offline()
    from transformers import ViTModel  # lazy: transformers

    path = Path(path)
    with quiet_transformers():
        model = ViTModel.from_pretrained(
            str(path), attn_implementation="eager", local_files_only=True, add_pooling_layer=False
        )
    mean = std = None
    processor_file = path / "preprocessor_config.json"
    if processor_file.exists():
        processor = json.loads(processor_file.read_text())
        if processor.get("do_normalize", True):
            mean, std = processor.get("image_mean"), processor.get("image_std")
        else:
            mean = [0.0] * model.config.num_channels
            std = [1.0] * model.config.num_channels
    return ViTReference(model, name or f"hf:{path}", image_mean=mean, image_std=std)


def vit_from_config(**overrides: Any) -> ViTReference:
    """A randomly initialised small ViT (:data:`SMALL_VIT_CONFIG`, ``torch.manual_seed(0)``).

    8x8 single-channel images (scikit-learn digits) with 2x2 patches: a 4x4 grid plus CLS.
    """
    set_offline()
    from transformers import ViTConfig, ViTModel  # lazy: transformers

    settings = {**SMALL_VIT_CONFIG, **overrides}
    config = ViTConfig(**settings, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ViTModel(config, add_pooling_layer=False)
    return ViTReference(model, "hf-config:vit")
