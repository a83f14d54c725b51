"""Shared helpers of the ``pdelang.lab.testing`` tests (imported as a plain module: the test
directories are not packages, so the name must be unique across the suite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from hypothesis import settings

from pdelang.lab.testing.harness import stepper_for, torch_stencil_operator

REPO = Path(__file__).resolve().parent.parent.parent
SPECS = REPO / "specs"

# u' = (A + B)u with two linear terms of nilpotent weights A = a·e₁e₂ᵀ, B = −b·e₂e₁ᵀ: each
# Euler sub-step of a splitting is then its term's exact flow, so what a time-order study
# measures is the scheme's own order.  Format with the scheme and the substeps n.
NILPOTENT = """\
pdelang: 1
name: nilpotent
grid:
  axes: [x]
  shape: [3]
fields:
  u: {{channels: 2}}
terms:
  a: "linear(u, bias=false)"
  b: "linear(u, bias=false)"
equation: dt(u) = a + b
time:
  span: [0, 1]
  layers: 1
  substeps: {n}
  scheme: {scheme}
"""
NILPOTENT_A = np.array([[0.0, 0.9], [0.0, 0.0]])
NILPOTENT_B = np.array([[0.0, 0.0], [-1.1, 0.0]])
NILPOTENT_U0 = np.array([[[0.3, -0.7], [1.0, 0.2], [-0.4, 0.5]]])  # (1, 3 tokens, 2 channels)

# must match ``CI_MAX_EXAMPLES`` in tests/conftest.py
_CI_MAX_EXAMPLES = 10


def examples(n: int, ci: int | None = None) -> settings:
    """``n`` examples under the ``ci`` profile, proportionally more under ``thorough``
    (settings applied on top of the loaded profile).  ``ci``: fewer examples for the default
    (derandomized) profile only, for a test whose examples are expensive; the longer
    profiles still run their share of ``n``."""
    if ci is not None and settings.default.derandomize:
        return settings(max_examples=ci)
    factor = settings.default.max_examples / _CI_MAX_EXAMPLES
    return settings(max_examples=max(1, round(n * factor)))


def generated_operator_factory(compilation, key: str):
    """``shape -> apply(u)``: the *generated* torch stencil ``key`` on a grid of that shape.

    In 1-D the spec's own stepper works at any length; a 2-D stepper is printed for one
    grid shape, so the discrete model is re-printed with the new shape (the stencil weights
    and the boundary rule are the model's own)."""
    from pdelang.compiler.codegen.printer import print_module

    model = compilation.discrete
    if len(model.axes) == 1:
        op = torch_stencil_operator(compilation, key)
        return lambda shape: op
    cache: dict = {}

    def factory(shape):
        shape = tuple(shape)
        if shape not in cache:
            resized = dataclasses.replace(model, shape=shape)
            comp = dataclasses.replace(compilation, discrete=resized,
                                       python=print_module(resized))
            cache[shape] = torch_stencil_operator(comp, key, stepper_for(comp, seed=None))
        return cache[shape]

    return factory
