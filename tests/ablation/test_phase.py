"""Tests of the phase diagram ``pdelang.lab.ablation.phase`` and the ``pdelang phase`` command."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ablation_helpers import TINY_SPEC, without_timing

from pdelang.lab.ablation.ablate import ablate
from pdelang.lab.ablation.phase import phase
from pdelang.lab.ablation.phase_cells import cell_summary, claim_table, phase_cells, run_metrics
from pdelang.lab.ablation.phase_grid import (
    QUICK_EVAL_EXAMPLES,
    QUICK_GRID,
    PhaseGrid,
    check_grid,
    parse_grid,
    phase_variants,
)
from pdelang.lab.ablation.phase_report import cell_text
from pdelang.cli.main import main
from pdelang.errors import OverrideError, PdelangError
from pdelang.compiler.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]


# --- the grid ---------------------------------------------------------------------------------

def test_default_grid_is_the_issues_full_grid():
    grid = parse_grid()
    assert grid == PhaseGrid()
    assert grid.depths == (6, 12, 24, 48)
    assert grid.lrs[0] == 1e-4 and grid.lrs[-1] == 1e-2
    assert grid.norms == ("layernorm", "rmsnorm", "none")
    assert grid.residuals == (True, False)
    assert grid.cells == 4 * 5 * 3 * 2


def test_quick_grid_is_the_reduced_grid():
    """--quick: 2 depths × 2 learning rates × (layernorm, none) × residual on — 8 cells, not
    the 120 of the full grid (issue 20: --quick ran the whole grid, ~21 s a cell on master)."""
    grid = parse_grid(quick=True)
    assert grid == QUICK_GRID
    assert grid.depths == (3, 6) and grid.lrs == (1e-3, 1e-2)
    assert grid.norms == ("layernorm", "none") and grid.residuals == (True,)
    assert grid.cells == 8


def test_explicit_axes_win_over_quick():
    grid = parse_grid("1,2", None, "rmsnorm", None, "time", quick=True)
    assert grid == PhaseGrid((1, 2), QUICK_GRID.lrs, ("rmsnorm",), QUICK_GRID.residuals, "time")
    assert parse_grid(residuals="on,off", quick=True).residuals == (True, False)


def test_phase_help_says_what_quick_runs(capsys):
    with pytest.raises(SystemExit):
        main(["phase", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    quick = text[text.index("--quick"):]
    for fragment in ("3,6", "1e-3,1e-2", "layernorm,none", "residual on", "8 cells",
                     "1 seed", "8 steps", "explicit"):
        assert fragment in quick, (fragment, quick[:600])


def test_grid_options_are_parsed():
    grid = parse_grid("2, 4", "1e-3,0.01", "none", "off,on", "time")
    assert grid == PhaseGrid((2, 4), (1e-3, 1e-2), ("none",), (False, True), "time")


@pytest.mark.parametrize(("args", "option", "column", "fragment"), [
    (("6,x",), "--depths", 12, "not a whole number"),
    (("6,0",), "--depths", 12, "not a whole number of layers, at least 1"),
    (("6,12,6",), "--depths", 15, "listed twice"),
    ((None, "1e-3,-1"), "--lrs", 12, "not a positive learning rate"),
    ((None, "1e-3,nan"), "--lrs", 12, "not a positive learning rate"),
    ((None, "fast"), "--lrs", 7, "not a positive learning rate"),
    ((None, None, None, "on,maybe"), "--residual", 15, "neither on nor off"),
    ((",",), "--depths", 1, "lists no values"),
])
def test_bad_axis_values_are_located_in_their_option(args, option, column, fragment):
    with pytest.raises(OverrideError, match=fragment) as caught:
        parse_grid(*args)
    location = caught.value.location
    assert location.file == f"<{option}>"
    assert location.col == column
    assert "^" in caught.value.location.caret()


def test_unknown_depth_scaling():
    with pytest.raises(PdelangError, match="depth-scaling"):
        parse_grid(depth_scaling="width")


def test_unknown_norm_is_located_in_norms(tiny_spec):
    grid = parse_grid(norms="layernorm,batchnorm")
    with pytest.raises(OverrideError, match="batchnorm") as caught:
        check_grid(tiny_spec, grid, norms_text="layernorm,batchnorm")
    assert caught.value.location.file == "<--norms>"
    assert caught.value.location.col == len("--norms layernorm,") + 1
    check_grid(tiny_spec, parse_grid(norms="rmsnorm,none"), norms_text="rmsnorm,none")


def test_variants_add_layers_of_the_spec_step_deepest_first(tiny_spec):
    spec = load_spec(tiny_spec)
    grid = PhaseGrid((1, 3), (1e-3, 3e-4), ("layernorm", "none"), (True, False))
    variants = phase_variants(spec, grid)
    assert len(variants) == grid.cells
    assert [v["time.layers"] for v in variants[:8]] == ["3"] * 8  # the deepest first
    assert variants[0] == {"time.layers": "3", "time.span": "[0.0, 3.0]",
                           "stabilizers.residual": "true", "stabilizers.norm.kind": "layernorm",
                           "train.lr": "0.001"}
    assert {v["train.lr"] for v in variants} == {"0.001", "0.0003"}
    assert len({tuple(v.items()) for v in variants}) == grid.cells
    for variant in variants:  # every variant is a valid spec with Δt = 1
        loaded = load_spec(tiny_spec, [f"{k}={v}" for k, v in variant.items()
                                       if not k.startswith("train.")])
        t0, t1 = loaded.time.span
        assert (t1 - t0) / loaded.time.layers == pytest.approx(1.0)


def test_time_scaling_keeps_the_span(tiny_spec):
    spec = load_spec(tiny_spec)
    grid = PhaseGrid((1, 4), (1e-3,), ("none",), (True,), "time")
    assert [(v["time.layers"], v["time.span"]) for v in phase_variants(spec, grid)] == [
        ("4", "[0.0, 2.0]"), ("1", "[0.0, 2.0]")]


# --- the measurements -------------------------------------------------------------------------

def record(losses, grads, diverged=False, seed=0, accuracy=0.5):
    return {"seed": seed, "losses": losses, "grad_norms": grads, "diverged": diverged,
            "divergence_step": len(losses) - 1 if diverged else None,
            "divergence_reason": "loss above threshold" if diverged else None,
            "steps_completed": len(losses), "final_loss": losses[-1],
            "eval_accuracy": accuracy}


def test_run_metrics_of_a_run_that_trains():
    grads = [2.0] + [1.0] * 8 + [4.0, 3.0]  # 11 steps: the last tenth is the last step
    metrics = run_metrics(record([2.0] * 10 + [1.5], grads))
    assert metrics["grad_growth"] == 2.0
    assert metrics["grad_growth_end"] == 1.5
    assert metrics["progress"] == pytest.approx(0.25)
    assert metrics["final_loss"] == 1.5 and not metrics["diverged"]
    # the final loss is the mean over the last tenth of the steps (20 steps: the last two)
    assert run_metrics(record([3.0] * 18 + [1.0, 2.0], [1.0] * 20))["final_loss"] == 1.5


def test_run_metrics_of_a_diverged_run():
    metrics = run_metrics(record([2.3, 2.0, 40.0], [1.0, 2.0, 1e6], diverged=True))
    assert metrics["diverged"] and metrics["divergence_step"] == 2
    assert metrics["final_loss"] is None and metrics["eval_accuracy"] is None
    assert metrics["grad_growth"] == 1e6
    assert metrics["grad_growth_end"] is None
    # a non-finite gradient norm (JSON-safe "Infinity" or a float) is left out of G
    metrics = run_metrics(record([2.3, math.nan], [1.0, "Infinity"], diverged=True))
    assert metrics["grad_growth"] == 1.0


def test_cell_regimes():
    trains = run_metrics(record([2.0, 1.0], [1.0, 1.0], seed=0))
    stalled = run_metrics(record([2.0, 1.99], [1.0, 1.0], seed=1))
    diverged = run_metrics(record([2.0, 50.0], [1.0, 9.0], diverged=True, seed=2))
    assert cell_summary([trains, trains])["regime"] == "trains"
    assert cell_summary([stalled])["regime"] == "stalled"
    rose = run_metrics(record([2.0, 4.0], [1.0, 3.0], seed=3))
    assert cell_summary([rose])["regime"] == "loss rose"
    assert cell_text({"error": None, "summary": cell_summary([rose])}).startswith(
        "4 (loss rose) · G ×3")
    both = cell_summary([trains, diverged])
    assert both["regime"] == "partly diverged"
    assert both["diverged"] == 1 and both["divergence_steps"] == [1]
    assert both["final_loss_mean"] == 1.0  # the seed that did not diverge
    assert both["grad_growth_median"] == pytest.approx((1.0 + 9.0) / 2)
    assert cell_summary([diverged, diverged])["regime"] == "diverged"
    assert cell_text({"error": None, "summary": cell_summary([diverged])}).startswith("✗ 1/1 @ 1")


def test_claim_table():
    def cell(norm, depth, lr, diverged, seeds=2, residual=True):
        runs = [run_metrics(record([2.0, 50.0] if i < diverged else [2.0, 1.0], [1.0, 2.0],
                                   diverged=i < diverged)) for i in range(seeds)]
        return {"residual": residual, "norm": norm, "depth": depth, "lr": lr,
                "error": None, "summary": cell_summary(runs)}

    cells = [cell("layernorm", 6, 1e-3, 0), cell("none", 6, 1e-3, 0),
             cell("layernorm", 6, 1e-2, 0), cell("none", 6, 1e-2, 2),
             cell("layernorm", 12, 1e-2, 2), cell("none", 12, 1e-2, 2),
             cell("layernorm", 12, 1e-3, 2), cell("none", 12, 1e-3, 1),  # 1/2: no majority
             {**cell("layernorm", 24, 1e-3, 0), "error": "boom", "summary": None},
             cell("none", 24, 1e-3, 2)]
    assert claim_table(cells) == {
        (True, 6, 1e-3): "no: nothing diverges", (True, 6, 1e-2): "holds",
        (True, 12, 1e-2): "no: normalized diverge too",
        (True, 12, 1e-3): "no: only normalized diverge", (True, 24, 1e-3): "unknown"}


# --- the sweep --------------------------------------------------------------------------------

GRID = PhaseGrid((1, 2), (1e-3, 30.0), ("layernorm", "none"), (True,))


@pytest.fixture(scope="module")
def tiny_phase(tmp_path_factory):
    """The tiny spec's 8-cell phase diagram, 6 steps, 1 seed (a few seconds)."""
    folder = tmp_path_factory.mktemp("phase")
    spec = folder / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    out = folder / "out"
    data = phase(str(spec), GRID, steps=6, seeds=1, threads=1, out=str(out), progress=False)
    return str(spec), out, data


