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
from pdelang.testing.verify import verify

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
    for factor in (1, 10, 100, 1000):
        assert f"{factor}×Δt bounded" in sharp.message, sharp.message
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
    assert data["stability"]["max_stable_dt"] == pytest.approx(EXPLICIT_BOUND, rel=1e-9)


# ------------------------------------------------------------------ library bugs (xfail)
def test_exact_flow_of_anti_diffusion_has_no_stable_step(capsys):
    code, data = check_json(capsys, str(HEAT), "--set", "parameters.D=-1.0")
    assert code == 1 and data["stability"]["verdict"] == "unstable"
    code, imex = check_json(capsys, str(HEAT), "--set", "parameters.D=-1.0",
                            "--set", "time.scheme=imex_euler")
    assert imex["stability"]["max_stable_dt"] == 0  # the IMEX path: exactly 0
    assert data["stability"]["max_stable_dt"] == 0


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
