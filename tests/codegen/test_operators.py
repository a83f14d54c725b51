"""Operators and stabilizers of the generated steppers, each checked on a small spec.

Attention (causal maps, SDPA vs explicit path, the Sinkhorn kernel), scalar parameters
(softplus positivity, shared vs per-layer placement), residual vs replacement updates,
post vs pre normalization, substeps, Strang (Macaron) ordering, and the NaN/Inf check of
``pdelang run``.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from pdelang.interpreters.builder import structure_of
import torch
import torch.nn.functional as F

from codegen_helpers import REPO, build, module_of

TINY = """\
pdelang: 1
name: tiny
grid: {{axes: [seq], boundary: neumann}}
fields: {{u: {{channels: 8}}}}
parameters:
  D: {{value: 0.3, learnable: true, positive: true}}
terms:
  interaction: attention(u, heads=2{attention})
  reaction: mlp(u, hidden=16, activation=gelu)
{diffusion}equation: dt(u) = interaction + reaction{plus_diffusion}
stabilizers: {{residual: {residual}, norm: {{kind: none}}}}
time: {{span: [0, 1], layers: 2, scheme: lie, split_order: [interaction, reaction{split}]}}
"""


def tiny(tmp_path, *, attention="", residual=True, diffusion=True, overrides=()):
    text = TINY.format(
        attention=attention, residual=str(residual).lower(),
        diffusion="  diffusion: D * laplace(u)\n" if diffusion else "",
        plus_diffusion=" + diffusion" if diffusion else "",
        split=", diffusion" if diffusion else "")
    return build(text, overrides, tmp_path=tmp_path)


def randomize(module: torch.nn.Module, std=0.3, seed=0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "parametrizations" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return module


def randn(*shape, seed=1, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def right_padding(lengths, total):
    return torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]


# ----------------------------------------------------------------- hand-written operators
def attention_by_hand(att, u, attend=None):
    """Explicit multi-head softmax attention from the module's four projections."""
    batch, tokens, channels = u.shape
    heads = att.heads
    d = channels // heads

    def split(x):
        return x.view(batch, tokens, heads, d).transpose(1, 2)

    q, k, v = (split(F.linear(u, lin.weight, lin.bias)) for lin in (att.q, att.k, att.v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if attend is not None:
        scores = scores.masked_fill(~attend, float("-inf"))
    y = scores.softmax(-1) @ v
    return F.linear(y.transpose(1, 2).reshape(batch, tokens, channels), att.o.weight, att.o.bias)


def mlp_by_hand(mlp, u):
    hidden = F.gelu(F.linear(u, mlp.fc1.weight, mlp.fc1.bias))
    return F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias)


def neumann_laplace_by_hand(u, h=1.0):
    padded = torch.cat([u[:, 1:2], u, u[:, -2:-1]], dim=1)
    return (padded[:, :-2] - 2 * padded[:, 1:-1] + padded[:, 2:]) / h**2


# ----------------------------------------------------------------- attention
def test_causal_attention_gives_zero_weight_to_the_future(tmp_path):
    stepper = randomize(tiny(tmp_path, attention=", causal=true", diffusion=False)()).eval()
    assert structure_of(stepper)["causal"] is True
    u = randn(2, 10, 8)
    with torch.no_grad():
        out = stepper(u, return_attention=True)
    assert len(out.attentions) == 2
    future = torch.ones(10, 10, dtype=torch.bool).triu(1)
    for weights in out.attentions:
        assert weights.shape == (2, 2, 10, 10)
        assert torch.count_nonzero(weights[..., future]) == 0
        assert bool((weights[..., ~future] > 0).all())
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 10))
    # without diffusion, nothing flows backwards: changing the last token changes no other
    changed = u.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        a, b = stepper(u), stepper(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1], rtol=0, atol=1e-6)
    assert float((a[:, -1] - b[:, -1]).abs().max()) > 1e-2


@pytest.mark.parametrize("causal,masked", [(True, False), (True, True), (False, True)])
def test_sdpa_path_agrees_with_explicit_path(tmp_path, causal, masked):
    attention = ", causal=true" if causal else ""
    stepper = randomize(tiny(tmp_path, attention=attention)(), seed=2).eval()
    u = randn(3, 12, 8, seed=3)
    mask = right_padding([12, 7, 4], 12) if masked else None
    with torch.no_grad():
        fast = stepper(u, mask)
        explicit = stepper(u, mask, return_attention=True)
    assert len(explicit.attentions) == 2
    scale = float(fast.abs().max())
    assert float((fast - explicit.state).abs().max()) <= 1e-5 * scale
    if masked:
        for weights in explicit.attentions:
            assert torch.count_nonzero(weights[1, :, :, 7:]) == 0
            assert torch.count_nonzero(weights[2, :, :, 4:]) == 0