def test_phase_report_files_and_divergence(tiny_phase):
    _spec, out, data = tiny_phase
    assert sorted(data["files"]) == ["phase.json", "phase.md", "phase_divergence.png",
                                     "phase_final_loss.png", "phase_grad_growth.png"]
    assert len(list((out / "variants").glob("*.json"))) == GRID.cells
    cells = phase_cells(data)
    assert len(cells) == GRID.cells and not any(c["error"] for c in cells)
    for c in cells:  # lr 30 blows up every cell; lr 1e-3 none in six steps
        assert c["summary"]["diverged"] == (1 if c["lr"] == 30.0 else 0), c["label"]
        assert c["summary"]["regime"] in ("diverged", "stalled", "loss rose", "trains")
    summary = json.loads((out / "phase.json").read_text())
    assert summary["grid"]["depths"] == [1, 2] and summary["time_step"] == 1.0
    assert {c["verdict"] for c in summary["claim"]} == {"no: nothing diverges",
                                                         "no: normalized diverge too"}
    text = (out / "phase.md").read_text()
    assert "| depth \\ lr | 1e-3 | 3e1 |" in text and "✗ 1/1 @" in text


def test_depth_changes_the_trained_network(tiny_phase):
    _spec, _out, data = tiny_phase
    # (the classifier head starts at zero: every first loss is log 10, but not the gradient)
    first = {(c["depth"], c["norm"], c["lr"]): c["runs"][0]["grad_norm_0"]
             for c in phase_cells(data)}
    assert first[(1, "none", 1e-3)] != first[(2, "none", 1e-3)]


