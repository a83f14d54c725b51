"""``pdelang.lab.testing.verify``: the engine of ``pdelang verify``, in-process."""

from __future__ import annotations

import json

import pytest
from testing_helpers import SPECS

from pdelang.lab.testing import VerifyReport, verify_spec
from pdelang.lab.testing.verify import verify


@pytest.fixture(scope="module")
def heat1d() -> VerifyReport:
    return verify(SPECS / "heat1d.yaml")


def test_heat1d_every_property_holds(heat1d):
    assert heat1d.passed, heat1d.format_text()
    props = heat1d.properties
    for name in ("polynomial_exactness[laplace]", "polynomial_exactness_generated[laplace]",
                 "convergence[laplace]", "annihilates_constants[laplace]",
                 "symmetric_nsd[laplace]", "stability_threshold", "stability_bound_sharp",
                 "stable_at_spec_dt", "conserves_mean", "max_norm_nonincreasing",
                 "time_order[euler]", "generated_equals_reference"):
        assert props[name] is True, name
    # attention and norms do not apply to the heat equation: reported as such, not as passes
    assert "attention_maps" not in props and "normalization_manifold" not in props
    assert not heat1d.results["attention_maps"].applicable


def test_heat1d_operator_and_stability_numbers(heat1d):
    (op,) = heat1d.operators
    assert (op.name, op.claimed_order, op.accuracy) == ("laplace", 2, 2)
    assert abs(op.observed_order - op.claimed_order) <= 0.15
    assert len(op.errors) == len(op.sizes) == 4
    assert all(b < a for a, b in zip(op.errors, op.errors[1:]))
    st = heat1d.stability
    # Δt ≤ h²/(2D) with h = 2π/64, D = 0.5
    assert st["predicted_max_dt"] == pytest.approx((2 * 3.141592653589793 / 64) ** 2, rel=1e-9)
    assert abs(st["empirical_max_dt"] / st["predicted_max_dt"] - 1) <= 0.05


def test_report_json_and_text(heat1d):
    data = json.loads(json.dumps(heat1d.to_json()))  # JSON-serializable
    assert data["passed"] is True
    assert {"name", "claimed_order", "observed_order", "errors"} <= set(data["operators"][0])
    assert {"predicted_max_dt", "empirical_max_dt"} <= set(data["stability"])
    assert all(isinstance(v, bool) for v in data["properties"].values())
    assert set(data["not_applicable"]) == {"attention_maps", "normalization_manifold"}
    text = heat1d.format_text()
    assert "result: all properties hold" in text and "FAIL" not in text
    assert "laplace" in text and "predicted max Δt" in text


def test_verify_spec_is_the_engine():
    assert verify_spec is verify


def test_unstable_time_step_fails(heat1d):
    """Δt = 0.02 is twice the bound 0.0096: the spec itself is unstable — the only failing
    property; the discretization's own properties still hold."""
    report = verify(SPECS / "heat1d.yaml", ["time.substeps=5"], equivalence=False)
    assert not report.passed
    failed = {k for k, r in report.results.items() if not r.passed}
    assert failed == {"stable_at_spec_dt"}
    assert report.properties["stable_at_spec_dt"] is False
    assert report.to_json()["passed"] is False
    assert "FAIL  stable_at_spec_dt" in report.format_text()
    assert "1 property failed: stable_at_spec_dt" in report.format_text()


SPEC_1D_EXTRA = """\
pdelang: 1
name: extra
grid:
  axes: [seq]
  shape: [20]
  spacing: 0.5
  boundary: {boundary}
  extra_tokens: 1
fields:
  u: {{channels: 1}}
parameters:
  D: 0.2
terms:
  diffusion: "D * laplace(u)"
  advection: "-0.3 * diff(u, seq)"
equation: dt(u) = diffusion + advection
time:
  span: [0, 0.1]
  layers: 1
  substeps: 10
  scheme: rk4
discretization:
  laplace: {{accuracy: 4}}
  diff: {{accuracy: 6}}
"""


def test_two_operators_extra_token_periodic():
    """Two operators (the first derivative's symbol is complex: sampled bound), an extra
    token before the grid (regression: the generated-stencil polynomial check used to feed
    the state without the extra token and fail)."""
    report = verify(SPEC_1D_EXTRA.format(boundary="periodic"), steps=2000)
    assert report.passed, report.format_text()
    assert {o.name for o in report.operators} == {"laplace", "diff[seq,1]"}
    for op in report.operators:
        assert op.claimed_order == op.accuracy
        assert abs(op.observed_order - op.claimed_order) <= 0.15
    assert report.properties["polynomial_exactness_generated[laplace]"] is True
    assert report.properties["polynomial_exactness_generated[diff[seq,1]]"] is True
    assert report.properties["stability_threshold"] is True
    assert not report.results["symmetric_nsd[diff[seq,1]]"].applicable  # skew, not symmetric


def test_odd_derivative_with_nonperiodic_boundary_has_no_stability_check():
    report = verify(SPEC_1D_EXTRA.format(boundary="neumann"), steps=2000, equivalence=False)
    assert report.passed, report.format_text()
    assert not report.results["stability_threshold"].applicable
    assert "von Neumann" in report.stability["note"]
    assert report.stability["empirical_max_dt"] is None
    assert "stability_threshold" not in report.properties


LEARNED = """\
pdelang: 1
name: block
grid:
  axes: [x]
  shape: [8]
  boundary: neumann
fields:
  u: {channels: 4}
terms:
  interaction: "attention(u, heads=2, kernel=sinkhorn, iterations=50)"
  reaction: "mlp(u, hidden=8)"
equation: dt(u) = interaction + reaction
stabilizers:
  residual: true
  norm: {kind: layernorm, placement: post}
time:
  span: [0, 2]
  layers: 2
  scheme: lie
"""


def test_learned_spec_attention_and_norm_properties():
    report = verify(LEARNED)
    assert report.passed, report.format_text()
    assert report.operators == []
    assert report.properties["attention_maps"] is True
    assert "doubly stochastic" in report.results["attention_maps"].message
    assert report.properties["normalization_manifold"] is True
    assert report.properties["generated_equals_reference"] is True
    assert report.properties["time_order[lie]"] is True
    assert not report.results["stability_threshold"].applicable
