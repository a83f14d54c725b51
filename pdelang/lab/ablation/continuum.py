"""The continuous-depth question, done as Sander et al. (NeurIPS 2022) did it
(``pdelang phase --depth-limit 4,8,16,32``).

A residual network u_{ℓ+1} = u_ℓ + Δt·f(u_ℓ, θ_ℓ) with Δt = T/L (``time`` scaling) tends to
the ODE u̇ = f(u, θ(t)) only if its weights θ_ℓ = θ(ℓΔt) sample a function smooth in depth.
For each depth L, the pre-LN arm (:data:`pdelang.lab.ablation.stability.ARMS` ``layernorm``) is
trained with the study's recipe from two initializations:

* ``iid``: every layer drawn independently (the usual initialization);
* ``smooth``: θ_ℓ = A cos(π s_ℓ/2) + B sin(π s_ℓ/2), s_ℓ = ℓ/(L − 1), with A and B two
  independent draws (the first two layers' own) — a smooth function of depth with each
  weight's variance unchanged (cos² + sin² = 1).  Tensors whose draws agree (norm scales,
  zero biases, the diffusion coefficient) are left as they are.

After training it measures

* **smoothness** max_ℓ ‖θ_{ℓ+1} − θ_ℓ‖/‖θ_ℓ‖ over the layers' flattened weights;
* **the distance to the ODE**: the weights read as the piecewise-linear function θ(t)
  through (ℓΔt, θ_ℓ), held at θ_{L−1} on the last interval, integrated by the same spec at
  K·L layers (``time`` scaling, Δt/K: the Lie–Euler scheme, first order, so K = 8 against
  K = 16 gives the solve's own error); the distance is the median over held-out digits of
  ‖u_L − u_ODE(T)‖/‖u_ODE(T)‖ of the final stream;
* **the ODE's accuracy**: held-out accuracy of the same embedding and head on u_ODE(T).

**Decision rule** (fixed before the runs): an initialization's networks are *near their
limit* if the distance falls like 1/L (a least-squares slope of log distance on log L of
−1 ± 0.2) and, at the largest depth, the ODE's accuracy is within 1 point of the network's.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import json

from pdelang.lab.ablation.recipe import (
    DigitsClassifier,
    normalise_images,
    digits_splits,
    train_recipe,
)
from pdelang.lab.ablation.stability import ARMS, arm_overrides, load_family
from pdelang.lab.ablation.train import seeded
from pdelang.lab.ablation.units import compiled_module
from pdelang.io import write_atomically

__all__ = ["INITS", "ODE_SUBSTEPS", "interpolated_stepper", "layer_smoothness",
           "near_limit", "render_markdown", "run_depth_limit", "smooth_init"]

INITS = ("iid", "smooth")
ODE_SUBSTEPS = (8, 16)
SLOPE_TOLERANCE = 0.2
ACCURACY_POINTS = 0.01


def _layer_vectors(stepper) -> list[torch.Tensor]:
    return [torch.cat([p.detach().flatten() for p in layer.parameters()])
            for layer in stepper.layers]


def smooth_init(stepper) -> None:
    """Make the layers' weights a smooth function of depth (module docstring)."""
    layers = list(stepper.layers)
    if len(layers) < 2:
        return
    first = {n: p.detach().clone() for n, p in layers[0].named_parameters()}
    second = {n: p.detach().clone() for n, p in layers[1].named_parameters()}
    count = len(layers)
    with torch.no_grad():
        for index, layer in enumerate(layers):
            s = index / (count - 1)
            c, d = math.cos(math.pi * s / 2), math.sin(math.pi * s / 2)
            for name, p in layer.named_parameters():
                a, b = first[name], second[name]
                if torch.equal(a, b):
                    continue
                p.copy_(c * a + d * b)


def layer_smoothness(stepper) -> float:
    """max_ℓ ‖θ_{ℓ+1} − θ_ℓ‖/‖θ_ℓ‖ over the layers' flattened weights."""
    vectors = _layer_vectors(stepper)
    return max(float((b - a).norm() / a.norm().clamp_min(1e-30))
               for a, b in itertools.pairwise(vectors))


