"""Reduced models (issue 21): weights shared along depth, coefficients that are smooth
functions of depth, and a low-rank attention kernel.

* ``time.tied: true`` — one weight set drives every layer (weight-tied continuous depth):
  the stepper holds one layer's weights, every layer is that one module, and the step is
  what the NumPy oracle computes with those weights at every layer.
* ``basis: {kind: legendre, size: K}`` — a parameter is ``Σ_k c_k P_k(s)``, s = 2(t − t0)/T − 1,
  held at the step's midpoint within a step and evaluated at t itself by ``rate(t, u)``.
* ``attention(u, rank=r)`` — queries and keys of r dimensions per head.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import legendre

from pdelang.lab.testing.spec_builder import spec_text as build_spec
from pdelang.interpreters.builder import build_module
from pdelang.errors import SpecError
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.operators import OPERATORS
from pdelang.lab.testing.harness import compile_any
from pdelang.interpreters.numpy_oracle import NumpyOracle, weights_from_stepper


def spec_text(*, axes="[seq]", shape=None, extra=0, tied=True, scheme="lie", substeps=1,
              layers=3, rank=0, basis=3, boundary="neumann", norm="layernorm") -> str:
    rank_text = f", rank={rank}" if rank else ""
    return build_spec(
        {"diffusion": "D * laplace(u)",
         "interaction": f"alpha * attention(u, heads=2{rank_text})",
         "reaction": "beta * mlp(u, hidden=16)"},
        equation="dt(u) = interaction + reaction + diffusion", name="reduced",
        axes=axes.strip("[]").split(", "),
        shape=shape,
        spacing=1.0, boundary=boundary, extra_tokens=extra, channels=8,
        parameters={"D": {"value": 0.05, "learnable": True, "positive": True},
                    "alpha": {"value": 1.0, "learnable": True,
                              "basis": {"kind": "legendre", "size": basis}},
                    "beta": {"value": 0.5, "learnable": True, "basis": {"size": 2}}},
        stabilizers={"residual": True,
                     "norm": {"kind": norm, "placement": "pre", "final": True,
                              "terms": ["interaction", "reaction"]}},
        span=(0, layers), layers=layers, substeps=substeps, tied=tied, scheme=scheme)


def stepper_of(text: str, seed: int = 0):
    module = build_module(load_spec_text(text, "<reduced>"))
    torch.manual_seed(seed)
    stepper = module.Stepper().double()
    with torch.no_grad():  # coefficients away from their (value, 0, …) start
        for name, param in stepper.named_parameters():
            if name.endswith("_coefficients"):
                param.add_(0.3 * torch.randn_like(param))
    return module, stepper


def oracle_distance(text: str, u: torch.Tensor, mask=None) -> float:
    _, stepper = stepper_of(text)
    reference = NumpyOracle(compile_any(text).discrete, weights_from_stepper(stepper))
    with torch.no_grad():
        ours = stepper(u, mask, return_trajectory=True)
    theirs = reference(u.numpy(), None if mask is None else mask.numpy(),
                       return_trajectory=True)
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(ours.states, theirs.states))


# ----------------------------------------------------------------------------- tied weights
def test_tied_stepper_holds_one_layer_of_weights():
    _, tied = stepper_of(spec_text(tied=True))
    _, untied = stepper_of(spec_text(tied=False))
    assert all(layer is tied.layers[0] for layer in tied.layers)
    per_layer = sum(p.numel() for p in untied.layers[0].parameters())
    assert sum(p.numel() for p in tied.layers.parameters()) == per_layer
    assert sum(p.numel() for p in untied.layers.parameters()) == 3 * per_layer


def test_tied_weights_are_one_set_under_training():
    """A gradient step changes every layer's weights alike: they are one tensor."""
    _, stepper = stepper_of(spec_text(tied=True))
    u = torch.randn(2, 6, 8, dtype=torch.float64)
    stepper(u).square().sum().backward()
    with torch.no_grad():
        for p in stepper.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    q = [layer.interaction_attention.q.weight for layer in stepper.layers]
    assert all(w is q[0] for w in q)


@pytest.mark.parametrize("case", [
    dict(),
    dict(scheme="rk4", substeps=2),
    dict(scheme="strang", substeps=3, rank=1),
    dict(axes="[rows, cols]", shape=[3, 3], extra=1, rank=3),
    dict(boundary="periodic", scheme="euler", norm="rmsnorm", tied=False),
])
def test_reduced_models_match_the_numpy_oracle(case):
    tokens = 10 if "shape" in case else 7
    u = torch.randn(3, tokens, 8, dtype=torch.float64)
    assert oracle_distance(spec_text(**case), u) < 1e-11


def test_padded_batch_of_a_tied_model_matches_the_oracle():
    u = torch.randn(3, 7, 8, dtype=torch.float64)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 4 + [0] * 3])
    assert oracle_distance(spec_text(rank=2), u, mask) < 1e-11


# ----------------------------------------------------------------------------- the basis
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=8), st.floats(-1, 1))
def test_legendre_series_is_numpys_legval(coefficients, s):
    from pdelang.compiler.codegen.runtime.basis import legendre_series

    ours = legendre_series(torch.tensor(coefficients, dtype=torch.float64), s)
    assert float(ours) == pytest.approx(legendre.legval(s, coefficients), abs=1e-12)


