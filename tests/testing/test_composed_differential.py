"""Differential testing beyond the shipped specs: ``check``, ``verify`` and the generated
stepper on drawn composed linear equations (:func:`composed_linear_spec_texts`: nested
laplace/diff words, growing and decaying parts, implicit parts, every boundary, 1-D grids of
8 to 4096 tokens and 2-D grids, Δt from 1e-3× to 1e3× a rough bound).

For each drawn spec:

* ``check`` (the CLI, in process) exits 0/1 with a JSON verdict and never a traceback;
* ``verify``'s stability properties agree with it: the same verdict at the spec's Δt and,
  where there is a threshold on the stepped grid, the empirical one within 5 % of the
  derived one (``stability_threshold``);
* the generated stepper grows exactly where check says so: stepping a random state with
  the spec's Δt, the growth stays within the allowance (e^{2 max(Re λ, 0) t}, times a
  constant) when check says stable, and exceeds it when check says unstable or that no Δt
  is stable.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from pdelang.cli.main import main
from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text
from pdelang.lab.testing.strategies import composed_linear_spec_texts
from pdelang.lab.testing.verify import verify_stability

# the default (ci) profile's example count, capped at 6 (≈ 2.2 s an example); the
# thorough profile (HYPOTHESIS_PROFILE=thorough) runs its own, twenty times as many
_PROFILE = settings()
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    max_examples=_PROFILE.max_examples if _PROFILE.derandomize is False
                    else min(6, _PROFILE.max_examples))


def check_json(path) -> tuple[int, dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["check", "--json", str(path)])
    return code, json.loads(out.getvalue())


def generated_growth(text: str, seed: int = 0) -> tuple[float, float]:
    """(log of max|u_T| / max|u_0|, T) for the generated stepper from a random state
    (float64)."""
    from pdelang.interpreters.builder import build_module

    compilation = compile_spec(load_spec_text(text, "composed.yaml"))
    module = build_module(compilation.spec)
    stepper = module.Stepper().double()
    shape = compilation.spec.grid.shape
    n = math.prod(shape)
    generator = torch.Generator().manual_seed(seed)
    u0 = torch.randn(1, n, 1, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        u = stepper(u0)
    start = float(u0.abs().max())
    end = float(u.abs().max())
    span = compilation.spec.time.span
    return (math.log(end / start) if math.isfinite(end) and end > 0 else math.inf,
            span[1] - span[0])


@SETTINGS
@given(composed_linear_spec_texts())
def test_check_verify_and_the_generated_stepper_agree(tmp_path_factory, drawn):
    text, draw = drawn
    path = tmp_path_factory.mktemp("composed") / "composed.yaml"
    path.write_text(text)
    code, data = check_json(path)
    st = data["stability"]
    assert code == (1 if st["verdict"] in ("unstable", "no_stable_dt") else 0), data
    assert st["verdict"] in ("stable", "unstable", "no_stable_dt"), st  # nothing left out

    report = verify_stability(str(path))
    at_spec = report.results["stable_at_spec_dt"]
    if at_spec.applicable:
        assert at_spec.details["agrees"], at_spec.message
        threshold = report.results["stability_threshold"]
        if threshold.applicable and report.stability.get("grid") and \
                "instead of the spec's" not in report.stability.get("note", ""):
            assert threshold.passed, threshold.message

    # the generated stepper, away from the bound (the grid's modes need not reach the sup
    # over θ of the von Neumann analysis within a factor 1.25)
    bound = st["max_stable_dt"]
    if bound is not None and bound > 0 and 0.8 < draw["dt"] / bound < 1.25:
        return
    t = draw["dt"] * draw["steps"]
    allowed = 2 * max(st["growth_rate"], 0.0) * t + math.log(10.0)
    if allowed > 600:
        return  # the equation's own growth overflows float64 over the span: nothing to see
    growth, _ = generated_growth(text)
    if st["verdict"] == "stable":
        assert growth <= allowed, (growth, allowed, st)
    elif draw["shape"] and min(draw["shape"]) >= 8 and (bound == 0 or draw["dt"] > 2 * bound):
        # unstable: some mode of the grid outgrows the allowance over the steps taken
        assert growth > allowed - math.log(10.0) + 1.0 or not np.isfinite(growth), (growth, st)


@pytest.mark.parametrize("text", [
    "  hyper: -K * laplace(laplace(u))\n",
    "  lin: (r - 1)*u - 2*laplace(u) - laplace(laplace(u))\n",
])
def test_run_warns_above_a_composed_bound(tmp_path, capsys, text):
    """``run`` at Δt = 1.04× the hyperdiffusion / Swift–Hohenberg bound warns, names the
    bound, and ``--strict`` refuses (the composed term was not analysed before)."""
    spec = f"""pdelang: 1
name: composed
grid: {{axes: [x], shape: [32], spacing: 1.0, boundary: periodic}}
fields: {{u: {{channels: 1}}}}
parameters: {{K: 0.1, r: 0.3}}
terms:
{text}equation: dt(u) = {text.split(':')[0].strip()}
time: {{span: [0, 1], layers: 1, substeps: 1, scheme: euler}}
"""
    path = tmp_path / "composed.yaml"
    path.write_text(spec)
    facts = compile_spec(load_spec_text(spec, str(path)), until="analysis").analysis.stability
    assert facts.max_stable_dt is not None and facts.exact
    dt = 1.04 * facts.max_stable_dt
    sets = ["--set", f"time.span=[0, {dt!r}]"]
    assert main(["run", str(path), *sets, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "exceeds the largest stable Δt" in err, err
    assert main(["run", str(path), *sets, "--strict", "--no-progress"]) == 1
