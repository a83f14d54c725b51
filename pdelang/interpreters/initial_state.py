"""The initial state a stepper integrates, from a spec's ``init:`` or ``--init``
(:mod:`pdelang.compiler.spec.initial` parses it): ``random``, ``uniform``, ``bump`` or a
``.pt`` file, as a float64 ``(B, N, C)`` array for the discrete model's grid.  Used by
``pdelang run`` and ``verify`` and by the property tests."""

from __future__ import annotations

import numpy as np

from pdelang.compiler.spec.initial import INIT_HELP, Init, parse_init
from pdelang.errors import PdelangError

__all__ = ["grid_tokens", "initial_state", "random_state"]


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
    import torch  # lazy: torch

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