def test_a_basis_parameter_is_held_at_the_step_midpoint():
    """alpha(t) = c0 + c1·s: with substeps S the k-th step uses s at t_k + Δt/2."""
    module, stepper = stepper_of(spec_text(layers=2, substeps=2, basis=2))
    seen = []
    original = module.SharedParameters.at

    def spy(self, t):
        seen.append(float(t))
        return original(self, t)

    module.SharedParameters.at = spy
    try:
        stepper(torch.randn(1, 5, 8, dtype=torch.float64))
    finally:
        module.SharedParameters.at = original
    assert seen == [0.25, 0.75, 1.25, 1.75]  # span [0, 2], Δt = 0.5
    stepper.shared.at(2.0)  # the right end: s = 1, Σ c_k P_k(1) = Σ c_k
    c = stepper.shared.alpha_coefficients.detach()
    assert float(stepper.shared.alpha.detach()) == pytest.approx(float(c.sum()), abs=1e-14)


def test_rate_evaluates_the_coefficient_at_t():
    """rate(t, u) is the vector field with alpha(t) itself (the continuous-depth ODE): the
    same as a model whose alpha is the constant alpha(t)."""
    _, stepper = stepper_of(spec_text(layers=2, basis=3))
    _, frozen = stepper_of(spec_text(layers=2, basis=3))
    frozen.load_state_dict(stepper.state_dict())
    u = torch.randn(2, 5, 8, dtype=torch.float64)
    c = stepper.shared.alpha_coefficients.detach().numpy()
    with torch.no_grad():
        for t in (0.1, 0.9, 1.7):
            value = legendre.legval(t - 1.0, c)  # s = 2t/2 − 1
            frozen.shared.alpha_coefficients.copy_(torch.tensor([value, 0.0, 0.0]))
            assert torch.allclose(stepper.rate(t, u), frozen.rate(t, u), rtol=0, atol=1e-13)
        frozen.shared.alpha_coefficients.add_(torch.tensor([0.5, 0.0, 0.0]))
        assert not torch.allclose(stepper.rate(1.7, u), frozen.rate(1.7, u), atol=1e-6)


def test_basis_coefficients_start_at_the_value_and_convert_exactly():
    text = spec_text().replace("value: 1.0, learnable: true, basis",
                               "value: 0.1, learnable: true, basis")
    module = build_module(load_spec_text(text, "<reduced>"))
    stepper = module.Stepper().double()
    assert stepper.shared.alpha_coefficients.tolist() == [0.1, 0.0, 0.0]  # 0.1 exactly


# ----------------------------------------------------------------------------- low rank
@pytest.mark.parametrize("heads,rank,bias", [(1, 0, True), (2, 1, True), (4, 3, False),
                                             (2, 8, True)])
def test_low_rank_attention_shapes_and_weight_count(heads, rank, bias):
    from pdelang.compiler.codegen.runtime.attention import Attention

    attention = Attention(8, heads, causal=False, kernel="softmax", iterations=20, bias=bias,
                          rank=rank)
    width = heads * (rank or 8 // heads)
    assert attention.q.weight.shape == (width, 8) == attention.k.weight.shape
    assert attention.v.weight.shape == (8, 8)
    count = sum(p.numel() for p in attention.parameters())
    declared = OPERATORS["attention"].parameter_shapes(
        8, {"heads": heads, "rank": rank, "bias": bias}, 1)
    assert count == sum(math.prod(shape) for shape in declared.values())


def test_low_rank_attention_rows_are_distributions():
    _, stepper = stepper_of(spec_text(rank=1))
    with torch.no_grad():
        out = stepper(torch.randn(2, 6, 8, dtype=torch.float64), return_attention=True)
    for maps in out.attentions:
        assert torch.allclose(maps.sum(-1), torch.ones_like(maps.sum(-1)), atol=1e-12)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("edit,needle", [
    (("basis: {kind: legendre, size: 3}", "basis: {kind: legendre, size: 3}, per_layer: true"),
     "both per_layer and a basis"),
    (("value: 1.0, learnable: true, basis", "value: 1.0, learnable: false, basis"),
     "not learnable"),
    (("value: 1.0, learnable: true, basis", "value: 1.0, positive: true, learnable: true, "
                                            "basis"), "positive and has a basis"),
    (("size: 3", "size: 0"), "size"),
    (("kind: legendre", "kind: chebyshev"), "chebyshev"),
    (("positive: true}", "positive: true, per_layer: true}"), "time.tied shares"),
])
def test_bad_reduced_specs_are_located_errors(edit, needle):
    text = spec_text().replace(*edit)
    with pytest.raises(SpecError) as caught:
        compile_any(text)
    message = str(caught.value)
    assert needle in message
    assert "<generated spec>:" in message and "^" in message


def test_a_parameter_may_not_take_the_name_of_a_basis_helper():
    text = spec_text().replace("  beta:", "  at: {value: 1.0}\n  beta:").replace(
        "beta * mlp", "at * beta * mlp")
    with pytest.raises(SpecError, match="generated submodule or method"):
        compile_any(text)
