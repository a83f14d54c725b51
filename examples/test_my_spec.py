"""Property-test your own spec with ``pdelang.lab.testing`` — a worked example.

Run it with::

    python -m pytest -q examples/test_my_spec.py

Copy this file next to your spec, point ``MY_SPEC`` at it (a path works as well as the
inline YAML below) and keep the checks that apply.  Every check returns a
``PropertyResult``: truthy when the property holds, the measured numbers in ``.details``,
and ``.assert_passed()`` raises a readable ``PropertyFailure`` (an ``AssertionError``) when
it does not — so each test below is one line of intent plus one ``assert_passed()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pdelang.lab.testing as pt
from pdelang.lab.testing.properties import inner_product_weights, linear_reference

# Our spec: 1-D diffusion with reflecting (neumann) ends, a fourth-order Laplacian and the
# classical Runge–Kutta scheme.  (Or: MY_SPEC = Path("specs/my_model.yaml").)
MY_SPEC = """\
pdelang: 1
name: my_diffusion
grid:
  axes: [x]
  shape: [32]
  spacing: 0.1
  boundary: neumann
fields:
  u: {channels: 1}
parameters:
  D: 0.05
terms:
  diffusion: "D * laplace(u)"
equation: dt(u) = diffusion
time:
  span: [0, 0.5]
  layers: 1
  substeps: 10
  scheme: rk4
discretization:
  laplace: {accuracy: 4}
"""

# A spec shipped with pdelang, to show that a file path works the same way.
HEAT1D = Path(__file__).resolve().parent.parent / "specs" / "heat1d.yaml"


@pytest.fixture(scope="module")
def compilation():
    """Every stage of the compiler for our spec: .discrete holds the stencils (exact
    rationals), .analysis the derived facts (orders, stability bound), .python the code."""
    return pt.compile_any(MY_SPEC)


@pytest.fixture(scope="module")
def stepper(compilation):
    """The generated ``nn.Module`` in float64 (``seed=None``: the spec's own values)."""
    return pt.stepper_for(compilation, seed=None)


def test_stencils_are_exact_on_polynomials(compilation):
    # (a) a k-th derivative stencil of accuracy p differentiates polynomials of degree
    # ≤ p + k − 1 exactly (checked in exact rational arithmetic)
    for stencil in compilation.discrete.stencils.values():
        pt.check_polynomial_exactness(stencil).assert_passed()


def test_generated_laplacian_converges_at_its_order(compilation):
    # (b) refine the grid on a smooth field with the boundary's symmetry and fit the slope
    # of log(error): it must match the derived order within 0.15.  The operator under test
    # is the *generated* torch code (a 1-D stepper works at any grid length).
    model = compilation.discrete
    stencil = model.stencils["laplace"]
    operator = pt.torch_stencil_operator(compilation, "laplace")
    study = pt.convergence_study(
        lambda shape: operator, boundary=model.boundary, derivative=stencil.derivative,
        axes=stencil.axes, dims=1, h=stencil.spacing, claimed_order=stencil.order)
    pt.check_convergence(study).assert_passed()
    assert stencil.order == 4


def test_time_step_is_within_a_sharp_stability_bound(compilation):
    # (d) our Δt is below the derived bound, and the bound is sharp: the linear part stepped
    # at 0.95× the bound stays bounded for 10⁴ steps, at 1.05× it blows up
    facts = compilation.analysis.stability
    assert facts.stable, f"Δt = {facts.dt} exceeds the stable {facts.max_stable_dt}"
    stepper = pt.LinearStepper(linear_reference(compilation.discrete))
    pt.check_stability_sharpness(stepper, facts.max_stable_dt).assert_passed()


def test_scheme_reaches_its_order(compilation):
    # (e) rk4 is fourth order on a linear test problem
    pt.check_time_order(compilation.discrete.program).assert_passed()


def test_generated_code_equals_the_reference(compilation):
    # (h) the generated stepper agrees with an independent NumPy interpreter of the discrete
    # IR: every stencil, every term, the states after every layer
    pt.check_generated_matches_reference(compilation).assert_passed()


# A Hypothesis property: for *every* smooth initial state with reflecting ends, a step of our
# stepper conserves the (trapezoid-weighted) mean.  `nonperiodic_fields` draws fields whose
# symmetry matches the neumann ghost rule.  (This file sets its own Hypothesis settings; the
# project's test profiles live in tests/conftest.py.)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(pt.nonperiodic_fields("neumann", shape=(32,)), st.floats(-2.0, 2.0))
def test_diffusion_conserves_the_weighted_mean(stepper, sample, offset):
    def step(u: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return stepper(torch.from_numpy(u)).numpy()

    u0 = sample.as_state() + offset  # (1, 32, 1)
    weights = inner_product_weights("neumann", (32,))
    pt.check_conserves_weighted_mean(step, u0, weights, rtol=1e-12).assert_passed()


def test_verify_a_spec_file_in_one_call():
    # `pdelang verify SPEC` as a function: every applicable property in one report
    report = pt.verify_spec(HEAT1D, steps=2000)
    assert report.passed, report.format_text()