def interpolated_stepper(stepper, fine_module, substeps: int):
    """A ``fine_module`` stepper (``substeps`` × as many layers, Δt/substeps) whose layer j
    holds θ(jΔt/substeps), θ the piecewise-linear interpolation of ``stepper``'s layers
    (module docstring); every parameter outside the layers is copied."""
    fine = fine_module.Stepper()
    coarse = list(stepper.layers)
    outside = {n: p for n, p in stepper.named_parameters() if not n.startswith("layers.")}
    with torch.no_grad():
        for name, p in fine.named_parameters():
            if not name.startswith("layers."):
                p.copy_(outside[name])
        for j, layer in enumerate(fine.layers):
            position = j / substeps  # in units of the coarse Δt
            left = min(math.floor(position), len(coarse) - 1)
            right = min(left + 1, len(coarse) - 1)
            weight = position - left if right != left else 0.0
            a = dict(coarse[left].named_parameters())
            b = dict(coarse[right].named_parameters())
            for name, p in layer.named_parameters():
                p.copy_((1 - weight) * a[name] + weight * b[name])
    return fine.eval()


def _slope(depths: Sequence[int], distances: Sequence[float]) -> float | None:
    points = [(math.log(d), math.log(x)) for d, x in zip(depths, distances)
              if x is not None and x > 0]
    if len(points) < 2:
        return None
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def near_limit(rows: Sequence[dict]) -> dict[str, Any]:
    """The decision rule (module docstring) over one initialization's rows (by depth)."""
    rows = sorted(rows, key=lambda r: r["depth"])
    slope = _slope([r["depth"] for r in rows], [r["distance"] for r in rows])
    last = rows[-1] if rows else None
    gap = None if last is None else last["network_accuracy"] - last["ode_accuracy"]
    falls = slope is not None and abs(slope + 1) <= SLOPE_TOLERANCE
    close = gap is not None and abs(gap) <= ACCURACY_POINTS
    return {"slope": slope, "accuracy_gap_at_largest": gap, "distance_falls_like_1_over_L":
            falls, "ode_accuracy_close": close, "near_limit": falls and close}


def _final_states(model, images) -> torch.Tensor:
    with torch.no_grad():
        return model.body(images)[1]


def _accuracy(model, images, labels) -> float:
    with torch.no_grad():
        logits = model(images)
    return float(((logits.argmax(1) == labels) & torch.isfinite(logits).all(1)).float().mean())


