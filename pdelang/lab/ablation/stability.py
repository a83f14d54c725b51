"""``pdelang phase --recipe vit-digits``: training stability over arms × depth × depth
scaling × learning rate × seeds, with controls that train (the second paper's claim).

**The family.**  A spec with terms ``interaction`` (attention), ``reaction`` (MLP) and
``diffusion``, laid out on vit2d's 4 × 4 patch grid plus a CLS token (``specs/vit2d.yaml``):
pre-LN, its time span ``[0, T₀]`` in ``L₀`` layers.  Every arm is the family with
``--set`` overrides (:data:`ARMS`), trained as a digit classifier with the ``vit-digits``
recipe (:mod:`pdelang.lab.ablation.recipe`), the read-out normalized unless the arm says
otherwise.  The spec's own final norm is switched off in every arm: the read-out norm is
the same for all of them.

**The arms** (exactly what each does to the spec):

* ``layernorm``: pre-LN (the family as it is), residual on;
* ``layernorm-post``: post-LN (``norm.placement: post``), residual on, the recipe's warm-up;
* ``rmsnorm``: pre-RMSNorm;
* ``none``: no norm, residual on;
* ``rezero``: no norm, each branch gated by its own per-layer learnable scalar that starts
  at 0 (``a_ℓ · attention``, ``b_ℓ · mlp``: ReZero/SkipInit), residual on;
* ``none-raw``: ``none`` with the head on the raw stream (the earlier study's artefact);
* ``layernorm-nores`` and ``none-nores``: residual off — each block's output *replaces* the
  state, u ← Δt·A(N(u)), then u ← Δt·F(N(u)) — and the diffusion term is dropped from the
  equation (with D = 0 the residual-free diffusion sub-step would set u ← 0).  Run with
  ``step`` scaling only (Δt = 1: the plain residual-free stack).

**Depth scaling** (:data:`SCALINGS`), with Δt₀ = T₀/L₀ the family's step:

* ``step``: Δt = Δt₀ at every depth (span [0, L·Δt₀]): a standard Transformer L deep;
* ``sqrt``: Δt = Δt₀·√(L₀/L): every branch scaled by 1/√L (depth-μP, Yang et al. 2310.02244;
  Bordelon et al. 2309.16620), normalized to the family at L₀;
* ``time``: Δt = T₀/L (span [0, T₀]): the same ODE in finer steps.

At L = L₀ the three coincide; that cell is run once and shared.

**Definitions, fixed before any run** (:func:`analyse`):

* *unstable run*: NaN/Inf, or a loss above loss₀ + 1 nat for 10 consecutive steps
  (:mod:`~pdelang.lab.ablation.recipe`);
* *critical lr* of (arm, scaling, depth): the smallest grid rate at which most seeds are
  unstable, reported with its bracket (the grid rate below it); ``None`` with the bracket
  [largest rate, ∞) when no rate is;
* *largest stable lr*: per seed, the largest grid rate below that seed's first unstable
  rate;
* *optimal lr*: the grid rate with the best mean held-out accuracy over seeds (an unstable
  run counts with the accuracy of the weights where it stopped);
* *the claim* "without normalization training explodes" holds at a depth (and scaling) if
  the controls train (LayerNorm's best-lr held-out accuracy ≥ 0.90 in every seed) and, in
  all seeds (≥ 4 of 5 with five), the norm-free arm's largest stable lr is ≥ 3× below
  LayerNorm's and its best-lr accuracy is lower.  LayerNorm stable over the whole grid
  counts as its largest rate (a lower bound, so ≥ 3× is then shown when the norm-free
  arm's is at most a third of it).  Where the controls do not train the claim is
  *undecided* (``None``): a comparison with a control that does not learn refutes nothing;
* *the depth-scaling prediction*: under ``time`` the optimal and the critical lr move by
  less than one grid step from depth 4 to depth 16 or 32 (:data:`PREDICTION_DEPTH`), while
  under ``step`` they move; undecided short of that depth, or when a critical rate lies
  beyond the rates run at one depth only (censored).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
import yaml

from pdelang.lab.ablation.options import option_items
from pdelang.errors import OverrideError, PdelangError, SourceLocation
from pdelang.compiler.spec.load import load_spec_text

__all__ = ["ARMS", "CONTROL_ACCURACY", "DEFAULT_STUDY", "QUICK_STUDY", "SCALINGS", "Arm",
           "StudyGrid", "analyse", "arm_overrides", "load_family", "parse_study",
           "study_units"]

SCALINGS = ("step", "sqrt", "time")
CONTROL_ACCURACY = 0.90  # the controls train: LayerNorm's best-lr accuracy in every seed
LR_RATIO = 3.0  # the claim: the norm-free arm's largest stable lr ≥ 3× below LayerNorm's
NORM_FREE = ("none", "rezero", "none-raw")
PREDICTION_DEPTH = 16  # the depth-scaling prediction compares depth 4 with 16 or 32


@dataclass(frozen=True)
class Arm:
    name: str
    norm: str  # layernorm | rmsnorm | none
    residual: bool = True
    placement: str = "pre"
    gates: bool = False  # ReZero/SkipInit: per-layer learnable branch gates from 0
    readout: str = "norm"
    scalings: tuple[str, ...] = SCALINGS
    what: str = ""


ARMS = {arm.name: arm for arm in (
    Arm("layernorm", "layernorm", what="pre-LN, residual on"),
    Arm("layernorm-post", "layernorm", placement="post", what="post-LN, residual on"),
    Arm("rmsnorm", "rmsnorm", what="pre-RMSNorm, residual on"),
    Arm("none", "none", what="no norm, residual on"),
    Arm("rezero", "none", gates=True,
        what="no norm, per-layer branch gates from 0 (ReZero/SkipInit)"),
    Arm("none-raw", "none", readout="raw",
        what="no norm, head on the raw stream (the earlier study's artefact)"),
    Arm("layernorm-nores", "layernorm", residual=False, scalings=("step",),
        what="pre-LN, residual off (blocks replace the state), no diffusion"),
    Arm("none-nores", "none", residual=False, scalings=("step",),
        what="no norm, residual off, no diffusion"),
)}


@dataclass(frozen=True)
class StudyGrid:
    arms: tuple[str, ...] = ("layernorm", "layernorm-post", "rmsnorm", "none", "rezero",
                             "none-raw", "layernorm-nores", "none-nores")
    depths: tuple[int, ...] = (4, 8, 16, 32)
    scalings: tuple[str, ...] = SCALINGS
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    seeds: int = 3


DEFAULT_STUDY = StudyGrid()
# --quick: the question in miniature (under a minute on one core): two arms, two depths,
# a stable and an unstable rate, one seed of 2 epochs on 256 digits
QUICK_STUDY = StudyGrid(arms=("layernorm", "none"), depths=(2, 4), scalings=("step",),
                        lrs=(1e-3, 1e-1), seeds=1)


# ---------------------------------------------------------------------------- the grid
def _unique(option: str, items: list[tuple[Any, SourceLocation]]) -> tuple:
    seen = set()
    for value, where in items:
        if value in seen:
            raise OverrideError(f"{option}: {value} is listed twice", where,
                                "list each value once")
        seen.add(value)
    return tuple(v for v, _ in items)


def parse_study(arms: str | None = None, depths: str | None = None,
                scalings: str | None = None, lrs: str | None = None, seeds: int | None = None,
                *, quick: bool = False) -> StudyGrid:
    """The grid of ``--arms --depths --scalings --lrs --seeds`` (``None``: the default axis,
    or :data:`QUICK_STUDY`'s with ``quick``); a bad value is an :class:`OverrideError`
    located in its option's text."""
    grid = QUICK_STUDY if quick else DEFAULT_STUDY
    fields: dict[str, Any] = {}
    if arms is not None:
        items = option_items("--arms", arms)
        for name, where in items:
            if name not in ARMS:
                raise OverrideError(f"--arms: unknown arm '{name}'", where,
                                    "one of " + ", ".join(ARMS))
        fields["arms"] = _unique("--arms", items)
    if depths is not None:
        items = []
        for text, where in option_items("--depths", depths):
            if not text.isdigit() or int(text) < 1:
                raise OverrideError(f"--depths: '{text}' is not a whole number of layers",
                                    where, "e.g. --depths 4,8,16")
            items.append((int(text), where))
        fields["depths"] = _unique("--depths", items)
    if scalings is not None:
        items = option_items("--scalings", scalings)
        for name, where in items:
            if name not in SCALINGS:
                raise OverrideError(f"--scalings: unknown depth scaling '{name}'", where,
                                    "step (Δt = 1), sqrt (Δt ∝ 1/√L) or time (Δt = T/L)")
        fields["scalings"] = _unique("--scalings", items)
    if lrs is not None:
        items = []
        for text, where in option_items("--lrs", lrs):
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise OverrideError(f"--lrs: '{text}' is not a positive learning rate", where,
                                    "e.g. --lrs 1e-3,3e-3,1e-2")
            items.append((value, where))
        fields["lrs"] = tuple(sorted(_unique("--lrs", items)))
    if seeds is not None:
        if seeds < 1:
            raise PdelangError(f"--seeds {seeds}: at least 1", suggestion="--seeds 3")
        fields["seeds"] = seeds
    return replace(grid, **fields)


def load_family(spec_text: str, spec_path: str, base: Sequence[str]):
    """The loaded family spec and its raw YAML mapping; a spec without the three terms is a
    located error."""
    spec = load_spec_text(spec_text, spec_path, base)
    missing = [t for t in ("interaction", "reaction", "diffusion") if t not in spec.terms]
    if missing:
        raise PdelangError(f"{spec_path}: the phase family needs terms interaction, reaction "
                           f"and diffusion; missing {', '.join(missing)}",
                           suggestion="start from specs/vit2d.yaml")
    return spec, yaml.safe_load(spec_text)


def time_step(spec, depth: int, scaling: str) -> tuple[float, float]:
    """(Δt, span end) of ``depth`` layers under ``scaling`` (module docstring)."""
    t0, t1 = spec.time.span
    base_layers = spec.time.layers
    base_step = (t1 - t0) / base_layers
    step = {"step": base_step, "sqrt": base_step * math.sqrt(base_layers / depth),
            "time": (t1 - t0) / depth}[scaling]
    return step, t0 + depth * step


def arm_overrides(spec, raw: Mapping[str, Any], arm: Arm, depth: int,
                  scaling: str) -> list[str]:
    """The ``--set`` overrides that make the family spec ``arm`` at ``depth`` and
    ``scaling`` (module docstring)."""
    _, end = time_step(spec, depth, scaling)
    t0 = spec.time.span[0]
    sets = [f"time.layers={depth}", f"time.span=[{t0!r}, {end!r}]",
            f"stabilizers.residual={'true' if arm.residual else 'false'}",
            f"stabilizers.norm.kind={arm.norm}", "stabilizers.norm.final=false"]
    if arm.norm != "none":
        sets.append(f"stabilizers.norm.placement={arm.placement}")
    if arm.gates:
        parameters = dict(raw.get("parameters") or {})
        for gate in ("gate_attention", "gate_mlp"):
            parameters[gate] = {"value": 0.0, "learnable": True, "per_layer": True}
        sets.append("parameters=" + json.dumps(parameters))
        sets.append(f"terms.interaction=gate_attention * ({spec.terms['interaction'].text})")
        sets.append(f"terms.reaction=gate_mlp * ({spec.terms['reaction'].text})")
    if not arm.residual:
        sets.append("equation=dt(u) = interaction + reaction")
        sets.append("time.split_order=[interaction, reaction]")
    return sets


def _cell_key(arm: str, scaling: str, depth: int, lr: float, seed: int) -> str:
    return f"{arm}__{scaling}__L{depth}__lr{lr:g}__s{seed}"


def study_units(spec_path: str, grid: StudyGrid, recipe, base: Sequence[str] = (),
                threads: int = 1, device: str = "cpu") -> list[dict]:
    """One unit per (arm, scaling, depth, lr, seed), the deepest first (the longest first
    ends soonest on a pool); at the family's own depth the scalings coincide and only the
    ``step`` cell runs."""
    text = Path(spec_path).read_text()
    spec, raw = load_family(text, spec_path, base)
    units = []
    for depth in sorted(grid.depths, reverse=True):
        for name in grid.arms:
            arm = ARMS[name]
            for scaling in grid.scalings:
                if scaling not in arm.scalings:
                    continue
                if depth == spec.time.layers and scaling != "step" and \
                        "step" in grid.scalings:
                    continue
                overrides = [*base, *arm_overrides(spec, raw, arm, depth, scaling)]
                for lr in grid.lrs:
                    for seed in range(grid.seeds):
                        units.append({
                            "kind": "recipe", "variant": _cell_key(name, scaling, depth, lr,
                                                                   seed),
                            "seed": seed, "arm": name, "scaling": scaling, "depth": depth,
                            "lr": lr, "spec_text": text, "spec_path": spec_path,
                            "base": overrides, "overrides": {}, "readout": arm.readout,
                            "recipe": recipe.to_json(),
                            "options": {"threads": threads, "device": device}})
    return units


# ---------------------------------------------------------------------------- analysis
def _finite(value: Any) -> float | None:
    """A finite float, or None (NaN, ±Inf, also as written by ``json_safe``: "Infinity")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def run_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """One run's measurements from its unit result."""
    record = result.get("record") or {}
    losses = [v for v in map(_finite, record.get("losses") or []) if v is not None]
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    return {"arm": result["arm"], "scaling": result["scaling"], "depth": result["depth"],
            "lr": result["lr"], "seed": result["seed"], "error": result.get("error"),
            "unstable": bool(record.get("unstable")) if record else None,
            "unstable_step": record.get("unstable_step"),
            "unstable_reason": record.get("unstable_reason"),
            "accuracy": record.get("heldout_accuracy"),
            "heldout_loss": record.get("heldout_loss"),
            "first_loss": losses[0] if losses else None,
            "final_train_loss": statistics.fmean(tail) if tail else None,
            "max_grad_norm": max((g for g in map(_finite, record.get("grad_norms") or [])
                                  if g is not None), default=None),
            "drift_init": record.get("drift_init"), "drift_final": record.get("drift_final"),
            "seconds": record.get("seconds")}


def _mean_sd(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None, None
    return statistics.fmean(numbers), (statistics.stdev(numbers) if len(numbers) > 1 else 0.0)


def _runs_at(runs, arm, scaling, depth, base_layers):
    """The runs of (arm, scaling, depth): at the family's depth every scaling reads the
    shared ``step`` cell."""
    wanted = "step" if depth == base_layers else scaling
    return [r for r in runs if r["arm"] == arm and r["depth"] == depth
            and r["scaling"] == wanted and r["error"] is None]


def _line(runs, lrs: Sequence[float], seeds: int) -> dict[str, Any]:
    """Critical, largest-stable and optimal lr of one (arm, scaling, depth)'s runs."""
    by_lr = {lr: [r for r in runs if r["lr"] == lr] for lr in lrs}
    cells = []
    for lr in lrs:
        here = by_lr[lr]
        mean, sd = _mean_sd(r["accuracy"] for r in here)
        unstable = sum(bool(r["unstable"]) for r in here)
        cells.append({"lr": lr, "runs": len(here), "unstable": unstable,
                      "accuracy_mean": mean, "accuracy_sd": sd,
                      "accuracy": {r["seed"]: r["accuracy"] for r in here}})
    complete = [c for c in cells if c["runs"]]
    critical = next((c["lr"] for c in complete if c["unstable"] * 2 > c["runs"]), None)
    below = [c["lr"] for c in complete if critical is None or c["lr"] < critical]
    bracket = [below[-1] if below else None, critical]
    scored = [c for c in complete if c["accuracy_mean"] is not None]
    optimal = max(scored, key=lambda c: (c["accuracy_mean"], -c["lr"]))["lr"] \
        if scored else None
    per_seed = {}
    for seed in range(seeds):
        mine = sorted((r for r in runs if r["seed"] == seed), key=lambda r: r["lr"])
        if not mine:
            continue
        first_bad = next((r["lr"] for r in mine if r["unstable"]), None)
        stable = [r["lr"] for r in mine if first_bad is None or r["lr"] < first_bad]
        accuracies = [r["accuracy"] for r in mine if r["accuracy"] is not None]
        per_seed[seed] = {"largest_stable_lr": stable[-1] if stable else None,
                          "unstable_anywhere": first_bad is not None,
                          "best_accuracy": max(accuracies) if accuracies else None}
    run_rates = [c["lr"] for c in complete]
    inside = [lr for lr in lrs if run_rates and run_rates[0] <= lr <= run_rates[-1]]
    return {"cells": cells, "critical_lr": critical, "critical_bracket": bracket,
            "largest_lr_run": complete[-1]["lr"] if complete else None,
            # a grid rate skipped inside the rates run: the optimum or the critical rate
            # may lie there, so this line cannot say how far they moved
            "gaps": [lr for lr in inside if lr not in run_rates],
            "bracketed": critical is not None and bracket[0] is not None,
            "optimal_lr": optimal,
            "optimal_interior": optimal is not None and len(complete) > 2 and
            complete[0]["lr"] < optimal < complete[-1]["lr"],
            "per_seed": per_seed}


def _claim(norm_free: dict, control: dict, seeds: int, max_lr: float) -> dict[str, Any]:
    """The decision rule (module docstring) for one norm-free arm against LayerNorm."""
    controls_train = all(
        (control["per_seed"].get(s) or {}).get("best_accuracy") is not None
        and control["per_seed"][s]["best_accuracy"] >= CONTROL_ACCURACY for s in range(seeds))
    wins = 0
    detail = {}
    for seed in range(seeds):
        a, b = norm_free["per_seed"].get(seed), control["per_seed"].get(seed)
        if not a or not b:
            detail[seed] = "missing"
            continue
        ln_lr = b["largest_stable_lr"]
        nf_lr = a["largest_stable_lr"]
        if ln_lr is None:
            ratio_ok = False
        elif nf_lr is None:  # unstable at the smallest rate: below any LayerNorm rate
            ratio_ok = True
        else:
            ratio_ok = nf_lr * LR_RATIO <= ln_lr * (1 + 1e-9)
        worse = (a["best_accuracy"] is not None and b["best_accuracy"] is not None
                 and a["best_accuracy"] < b["best_accuracy"])
        detail[seed] = {"largest_stable_lr": [nf_lr, ln_lr],
                        "layernorm_bound": not b["unstable_anywhere"],
                        "ratio_ok": ratio_ok, "accuracy": [a["best_accuracy"],
                                                            b["best_accuracy"]],
                        "worse": worse}
        wins += ratio_ok and worse
    needed = seeds if seeds < 5 else seeds - 1
    # without a control that trains the comparison says nothing: undecided, not a refutation
    holds = (wins >= needed) if controls_train else None
    return {"holds": holds, "controls_train": controls_train, "seeds_for": wins,
            "seeds_needed": needed, "per_seed": detail}


def analyse(runs: Sequence[Mapping[str, Any]], grid: StudyGrid, base_layers: int
            ) -> dict[str, Any]:
    """Lines per (arm, scaling, depth), the claim per (norm-free arm, scaling, depth), the
    depth-scaling prediction per (arm, scaling) and the drift table (module docstring)."""
    lines: dict[str, dict] = {}
    for arm in grid.arms:
        for scaling in grid.scalings:
            if scaling not in ARMS[arm].scalings:
                continue
            for depth in grid.depths:
                here = _runs_at(runs, arm, scaling, depth, base_layers)
                if here:
                    lines[f"{arm}|{scaling}|{depth}"] = _line(here, grid.lrs, grid.seeds)
    claims = []
    for scaling in grid.scalings:
        for depth in grid.depths:
            control = lines.get(f"layernorm|{scaling}|{depth}")
            for arm in NORM_FREE:
                line = lines.get(f"{arm}|{scaling}|{depth}")
                if control and line:
                    claims.append({"arm": arm, "scaling": scaling, "depth": depth,
                                   **_claim(line, control, grid.seeds, max(grid.lrs))})
    movement = []
    lrs = list(grid.lrs)

    def steps(a, b):
        """Grid steps from rate a to rate b (None, beyond the grid, counts as one step past
        the largest rate)."""
        def index(v):
            return len(lrs) if v is None else lrs.index(v)
        return float(index(b) - index(a))
    for arm in grid.arms:
        for scaling in grid.scalings:
            depths = [d for d in sorted(grid.depths) if f"{arm}|{scaling}|{d}" in lines]
            if len(depths) < 2:
                continue
            first, last = lines[f"{arm}|{scaling}|{depths[0]}"], \
                lines[f"{arm}|{scaling}|{depths[-1]}"]
            # A critical rate beyond the rates run is censored at the largest one run:
            # two lines run to different largest rates cannot say how far it moved.
            censored = ((first["critical_lr"] is None or last["critical_lr"] is None)
                        and first["largest_lr_run"] != last["largest_lr_run"]) \
                or bool(first.get("gaps") or last.get("gaps"))
            movement.append({
                "arm": arm, "scaling": scaling, "from": depths[0], "to": depths[-1],
                "censored": censored,
                "optimal_lr": [first["optimal_lr"], last["optimal_lr"]],
                "optimal_steps": steps(first["optimal_lr"], last["optimal_lr"]),
                "critical_lr": [first["critical_lr"], last["critical_lr"]],
                "critical_steps": steps(first["critical_lr"], last["critical_lr"])})
    prediction = {}
    for arm in grid.arms:
        rows = {m["scaling"]: m for m in movement if m["arm"] == arm}
        if "time" in rows and "step" in rows:
            def still(m):
                return all(s is not None and abs(s) < 1 for s in
                           (m["optimal_steps"], m["critical_steps"]))
            decided = all(not m["censored"] and m["to"] >= PREDICTION_DEPTH
                          for m in (rows["time"], rows["step"]))
            prediction[arm] = {"time_stays": still(rows["time"]),
                               "step_moves": not still(rows["step"]),
                               "depths": [rows["step"]["from"], rows["step"]["to"]],
                               "censored": rows["time"]["censored"] or
                               rows["step"]["censored"],
                               "holds": (still(rows["time"]) and not still(rows["step"]))
                               if decided else None}
    drift = []
    for key, line in lines.items():
        arm, scaling, depth = key.split("|")
        best = line["optimal_lr"]
        here = [r for r in _runs_at(runs, arm, scaling, int(depth), base_layers)
                if r["lr"] == best and r["drift_final"]]
        if here:
            drift.append({"arm": arm, "scaling": scaling, "depth": int(depth), "lr": best,
                          "moved_init": _mean_sd(r["drift_init"]["moved"] for r in here)[0],
                          "moved_final": _mean_sd(r["drift_final"]["moved"] for r in here)[0],
                          "spread_init": _mean_sd(r["drift_init"]["token_spread"]
                                                  for r in here)[0],
                          "spread_final": _mean_sd(r["drift_final"]["token_spread"]
                                                   for r in here)[0]})
    return {"lines": lines, "claims": claims, "movement": movement,
            "prediction": prediction, "drift": drift}
