"""``Stepper.rate(t, u)``: the vector field of the continuous-depth limit.

An explicit Euler step is ``u + Δt F(u)``, so for every spec whose refinements converge to an
ODE, ``(step(u) − u) / Δt`` must equal ``rate(t0, u)``: the rate is checked against the
step program's own interpretation, for every shipped ODE spec."""

from __future__ import annotations

import pytest
import torch

from pdelang.interpreters.builder import structure_of
from pdelang.interpreters.builder import build_module

ODE_SPECS = ["vit2d", "pre_ln", "gpt2_preln", "no_norm", "heat1d", "reaction_diffusion2d",
             "allen_cahn_imex", "heat1d_implicit", "conv_mixer", "macaron"]
NOT_ODE = {"master": "post-norm", "bert_postln": "post-norm", "no_residual": "residual"}


def _euler(name: str, *extra: str):
    return build_module(f"specs/{name}.yaml", ["time.scheme=euler", "time.implicit=[]",
                                               "stabilizers.norm.final=false", *extra])


def _state(stepper, batch: int = 2, seed: int = 0) -> torch.Tensor:
    structure = structure_of(stepper)
    shape = structure["grid_shape"]
    grid = shape[0] * shape[1] if shape else 12
    tokens = structure["extra_tokens"] + grid
    generator = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(batch, tokens, structure["channels"], generator=generator,
                             dtype=torch.float64)


@pytest.mark.parametrize("name", ODE_SPECS)
def test_rate_is_the_euler_steps_increment(name):
    module = _euler(name)
    torch.manual_seed(0)
    stepper = module.Stepper().double().eval()
    u = _state(stepper)
    with torch.no_grad():
        out = stepper(u, return_trajectory=True)
        for layer in range(module.LAYERS if module.SUBSTEPS == 1 else 1):
            before, after = out.states[layer], out.states[layer + 1]
            if module.SUBSTEPS != 1:
                after = stepper.layers[0](before.clone(), module.Context(before, None, False),
                                          stepper.shared)
            t = module.T0 + (layer + 0.5) * module.DT * module.SUBSTEPS
            rate = stepper.rate(t, before)
            torch.testing.assert_close(rate, (after - before) / module.DT, rtol=1e-10,
                                       atol=1e-10)


def test_rate_picks_the_layer_of_t_and_layer_pins_it():
    module = build_module("specs/vit2d.yaml", ["time.span=[2, 6]"])
    torch.manual_seed(0)
    stepper = module.Stepper().double().eval()
    u = _state(stepper)
    with torch.no_grad():
        per_layer = [stepper.rate(0.0, u, layer=k) for k in range(4)]
        assert not torch.allclose(per_layer[0], per_layer[1])
        # t0 = 2, one unit of time per layer: [2, 3) is layer 0, [5, 6] layer 3
        for t, k in [(2.0, 0), (2.99, 0), (3.0, 1), (4.5, 2), (5.0, 3), (6.0, 3), (1.0, 0),
                     (9.0, 3)]:
            torch.testing.assert_close(stepper.rate(t, u), per_layer[k])
            torch.testing.assert_close(stepper.rate(torch.tensor(t), u), per_layer[k])
        torch.testing.assert_close(stepper.rate(5.5, u, layer=1), per_layer[1])


def test_rate_respects_the_mask():
    module = build_module("specs/pre_ln.yaml", ["fields.u.channels=16", "time.layers=1",
                                                "time.span=[0, 1]", "terms.interaction="
                                                "attention(u, heads=2)",
                                                "terms.reaction=mlp(u, hidden=32, "
                                                "activation=gelu)"])
    torch.manual_seed(0)
    stepper = module.Stepper().double().eval()
    u = _state(stepper)
    mask = torch.ones(u.shape[:2], dtype=torch.bool)
    mask[1, -3:] = False
    with torch.no_grad():
        masked = stepper.rate(0.0, u, mask)
        alone = stepper.rate(0.0, u[1:, :-3])
    torch.testing.assert_close(masked[1, :-3], alone[0])


@pytest.mark.parametrize("name", sorted(NOT_ODE))
def test_no_rate_where_the_limit_is_not_an_ode(name):
    module = build_module(f"specs/{name}.yaml")
    assert not hasattr(module.Stepper, "rate")
    obstacle = module.COMPILATION.discrete.program.ode_obstacle
    assert NOT_ODE[name] in obstacle
