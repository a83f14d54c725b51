"""Shared helpers for the code-generation tests.

Everything here compiles specs with the *relative* path ``specs/<name>.yaml`` from the
repository root (the generated header records the path as given), and builds steppers with
``pdelang.build`` so each test runs the generated code itself.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))


@contextmanager
def in_repo():
    """Run the body with the repository root as the working directory."""
    old = os.getcwd()
    os.chdir(REPO)
    try:
        yield REPO
    finally:
        os.chdir(old)


def spec_path(name: str) -> str:
    return f"specs/{name}.yaml"


def build(name_or_text: str, overrides=(), *, tmp_path: Path | None = None):
    """The generated Stepper class of ``specs/<name>.yaml`` (or of YAML text, written to
    ``tmp_path``) with ``--set`` overrides."""
    import pdelang

    if "\n" in name_or_text:
        assert tmp_path is not None, "inline spec text needs tmp_path"
        path = tmp_path / "spec.yaml"
        path.write_text(name_or_text)
        return pdelang.build(str(path), overrides=list(overrides))
    with in_repo():
        return pdelang.build(spec_path(name_or_text), overrides=list(overrides))


def module_of(stepper_class):
    """The generated module (for ``Context`` and the other module-level helpers)."""
    return sys.modules[stepper_class.__module__]


def context(stepper_class, u, mask=None, record=False):
    return module_of(stepper_class).Context(u, mask, record=record)


# ----------------------------------------------------------------- reference Transformer
def torch_encoder(*, channels=384, heads=12, hidden=1536, layers=6, norm_first=False,
                  eps=1e-12, std=0.05, seed=0):
    """A stack of ``nn.TransformerEncoderLayer`` with every parameter drawn independently
    (weights N(0, std²), biases N(0, std²), LayerNorm scales 1 + N(0, std²))."""
    import torch
    from torch import nn

    layer = nn.TransformerEncoderLayer(channels, heads, hidden, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=norm_first,
                                       layer_norm_eps=eps)
    encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * std
            param.copy_(1.0 + noise if ".norm" in name and name.endswith("weight") else noise)
    return encoder.eval()


def copy_encoder_weights(stepper, encoder) -> None:
    """Copy a torch encoder stack into a generated stepper (layer ℓ ← encoder.layers[ℓ])."""
    import torch

    assert len(stepper.layers) == len(encoder.layers)
    with torch.no_grad():
        for ours, theirs in zip(stepper.layers, encoder.layers):
            attention = ours.interaction_attention
            channels = attention.q.weight.shape[0]
            w, b = theirs.self_attn.in_proj_weight, theirs.self_attn.in_proj_bias
            for i, lin in enumerate((attention.q, attention.k, attention.v)):
                lin.weight.copy_(w[i * channels:(i + 1) * channels])
                lin.bias.copy_(b[i * channels:(i + 1) * channels])
            attention.o.weight.copy_(theirs.self_attn.out_proj.weight)
            attention.o.bias.copy_(theirs.self_attn.out_proj.bias)
            mlp = ours.reaction_mlp
            mlp.fc1.weight.copy_(theirs.linear1.weight)
            mlp.fc1.bias.copy_(theirs.linear1.bias)
            mlp.fc2.weight.copy_(theirs.linear2.weight)
            mlp.fc2.bias.copy_(theirs.linear2.bias)
            for norm, ref in ((ours.norm_interaction, theirs.norm1),
                              (ours.norm_reaction, theirs.norm2)):
                norm.weight.copy_(ref.weight)
                norm.bias.copy_(ref.bias)


def rel_error(actual, expected) -> float:
    """max |actual − expected| / max |expected|."""
    return float((actual - expected).abs().max() / expected.abs().max())
