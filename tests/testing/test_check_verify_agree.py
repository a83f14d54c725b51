"""``check`` and ``verify`` cannot disagree: both read one step program.

``check`` derives the stability bound by running the spec's step program symbolically on
u' = λu; ``verify`` steps the same program on the matrices of the linear differential part.
For every shipped spec and for hypothesis-drawn specs (every scheme, residual on and off,
implicit terms, stable and unstable Δt) the two must agree: the same bound, an empirical
threshold within 5 % of it, and check's verdict at the spec's Δt (and its exit code) equal
to what stepping shows.  Also the residual-off heat equation of the issue."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testing_helpers import examples

from pdelang.cli.main import main
from pdelang.lab.testing import strategies as S
from pdelang.lab.testing.harness import compile_any, stepper_for
from pdelang.lab.testing.verify import verify

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED = sorted((REPO / "specs").glob("*.yaml"))
STABILITY = ("stability_threshold", "stability_bound_sharp", "stable_at_spec_dt")


def check_json(path: str, *overrides: str) -> tuple[int, dict]:
    argv = ["check", "--json", path]
    for o in overrides:
        argv += ["--set", o]
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue())


def assert_agree(check: dict, code: int, report) -> None:
    st_check = check["stability"]
    st_verify = report.stability
    # one source: the same bound, method and verdict
    assert st_verify["predicted_max_dt"] == st_check["max_stable_dt"]
    assert st_verify["verdict"] == st_check["verdict"]
    failing = st_check["verdict"] in ("unstable", "no_stable_dt")
    assert code == (1 if failing else 0)
    results = {name: report.results[name] for name in STABILITY}
    if not results["stable_at_spec_dt"].applicable:
        return  # nothing to step (no linear differential part); check gives no bound
    for name in ("stability_threshold", "stability_bound_sharp"):
        assert results[name].passed, f"{name}: {results[name].message}"
    # check's verdict at the spec's Δt is what stepping the linear part shows, and verify
    # fails there exactly when check exits 1
    details = results["stable_at_spec_dt"].details
    assert results["stable_at_spec_dt"].passed == (not failing)
    assert details["agrees"], results["stable_at_spec_dt"].message
    if st_check["verdict"] == "unstable":
        assert details["grows"]
    if st_check["verdict"] == "stable":
        assert not details["grows"]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_check_and_verify_agree_on_every_shipped_spec(path):
    code, check = check_json(str(path))
    report = verify(str(path), steps=2000, equivalence=False)
    assert_agree(check, code, report)


@st.composite
def _drawn(draw):
    """Diffusion specs of every scheme, residual on or off, implicit terms, Δt from well
    below to far above the explicit bound."""
    dt = draw(st.sampled_from([0.01, 0.2, 1.0, 4.0]))
    text = draw(S.diffusion_spec_texts(schemes=S.SCHEMES + S.IMEX_SCHEMES, residual=None,
                                       implicit=True, dt=dt, sizes=(8, 12)))
    return text


@examples(12, ci=6)  # ≈ 1.4 s an example; thorough: 240
@given(_drawn())
def test_check_and_verify_agree_on_drawn_specs(text):
    path = Path("/tmp") / "pdelang-agree.yaml"
    path.write_text(text)
    code, check = check_json(str(path))
    report = verify(str(path), steps=2000, equivalence=False)
    assert_agree(check, code, report)


# ----------------------------------------------------------------------------- residual off
HEAT_NO_RESIDUAL = """\
pdelang: 1
name: heat_no_residual
grid:
  axes: [x]
  shape: [32]
  spacing: 1.0
  boundary: periodic
fields:
  u: {{channels: 1}}
parameters:
  D: 0.4
terms:
  diffusion: D * laplace(u)
equation: dt(u) = diffusion
stabilizers:
  residual: false
time:
  span: [0, {span}]
  layers: 1
  substeps: {steps}
  scheme: euler
"""


def test_residual_off_heat_reports_the_true_bound_and_exits_1(tmp_path):
    """Without the identity part a step multiplies a mode by Δt·D·λ(θ), so the bound is
    h²/(4D) = 0.625 (not h²/(2D) = 1.25); at Δt = 1 the growth per step is 1.6."""
    path = tmp_path / "heat.yaml"
    path.write_text(HEAT_NO_RESIDUAL.format(span=1.0, steps=1))
    code, check = check_json(str(path))
    st_ = check["stability"]
    assert st_["max_stable_dt"] == pytest.approx(0.625, rel=1e-12)
    assert st_["formula"] == "h**2/(4*D)"
    assert st_["verdict"] == "unstable" and st_["exact"] and code == 1
    report = verify(str(path), steps=2000, equivalence=False)
    assert report.stability["empirical_max_dt"] == pytest.approx(0.625, rel=1e-2)
    assert_agree(check, code, report)


@pytest.mark.parametrize(("dt", "grows"), [(0.6, False), (0.65, True)])
def test_residual_off_generated_stepper_just_below_and_above_the_bound(tmp_path, dt, grows):
    """The generated stepper decays just below h²/(4D) and grows just above it (the
    highest mode, θ = π, is multiplied by Δt·D·4/h² each step)."""
    steps = 400
    text = HEAT_NO_RESIDUAL.format(span=dt * steps, steps=steps)
    compilation = compile_any(text)
    assert compilation.analysis.stability.verdict == ("unstable" if grows else "stable")
    stepper = stepper_for(compilation, seed=None)
    u0 = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 32, 1)))
    with torch.no_grad():
        out = stepper(u0)
    ratio = float(out.abs().max() / u0.abs().max())
    if grows:
        assert ratio > 1e3, ratio
    else:
        assert ratio < 1e-3 and math.isfinite(ratio), ratio


def test_check_text_shows_the_amplification_and_exactness(tmp_path):
    path = tmp_path / "heat.yaml"
    path.write_text(HEAT_NO_RESIDUAL.format(span=1.0, steps=1))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["check", str(path)]) == 1
    text = out.getvalue()
    assert "max stable Δt = h**2/(4*D) = 0.625 → UNSTABLE  [exact]" in text
    assert "amplification per step G = z_diffusion" in text
