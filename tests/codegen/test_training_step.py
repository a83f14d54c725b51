"""One training step through every spec's generated stepper (parametrized over specs/*.yaml).

Random input, MSE loss to a random target, backward, one AdamW step: the loss is finite,
every learnable parameter gets a finite gradient, and every parameter changes.  Specs are
shrunk where needed to stay fast (wide specs run at the smallest multiple of their heads
≥ 32 channels, e.g. 48 for 12 heads; large 2-D grids at 8 × 8); a spec whose coefficients
are all constants (heat1d, reaction_diffusion2d) makes them learnable so there is something
to train.

Every gradient must also be non-zero.  One spec needs care for that, because of its dynamics,
not a bug: ``no_residual`` replaces the state at every sub-step (u ← Δt f(u)), and its last
sub-step u ← Δt·D·Δu maps a nearly token-constant field to its small Laplacian; attention
without a residual makes the tokens nearly equal (rank collapse, Dong et al. 2021), so the
state shrinks by orders of magnitude per layer and is exactly zero after four layers, and the
gradients of the first layers underflow (~1e-37).  Specs without a residual are therefore
trained with two layers (same Δt), and ``test_no_residual_collapses`` pins the collapse of the
full six-layer spec.

Two gradients are exactly zero in exact arithmetic, and are checked to be zero up to roundoff
instead (their float32 values, ~1e-9 of the largest gradient, scale with the dtype's
epsilon: ~1e-18 in float64): the attention key bias b_K (it adds q(x)·b_K to every score of
query x, a constant per softmax row, which the softmax and the Sinkhorn kernel ignore), and,
without a residual, the bias of the post-LN after the reaction sub-step (the next sub-step,
u ← Δt·D·Δu, maps that token-constant bias to Δb = 0).
"""

from __future__ import annotations

import math

import pytest
from pdelang.interpreters.builder import structure_of
import torch

from codegen_helpers import SPECS, build, in_repo, spec_path


def small_overrides(name: str) -> list[str]:
    from pdelang.compiler.driver import compile_spec

    with in_repo():
        model = compile_spec(spec_path(name)).discrete
    overrides = []
    heads = [int(m.options["heads"]) for m in model.modules if m.op == "attention"]
    if model.channels > 64:
        step = math.lcm(*heads) if heads else 1
        overrides.append(f"fields.u.channels={step * max(1, math.ceil(32 / step))}")
    if model.shape and len(model.axes) == 2 and model.shape[0] * model.shape[1] > 64:
        overrides.append("grid.shape=[8, 8]")
    if not model.residual and model.layers > 2:
        overrides += ["time.layers=2", f"time.span=[0, {2 * model.substeps * model.dt!r}]"]
    if not any(p.learnable for p in model.parameters):
        for p in model.parameters:
            overrides.append(f"parameters.{p.name}={{value: {p.value!r}, learnable: true, "
                             f"positive: {str(p.value > 0).lower()}, "
                             f"per_layer: {str(p.per_layer).lower()}}}")
    return overrides


def exactly_zero_gradient(key: str, structure: dict) -> bool:
    """Whether the exact gradient of ``key`` is 0 for any loss (see the module docstring)."""
    if key.endswith("attention.k.bias"):
        return True
    order = structure["split_order"]
    # without a residual, a post-LN bias followed by the diffusion sub-step u ← Δt·D·Δu
    # (Δ of a constant is 0 for these boundaries)
    return (not structure["residual"] and key.endswith("norm_reaction.bias")
            and structure["boundary"] in ("neumann", "periodic")
            and order[order.index("reaction") + 1:order.index("reaction") + 2] == ["diffusion"])


def token_spread(state: torch.Tensor) -> float:
    return float((state - state.mean(dim=1, keepdim=True)).abs().max())


@pytest.mark.parametrize("name", SPECS)
def test_one_training_step(name):
    stepper_class = build(name, small_overrides(name))
    structure = structure_of(stepper_class)
    assert structure["channels"] <= 64
    torch.manual_seed(0)
    stepper = stepper_class().train()
    grid = structure["grid_shape"]
    tokens = grid[0] * grid[1] + structure["extra_tokens"] if grid else 16
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(2, tokens, structure["channels"], generator=generator)
    target = torch.randn(2, tokens, structure["channels"], generator=generator)

    params = dict(stepper.named_parameters())
    assert params, f"{name}: no learnable parameters"
    before = {k: v.detach().clone() for k, v in params.items()}
    optimizer = torch.optim.AdamW(stepper.parameters(), lr=1e-3)
    optimizer.zero_grad()
    out = stepper(u, return_trajectory=True)
    assert out.state.shape == u.shape
    loss = torch.nn.functional.mse_loss(out.state, target)
    assert torch.isfinite(loss), f"{name}: loss {loss}"
    loss.backward()
    largest = max(float(p.grad.abs().max()) for p in params.values() if p.grad is not None)
    for key, param in params.items():
        assert param.grad is not None, f"{name}: no gradient for {key}"
        assert bool(torch.isfinite(param.grad).all()), f"{name}: non-finite gradient for {key}"
        if exactly_zero_gradient(key, structure):
            assert float(param.grad.abs().max()) <= 1e-4 * largest, f"{name}: {key}"
        else:
            assert bool((param.grad != 0).any()), f"{name}: zero gradient for {key}"
    optimizer.step()
    for key, param in params.items():
        if not exactly_zero_gradient(key, structure):  # Adam would move those on roundoff
            assert not torch.equal(param.detach(), before[key]), f"{name}: {key} did not change"
    with torch.no_grad():
        assert torch.isfinite(stepper(u)).all()


def test_no_residual_collapses():
    """The six-layer no_residual spec collapses to an exactly zero state; master does not."""
    spreads = {}
    for name in ("no_residual", "master"):
        stepper_class = build(name, ["fields.u.channels=48"])
        torch.manual_seed(0)
        u = torch.randn(2, 16, structure_of(stepper_class)["channels"])
        with torch.no_grad():
            states = stepper_class()(u, return_trajectory=True).states
        spreads[name] = [token_spread(s) for s in states]
    assert spreads["no_residual"][4:] == [0.0, 0.0, 0.0]  # identical tokens (in fact all zero)
    assert min(spreads["no_residual"][:3]) > 0.0
    assert spreads["master"][-1] > 0.1
