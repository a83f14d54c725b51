"""The continuous-depth question (pdelang.lab.ablation.continuum)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pdelang.lab.ablation import continuum
from pdelang.lab.ablation.continuum import (
    interpolated_stepper,
    layer_smoothness,
    near_limit,
    run_depth_limit,
    smooth_init,
)
from pdelang.lab.ablation.recipe import Recipe, quick_recipe
from pdelang.lab.ablation.stability import ARMS, arm_overrides, load_family
from pdelang.interpreters.builder import build_module
from pdelang.compiler.spec.load import load_spec_text

ROOT = Path(__file__).resolve().parents[2]
VIT2D = ROOT / "specs" / "vit2d.yaml"


def _module(depth: int):
    text = VIT2D.read_text()
    spec, raw = load_family(text, str(VIT2D), [])
    loaded = load_spec_text(text, str(VIT2D), arm_overrides(spec, raw, ARMS["layernorm"],
                                                             depth, "time"))
    return build_module(loaded)


def test_smooth_initialization_is_smooth_and_iid_is_not():
    module = _module(16)
    torch.manual_seed(0)
    iid = module.Stepper()
    smooth = module.Stepper()
    smooth.load_state_dict(iid.state_dict())
    smooth_init(smooth)
    # consecutive layers of a quarter circle through two independent draws differ by
    # 2 sin(π/(4·15)) ≈ 0.105 of their norm; independent draws by about √2
    assert layer_smoothness(smooth) < 0.15
    assert layer_smoothness(iid) > 1.0


def test_one_substep_interpolation_is_the_network_itself():
    module = _module(4)
    torch.manual_seed(0)
    stepper = module.Stepper().eval()
    fine = interpolated_stepper(stepper, module, 1)
    u = torch.randn(3, 17, 64)
    with torch.no_grad():
        assert torch.equal(stepper(u), fine(u))


def test_interpolation_is_piecewise_linear_and_held_on_the_last_interval():
    coarse_module, fine_module = _module(4), _module(8)
    torch.manual_seed(0)
    stepper = coarse_module.Stepper()
    fine = interpolated_stepper(stepper, fine_module, 2)
    # the attention's query weight of each layer, wherever the printer put it
    w = [next(p for n, p in layer.named_parameters() if n.endswith("q.weight"))
         for layer in stepper.layers]
    f = [next(p for n, p in layer.named_parameters() if n.endswith("q.weight"))
         for layer in fine.layers]
    assert torch.equal(f[0], w[0]) and torch.equal(f[2], w[1])
    assert torch.allclose(f[1], (w[0] + w[1]) / 2)
    assert torch.allclose(f[5], (w[2] + w[3]) / 2)
    assert torch.equal(f[6], w[3]) and torch.equal(f[7], w[3])


def test_with_weights_constant_in_depth_the_network_is_first_order_in_its_step():
    """Constant weights: the L-layer network is Lie–Euler for one ODE, so its distance to
    a fine solve halves when L doubles (first order)."""
    distances = {}
    for depth in (4, 8):
        module = _module(depth)
        torch.manual_seed(0)
        stepper = module.Stepper().eval()
        with torch.no_grad():  # every layer a copy of the first: θ(t) constant
            for layer in stepper.layers[1:]:
                for p, q in zip(layer.parameters(), stepper.layers[0].parameters()):
                    p.copy_(q)
        fine = interpolated_stepper(stepper, _module(depth * 16), 16)
        u = torch.randn(4, 17, 64)
        with torch.no_grad():
            a, b = stepper(u), fine(u)
        distances[depth] = float((a - b).norm() / b.norm())
    ratio = distances[4] / distances[8]
    assert 1.6 < ratio < 2.5, distances


def test_near_limit_rule():
    rows = [{"depth": d, "distance": 0.8 / d, "network_accuracy": 0.93,
             "ode_accuracy": 0.925} for d in (4, 8, 16)]
    verdict = near_limit(rows)
    assert verdict["slope"] == pytest.approx(-1.0) and verdict["near_limit"]
    flat = [{**r, "distance": 0.5} for r in rows]
    assert not near_limit(flat)["near_limit"]
    far = [{**r, "ode_accuracy": 0.3} for r in rows]
    assert not near_limit(far)["ode_accuracy_close"]


def test_run_depth_limit_end_to_end_and_resumes(tmp_path, monkeypatch):
    recipe = quick_recipe(Recipe())
    result = run_depth_limit(str(VIT2D), (2, 4), recipe, 1e-3, (0,), out=tmp_path)
    assert {(r["init"], r["depth"]) for r in result["rows"]} == {
        (i, d) for i in ("iid", "smooth") for d in (2, 4)}
    for row in result["rows"]:
        assert 0.0 <= row["ode_accuracy"] <= 1.0 and row["distance"] >= 0.0
        assert row["ode_solve_error"] < row["distance"] or row["distance"] < 1e-3
    assert set(result["verdicts"]) == {"iid", "smooth"}

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")
    monkeypatch.setattr(continuum, "smooth_init", refuse)
    monkeypatch.setattr(continuum, "train_recipe", refuse)
    again = run_depth_limit(str(VIT2D), (2, 4), recipe, 1e-3, (0,), out=tmp_path)
    assert again["verdicts"] == result["verdicts"]
