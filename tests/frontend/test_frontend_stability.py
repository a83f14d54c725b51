"""Von Neumann stability bounds: the largest stable Δt of the linear stencil part for each
time scheme, derived (not hard-coded) from the stencil's symbol and the scheme's region."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import sympy

from pdelang.compiler.analysis.stability import (
    Z,
    imaginary_stability_interval,
    real_stability_interval,
    stability_function,
)
from pdelang.cli.main import main
from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text

REPO = Path(__file__).parent.parent.parent
HEAT = REPO / "specs" / "heat1d.yaml"
BETA_RK4 = 2.785293563405282


def check_json(*argv: str, rc: int = 0) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["check", "--json", *argv]) == rc
    return json.loads(out.getvalue())


def spec(term: str = "D * laplace(u)", *, scheme: str = "euler", axes: str = "[x]",
         shape: str = "", h: float = 0.1, D: float = 0.5, extra_params: str = "",
         more_terms: str = "", equation: str = "dt(u) = a", span: str = "[0, 0.001]",
         split: str = "", accuracy: int = 2):
    text = f"""pdelang: 1
name: stab
grid:
  axes: {axes}
  spacing: {h}
{shape}fields:
  u: {{channels: 1}}
parameters:
  D: {D}
{extra_params}terms:
  a: {term}
{more_terms}equation: {equation}
time:
  span: {span}
  scheme: {scheme}
{split}discretization:
  laplace: {{accuracy: {accuracy}}}
"""
    analysis = compile_spec(load_spec_text(text, "stab.yaml"), until="analysis").analysis
    return analysis


def test_heat1d_euler_bound_from_the_cli():
    data = check_json(str(HEAT))
    st = data["stability"]
    h, D = 0.09817477042468103, 0.5
    assert st["scheme"] == "euler"
    assert st["max_stable_dt"] == pytest.approx(h * h / (2 * D), rel=1e-12)
    assert st["formula"] == "h**2/(2*D)"
    assert st["stable"] is True
    assert st["dt"] == pytest.approx(0.1 / 20)


def test_two_dimensional_laplacian_halves_the_bound():
    a = spec(axes="[x, y]", shape="  shape: [8, 8]\n", h=0.2, D=0.25)
    assert a.stability.max_stable_dt == pytest.approx(0.2**2 / (4 * 0.25), rel=1e-12)
    assert a.stability.formula == "h**2/(4*D)"


def test_stability_functions_are_derived_from_the_step_programs():
    """R(z) of each scheme is what its step program does on u' = λu (never written down)."""
    z = Z
    assert sympy.expand(stability_function("euler") - (1 + z)) == 0
    assert sympy.expand(stability_function("rk2") - (1 + z + z**2 / 2)) == 0
    assert sympy.expand(stability_function("rk4") - (1 + z + z**2 / 2 + z**3 / 6
                                                      + z**4 / 24)) == 0
    assert sympy.expand(stability_function("euler", residual=False) - z) == 0
    assert sympy.simplify(stability_function("imex_euler", implicit=("a",)) - 1 / (1 - z)) == 0
    assert sympy.simplify(stability_function("lie", implicit=("a",)) - sympy.exp(z)) == 0
    # ARS(2,2,2)'s implicit part, from its tableau with γ = 1 − 1/√2: L-stable
    g = stability_function("imex_ars222", implicit=("a",))
    gamma = 1 - 1 / sympy.sqrt(2)
    expected = (1 + (1 - 2 * gamma) * z) / (1 - gamma * z) ** 2
    assert sympy.simplify(g - expected) == 0
    assert sympy.limit(g, z, -sympy.oo) == 0


def test_stability_intervals():
    assert real_stability_interval(stability_function("euler")) == 2
    assert real_stability_interval(stability_function("rk2")) == 2
    beta = real_stability_interval(stability_function("rk4"))
    assert float(beta) == pytest.approx(BETA_RK4, rel=1e-14)
    # β is the edge of the region: |R(-β)| = 1, and just beyond it |R| > 1
    r4 = sympy.lambdify(Z, stability_function("rk4"))
    assert abs(float(r4(-beta.evalf(30)))) == pytest.approx(1.0, abs=1e-12)
    assert abs(r4(-float(beta) - 1e-6)) > 1
    assert abs(r4(-float(beta) + 1e-6)) < 1
    assert imaginary_stability_interval(stability_function("euler")) == 0
    assert imaginary_stability_interval(stability_function("rk2")) == 0
    assert imaginary_stability_interval(stability_function("rk4")) == 2 * sympy.sqrt(2)
    # without the residual, Euler keeps |Δt λ| ≤ 1; implicit steps are unbounded
    assert real_stability_interval(stability_function("euler", residual=False)) == 1
    assert real_stability_interval(stability_function("imex_euler", implicit=("a",))) \
        == sympy.oo
    assert imaginary_stability_interval(
        stability_function("imex_ars222", implicit=("a",))) == sympy.oo


def test_rk4_uses_its_real_stability_interval():
    h, D = 0.1, 0.5
    a = spec(scheme="rk4", h=h, D=D)
    beta = float(real_stability_interval(stability_function("rk4")))
    assert a.stability.max_stable_dt == pytest.approx(beta * h * h / (4 * D), rel=1e-12)
    assert a.stability.interval == pytest.approx(BETA_RK4, rel=1e-14)