def test_attention_module_matches_hand_written_attention(tmp_path):
    stepper_class = tiny(tmp_path, attention=", causal=true", diffusion=False)
    stepper = randomize(stepper_class(), seed=4).double()
    u = randn(2, 9, 8, seed=5, dtype=torch.float64)
    mask = right_padding([9, 6], 9)
    ctx = module_of(stepper_class).Context(u, mask, record=False)
    attend = mask[:, None, None, :] & torch.ones(9, 9, dtype=torch.bool).tril()
    with torch.no_grad():
        ours = stepper.layers[0].interaction_attention(u, ctx)
        expected = attention_by_hand(stepper.layers[0].interaction_attention, u, attend)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_sinkhorn_kernel_is_doubly_stochastic(tmp_path, masked):
    stepper_class = tiny(tmp_path, attention=", kernel=sinkhorn, iterations=50")
    stepper = randomize(stepper_class(), std=0.1, seed=6).eval()
    u = randn(2, 10, 8, seed=7)
    lengths = [10, 6] if masked else [10, 10]
    mask = right_padding(lengths, 10) if masked else None
    with torch.no_grad():
        out = stepper(u, mask, return_attention=True)
        fast = stepper(u, mask)
    assert len(out.attentions) == 2
    torch.testing.assert_close(out.state, fast)  # sinkhorn always takes the explicit path
    for weights in out.attentions:
        for b, n in enumerate(lengths):
            real = weights[b, :, :n, :n]
            torch.testing.assert_close(real.sum(-1), torch.ones(2, n), rtol=0, atol=1e-4)
            torch.testing.assert_close(real.sum(-2), torch.ones(2, n), rtol=0, atol=1e-4)
            assert torch.count_nonzero(weights[b, :, :, n:]) == 0
            assert torch.count_nonzero(weights[b, :, n:, :]) == 0
    # not merely a softmax: the softmax rows of the same scores are not column-stochastic
    att = stepper.layers[0].interaction_attention
    ctx = module_of(stepper_class).Context(u, None, record=False)
    with torch.no_grad():
        q = att.q(u).view(2, 10, 2, 4).transpose(1, 2) / 2.0  # Q/√d, as forward passes it
        k = att.k(u).view(2, 10, 2, 4).transpose(1, 2)
        softmax = (q @ k.transpose(-1, -2)).softmax(-1)
        sinkhorn = att.attention_weights(q, k, ctx)
    assert float((softmax.sum(-2) - 1).abs().max()) > 1e-3
    torch.testing.assert_close(sinkhorn.sum(-2), torch.ones(2, 2, 10), rtol=0, atol=1e-4)


@pytest.mark.parametrize("causal", ["", ", causal=true"])
def test_sinkhorn_with_padding_has_finite_gradients(tmp_path, causal):
    """Padding rows and columns are all −inf in the log-domain iterations; their logsumexp
    must not poison the backward pass (regression: every gradient was NaN with a mask)."""
    stepper_class = tiny(tmp_path, attention=f", kernel=sinkhorn, iterations=10{causal}")
    stepper = randomize(stepper_class(), std=0.1, seed=3)
    u = randn(2, 10, 8, seed=4).requires_grad_(True)
    mask = right_padding([10, 6], 10)
    out = stepper(u, mask)
    (out[mask] ** 2).sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(u.grad).all() and float(u.grad.abs().sum()) > 0
    for name, param in stepper.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name
    # padding tokens do not influence the real ones: their gradient is zero
    assert float(u.grad[1, 6:].abs().max()) == 0.0


# ----------------------------------------------------------------- parameters
def test_positive_parameter_stays_positive(tmp_path):
    stepper = tiny(tmp_path)()
    assert float(stepper.shared.D.detach()) == pytest.approx(0.3, rel=1e-6)  # not the raw value
    with torch.no_grad():
        stepper.shared.parametrizations.D.original.fill_(-80.0)
    assert float(stepper.shared.D.detach()) > 0.0
    with torch.no_grad():
        stepper.shared.parametrizations.D.original.fill_(-5.0)
    assert float(stepper.shared.D.detach()) == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-5)


