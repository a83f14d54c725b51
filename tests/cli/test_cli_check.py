"""`pdelang check`: the report (text and --json) and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy
from cli_helpers import run


REPO = Path(__file__).parent.parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))
MASTER = REPO / "specs" / "master.yaml"


@pytest.fixture(scope="module")
def master_json() -> dict:
    code, out, err = run("check", str(MASTER), "--json")
    assert code == 0, err
    return json.loads(out)


def test_master_json_equation_and_terms(master_json):
    assert master_json["equation"] == "dt(u) = diffusion + interaction + reaction"
    assert master_json["name"] == "master"
    terms = master_json["terms"]
    assert isinstance(terms, list)
    assert [t["name"] for t in terms] == ["diffusion", "interaction", "reaction"]
    for t in terms:
        assert {"name", "linear", "local", "order"} <= set(t)
        assert isinstance(t["linear"], bool) and isinstance(t["local"], bool)
        assert isinstance(t["order"], int)
    by = {t["name"]: t for t in terms}
    assert (by["diffusion"]["linear"], by["diffusion"]["local"], by["diffusion"]["order"]) \
        == (True, True, 2)
    assert (by["interaction"]["linear"], by["interaction"]["local"]) == (False, False)
    assert (by["reaction"]["linear"], by["reaction"]["local"]) == (False, True)


def test_master_json_stencils(master_json):
    stencils = master_json["stencils"]
    assert set(stencils) == {"laplace"}
    lap = stencils["laplace"]
    assert {"weights", "offsets", "accuracy", "leading_error"} <= set(lap)
    assert lap["offsets"] == [-1, 0, 1]
    assert lap["accuracy"] == 2
    assert lap["weights"] == ["1", "-2", "1"]
    assert all(isinstance(w, str) for w in lap["weights"])
    assert [sympy.Rational(w) for w in lap["weights"]] == [1, -2, 1]
    assert lap["leading_error"] == "h**2*Derivative(u(seq), (seq, 4))/12"


def test_master_json_stability(master_json):
    st = master_json["stability"]
    assert {"scheme", "dt", "max_stable_dt", "stable"} <= set(st)
    assert st["scheme"] == "lie"
    assert st["dt"] == 1.0
    # lie: diffusion's Euler sub-step, Δt ≤ h²/(2D) = 1/(2·0.1)
    assert st["max_stable_dt"] == pytest.approx(5.0, rel=1e-12)
    assert st["stable"] is True
    assert st["limiting_term"] == "diffusion"


def test_weights_are_exact_rationals_at_higher_accuracy():
    code, out, _ = run("check", str(MASTER), "--json",
                       "--set", "discretization.laplace.accuracy=8")
    assert code == 0
    lap = json.loads(out)["stencils"]["laplace"]
    assert lap["weights"] == ["-1/560", "8/315", "-1/5", "8/5", "-205/72", "8/5", "-1/5",
                              "8/315", "-1/560"]
    assert lap["accuracy"] == 8 and lap["order"] == 8


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_bundled_spec_passes_check(path):
    code, out, err = run("check", str(path))
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"{path}: ")
    assert "equation: dt(u) =" in out
    assert "stability (" in out


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_bundled_spec_json_is_consistent(path):
    code, out, _ = run("check", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    st = data["stability"]
    if st["max_stable_dt"] is not None:
        assert st["stable"] == (st["dt"] <= st["max_stable_dt"] * (1 + 1e-12))
    assert not any("exceeds" in w for w in data["warnings"]), data["warnings"]


def test_text_report_lists_stencils_and_stability():
    code, out, _ = run("check", str(REPO / "specs" / "heat1d.yaml"))
    assert code == 0
    assert "laplace: offsets [-1, 0, 1]  weights [1, -2, 1] / h^2  accuracy 2  order 2" in out
    assert "leading error: h**2*Derivative(u(x), (x, 4))/12" in out
    assert "max stable Δt = h**2/(2*D)" in out and "→ stable" in out


def test_latex_flag():
    code, out, _ = run("check", str(MASTER), "--json", "--latex")
    assert code == 0
    latex = json.loads(out)["latex"]
    assert latex.startswith(r"\partial_t u = ")
    assert r"\Delta" in latex and r"\mathcal{A}" in latex and r"\mathcal{R}" in latex


def test_missing_file_exits_2():
    code, _, err = run("check", str(REPO / "specs" / "does_not_exist.yaml"))
    assert code == 2
    assert "no such spec file" in err
    assert "Traceback" not in err


def test_bad_spec_json_error_object(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(MASTER.read_text().replace("heads=12", "heads=7"))
    code, out, err = run("check", str(path), "--json")
    assert code == 2
    data = json.loads(out)["error"]
    assert data["kind"] == "operator error"
    assert data["file"] == str(path)
    assert "heads=7 does not divide the 384 channels" in data["message"]
    line = path.read_text().splitlines()[data["line"] - 1]
    assert line[data["col"] - 1:].startswith("heads=7")
    assert err.startswith(f"{path}:{data['line']}:{data['col']}: operator error")


def test_latex_of_a_power_of_an_operator_call(tmp_path):
    # SymPy passes exp= to _latex for laplace(u)^2; this used to crash with a TypeError
    text = (REPO / "specs" / "heat1d.yaml").read_text()
    spec = tmp_path / "squared.yaml"
    spec.write_text(text)
    code, out, err = run("check", str(spec), "--json", "--latex",
                         "--set", "terms.diffusion=D * laplace(u)^2")
    assert code == 0, err
    assert r"\left(\Delta\left(u{\left(x \right)}\right)\right)^{2}" in json.loads(out)["latex"]
