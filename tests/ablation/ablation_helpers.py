"""The stand-in stepper of the ablation tests (a compiled stepper is not needed to test the
tasks, the training loop or the drift tables)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import torch
from torch import nn


class StandInStepper(nn.Module):
    """Pre-norm encoder built from ``nn.TransformerEncoderLayer`` parts, with switchable
    residual connections and normalization, and the compiled steppers' forward signature."""

    STRUCTURE: ClassVar[dict] = {
        "channels": 32, "grid_shape": (4, 4), "extra_tokens": 1, "causal": False,
    }
    LAYERS, HEADS, RESIDUAL, NORM = 2, 4, True, "layernorm"

    def __init__(self):
        super().__init__()
        channels = self.STRUCTURE["channels"]
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(channels, self.HEADS, 4 * channels, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(self.LAYERS)
        )
        for layer in self.layers:
            if self.NORM == "none":
                layer.norm1, layer.norm2 = nn.Identity(), nn.Identity()
            elif self.NORM == "rmsnorm":
                layer.norm1, layer.norm2 = nn.RMSNorm(channels), nn.RMSNorm(channels)

    def forward(self, u, mask=None, *, return_trajectory=False, return_attention=False):
        n = u.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(1) if self.STRUCTURE["causal"] else None
        x, states = u, [u]
        for layer in self.layers:
            h = layer.norm1(x)
            a = layer.self_attn(h, h, h, attn_mask=causal, need_weights=False)[0]
            x = x + a if self.RESIDUAL else a
            f = layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
            x = x + f if self.RESIDUAL else f
            states.append(x)
        return SimpleNamespace(state=x, states=states) if return_trajectory else x


def stepper_class(layers=2, residual=True, norm="layernorm", **structure):
    """A no-argument-constructible stand-in class with the given STRUCTURE overrides."""
    attributes = {"STRUCTURE": {**StandInStepper.STRUCTURE, **structure}, "LAYERS": layers,
                  "RESIDUAL": residual, "NORM": norm}
    return type("Stepper", (StandInStepper,), attributes)


def build_task(task_cls, seed=0, stepper_cls=None, **structure):
    """``task_cls`` around a fresh stand-in (``stepper_cls``, default
    ``stepper_class(**structure)``), every parameter drawn under ``seeded(seed)``."""
    from pdelang.lab.ablation.train import seeded

    with seeded(seed):
        return task_cls((stepper_cls or stepper_class(**structure))())


# A small post-LN encoder on a 4×4 patch grid plus a CLS token: trains on digits in seconds.
TINY_SPEC = """\
pdelang: 1
name: tiny
grid: {axes: [rows, cols], shape: [4, 4], spacing: 1.0, boundary: neumann, extra_tokens: 1}
fields:
  u: {channels: 16}
parameters:
  D: {value: 0.05, learnable: true, positive: true}
terms:
  diffusion: D * laplace(u)
  interaction: attention(u, heads=2)
  reaction: mlp(u, hidden=32, activation=gelu)
equation: dt(u) = diffusion + interaction + reaction
stabilizers:
  residual: true
  norm: {kind: layernorm, placement: post, eps: 1.0e-5, final: false}
time: {span: [0, 2], layers: 2, substeps: 1, scheme: lie,
       split_order: [interaction, reaction, diffusion]}
discretization:
  laplace: {accuracy: 2}
"""


TIMING = {"seconds", "seconds_total", "files", "executor", "resumed"}


def without_timing(value):
    """``value`` less its timing and run fields (the only ones executors, resuming or a
    rerun may change)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value