def test_a_cell_is_the_same_run_as_ablate(tiny_phase):
    """A phase cell trains exactly as `pdelang ablate` with the same overrides."""
    spec, _out, data = tiny_phase
    cell = next(v for v in data["variants"] if v["overrides"]["time.layers"] == "2"
                and v["overrides"]["stabilizers.norm.kind"] == "none"
                and v["overrides"]["train.lr"] == "0.001")
    same = ablate(spec, ["time.layers=2", "time.span=[0.0, 2.0]",
                         "stabilizers.norm.kind=none", "train.lr=0.001"],
                  reference=None, steps=6, seeds=1, threads=1, progress=False)
    ours = without_timing(cell["training"]["seeds"])
    theirs = without_timing(same["variants"][0]["training"]["seeds"])
    assert ours == theirs


def test_resume_takes_every_cell(tiny_phase):
    spec, out, data = tiny_phase
    again = phase(spec, GRID, steps=6, seeds=1, threads=1, out=str(out), progress=False,
                  resume=True)
    assert again["resumed"] == GRID.cells
    assert without_timing(phase_cells(again)) == without_timing(phase_cells(data))
    with pytest.raises(PdelangError, match="different sweep"):
        phase(spec, GRID, steps=7, seeds=1, threads=1, out=str(out), progress=False,
              resume=True)