def test_rk2_has_the_euler_interval():
    h, D = 0.1, 0.5
    a = spec(scheme="rk2", h=h, D=D)
    assert a.stability.max_stable_dt == pytest.approx(h * h / (2 * D), rel=1e-12)


def test_strang_with_diffusion_not_last_doubles_lies_bound():
    common = dict(more_terms="  b: tanh(u)\n", equation="dt(u) = a + b")
    lie = spec(scheme="lie", split="  split_order: [a, b]\n", **common)
    strang_first = spec(scheme="strang", split="  split_order: [a, b]\n", **common)
    strang_last = spec(scheme="strang", split="  split_order: [b, a]\n", **common)
    h, D = 0.1, 0.5
    assert lie.stability.max_stable_dt == pytest.approx(h * h / (2 * D), rel=1e-12)
    assert strang_first.stability.max_stable_dt == \
        pytest.approx(2 * lie.stability.max_stable_dt, rel=1e-12)
    assert strang_last.stability.max_stable_dt == \
        pytest.approx(lie.stability.max_stable_dt, rel=1e-12)
    assert strang_first.stability.limiting_term == "a"


def test_accuracy_four_laplacian_spectral_radius():
    h, D = 0.1, 0.5
    a = spec(accuracy=4, h=h, D=D)
    # the accuracy-4 symbol has spectral radius 16/3 / h², so Δt ≤ 2 · 3/(16 D) · h²
    assert a.stability.max_stable_dt == pytest.approx(2 * 3 / (16 * D) * h * h, rel=1e-12)
    assert a.stability.formula == "3*h**2/(8*D)"


def test_too_large_a_step_is_flagged():
    h, D = 0.1, 0.5
    ok = spec(h=h, D=D, span="[0, 0.01]")  # Δt = 0.01 = h²/(2D): exactly on the bound
    assert ok.stability.stable is True
    bad = spec(h=h, D=D, span="[0, 0.0101]")
    assert bad.stability.stable is False
    assert bad.stability.dt == pytest.approx(0.0101)
    assert any("exceeds the largest stable step" in w for w in bad.warnings)
    assert not any("exceeds" in w for w in ok.warnings)


def test_cli_reports_an_unstable_step():
    data = check_json(str(HEAT), "--set", "time.substeps=5", rc=1)  # exit 1: unstable
    assert data["stability"]["stable"] is False
    assert data["stability"]["verdict"] == "unstable"
    assert any("exceeds the largest stable step" in w for w in data["warnings"])


def test_anti_diffusion_grows_in_its_own_right_and_euler_keeps_up():
    """∂t u = −D Δu grows every mode like e^{λΔt}, λ = D(2 − 2cos θ)/h² ≤ 4D/h²; Euler's
    1 + λΔt never exceeds e^{λΔt}: stable relative to the equation, which grows."""
    a = spec(term="-D * laplace(u)")
    assert a.stability.max_stable_dt is None and a.stability.verdict == "stable"
    assert a.stability.growth_rate == pytest.approx(4 * 0.5 / 0.1**2, rel=1e-12)
    assert a.stability.grows and a.stability.limit == "equation"


def test_no_linear_part_means_no_bound():
    a = spec(term="tanh(u)")
    # nothing to bound, and the nonlinear part was left out: no verdict
    assert a.stability.max_stable_dt is None and a.stability.stable is None
    assert a.stability.verdict == "unknown" and not a.stability.exact


def test_a_zero_order_part_enters_the_symbol():
    """tanh(u) − D u: the decay −D is the whole linear part, so Euler needs Δt ≤ 2/D."""
    a = spec(term="tanh(u) - D * u")
    assert a.stability.max_stable_dt == pytest.approx(2 / 0.5, rel=1e-12)
    assert a.stability.growth_rate == pytest.approx(-0.5)
    assert not a.stability.exact and any("tanh" in c for c in a.stability.caveats)


def test_advection_euler_is_unstable_rk4_is_not():
    h, c = 0.1, 2.0
    params = f"  c: {c}\n"
    euler = spec(term="c * diff(u, x)", extra_params=params, h=h)
    assert euler.stability.max_stable_dt == 0.0
    assert euler.stability.stable is False and euler.stability.verdict == "no_stable_dt"
    rk4 = spec(term="c * diff(u, x)", extra_params=params, h=h, scheme="rk4")
    bound = rk4.stability.max_stable_dt
    assert 0 < bound < 3 * h / c
    # the imaginary-axis interval of RK4 is 2√2 and max|λ| = c/h (at θ = π/2)
    assert bound == pytest.approx(2 * math.sqrt(2) * h / c, rel=1e-9)


def test_advection_diffusion_euler_bound():
    """Euler on D u_xx + c u_x: |1 + Δt λ(θ)| ≤ 1 needs Δt ≤ 2D/c² (small θ) and h²/(2D)."""
    h, c, D = 0.1, 2.0, 0.05
    a = spec(term="D * laplace(u) + c * diff(u, x)", extra_params=f"  c: {c}\n", h=h, D=D)
    expected = min(2 * D / c**2, h * h / (2 * D))
    assert a.stability.max_stable_dt == pytest.approx(expected, rel=2e-3)
    assert a.stability.max_stable_dt <= expected * (1 + 1e-3)
