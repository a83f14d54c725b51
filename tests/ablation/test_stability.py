"""The stability study of ``pdelang phase`` (pdelang.lab.ablation.stability and its report)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pdelang.lab.ablation.stability import (
    ARMS,
    QUICK_STUDY,
    StudyGrid,
    _claim,
    _line,
    analyse,
    arm_overrides,
    load_family,
    parse_study,
    time_step,
)
from pdelang.interpreters.builder import build_module
from pdelang.cli.main import main
from pdelang.errors import OverrideError
from pdelang.compiler.spec.load import load_spec_text

ROOT = Path(__file__).resolve().parents[2]
VIT2D = ROOT / "specs" / "vit2d.yaml"


@pytest.fixture(scope="module")
def family():
    text = VIT2D.read_text()
    spec, raw = load_family(text, str(VIT2D), [])
    return text, spec, raw


def _build(family, arm, depth, scaling):
    text, spec, raw = family
    loaded = load_spec_text(text, str(VIT2D), arm_overrides(spec, raw, ARMS[arm], depth,
                                                             scaling))
    return loaded, build_module(loaded)


# ------------------------------------------------------------------------- the arms
@pytest.mark.parametrize("scaling,depth,expected", [
    ("step", 4, 1.0), ("step", 16, 1.0), ("time", 8, 0.5), ("time", 16, 0.25),
    ("sqrt", 16, 0.5), ("sqrt", 4, 1.0)])
def test_time_step_of_each_scaling(family, scaling, depth, expected):
    step, end = time_step(family[1], depth, scaling)
    assert step == pytest.approx(expected) and end == pytest.approx(depth * expected)


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_every_arm_compiles_at_two_depths_with_what_it_says(family, arm):
    for depth in (4, 8):
        for scaling in ARMS[arm].scalings:
            spec, _ = _build(family, arm, depth, scaling)
            assert spec.time.layers == depth
            assert spec.stabilizers.residual is ARMS[arm].residual
            assert spec.stabilizers.norm.kind == ARMS[arm].norm
            assert not spec.stabilizers.norm.final  # the read-out norm is the task's
            assert ("diffusion" in spec.equation.text) is ARMS[arm].residual


def test_rezero_starts_as_the_identity_without_diffusion(family):
    """Gates start at exactly 0: with D = 0 the whole stack is the identity at init."""
    _, module = _build(family, "rezero", 4, "step")
    torch.manual_seed(0)
    stepper = module.Stepper()
    with torch.no_grad():
        for name, p in stepper.named_parameters():
            if name.endswith("D") or "gate" in name:
                assert "gate" not in name or torch.count_nonzero(p) == 0
            if name.endswith("D") or name.endswith(".D.original"):
                p.fill_(-1e4 if "original" in name else 0.0)
    u = torch.randn(2, 17, 64)
    with torch.no_grad():
        out = stepper(u)
    assert torch.allclose(out, u, atol=1e-6)


def test_residual_off_replaces_the_state(family):
    """Residual off: the output does not contain the input (scaling u₀ by 3 is not seen
    through a pre-LN block, so the outputs of u₀ and 3u₀ agree)."""
    _, module = _build(family, "layernorm-nores", 4, "step")
    torch.manual_seed(0)
    stepper = module.Stepper().eval()
    u = torch.randn(2, 17, 64)
    with torch.no_grad():
        a, b = stepper(u), stepper(3 * u)
    assert torch.allclose(a, b, atol=1e-4)


# ------------------------------------------------------------------------- the grid
def test_parse_study_defaults_and_quick():
    assert parse_study() == StudyGrid()
    assert parse_study(quick=True) == QUICK_STUDY
    grid = parse_study("none,layernorm", "4,8", "time", "1e-2,1e-3", 5)
    assert grid.arms == ("none", "layernorm") and grid.lrs == (1e-3, 1e-2)
    assert grid.seeds == 5 and grid.scalings == ("time",)


@pytest.mark.parametrize("kwargs,where", [
    ({"arms": "layernorm,batchnorm"}, "<--arms>:1:18"),
    ({"depths": "4,x"}, "<--depths>:1:12"),
    ({"scalings": "step,linear"}, "<--scalings>:1:17"),
    ({"lrs": "1e-3,-1"}, "<--lrs>:1:12"),
    ({"arms": "none,none"}, "<--arms>:1:13")])
def test_bad_axis_values_are_located(kwargs, where):
    with pytest.raises(OverrideError) as info:
        parse_study(**kwargs)
    assert where in str(info.value)


# ------------------------------------------------------------------------- the analysis
def _runs(arm, accuracies, unstable, scaling="step", depth=4):
    """Synthetic runs: ``accuracies[seed][i]`` and ``unstable[seed][i]`` at lrs[i]."""
    runs = []
    for seed, (acc, bad) in enumerate(zip(accuracies, unstable)):
        for lr, a, u in zip(LRS, acc, bad):
            runs.append({"arm": arm, "scaling": scaling, "depth": depth, "lr": lr,
                         "seed": seed, "accuracy": a, "unstable": u, "error": None,
                         "drift_init": None, "drift_final": None})
    return runs


LRS = (1e-3, 3e-3, 1e-2, 3e-2)


def test_critical_and_optimal_lr_of_a_line():
    runs = _runs("none", [[0.8, 0.85, 0.3, 0.1]] * 3,
                 [[False, False, True, True], [False, False, False, True],
                  [False, False, True, True]])
    line = _line(runs, LRS, 3)
    assert line["critical_lr"] == 1e-2 and line["critical_bracket"] == [3e-3, 1e-2]
    assert line["bracketed"] and line["optimal_lr"] == 3e-3 and line["optimal_interior"]
    assert line["per_seed"][1]["largest_stable_lr"] == 1e-2
    assert line["per_seed"][0]["largest_stable_lr"] == 3e-3


def test_a_line_stable_everywhere_has_no_critical_lr():
    line = _line(_runs("layernorm", [[0.9, 0.95, 0.93, 0.91]] * 3, [[False] * 4] * 3), LRS, 3)
    assert line["critical_lr"] is None and line["critical_bracket"] == [3e-2, None]
    assert not line["bracketed"]


def test_the_claim_holds_only_with_controls_that_train():
    control = _line(_runs("layernorm", [[0.9, 0.95, 0.93, 0.91]] * 3, [[False] * 4] * 3),
                    LRS, 3)
    free = _line(_runs("none", [[0.8, 0.3, 0.1, 0.1]] * 3,
                       [[False, True, True, True]] * 3), LRS, 3)
    claim = _claim(free, control, 3, max(LRS))
    assert claim["holds"] and claim["seeds_for"] == 3
    weak = _line(_runs("layernorm", [[0.5, 0.6, 0.55, 0.5]] * 3, [[False] * 4] * 3), LRS, 3)
    assert _claim(free, weak, 3, max(LRS))["holds"] is None  # no control that trains: undecided


def test_the_claim_fails_when_the_norm_free_arm_is_as_stable():
    control = _line(_runs("layernorm", [[0.9, 0.95, 0.93, 0.91]] * 3,
                          [[False, False, False, True]] * 3), LRS, 3)
    free = _line(_runs("none", [[0.8, 0.85, 0.8, 0.1]] * 3,
                       [[False, False, False, True]] * 3), LRS, 3)
    claim = _claim(free, control, 3, max(LRS))
    assert not claim["holds"] and claim["seeds_for"] == 0


def test_depth_scaling_prediction():
    grid = StudyGrid(arms=("layernorm",), depths=(4, 16), scalings=("step", "time"),
                     lrs=LRS, seeds=1)
    stay = _runs("layernorm", [[0.8, 0.9, 0.7, 0.1]], [[False, False, False, True]])
    runs = (stay + _runs("layernorm", [[0.8, 0.9, 0.7, 0.1]], [[False, False, False, True]],
                         "time", 16)
            + _runs("layernorm", [[0.9, 0.7, 0.1, 0.1]], [[False, False, True, True]],
                    "step", 16))
    result = analyse(runs, grid, 4)
    assert result["prediction"]["layernorm"] == {"time_stays": True, "step_moves": True,
                                                 "depths": [4, 16], "censored": False,
                                                 "holds": True}
    moves = {m["scaling"]: m for m in result["movement"]}
    assert moves["step"]["optimal_steps"] == pytest.approx(-1.0)
    assert moves["step"]["critical_steps"] == pytest.approx(-1.0)


def test_depth_scaling_prediction_is_undecided_short_of_depth_16_or_when_censored():
    """The rule compares depth 4 with 16 or 32: a grid reaching 8 reports the movement but
    no verdict; nor does a line whose critical rate lies beyond rates run only at the other
    depth (it is censored at different places)."""
    grid = StudyGrid(arms=("layernorm",), depths=(4, 8), scalings=("step", "time"),
                     lrs=LRS, seeds=1)
    same = [[0.8, 0.9, 0.7, 0.1]], [[False, False, False, True]]
    runs = (_runs("layernorm", *same) + _runs("layernorm", *same, "time", 8)
            + _runs("layernorm", [[0.9, 0.7, 0.1, 0.1]], [[False, False, True, True]],
                    "step", 8))
    shallow = analyse(runs, grid, 4)["prediction"]["layernorm"]
    assert shallow["holds"] is None and not shallow["censored"]
    assert shallow["time_stays"] and shallow["step_moves"]  # the movement is still shown
    deep = StudyGrid(arms=("layernorm",), depths=(4, 16), scalings=("step", "time"),
                     lrs=LRS, seeds=1)
    stable = [[0.8, 0.9, 0.7, 0.6]], [[False] * 4]
    partial = [r for r in _runs("layernorm", *stable, "time", 16) if r["lr"] < LRS[-1]]
    runs = (_runs("layernorm", *stable) + partial
            + _runs("layernorm", *stable, "step", 16))
    result = analyse(runs, deep, 4)
    assert {m["scaling"]: m["censored"] for m in result["movement"]} == {
        "time": True, "step": False}
    assert result["prediction"]["layernorm"]["holds"] is None


# ------------------------------------------------------------------------- the command
def test_quick_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["phase", str(VIT2D), "--quick", "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("baseline_best_accuracy", "seeds", "depths", "scalings", "arms",
                "critical_lr", "optimal_lr", "verdicts", "depth_limit"):
        assert key in summary
    assert summary["quick"] and summary["runs"] == 8
    assert {p.name for p in out.iterdir()} >= {"phase.json", "phase.md", "summary.json",
                                               "accuracy_step.png", "runs"}
    # the report again from the runs alone, nothing trained
    assert main(["phase", str(VIT2D), "--quick", "--report-only", "--json",
                 "--out", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["critical_lr"] == summary["critical_lr"]
    assert again["verdicts"] == summary["verdicts"]
    # resuming with another recipe is refused, naming what differs
    assert main(["phase", str(VIT2D), "--quick", "--epochs", "5", "--resume",
                 "--out", str(out)]) == 2
    assert "recipe.epochs" in capsys.readouterr().err


def test_cli_errors_are_located_and_exit_2(tmp_path, capsys):
    assert main(["phase", str(VIT2D), "--arms", "layernorm,batchnorm", "--quick",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "<--arms>:1:18" in err and "Traceback" not in err
    assert main(["phase", str(VIT2D), "--norms", "none", "--quick", "--out",
                 str(tmp_path)]) == 2
    assert "--recipe legacy" in capsys.readouterr().err
    assert main(["phase", str(VIT2D), "--clip", "fast", "--quick", "--out",
                 str(tmp_path)]) == 2
    assert "<--clip>" in capsys.readouterr().err


def test_a_spec_outside_the_family_is_refused(tmp_path, capsys):
    heat = ROOT / "specs" / "heat1d.yaml"
    assert main(["phase", str(heat), "--quick", "--out", str(tmp_path)]) == 2
    assert "interaction, reaction and diffusion" in capsys.readouterr().err


def test_unit_results_are_reproducible():
    """A unit is a pure function of its dict: the same run twice gives the same record."""
    from pdelang.lab.ablation.recipe import Recipe, quick_recipe
    from pdelang.lab.ablation.stability import study_units
    from pdelang.lab.ablation.units import run_unit

    grid = StudyGrid(arms=("none",), depths=(2,), scalings=("step",), lrs=(1e-3,), seeds=1)
    (unit,) = study_units(str(VIT2D), grid, quick_recipe(Recipe()))
    a, b = run_unit(unit), run_unit(unit)
    assert a["error"] is None
    assert a["record"]["losses"] == b["record"]["losses"]
    assert math.isclose(a["record"]["heldout_accuracy"], b["record"]["heldout_accuracy"])


def test_a_grid_rate_skipped_inside_a_line_leaves_the_prediction_undecided():
    """A line run at 1e-3 and 1e-2 but not 3e-3 cannot say whether its critical rate moved
    to 3e-3: the depth-scaling prediction is undecided, not 'the rates did not move'."""
    grid = StudyGrid(arms=("none",), depths=(4, 16), scalings=("step", "time"), lrs=LRS,
                     seeds=1)
    same = [[0.8, 0.6, 0.1, 0.1]], [[False, False, True, True]]
    deep = [r for r in _runs("none", *same, "step", 16) if r["lr"] != 3e-3]
    runs = _runs("none", *same) + _runs("none", *same, "time", 16) + deep
    result = analyse(runs, grid, 4)
    moves = {m["scaling"]: m for m in result["movement"]}
    assert moves["step"]["censored"] and not moves["time"]["censored"]
    assert result["prediction"]["none"]["holds"] is None
    assert result["lines"]["none|step|16"]["gaps"] == [3e-3]
