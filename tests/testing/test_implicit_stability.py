"""Stability and time order of implicit / exponential stepping, through ``verify`` and ``check``.

* IMEX orders on the stiff ``specs/allen_cahn_imex.yaml`` (u_t = Δu + u − u³, h = 2π/100):
  verify's ``time_order_spec[imex_ars222]`` observes order 2 and, with
  ``--set time.scheme=imex_euler``, ``time_order_spec[imex_euler]`` order 1 (within 0.2), at
  step sizes all above the explicit Euler bound 3h²/8 ≈ 0.0015 (the spec's Δt = 0.1 is 67× it);
  the same for a 2-D neumann Allen–Cahn spec (16×16, implicit diffusion, imex_ars222).
* Unconditional stability: ``check --json`` of the implicit specs reports ``max_stable_dt``
  null, verdict "stable" and exits 0; verify's ``stability_bound_sharp`` (bounded at 1, 10, 100
  and 1000 × Δt) passes, ``stability_threshold`` is not applicable and ``stable_at_spec_dt``
  agrees with stepping.
* Strict xfails for two analysis / verify problems found while writing these tests.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest

from pdelang.cli.main import main as cli_main
from pdelang.lab.testing.verify import verify

REPO = Path(__file__).resolve().parents[2]
HEAT = REPO / "specs" / "heat1d_implicit.yaml"
ALLEN_CAHN = REPO / "specs" / "allen_cahn_imex.yaml"
H = 2 * math.pi / 100
EXPLICIT_BOUND = 3 * H**2 / 8  # explicit Euler, accuracy-4 Laplacian, D = 1

ALLEN_CAHN_2D = """pdelang: 1
name: allen_cahn_2d_imex
description: stiff 2-D Allen–Cahn on a reflecting grid, IMEX ARS(2,2,2)
grid:
  axes: [x, y]
  shape: [16, 16]
  spacing: 0.1
  boundary: neumann
fields:
  u: {channels: 1}
parameters:
  D: 1.0
terms:
  diffusion: D * laplace(u)
  reaction: u - u^3
equation: dt(u) = diffusion + reaction
time:
  span: [0, 0.5]
  layers: 1
  substeps: 5
  scheme: imex_ars222
  implicit: [diffusion]
discretization:
  laplace: {accuracy: 2}