def test_a_grown_grid_resumes_the_cells_it_has(tiny_phase):
    """Another learning rate on the axis: the 8 cells already run are taken, 4 run."""
    spec, out, data = tiny_phase
    grown = PhaseGrid(GRID.depths, (*GRID.lrs, 1e-2), GRID.norms, GRID.residuals)
    again = phase(spec, grown, steps=6, seeds=1, threads=1, out=str(out), progress=False,
                  resume=True)
    assert again["resumed"] == GRID.cells
    cells = phase_cells(again)
    assert len(cells) == grown.cells == len(list((out / "variants").glob("*.json")))
    old = {c["label"]: c for c in without_timing(phase_cells(data))}
    assert all(old[c["label"]] == c for c in without_timing(cells) if c["lr"] != 1e-2)


# --- the command ------------------------------------------------------------------------------

def test_cli_bad_depth_exits_2_with_a_caret(tiny_spec, capsys):
    assert main(["phase", tiny_spec, "--recipe", "legacy", "--depths", "6,-1", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "<--depths>:1:12" in err and "^~" in err and "Traceback" not in err


def test_cli_unknown_norm_exits_2(tiny_spec, capsys):
    assert main(["phase", tiny_spec, "--recipe", "legacy", "--norms", "layernorm,batchnrom",
                 "--quick"]) == 2
    err = capsys.readouterr().err
    assert "<--norms>:1:19" in err and "batchnrom" in err


def test_cli_quick_json(tiny_spec, tmp_path, capsys):
    code = main(["phase", tiny_spec, "--recipe", "legacy", "--depths", "1", "--lrs", "1e-3",
                 "--norms", "none", "--residual", "on", "--quick", "--json", "--out",
                 str(tmp_path / "out")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 8 and summary["seeds"] == [0]
    (only,) = summary["cells"]
    assert only["depth"] == 1 and only["norm"] == "none" and only["summary"]["seeds"] == 1
    assert "phase.md" in summary["files"]


def test_cli_quick_runs_the_reduced_grid_end_to_end(tiny_spec, tmp_path, capsys):
    """``pdelang phase SPEC --quick`` with no axes: the reduced grid's 8 cells, 1 seed, 8
    steps, the held-out loss on a small subset."""
    code = main(["phase", tiny_spec, "--recipe", "legacy", "--quick", "--json", "--out",
                 str(tmp_path / "out")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 8 and summary["seeds"] == [0]
    assert summary["grid"] == {"depths": [3, 6], "lrs": [1e-3, 1e-2],
                               "norms": ["layernorm", "none"], "residuals": [True],
                               "depth_scaling": "step"}
    cells = {(c["depth"], c["lr"], c["norm"], c["residual"]) for c in summary["cells"]}
    assert cells == {(d, lr, n, True) for d in (3, 6) for lr in (1e-3, 1e-2)
                     for n in ("layernorm", "none")}
    variant = json.loads(next((tmp_path / "out" / "variants").glob("*.json")).read_text())
    assert variant["variant"]["training"]["options"]["eval_examples"] == QUICK_EVAL_EXAMPLES


# --- with Ray ---------------------------------------------------------------------------------

@pytest.mark.slow  # ~25 s; the executors themselves are tested in test_executors (not slow)
@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason='Ray is not installed: pip install -e ".[distributed]"')
def test_ray_phase_equals_the_local_one(tiny_spec, tmp_path):
    """The command under ``--executor ray`` (a local instance of 2 CPUs, in a subprocess)
    writes the phase.json of an in-process local run, up to timing fields."""
    args = ["--recipe", "legacy", "--depths", "1,2", "--lrs", "1e-3", "--norms", "none",
            "--residual", "on", "--quick", "--json"]
    local = phase(tiny_spec, parse_grid("1,2", "1e-3", "none", "on"), quick=True,
                  progress=False, out=str(tmp_path / "local"))
    ours = json.loads((tmp_path / "local" / "phase.json").read_text())
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "pdelang", "phase", tiny_spec, *args,
                             "--executor", "ray", "--ray-cpus", "2", "--out",
                             str(tmp_path / "ray")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = json.loads((tmp_path / "ray" / "phase.json").read_text())
    assert (ours["executor"], theirs["executor"]) == ("local", "ray")
    assert without_timing(ours) == without_timing(theirs)
    assert len(phase_cells(local)) == 2