def test_shared_and_per_layer_parameters_in_state_dict():
    stepper = build("master", ["fields.u.channels=48"])()
    keys = set(stepper.state_dict())
    params = dict(stepper.named_parameters())
    assert "shared.parametrizations.D.original" in keys  # shared, learnable, positive
    assert not any(k.startswith("layers.") and ".D" in k for k in keys)
    for i in range(6):
        assert f"layers.{i}.alpha" in keys and f"layers.{i}.alpha" in params  # per layer
    assert not any(k.startswith("shared.") and "alpha" in k for k in keys)
    # the same spec with a per-layer D: one raw parameter in every layer, none shared
    stepper = build("master", ["fields.u.channels=48", "parameters.D.per_layer=true"])()
    keys = set(stepper.state_dict())
    for i in range(6):
        assert f"layers.{i}.parametrizations.D.original" in keys
    assert not any(k.startswith("shared.") for k in keys)
    # a non-learnable coefficient is a buffer, not a parameter
    heat = build("heat1d")()
    assert "shared.D" in heat.state_dict() and not list(heat.parameters())
    assert float(heat.shared.D) == 0.5


# ----------------------------------------------------------------- stabilizers and schemes
@pytest.mark.parametrize("residual", [True, False])
def test_residual_or_replacement_one_layer_by_hand(tmp_path, residual):
    """Δt = 0.5: u ← [u +] Δt A(u); u ← [u +] Δt R(u); u ← [u +] Δt D Δu."""
    stepper_class = tiny(tmp_path, residual=residual)
    stepper = randomize(stepper_class(), seed=8).double()
    assert structure_of(stepper_class)["dt"] == 0.5
    assert structure_of(stepper_class)["residual"] is residual
    u = randn(2, 7, 8, seed=9, dtype=torch.float64)
    layer = stepper.layers[0]
    dt, D = 0.5, float(stepper.shared.D.detach())
    with torch.no_grad():
        ctx = module_of(stepper_class).Context(u, None, record=False)
        ours = layer(u, ctx, stepper.shared)
        v = u
        for rate in (lambda x: attention_by_hand(layer.interaction_attention, x),
                     lambda x: mlp_by_hand(layer.reaction_mlp, x),
                     lambda x: D * neumann_laplace_by_hand(x)):
            v = (v if residual else 0) + dt * rate(v)
    torch.testing.assert_close(ours, v, rtol=1e-10, atol=1e-12)


def test_residual_override_changes_the_update(tmp_path):
    on = tiny(tmp_path)
    off = tiny(tmp_path, overrides=["stabilizers.residual=false"])
    assert structure_of(off)["residual"] is False
    a = randomize(on(), seed=10)
    b = off()
    b.load_state_dict(a.state_dict())
    u = randn(1, 6, 8, seed=11)
    with torch.no_grad():
        assert float((a(u) - b(u)).abs().max()) > 1e-2


def _substep_states(stepper_class, stepper, u):
    seen = []
    ctx = module_of(stepper_class).Context(
        u, None, record=False, watch=lambda layer, sub, term, state: seen.append((term, state)))
    with torch.no_grad():
        for index, layer in enumerate(stepper.layers):
            ctx.layer = index
            u = layer(u, ctx, stepper.shared)
    return seen


def test_post_norm_normalizes_after_each_normalized_substep():
    stepper_class = build("master", ["fields.u.channels=48"])
    stepper = stepper_class().double()
    u = randn(2, 9, 48, seed=12, dtype=torch.float64) * 3 + 1
    seen = _substep_states(stepper_class, stepper, u)
    assert [t for t, _ in seen[:3]] == ["interaction", "reaction", "diffusion"]
    assert len(seen) == 18
    for term, state in seen:
        mean, var = state.mean(-1), state.var(-1, unbiased=False)
        if term in ("interaction", "reaction"):
            torch.testing.assert_close(mean, torch.zeros_like(mean), rtol=0, atol=1e-10)
            torch.testing.assert_close(var, torch.ones_like(var), rtol=0, atol=1e-9)
        else:  # diffusion is not normalized, and moves the state off the sphere
            assert float((var - 1).abs().max()) > 1e-4


def test_pre_norm_normalizes_inside_the_vector_field():
    stepper_class = build("pre_ln", ["fields.u.channels=48", "terms.interaction="
                                     "attention(u, heads=4)", "terms.reaction=mlp(u, hidden=32)"])
    stepper = randomize(stepper_class(), std=0.2, seed=13).double()
    u = randn(2, 9, 48, seed=14, dtype=torch.float64) * 3 + 1
    layer = stepper.layers[0]
    with torch.no_grad():
        ctx = module_of(stepper_class).Context(u, None, record=False)
        ours = layer(u, ctx, stepper.shared)
        v = u + attention_by_hand(layer.interaction_attention, layer.norm_interaction(u))
        v = v + mlp_by_hand(layer.reaction_mlp, layer.norm_reaction(v))
    torch.testing.assert_close(ours, v, rtol=1e-10, atol=1e-10)
    seen = _substep_states(stepper_class, stepper, u)
    # the states themselves are not normalized
    assert all(float((s.var(-1, unbiased=False) - 1).abs().max()) > 1e-2 for _, s in seen)


