"""Glue between specs, generated steppers (torch) and the NumPy oracle.

Everything here works in float64.  The functions build a generated stepper from a spec or a
compilation, give every weight a random, well-scaled value (so that no LayerNorm scale is
1 and no bias is 0 and a swapped tensor cannot go unnoticed), and run the stepper and the
reference on the same state.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import numpy as np

from pdelang.compiler.driver import Compilation, compile_spec
from pdelang.compiler.spec.initial import INIT_HELP, Init, parse_init
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.spec.model import Spec
from pdelang.interpreters.initial_state import (
    grid_tokens,
    initial_state,
    random_state,
)
from pdelang.interpreters.numpy_oracle import NumpyOracle, weights_from_stepper, _context
from pdelang.interpreters.builder import import_source

__all__ = [
    "INIT_HELP",
    "Init",
    "compile_any",
    "grid_tokens",
    "initial_state",
    "parse_init",
    "random_state",
    "randomize_weights",
    "reference_for",
    "reference_stencil_operator",
    "stepper_for",
    "torch_stencil_operator",
]


def compile_any(spec: Compilation | Spec | str | Path, overrides: Iterable[str] = ()
                ) -> Compilation:
    """A compilation from a compilation, a loaded spec, spec YAML text, or a path."""
    if isinstance(spec, Compilation):
        if tuple(overrides):
            raise ValueError("overrides need a spec, not a compilation")
        return spec
    if isinstance(spec, str) and "\n" in spec:
        return compile_spec(load_spec_text(spec, "<generated spec>", overrides))
    return compile_spec(spec, overrides)


def stepper_for(compilation: Compilation, *, seed: int | None = 0, dtype=None):
    """An instance of the generated stepper in float64 (weights randomized unless
    ``seed`` is None)."""
    import torch  # lazy: torch

    module = import_source(compilation.python, compilation.spec.name)
    module.COMPILATION = compilation
    stepper = module.Stepper().to(dtype or torch.float64)
    if seed is not None:
        randomize_weights(stepper, seed)
    return stepper


def randomize_weights(stepper: Any, seed: int = 0) -> Any:
    """Give every parameter of a generated stepper a random, well-scaled value (in place).

    Matrices ``W`` (out × in) get N(0, 1/in); vectors called ``bias`` N(0, 0.1²); norm scales
    1 + N(0, 0.2²); positive scalars (softplus parametrization) keep their value times a
    random factor in [0.8, 1.2]; other scalars are perturbed by N(0, 0.1²)·|value|.
    """
    import torch  # lazy: torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in stepper.named_parameters():
            shape = param.shape
            noise = torch.randn(shape, generator=gen, dtype=torch.float64)
            if param.ndim == 2:
                value = noise / math.sqrt(shape[1])
            elif param.ndim == 1 and name.endswith("bias"):
                value = 0.1 * noise
            elif param.ndim == 1:
                value = 1.0 + 0.2 * noise
            elif name.endswith(".original"):  # θ of a positive parameter softplus(θ)
                current = torch.nn.functional.softplus(param.double())
                target = current * (0.8 + 0.4 * torch.rand((), generator=gen, dtype=torch.float64))
                value = target + torch.log(-torch.expm1(-target))
            else:
                value = param.double() * (1 + 0.1 * noise)
            param.copy_(value.to(param.dtype))
    return stepper


def reference_for(compilation: Compilation, stepper: Any) -> NumpyOracle:
    """The NumPy oracle of a compilation with the stepper's weights."""
    return NumpyOracle(compilation.discrete, weights_from_stepper(stepper))


def torch_stencil_operator(compilation: Compilation, key: str, stepper: Any = None):
    """``apply(u)`` for NumPy ``(B, N, C)`` arrays using the *generated* stencil module of
    stencil ``key`` (layer 0), in float64."""
    import torch  # lazy: torch

    stepper = stepper if stepper is not None else stepper_for(compilation, seed=None)
    module = sys.modules[type(stepper).__module__]  # the generated module (for Context)
    attribute = compilation.discrete.stencils[key].attribute
    layer = stepper.layers[0]
    op = getattr(layer, attribute)

    def apply(u: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(u), dtype=torch.float64)
        m = None if mask is None else torch.as_tensor(mask)
        ctx = module.Context(x, m, record=False)
        with torch.no_grad():
            return op(x, ctx).numpy().copy()

    return apply


def reference_stencil_operator(compilation: Compilation, key: str):
    """``apply(u)`` for NumPy ``(B, N, C)`` arrays with the NumPy oracle's stencil."""
    reference = NumpyOracle(compilation.discrete, {})

    def apply(u: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        ctx = _context(compilation.discrete, np.asarray(u), mask, False)
        return reference.stencil(key, np.asarray(u, dtype=np.float64), ctx)

    return apply
