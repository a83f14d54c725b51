"""``pdelang run``: named initial conditions, the stability bound, and a blow-up hint that names
the real cause (issue 11, "no silent wrong answers")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run

REPO = Path(__file__).resolve().parents[2]
HEAT = str(REPO / "specs" / "heat1d.yaml")
FISHER = str(REPO / "tests" / "cli" / "data" / "fisher_kpp.yaml")  # test data: a shipped
# spec would meet the codegen tests' N(0, 1) training input, which leaves its range
VIT = str(REPO / "specs" / "vit2d.yaml")
# heat1d at Δt = 0.1, ten times its bound h²/(2D) = 0.00964: 200 steps overflow float32
UNSTABLE = ("--set", "time.substeps=200", "--set", "time.span=[0, 20]")


def _json(out: str) -> dict:
    return json.loads(out)


# --------------------------------------------------------------------------- --init
@pytest.mark.parametrize("init, fragment", [
    ("gaussian", "not an initial condition"),
    ("unifrom:0,1", "did you mean 'uniform'"),
    ("uniform:1", "two bounds A,B"),
    ("uniform:1,0", "lower bound must be below"),
    ("uniform:0,nan", "not a finite number"),
    ("random:-1", "must be positive"),
    ("random:abc", "not a finite number"),
    ("bump:inf", "not a finite number"),
    ("missing-state.pt", "no such initial-state file"),
])
def test_bad_init_is_a_user_error(init, fragment):
    code, _, err = run("run", HEAT, "--init", init, "--no-progress")
    assert code == 2, err
    assert fragment in err and "Traceback" not in err, err


def test_init_file_of_the_wrong_shape(tmp_path):
    path = tmp_path / "u.pt"
    torch.save(torch.zeros(1, 10, 3), path)
    code, _, err = run("run", HEAT, "--init", str(path), "--no-progress")
    assert code == 2 and "(B, N, 1) tensor" in err, err


def test_1d_init_file_must_fit_grid_shape(tmp_path):
    """A 1-D spec with ``grid.shape: [64]`` refuses a 40-token file (as a 2-D grid refuses a
    file of the wrong size), located on ``--init`` or at the spec's ``init:`` value; a 1-D
    spec without ``grid.shape`` takes a file of any length."""
    path = tmp_path / "u.pt"
    torch.save(torch.full((1, 40, 1), 0.5, dtype=torch.float64), path)
    code, _, err = run("run", FISHER, "--init", str(path), "--no-progress")
    assert code == 2 and err.startswith("<--init>:1:8: error"), err
    assert "40 grid token(s)" in err and "grid.shape [64]" in err and "hint:" in err, err
    assert "Traceback" not in err
    spec = tmp_path / "kpp.yaml"
    spec.write_text(Path(FISHER).read_text() + "init: u.pt\n")
    code, _, err = run("run", str(spec), "--no-progress")
    line = Path(FISHER).read_text().count("\n") + 1
    assert code == 2 and f"kpp.yaml:{line}:7: error" in err and "grid.shape [64]" in err, err
    # the same file fits once the shape says 40, and a spec without grid.shape takes it
    code, out, err = run("run", FISHER, "--init", str(path), "--set", "grid.shape=[40]",
                         "--json", "--no-progress")
    assert code == 0 and _json(out)["shape"] == [1, 40, 1], err
    code, out, err = run("run", HEAT, "--init", str(path), "--json", "--no-progress")
    assert code == 0 and _json(out)["shape"] == [1, 40, 1], err


def test_1d_init_file_must_fit_grid_shape_through_the_api(tmp_path):
    from pdelang.compiler.driver import compile_spec
    from pdelang.errors import PdelangError
    from pdelang.lab.testing.harness import initial_state, parse_init

    path = tmp_path / "u.pt"
    torch.save(torch.zeros(2, 40, 1), path)
    with pytest.raises(PdelangError) as caught:
        initial_state(compile_spec(FISHER).discrete, parse_init(str(path)))
    assert caught.value.location is not None and caught.value.location.file == "<--init>"
    assert "grid.shape [64]" in caught.value.message and caught.value.suggestion
    assert initial_state(compile_spec(HEAT).discrete, parse_init(str(path))).shape == (2, 40, 1)


def test_default_random_state_is_small():
    code, out, err = run("run", HEAT, "--json", "--no-progress")
    assert code == 0, err
    assert _json(out)["layers"][0]["max_abs"] < 1.0  # N(0, 0.1²), not N(0, 1)


def test_uniform_init_keeps_fisher_kpp_in_its_range():
    code, out, err = run("run", FISHER, "--init", "uniform:0,1", "--json", "--no-progress")
    assert code == 0, err
    data = _json(out)
    assert data["init"] == "uniform in [0, 1]"
    assert data["layers"][0]["max_abs"] <= 1.0
    assert 0.9 < data["layers"][-1]["max_abs"] <= 1.0 + 1e-6  # the logistic growth to 1


def test_bump_init_respects_the_boundary_and_round_trips_through_a_file(tmp_path):
    saved = tmp_path / "final.pt"
    code, out, err = run("run", FISHER, "--init", "bump", "--save", str(saved), "--json",
                         "--no-progress")
    assert code == 0, err
    assert _json(out)["layers"][0]["max_abs"] == pytest.approx(1.0, abs=1e-3)
    final = torch.load(saved)
    assert final.shape == (2, 64, 1) and float(final.min()) >= 0 and float(final.max()) <= 1
    code, out, err = run("run", FISHER, "--init", str(saved), "--json", "--no-progress")
    assert code == 0, err
    assert _json(out)["layers"][0]["max_abs"] == pytest.approx(float(final.abs().max()))


def test_the_spec_init_is_the_default_and_init_overrides_it(tmp_path):
    """A spec that names its initial condition runs inside its range without --init; an
    explicit --init wins, and its bad value is still located on the command line."""
    spec = tmp_path / "kpp.yaml"
    spec.write_text(Path(FISHER).read_text() + "init: uniform:0,1\n")
    code, out, err = run("run", str(spec), "--json", "--no-progress")
    assert code == 0, err
    assert _json(out)["init"] == "uniform in [0, 1]"
    code, out, err = run("run", str(spec), "--init", "bump:0.5", "--json", "--no-progress")
    assert code == 0 and _json(out)["init"] == "a smooth bump of height 0.5", err
    code, _, err = run("run", str(spec), "--init", "uniform:-0.5,0", "--no-progress")
    assert code == 2 and "runtime error" in err and "uniform in [-0.5, 0]" in err, err
    code, _, err = run("run", str(spec), "--init", "uniform:1,0", "--no-progress")
    assert code == 2 and err.startswith("<--init>:1:8: error"), err


def test_a_spec_init_file_is_read_relative_to_the_spec(tmp_path):
    torch.save(torch.full((1, 64, 1), 0.25, dtype=torch.float64), tmp_path / "start.pt")
    spec = tmp_path / "kpp.yaml"
    spec.write_text(Path(FISHER).read_text() + "init: start.pt\n")
    code, out, err = run("run", str(spec), "--json", "--no-progress")
    assert code == 0, err
    layers = _json(out)["layers"]
    assert layers[0]["max_abs"] == pytest.approx(0.25) and layers[-1]["max_abs"] > 0.9
    torch.save(torch.zeros(1, 64, 3), tmp_path / "start.pt")
    code, _, err = run("run", str(spec), "--no-progress")
    line = Path(FISHER).read_text().count("\n") + 1
    assert code == 2 and f"kpp.yaml:{line}:7: error" in err and "(B, N, 1)" in err, err


def test_a_state_too_large_is_refused_before_allocation(monkeypatch):
    code, _, err = run("run", HEAT, "--batch", str(10**9), "--no-progress")
    assert code == 2 and "too many to allocate" in err and "PDELANG_MAX_STATE" in err, err
    monkeypatch.setenv("PDELANG_MAX_STATE", "100")
    code, _, err = run("run", HEAT, "--batch", "2", "--no-progress")
    assert code == 2 and "the limit is 100" in err, err


def test_initial_states_by_name():
    from pdelang.compiler.driver import compile_spec
    from pdelang.lab.testing.harness import initial_state, parse_init

    model = compile_spec(FISHER).discrete
    bump = initial_state(model, parse_init("bump:2"), batch=1)[0, :, 0]
    assert bump.shape == (64,) and bump.max() == pytest.approx(2.0, abs=1e-2)
    assert np.all(bump[:16] == 0) and np.all(bump[-16:] == 0)  # zero near both ends
    assert np.allclose(bump, bump[::-1])
    uniform = initial_state(model, parse_init("uniform:-1,3"), batch=3, seed=4)
    assert uniform.min() >= -1 and uniform.max() <= 3 and uniform.shape == (3, 64, 1)
    noise = initial_state(model, parse_init("random:0.01"), batch=2)
    assert 0.005 < noise.std() < 0.02
    vit = compile_spec(VIT).discrete  # 4×4 patches + a CLS token
    grid = initial_state(vit, parse_init("bump"), batch=1)
    assert grid.shape == (1, 17, vit.channels) and np.all(grid[0, 0] == 0)
    assert np.all(grid[0, 1:, 0].reshape(4, 4) == grid[0, 1:, 0].reshape(4, 4).T)


# --------------------------------------------------------------------------- stability bound
def test_run_past_the_stability_bound_warns():
    code, _, err = run("run", HEAT, *UNSTABLE, "--no-progress")
    assert "warning:" in err and "exceeds the largest stable" in err, err
    assert "time.substeps to at least 2076" in err, err  # 20 / 0.00963829 = 2075.1 → 2076
    assert code == 2  # and then it does blow up


def test_strict_refuses_to_run_past_the_bound():
    code, _, err = run("run", HEAT, *UNSTABLE, "--strict", "--no-progress")
    assert code == 1, err
    assert "--strict" in err and "exceeds the largest stable" in err, err
    assert "runtime error" not in err  # refused before running
    code, _, err = run("run", HEAT, "--strict", "--no-progress")
    assert code == 0, err


# --------------------------------------------------------------------------- blow-up hints
def test_blowup_past_the_bound_names_dt_and_the_bound():
    code, _, err = run("run", HEAT, *UNSTABLE, "--no-progress")
    assert code == 2 and "runtime error" in err, err
    hint = err.split("hint:", 1)[1]
    assert "exceeds the largest stable Δt 0.00963829" in hint, hint
    assert "time.substeps to at least 2076" in hint, hint


def test_blowup_within_the_bound_names_the_initial_state_not_dt():
    """u(1 − u) from negative values blows up at any Δt: the hint must not say 'lower Δt'."""
    code, _, err = run("run", FISHER, "--init", "uniform:-0.5,0", "--no-progress")
    assert code == 2 and "runtime error" in err, err
    hint = err.split("hint:", 1)[1]
    assert "lower Δt" not in hint, hint
    # λ = 1 + D σ (the reaction's zero-order +u enters), σ ≥ −4/h² = −16: Δt ≤ 2/15
    assert "within the stability bound 0.133333" in hint, hint
    assert "the nonlinear part -u(x)**2 of 'reaction'" in hint, hint  # what the bound leaves out
    assert "uniform in [-0.5, 0]" in hint and "natural range" in hint and "--init" in hint, hint


# --------------------------------------------------------------------------- reproducibility
def test_same_spec_and_seed_give_bitwise_identical_states(tmp_path):
    states = []
    for index in range(2):
        path = tmp_path / f"run{index}.pt"
        code, _, err = run("run", str(REPO / "specs" / "master.yaml"), "--seed", "7",
                           "--tokens", "16", "--save", str(path), "--no-progress")
        assert code == 0, err
        states.append(torch.load(path))
    assert states[0].dtype == torch.float32
    assert torch.equal(states[0], states[1])  # bit for bit
    assert states[0].view(torch.int32).equal(states[1].view(torch.int32))
