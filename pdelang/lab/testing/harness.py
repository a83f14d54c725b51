"""Glue between specs, generated steppers (torch) and the NumPy reference.

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
from pdelang.errors import PdelangError
from pdelang.compiler.spec.initial import INIT_HELP, Init, parse_init
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.spec.model import Spec
from pdelang.interpreters.numpy_oracle import NumpyReference, weights_from_stepper

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
    import torch

    from pdelang.interpreters.builder import import_source

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
    import torch

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


def reference_for(compilation: Compilation, stepper: Any) -> NumpyReference:
    """The NumPy reference of a compilation with the stepper's weights."""
    return NumpyReference(compilation.discrete, weights_from_stepper(stepper))


def grid_tokens(model, length: int | None = None) -> int:
    """Tokens of a state: extra tokens plus the grid (``length`` grid tokens in 1-D)."""
    if len(model.axes) == 2:
        rows, cols = model.shape
        return model.extra_tokens + rows * cols
    if length is None:
        length = model.shape[0] if model.shape else 16
    return model.extra_tokens + length


def random_state(model, batch: int = 2, length: int | None = None, seed: int = 0,
                 scale: float = 0.5) -> np.ndarray:
    """A random float64 state ``(B, N, C)`` with entries N(0, scale²)."""
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((batch, grid_tokens(model, length), model.channels))


def torch_stencil_operator(compilation: Compilation, key: str, stepper: Any = None):
    """``apply(u)`` for NumPy ``(B, N, C)`` arrays using the *generated* stencil module of
    stencil ``key`` (layer 0), in float64."""
    import torch

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
    """``apply(u)`` for NumPy ``(B, N, C)`` arrays with the NumPy reference's stencil."""
    from pdelang.interpreters.numpy_oracle import _context

    reference = NumpyReference(compilation.discrete, {})

    def apply(u: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        ctx = _context(compilation.discrete, np.asarray(u), mask, False)
        return reference.stencil(key, np.asarray(u, dtype=np.float64), ctx)

    return apply


# ----------------------------------------------------------------------------- initial states
def _bump_profile(n: int) -> np.ndarray:
    """exp(1 − 1/(1 − r²)) for |r| < 1, 0 elsewhere; r = (i − centre)/(n/4): C^∞, height 1
    at the centre, zero on the outer quarters of the axis."""
    centre, half = (n - 1) / 2, max(n / 4, 1.0)
    r = (np.arange(n) - centre) / half
    out = np.zeros(n)
    inside = np.abs(r) < 1
    out[inside] = np.exp(1 - 1 / (1 - r[inside] ** 2))
    return out


def _load_state(init: Init, model) -> np.ndarray:
    """The tensor of an ``init: FILE.pt``; every problem with it is located where the file
    was named (the spec's ``init:`` or ``--init``)."""
    import torch

    def fail(message: str, suggestion: str | None = None) -> PdelangError:
        return PdelangError(message, init.where, suggestion)

    try:
        state = torch.load(init.path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise fail(f"no such initial-state file: {init.path}", INIT_HELP) from None
    except Exception as exc:  # torch raises many kinds for a bad file
        raise fail(f"cannot read the initial state {init.path}: {exc}",
                   "a (B, N, C) tensor saved by torch, e.g. from pdelang run --save") from None
    if isinstance(state, dict):
        state = state.get("u", next(iter(state.values()), None))
    if not isinstance(state, torch.Tensor) or state.dim() != 3 \
            or state.shape[-1] != model.channels:
        shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
        raise fail(f"the initial state must be a (B, N, {model.channels}) tensor, got {shape}")
    if state.shape[0] < 1:
        raise fail("the initial state has an empty batch")
    if state.is_complex() or not state.is_floating_point():
        raise fail(f"the initial state must hold real floating-point numbers, got "
                   f"{state.dtype}")
    tokens, extra = state.shape[1], model.extra_tokens
    if len(model.axes) == 2:
        rows, cols = model.shape
        if tokens != rows * cols + extra:
            raise fail(f"the initial state has {tokens} tokens; the {rows}×{cols} grid "
                       f"with {extra} extra token(s) needs {rows * cols + extra}")
    elif model.shape and tokens - extra != model.shape[0]:  # a 1-D grid of a given length
        length = model.shape[0]
        raise fail(f"the initial state has {tokens - extra} grid token(s); the spec's "
                   f"grid.shape [{length}] needs {length}"
                   + (f" (plus {extra} extra token(s))" if extra else ""),
                   f"save a state with {length + extra} tokens, or make the grid fit the "
                   f"file: --set grid.shape=[{tokens - extra}]")
    elif tokens - extra < max(1, model.stencil_radius + 1):
        raise fail(f"the initial state has {tokens - extra} grid token(s); the "
                   f"stencils need more than {model.stencil_radius}")
    array = state.detach().double().numpy().copy()
    if not np.isfinite(array).all():
        raise fail(f"the initial state in {init.path} contains NaN or Inf")
    return array


def initial_state(model, init: Init | str, *, batch: int = 2, length: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """A float64 state ``(B, N, C)`` for the discrete ``model`` from an initial condition
    (``length``: grid tokens in 1-D, default the grid's shape or 16; a file sets its own
    batch and length).  ``random`` draws exactly what :func:`random_state` draws."""
    if isinstance(init, str):
        init = parse_init(init)
    if init.kind == "file":
        return _load_state(init, model)
    if init.kind == "random":
        return random_state(model, batch, length, seed=seed, scale=init.sigma)
    shape = (batch, grid_tokens(model, length), model.channels)
    if init.kind == "uniform":
        rng = np.random.default_rng(seed)
        return rng.uniform(init.low, init.high, shape)
    # bump: the same profile in every channel, zero off the grid
    u = np.zeros(shape)
    if len(model.axes) == 2:
        rows, cols = model.shape
        profile = np.outer(_bump_profile(rows), _bump_profile(cols)).reshape(-1)
    else:
        profile = _bump_profile(shape[1] - model.extra_tokens)
    u[:, model.extra_tokens:, :] = init.height * profile[None, :, None]
    return u
