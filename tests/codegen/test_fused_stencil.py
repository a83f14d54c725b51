"""The ``Stencil`` runtime blocks as one kernel of taps (issue 12, "make it fast"; issue 24:
integer numerators over one denominator, the 2-D ghosts built in one allocation).

Every boundary × accuracy 2…8 × derivative × 1-D/2-D × padded/unpadded batch agrees in
float64 with the independent NumPy oracle (:func:`pdelang.interpreters.numpy_oracle.
apply_stencil`) and with the per-offset formula the blocks used before (ghosts per axis,
one shifted copy per offset accumulated from zeros, the scale multiplied afterwards); a
scale folded into the kernel is differentiable (gradcheck); a constant field gives exactly
zero under the 3-point stencils; and the generated steppers print ``D * laplace(u)`` as one
call with the scale folded in, the weights as exact numerators over ``c * H**k``.
"""

from __future__ import annotations

import importlib
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pdelang.compiler.analysis.stencils import centred_stencil
from pdelang.compiler.codegen import runtime as R
from pdelang.compiler.discrete import ir as D
from pdelang.interpreters.numpy_oracle import apply_stencil

from codegen_helpers import build, module_of

PACKAGE = "pdelang.compiler.codegen.runtime"
SPACING = 0.3
GRID_2D = (13, 11)
LENGTH_1D = 23