def run_depth_limit(spec_path: str, depths: Sequence[int], recipe, lr: float,
                    seeds: Sequence[int] = (0,), *, base: Sequence[str] = (),
                    out: str | Path | None = None, log: Callable[[str], None] | None = None,
                    threads: int = 1, train_missing: bool = True) -> dict[str, Any]:
    """Train, measure and decide (module docstring); each (init, depth, seed) is written to
    ``OUT/depth_limit/*.json`` and reused by a later call (``train_missing=False``: only
    those already written)."""
    text = Path(spec_path).read_text()
    spec, raw = load_family(text, spec_path, base)
    arm = ARMS["layernorm"]
    data = digits_splits(recipe)
    held_x, held_y = normalise_images(data[2]), data[3]
    folder = Path(out) / "depth_limit" if out else None
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for init in INITS:
            for depth in depths:
                for seed in seeds:
                    path = folder / f"{init}_L{depth}_s{seed}.json" if folder else None
                    if path is not None and path.exists():
                        rows.append(json.loads(path.read_text()))
                        continue
                    if not train_missing:
                        continue
                    started = time.perf_counter()
                    overrides = (*base, *arm_overrides(spec, raw, arm, depth, "time"))
                    _, module = compiled_module(text, spec_path, tuple(overrides))
                    with seeded(seed):
                        model = DigitsClassifier(module.Stepper(), module.CHANNELS,
                                                 "norm")
                        if recipe.init == "vit":
                            model.vit_init()
                        if init == "smooth":
                            smooth_init(model.stepper)
                    record = train_recipe(model, recipe, lr, seed, data=data,
                                          measure_drift=False)
                    model.eval()
                    network_state = _final_states(model, held_x)
                    ode = {}
                    for k in ODE_SUBSTEPS:
                        fine_overrides = (*base, *arm_overrides(spec, raw, arm, depth * k,
                                                                "time"))
                        _, fine_module = compiled_module(text, spec_path, tuple(fine_overrides))
                        twin = copy.deepcopy(model)
                        twin.stepper = interpolated_stepper(model.stepper, fine_module, k)
                        ode[k] = (twin, _final_states(twin, held_x))
                    finest = ode[ODE_SUBSTEPS[-1]]
                    coarse = ode[ODE_SUBSTEPS[0]]

                    def relative(a, b):
                        return float(((a - b).flatten(1).norm(dim=1)
                                      / b.flatten(1).norm(dim=1)).median())
                    row = {"init": init, "depth": depth, "seed": seed, "lr": lr,
                           "unstable": record.unstable,
                           "network_accuracy": record.heldout_accuracy,
                           "ode_accuracy": _accuracy(finest[0], held_x, held_y),
                           "smoothness": layer_smoothness(model.stepper),
                           "distance": relative(network_state, finest[1]),
                           "ode_solve_error": relative(coarse[1], finest[1]),
                           "ode_substeps": list(ODE_SUBSTEPS),
                           "seconds": time.perf_counter() - started}
                    rows.append(row)
                    if path is not None:
                        folder.mkdir(parents=True, exist_ok=True)
                        write_atomically(path, json.dumps(row))
                    if log is not None:
                        log(f"depth limit {init} L={depth} seed {seed}: network "
                            f"{row['network_accuracy']:.3f}, ODE {row['ode_accuracy']:.3f}, "
                            f"distance {row['distance']:.3g}, smoothness "
                            f"{row['smoothness']:.3g} ({row['seconds']:.0f} s)")
    finally:
        torch.set_num_threads(threads_before)
    verdicts = {}
    for init in INITS:
        mine = [r for r in rows if r["init"] == init]
        by_depth = []
        for depth in sorted({r["depth"] for r in mine}):
            here = [r for r in mine if r["depth"] == depth]
            by_depth.append({"depth": depth, **{
                key: float(np.mean([r[key] for r in here]))
                for key in ("network_accuracy", "ode_accuracy", "distance", "smoothness",
                            "ode_solve_error")}})
        verdicts[init] = {"by_depth": by_depth, **near_limit(by_depth)}
    return {"depths": list(depths), "seeds": list(seeds), "lr": lr, "rows": rows,
            "verdicts": verdicts,
            "rule": "distance ∝ L^s with s = −1 ± 0.2 and the ODE's accuracy within 1 "
                    "point of the network's at the largest depth"}


def render_markdown(limit: dict[str, Any]) -> str:
    out = ["## The continuous-depth question (pre-LN, `time` scaling, "
           f"lr {limit['lr']:g}, seeds {', '.join(map(str, limit['seeds']))})", "",
           f"Rule: {limit['rule']}.", "",
           "| init | depth | network acc. | ODE acc. | distance to ODE | smoothness | "
           "ODE solve error |", "|---|---|---|---|---|---|---|"]
    for init, verdict in limit["verdicts"].items():
        for r in verdict["by_depth"]:
            out.append(f"| {init} | {r['depth']} | {r['network_accuracy']:.3f} | "
                       f"{r['ode_accuracy']:.3f} | {r['distance']:.3g} | "
                       f"{r['smoothness']:.3g} | {r['ode_solve_error']:.2g} |")
    out.append("")
    for init, verdict in limit["verdicts"].items():
        slope = verdict["slope"]
        gap = verdict["accuracy_gap_at_largest"]
        out.append(f"- `{init}`: slope {'—' if slope is None else f'{slope:.2f}'}, "
                   f"accuracy gap at the largest depth "
                   f"{'—' if gap is None else f'{gap:+.3f}'}: "
                   f"{'near its limit' if verdict['near_limit'] else 'not near its limit'}.")
    return "\n".join(out)
