"""A non-finite Δt, span or derived module constant is a located user error (exit 2 from
every command, nothing written), never a generated module that cannot be imported (issue 20:
``--set time.span=[-1.0e+308, 1.7e+308]`` wrote ``DT = inf``, a NameError on import)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cli_helpers import run

from pdelang.compiler.driver import compile_spec, compile_text
from pdelang.errors import SpecError
from pdelang.compiler.spec.load import load_spec

REPO = Path(__file__).resolve().parents[2]
HEAT = str(REPO / "specs" / "heat1d.yaml")
# each bound finite, their difference t1 − t0 = 2.7e308 is not: Δt = inf
HUGE_SPAN = "time.span=[-1.0e+308, 1.7e+308]"

HYPER = """\
pdelang: 1
name: hyper
grid: {axes: [x], spacing: 1.23e-77, boundary: periodic}
fields:
  u: {channels: 1}
parameters:
  K: 1.0
terms:
  hyper: -K * diff(u, x, 4)
equation: dt(u) = hyper
time: {span: [0, 1], layers: 1, substeps: 10, scheme: euler}
"""


def test_an_infinite_dt_is_located_at_the_span():
    with pytest.raises(SpecError) as caught:
        load_spec(HEAT, [HUGE_SPAN])
    err = caught.value
    assert err.location.file == "<--set>" and err.location.line == 1
    assert err.location.source_line[err.location.col - 1:] == "[-1.0e+308, 1.7e+308]"
    assert "Δt" in err.message and "float64" in err.message and err.suggestion
    text = str(err)
    assert text.startswith(f"<--set>:1:{err.location.col}: ") and "^~~~" in text


def test_an_infinite_dt_in_the_file_is_located_in_the_file(tmp_path):
    spec = tmp_path / "heat.yaml"
    source = Path(HEAT).read_text()
    assert "span: [0, 0.1]" in source
    spec.write_text(source.replace("span: [0, 0.1]", "span: [-1.0e+308, 1.7e+308]"))
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "span:" in text)
    code, _, err = run("check", str(spec))
    assert code == 2 and f"heat.yaml:{line}:9: spec error" in err and "hint:" in err, err


@pytest.mark.parametrize("command", [
    ("check",), ("check", "--json"), ("compile",), ("run", "--no-progress"), ("verify",),
])
def test_every_command_refuses_an_infinite_dt(command):
    code, out, err = run(command[0], HEAT, "--set", HUGE_SPAN, *command[1:])
    assert code == 2, (out, err)
    assert "Δt" in err + out and "Traceback" not in err
    assert "DT = inf" not in out


def test_nothing_is_written(tmp_path):
    module, state = tmp_path / "heat.py", tmp_path / "state.pt"
    code, _, err = run("compile", HEAT, "--set", HUGE_SPAN, "-o", str(module))
    assert code == 2 and not module.exists(), err
    code, _, err = run("run", HEAT, "--set", HUGE_SPAN, "--save", str(state), "--no-progress")
    assert code == 2 and not state.exists(), err


def test_a_dt_that_underflows_to_zero_is_refused():
    with pytest.raises(SpecError) as caught:
        load_spec(HEAT, ["time.span=[0, 5.0e-324]"])  # one subnormal step / 20 steps = 0
    assert "Δt" in caught.value.message and caught.value.location.file == "<--set>"


def test_a_stencil_weight_that_overflows_is_located_at_the_spacing():
    """h⁴ = 2.3e-308 is a normal float64, but the 4th-derivative stencil's centre weight
    6/h⁴ = 2.6e308 is not finite: the module would hold ``inf`` among its weights."""
    with pytest.raises(SpecError) as caught:
        compile_text(HYPER, "hyper.yaml")
    err = caught.value
    assert err.location.file == "hyper.yaml" and err.location.line == 3
    assert err.location.source_line[err.location.col - 1:].startswith("1.23e-77")
    assert "d4_x" in err.message or "diff" in err.message
    assert err.suggestion
    # a spacing where every weight fits compiles, and its weights are finite
    fine = compile_text(HYPER.replace("1.23e-77", "1.0e-70"), "hyper.yaml")
    assert all(math.isfinite(w) for s in fine.discrete.stencils.values()
               for w in s.scaled_weights())
    assert "inf" not in fine.python.replace("info", "")


def test_the_shipped_constants_still_compile():
    assert compile_spec(HEAT).discrete.dt == pytest.approx(0.005)