def runtime(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def stencil_module(dims: int, boundary: str, monkeypatch, extra_tokens: int):
    """The Stencil block of ``dims`` with ``boundary``'s ghost rules patched in."""
    module = runtime(f"stencil_{dims}d" + ("_copy" if boundary == "copy" else ""))
    ghosts = runtime(f"ghosts_{boundary}")
    if dims == 1:
        monkeypatch.setattr(module, "with_ghosts", ghosts.with_ghosts)
    else:  # the 2-D blocks build their ghosts in one allocation (block ``ghosted``)
        monkeypatch.setattr(runtime("ghosted"), "fill_ghosts", ghosts.fill_ghosts)
    # ragged_ghosts (every boundary's, in stencil_{1,2}d.py) reads the boundary's ghost_value
    monkeypatch.setattr(runtime(f"stencil_{dims}d"), "ghost_value", ghosts.ghost_value)
    monkeypatch.setattr(module, "EXTRA_TOKENS", extra_tokens)
    if dims == 2:
        monkeypatch.setattr(module, "GRID_SHAPE", GRID_2D)
    return module


def printed(stencil: D.DiscreteStencil) -> tuple[tuple[int, ...], float]:
    """(numerators, denominator) as the printer writes them: w_j = n_j / (c·h^k) exactly."""
    common = math.lcm(*(Fraction(w).denominator for w in stencil.weights))
    numerators = tuple(int(Fraction(w) * common) for w in stencil.weights)
    return numerators, common * stencil.spacing ** stencil.derivative


def discrete(derivative: int, accuracy: int, axes: tuple[int, ...]) -> D.DiscreteStencil:
    s = centred_stencil(derivative, accuracy)
    return D.DiscreteStencil("test", derivative, axes, tuple(s.offsets),
                             tuple(s.weights), SPACING, accuracy, s.order)


def per_offset(stencil: D.DiscreteStencil, boundary: str, u: torch.Tensor, extra: int,
               grid_shape, scale: float) -> torch.Tensor:
    """The formula the blocks used before (unpadded batches): per axis, the ghosts, then
    one shifted copy per offset accumulated from zeros; the axes summed; times the scale."""
    with_ghosts = runtime(f"ghosts_{boundary}").with_ghosts
    weights = torch.tensor(stencil.scaled_weights(), dtype=torch.float64)
    radius = stencil.radius
    batch, _, channels = u.shape
    g = u[:, extra:]
    if grid_shape is not None:
        g = g.reshape(batch, *grid_shape, channels)
    total = 0
    for axis in stencil.axes:
        dim = axis + 1
        size = g.shape[dim]
        padded = with_ghosts(g, dim, radius)
        rate = torch.zeros_like(g)
        for offset, weight in zip(stencil.offsets, weights, strict=True):
            rate = rate + weight * padded.narrow(dim, radius + offset, size)
        total = total + rate
    if boundary == "copy":
        hold = runtime(f"hold_border_{1 if grid_shape is None else 2}d").hold_border
        total = hold(total)
    total = total.reshape(batch, -1, channels)
    return scale * torch.nn.functional.pad(total, (0, 0, extra, 0))


CASES_1D = [(derivative, accuracy) for derivative in (1, 2, 3, 4)
            for accuracy in (2, 4, 6, 8)]
CASES_2D = [(derivative, accuracy, axes) for accuracy in (2, 4, 6, 8)
            for derivative, axes in ((2, (0, 1)), (1, (0,)), (2, (1,)), (3, (1,)))]


def check(module, stencil, boundary, dims, extra, padded, seed):
    generator = torch.Generator().manual_seed(seed)
    grid_shape = GRID_2D if dims == 2 else None
    tokens = (GRID_2D[0] * GRID_2D[1] if dims == 2 else LENGTH_1D) + extra
    u = torch.randn(3, tokens, 2, generator=generator, dtype=torch.float64)
    if padded:
        lengths = torch.tensor([[13, 11], [9, 7], [0, 0]]) if dims == 2 \
            else torch.tensor([LENGTH_1D, 17, 0])
    else:
        lengths = None
    module_stencil = module.Stencil(stencil.offsets, *printed(stencil),
                                    tuple(a + 1 for a in stencil.axes))  # as printed
    ctx = SimpleNamespace(lengths=lengths)
    scale = 0.7
    rate = module_stencil(u, ctx, scale=scale)
    unscaled = module_stencil(u, ctx)
    reference = scale * apply_stencil(u.numpy(), stencil, boundary=boundary, extra_tokens=extra,
                                      grid_shape=grid_shape,
                                      lengths=None if lengths is None else lengths.numpy())
    size = float(np.abs(stencil.scaled_weights()).sum()) * float(u.abs().max())
    tolerance = 1e-12 * size
    assert rate.shape == u.shape and rate.dtype == torch.float64
    np.testing.assert_allclose(rate.numpy(), reference, rtol=0, atol=tolerance)
    np.testing.assert_allclose((scale * unscaled).numpy(), reference, rtol=0, atol=tolerance)
    if not padded:
        old = per_offset(stencil, boundary, u, extra, grid_shape, scale)
        torch.testing.assert_close(rate, old, rtol=0, atol=tolerance)
    else:  # a padded batch: each sequence is its own domain; padding gets zero rate
        for b in range(2):
            n = tuple(int(x) for x in lengths[b].reshape(-1))
            if dims == 1:
                alone = u[b:b + 1, :extra + n[0]]
            else:
                grid = u[b:b + 1, extra:].reshape(1, *GRID_2D, 2)[:, :n[0], :n[1]]
                alone = torch.cat([u[b:b + 1, :extra], grid.reshape(1, -1, 2)], dim=1)
            if n[0] == tokens - extra or (dims == 2 and n == GRID_2D):
                expected = module_stencil(alone, SimpleNamespace(lengths=None), scale=scale)
                torch.testing.assert_close(rate[b:b + 1], expected, rtol=0, atol=tolerance)
        assert not rate[2].any()  # a sequence without grid tokens


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
@pytest.mark.parametrize("derivative,accuracy", CASES_1D)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_stencil_1d_agrees_with_the_reference(boundary, derivative, accuracy, padded,
                                              monkeypatch):
    extra = accuracy % 4 // 2  # one extra token (a CLS token) in half of the cases
    module = stencil_module(1, boundary, monkeypatch, extra)
    check(module, discrete(derivative, accuracy, (0,)), boundary, 1, extra, padded,
          seed=derivative * 10 + accuracy)


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
@pytest.mark.parametrize("derivative,accuracy,axes", CASES_2D)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_stencil_2d_agrees_with_the_reference(boundary, derivative, accuracy, axes, padded,
                                              monkeypatch):
    extra = accuracy % 4 // 2
    module = stencil_module(2, boundary, monkeypatch, extra)
    check(module, discrete(derivative, accuracy, axes), boundary, 2, extra, padded,
          seed=derivative * 10 + accuracy + 100 * len(axes))


@pytest.mark.parametrize("dims", [1, 2])
def test_the_taps_are_integer_numerators_with_the_centre_last(dims, monkeypatch):
    module = stencil_module(dims, "periodic", monkeypatch, 0)
    stencil = module.Stencil((-1, 0, 1), (1, -2, 1), 1.0, (1, 2) if dims == 2 else (1,))
    if dims == 1:
        assert stencil.taps == ((-1, 1), (1, 1), (0, -2))
    else:  # the axes' centre taps merged: 1 + 1 + 1 + 1 − 4 = 0 exactly on a constant
        assert stencil.taps == (((-1, 0), 1), ((1, 0), 1), ((0, -1), 1), ((0, 1), 1),
                                ((0, 0), -4))
    first = module.Stencil((-1, 0, 1), (-1, 0, 1), 2.0, (1,))
    # a zero numerator is no tap (2-D taps carry one offset per axis they act along)
    assert first.taps == (((-1, -1), (1, 1)) if dims == 1 else (((-1,), -1), ((1,), 1)))
    assert first.weights == (-0.5, 0.0, 0.5)  # w_j = n_j / d, for the implicit symbols


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_constant_field_gives_exactly_zero(boundary, dims, dtype, monkeypatch):
    """The 3-point stencils annihilate constants exactly in floating point, scale folded
    in or not (the integer-weighted sum is formed before the scale: a + a − 2a = 0)."""
    module = stencil_module(dims, boundary, monkeypatch, 0)
    h = 0.09817477042468103
    tokens = GRID_2D[0] * GRID_2D[1] if dims == 2 else LENGTH_1D
    u = torch.full((2, tokens, 3), 0.37123456789, dtype=dtype)
    ctx = SimpleNamespace(lengths=None)
    # as printed: (1, -2, 1) / H**2 and (-1, 0, 1) / (2 * H)
    for weights, over in (((1, -2, 1), h**2), ((-1, 0, 1), 2 * h)):
        stencil = module.Stencil((-1, 0, 1), weights, over, (1, 2) if dims == 2 else (1,))
        rate = stencil(u, ctx, scale=torch.tensor(0.0123, dtype=dtype))
        if boundary != "dirichlet":  # dirichlet: zero beyond the ends, not a constant
            assert not rate.any()
        else:
            assert not rate.reshape(2, *(GRID_2D if dims == 2 else (tokens,)), 3)[
                (slice(None),) + (slice(1, -1),) * dims].any()


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
@pytest.mark.parametrize("dims,padded", [(1, False), (1, True), (2, False), (2, True)])
def test_gradcheck_through_a_learnable_scale(boundary, dims, padded, monkeypatch):
    module = stencil_module(dims, boundary, monkeypatch, 0)
    if dims == 2:
        monkeypatch.setattr(module, "GRID_SHAPE", (5, 6))
    tokens = 30 if dims == 2 else 9
    s = centred_stencil(2, 4)
    weights = tuple(float(w) / SPACING ** 2 for w in s.weights)
    stencil = module.Stencil(tuple(s.offsets), weights, 1.0, (1, 2) if dims == 2 else (1,))
    lengths = None
    if padded:
        lengths = torch.tensor([[5, 6], [4, 3]]) if dims == 2 else torch.tensor([9, 6])
    ctx = SimpleNamespace(lengths=lengths)
    generator = torch.Generator().manual_seed(3)
    u = torch.randn(2, tokens, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    D = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, d: stencil(x, ctx, scale=d), (u, D))
    assert torch.autograd.gradgradcheck(lambda x, d: stencil(x, ctx, scale=d), (u, D))


def test_the_generated_step_folds_a_learnable_coefficient_and_trains():
    """``D * laplace(u)`` prints as one call with D folded into the kernel; with D learnable
    its gradient is the one of the unfolded product."""
    stepper_class = build("heat1d", ["parameters.D={value: 0.5, learnable: true}"])
    source = open(module_of(stepper_class).__file__, encoding="utf-8").read()
    assert "return self.laplace(u, ctx, scale=p.D)" in source
    stepper = stepper_class().double()
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 64, 1, generator=generator, dtype=torch.float64)
    layer = stepper.layers[0]
    ctx = module_of(stepper_class).Context(u, None, record=False)
    folded = layer.laplace(u, ctx, scale=stepper.shared.D)
    (grad_folded,) = torch.autograd.grad(folded.square().sum(), stepper.shared.D)
    unfolded = stepper.shared.D * layer.laplace(u, ctx)
    (grad_unfolded,) = torch.autograd.grad(unfolded.square().sum(), stepper.shared.D)
    torch.testing.assert_close(folded, unfolded, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(grad_folded, grad_unfolded, rtol=1e-12, atol=0)
