"""The runtime guard names the term inside Runge–Kutta and IMEX stages too
(:mod:`pdelang.interpreters.diagnose` re-runs the step program term by term)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pdelang.interpreters.diagnose import blame
from pdelang.lab.testing.harness import compile_any, stepper_for

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "cli"))
from cli_helpers import run  # noqa: E402

SPEC = """pdelang: 1
name: blowup
grid: {{axes: [x], shape: [16], spacing: 0.5, boundary: neumann}}
fields:
  u: {{channels: 1}}
parameters:
  D: 0.1
terms:
  diffusion: D * laplace(u)
  reaction: u - u^3
equation: dt(u) = diffusion + reaction
time:
  span: [0, 1]
  layers: 1
  substeps: 4
  scheme: {scheme}
{implicit}"""


@pytest.mark.parametrize(("scheme", "implicit"), [
    ("rk4", ""), ("rk2", ""), ("euler", ""),
    ("imex_ars222", "  implicit: [diffusion]\n"), ("imex_euler", "  implicit: [diffusion]\n"),
])
def test_blame_names_the_term_of_a_non_finite_stage(scheme, implicit):
    compilation = compile_any(SPEC.format(scheme=scheme, implicit=implicit))
    stepper = stepper_for(compilation, seed=None)
    module = sys.modules[type(stepper).__module__]
    u = torch.full((1, 16, 1), 1e120, dtype=torch.float64)  # u³ overflows
    found = blame(compilation.discrete.program, stepper.layers[0],
                  module.Context(u, None, record=False), stepper.shared, u,
                  compilation.discrete.dt)
    assert found is not None and found.term == "reaction" and found.kind == "Inf"
    assert found.label.startswith("stage") or found.label == "update"
    # a finite step is blamed on nothing
    small = torch.full((1, 16, 1), 0.5, dtype=torch.float64)
    assert blame(compilation.discrete.program, stepper.layers[0],
                 module.Context(small, None, record=False), stepper.shared, small,
                 compilation.discrete.dt) is None


def test_run_names_the_term_inside_a_runge_kutta_stage(tmp_path):
    path = tmp_path / "blowup.yaml"
    path.write_text(SPEC.format(scheme="rk4", implicit=""))
    code, _out, err = run("run", str(path), "--init", "uniform:1e30,2e30", "--no-progress")
    assert code == 2, err  # a RuntimeCheckError: the user must look at the run
    assert "stage k" in err and "in the rate of term 'reaction'" in err, err
    assert "Traceback" not in err