def test_substeps_give_layers_plus_one_states():
    stepper_class = build("master", ["fields.u.channels=48", "time.substeps=3"])
    assert structure_of(stepper_class)["dt"] == pytest.approx(1 / 3)
    stepper = stepper_class().double()
    u = randn(1, 5, 48, seed=15, dtype=torch.float64)
    with torch.no_grad():
        out = stepper(u, return_trajectory=True)
        assert len(out.states) == 7
        assert out.states[0] is u
        ctx = module_of(stepper_class).Context(u, None, record=False)
        v = u
        for _ in range(3):
            v = stepper.layers[0](v, ctx, stepper.shared)
    torch.testing.assert_close(out.states[1], v, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.state, out.states[-1], rtol=0, atol=0)


def test_strang_splitting_is_the_macaron_layout():
    """macaron: Strang splitting of [reaction, diffusion, interaction] is
    R/2, D/2, A, D/2, R/2 with pre-LN on R and A, and a final LayerNorm."""
    stepper_class = build("macaron", ["fields.u.channels=48", "terms.interaction="
                                      "attention(u, heads=4)", "terms.reaction=mlp(u, hidden=32)"])
    structure = structure_of(stepper_class)
    assert structure["scheme"] == "strang"
    stepper = randomize(stepper_class(), std=0.2, seed=16).double()
    u = randn(2, 9, 48, seed=17, dtype=torch.float64)
    layer, p = stepper.layers[0], stepper.shared
    with torch.no_grad():
        ctx = module_of(stepper_class).Context(u, None, record=False)
        ours = layer(u, ctx, p)
        v = u + 0.5 * layer.f_reaction(layer.norm_reaction(u), ctx, p)
        v = v + 0.5 * layer.f_diffusion(v, ctx, p)
        v = v + layer.f_interaction(layer.norm_interaction(v), ctx, p)
        v = v + 0.5 * layer.f_diffusion(v, ctx, p)
        v = v + 0.5 * layer.f_reaction(layer.norm_reaction(v), ctx, p)
        torch.testing.assert_close(ours, v, rtol=0, atol=1e-12)
        # and the f_ methods are the operators themselves
        torch.testing.assert_close(layer.f_reaction(u, ctx, p),
                                   mlp_by_hand(layer.reaction_mlp, u), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer.f_diffusion(u, ctx, p),
                                   float(p.D) * neumann_laplace_by_hand(u), rtol=1e-10, atol=1e-12)
        out = stepper(u, return_trajectory=True)
        torch.testing.assert_close(out.states[1], ours, rtol=0, atol=0)
        torch.testing.assert_close(out.state, stepper.final_norm(out.states[-1]), rtol=0, atol=0)


def test_strang_without_diffusion_is_r_half_a_r_half(tmp_path):
    stepper_class = tiny(tmp_path, diffusion=False, overrides=[
        "time.scheme=strang", "time.split_order=[reaction, interaction]"])
    stepper = randomize(stepper_class(), seed=18).double()
    u = randn(2, 6, 8, seed=19, dtype=torch.float64)
    layer, dt = stepper.layers[0], 0.5
    with torch.no_grad():
        ctx = module_of(stepper_class).Context(u, None, record=False)
        ours = layer(u, ctx, stepper.shared)
        v = u + dt / 2 * mlp_by_hand(layer.reaction_mlp, u)
        v = v + dt * attention_by_hand(layer.interaction_attention, v)
        v = v + dt / 2 * mlp_by_hand(layer.reaction_mlp, v)
    torch.testing.assert_close(ours, v, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- run-time checks
def test_run_reports_nan_with_layer_substep_and_term():
    """An unstable heat equation (Δt = 1.25 ≫ h²/(2D) ≈ 0.01) overflows to Inf/NaN."""
    command = [sys.executable, "-m", "pdelang", "run", "specs/heat1d.yaml",
               "--set", "time.layers=40", "--set", "time.substeps=1",
               "--set", "time.span=[0,50]", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr
    assert "runtime error" in message
    assert "NaN" in message or "Inf" in message
    assert "layer " in message and "sub-step " in message and "term '" in message
    layer = int(message.split("after layer ")[1].split(",")[0])
    assert 1 <= layer < 40  # it takes some steps to overflow float32