"""
BOUND_2D = 0.1**2 / 4  # explicit Euler, 2-D 5-point Laplacian: h²/(2dD), d = 2, D = 1


@functools.cache
def verified(spec: str, overrides: tuple[str, ...] = ()):
    """verify() of a spec path or YAML text (cached: several tests read one report)."""
    return verify(spec if "\n" in spec else Path(spec), overrides)


# (spec, overrides, scheme, order, explicit bound, least Δt of the order study / bound)
CASES = {
    "allen_cahn-imex_ars222": (str(ALLEN_CAHN), (), "imex_ars222", 2, EXPLICIT_BOUND, 4),
    "allen_cahn-imex_euler": (str(ALLEN_CAHN), ("time.scheme=imex_euler",), "imex_euler", 1,
                              EXPLICIT_BOUND, 4),
    "allen_cahn_2d-imex_ars222": (ALLEN_CAHN_2D, (), "imex_ars222", 2, BOUND_2D, 2),
    "allen_cahn_2d-imex_euler": (ALLEN_CAHN_2D, ("time.scheme=imex_euler",), "imex_euler", 1,
                                 BOUND_2D, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_imex_time_order_observed_by_verify(case):
    spec, overrides, scheme, order, bound, least = CASES[case]
    report = verified(spec, overrides)
    assert report.scheme == scheme
    result = report.results[f"time_order_spec[{scheme}]"]
    assert result.applicable and result.passed, result.message
    assert result.details["claimed_order"] == order
    observed = result.details["observed_order"]
    assert abs(observed - order) <= 0.2, observed
    # every step size of the study is beyond the explicit bound (the spec's Δt far beyond it)
    assert min(result.details["dts"]) > least * bound, (result.details["dts"], bound)
    assert report.stability["dt"] >= 39.9 * bound
    # the order of the scheme itself (linear test problem) and generated == reference
    assert report.results[f"time_order[{scheme}]"].passed
    assert report.results["generated_equals_reference"].passed, \
        report.results["generated_equals_reference"].message


@pytest.mark.parametrize("case", list(CASES))
def test_verify_reports_unconditional_stability(case):
    spec, overrides, *_ = CASES[case]
    report = verified(spec, overrides)
    assert report.stability["predicted_max_dt"] is None
    assert report.stability["verdict"] == "stable"
    sharp = report.results["stability_bound_sharp"]
    assert sharp.applicable and sharp.passed, sharp.message
    # an equation that grows in its own right (Allen–Cahn: max Re λ = 1) is judged mode by
    # mode against its allowance, a dissipative one by stepping it
    word = "within" if report.stability.get("relative") else "bounded"
    for factor in (1, 10, 100, 1000):
        assert f"{factor}×Δt {word}" in sharp.message, sharp.message
    assert not report.results["stability_threshold"].applicable
    assert report.results["stable_at_spec_dt"].passed
    assert report.passed, {k: r.message for k, r in report.results.items() if not r.passed}


def test_verify_heat1d_implicit_is_unconditionally_stable():
    report = verify(HEAT, equivalence=False)
    sharp = report.results["stability_bound_sharp"]
    assert sharp.applicable and sharp.passed, sharp.message
    assert "1000×Δt bounded" in sharp.message
    assert report.results["stable_at_spec_dt"].passed
    assert report.stability["predicted_max_dt"] is None
    assert report.passed


def check_json(capsys, *args: str) -> tuple[int, dict]:
    code = cli_main(["check", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("spec,overrides", [
    ("heat1d_implicit", ()),
    ("heat1d_implicit", ("time.scheme=strang",)),
    ("allen_cahn_imex", ()),
    ("allen_cahn_imex", ("time.scheme=imex_euler",)),
    ("allen_cahn_2d", ()),
])
def test_check_json_of_implicit_specs(spec, overrides, capsys, tmp_path):
    if spec == "allen_cahn_2d":
        path = tmp_path / "allen_cahn_2d.yaml"
        path.write_text(ALLEN_CAHN_2D)
    else:
        path = REPO / "specs" / f"{spec}.yaml"
    sets = [a for o in overrides for a in ("--set", o)]
    code, data = check_json(capsys, str(path), *sets)
    assert code == 0, data
    stability = data["stability"]
    assert stability["max_stable_dt"] is None
    assert stability["verdict"] == "stable" and stability["stable"] is True
    assert data["scheme"]["implicit"] == ["diffusion"]
    assert data["warnings"] == []
    # the text form says so too
    assert cli_main(["check", str(path), *sets]) == 0
    assert "no step size is too large → stable" in capsys.readouterr().out


def test_check_json_without_implicit_is_unstable_and_exits_1(capsys):
    code, data = check_json(capsys, str(ALLEN_CAHN), "--set", "time.scheme=euler",
                            "--set", "time.implicit=[]")
    assert code == 1
    assert data["stability"]["verdict"] == "unstable"
    # λ(θ) = 1 + D σ(θ) (the reaction's zero-order part enters): λ_min = 1 − 16/(3h²),
    # and Euler needs |1 + Δt λ_min| ≤ 1
    rho = 2 / EXPLICIT_BOUND
    assert data["stability"]["max_stable_dt"] == pytest.approx(2 / (rho - 1), rel=1e-9)
    assert data["stability"]["growth_rate"] == pytest.approx(1.0, rel=1e-12)


# ------------------------------------------------------------------ library bugs (xfail)
def test_exact_flow_of_anti_diffusion_is_stable_relative_to_the_equation(capsys):
    """The exact flow e^{ΔtL} of anti-diffusion grows exactly as the equation does: stable
    at any Δt (the equation itself grows at max λ = 16/(3h²)).  Backward Euler's
    1/(1 − λΔt) has a pole at λΔt = 1: stable only while 1/(1 − w) ≤ e^{2w} (the growth
    allowance), w = λ_max Δt ≤ the root of −log(1 − w) = 2w."""
    from scipy.optimize import brentq

    code, data = check_json(capsys, str(HEAT), "--set", "parameters.D=-1.0")
    assert code == 0 and data["stability"]["verdict"] == "stable"
    assert data["stability"]["max_stable_dt"] is None
    lam_max = 16 / (3 * H**2)
    assert data["stability"]["growth_rate"] == pytest.approx(lam_max, rel=1e-12)
    assert data["stability"]["limit"] == "equation"
    code, imex = check_json(capsys, str(HEAT), "--set", "parameters.D=-1.0",
                            "--set", "time.scheme=imex_euler")
    w = brentq(lambda w: -math.log(1 - w) - 2 * w, 0.5, 0.99)
    assert imex["stability"]["max_stable_dt"] == pytest.approx(w / lam_max, rel=1e-9)
    assert code == 1 and imex["stability"]["verdict"] == "unstable"


ADVECTION_DIFFUSION = """pdelang: 1
name: advection_diffusion_imex
grid:
  axes: [x]
  shape: [32]
  spacing: 0.2
  boundary: periodic
fields:
  u: {channels: 1}
parameters:
  D: 0.5
terms:
  diffusion: D * laplace(u)
  advection: 0.3 * diff(u, x)
equation: dt(u) = diffusion + advection
time:
  span: [0, 1]
  layers: 1
  substeps: 10
  scheme: imex_ars222
  implicit: [diffusion]
discretization:
  laplace: {accuracy: 2}
  diff: {accuracy: 2}
"""


def test_verify_passes_implicit_diffusion_with_explicit_advection():
    report = verify(ADVECTION_DIFFUSION, equivalence=False)
    assert report.stability["verdict"] == "stable"
    for name in ("stability_threshold", "stability_bound_sharp", "stable_at_spec_dt"):
        result = report.results[name]
        assert result.passed, (name, result.message)
