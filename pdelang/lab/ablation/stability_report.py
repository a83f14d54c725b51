"""The report of ``pdelang phase --recipe vit-digits`` (:mod:`pdelang.lab.ablation.stability`):
``phase.json`` (every run's measurements and the analysis), ``summary.json`` (the study's
numbers and verdicts), ``phase.md`` (the tables with their decision rules) and one heatmap
of held-out accuracy with the unstable cells marked per scaling."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pdelang.lab.ablation.stability import CONTROL_ACCURACY, LR_RATIO, ARMS
from pdelang.io import save_figure, write_atomically
from pdelang.lab.ablation.formatting import json_safe

__all__ = ["render_markdown", "study_summary", "write_report"]


def _lr(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _acc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _baseline_line(line: Mapping[str, Any]) -> dict[str, Any]:
    per_seed = {str(s): v["best_accuracy"] for s, v in line["per_seed"].items()}
    best = max((c for c in line["cells"] if c["accuracy_mean"] is not None),
               key=lambda c: c["accuracy_mean"], default=None)
    return {"per_seed": per_seed, "optimal_lr": line["optimal_lr"],
            "mean_at_optimal_lr": best["accuracy_mean"] if best else None,
            "sd_at_optimal_lr": best["accuracy_sd"] if best else None,
            "every_seed_reaches": all(v is not None and v >= 0.90
                                      for v in per_seed.values())}


def baseline(data: Mapping[str, Any]) -> dict[str, Any]:
    """LayerNorm (pre-LN, residual) per depth: the best-lr held-out accuracy per seed under
    ``step`` scaling, and under every scaling run (``by_scaling``)."""
    out = {}
    lines = data["analysis"]["lines"]
    for depth in data["grid"]["depths"]:
        by_scaling = {scaling: _baseline_line(lines[f"layernorm|{scaling}|{depth}"])
                      for scaling in data["grid"]["scalings"]
                      if f"layernorm|{scaling}|{depth}" in lines}
        if not by_scaling:
            continue
        first = by_scaling.get("step") or next(iter(by_scaling.values()))
        out[str(depth)] = {**first, "by_scaling": by_scaling}
    return out


def study_summary(data: Mapping[str, Any]) -> dict[str, Any]:
    analysis = data["analysis"]
    lines = analysis["lines"]
    critical = {k: {"lr": v["critical_lr"], "bracket": v["critical_bracket"],
                    "bracketed": v["bracketed"]} for k, v in lines.items()}
    optimal = {k: {"lr": v["optimal_lr"], "interior": v["optimal_interior"]}
               for k, v in lines.items()}
    claims = [{k: c[k] for k in ("arm", "scaling", "depth", "holds", "controls_train",
                                 "seeds_for", "seeds_needed")} for c in analysis["claims"]]
    return {
        "recipe": data["recipe"], "quick": data["quick"],
        "seeds": list(range(data["grid"]["seeds"])), "depths": data["grid"]["depths"],
        "scalings": data["grid"]["scalings"], "lrs": data["grid"]["lrs"],
        "arms": data["arms"], "baseline_best_accuracy": baseline(data),
        "critical_lr": critical, "optimal_lr": optimal,
        "decision_rules": {
            "unstable": "NaN/Inf, or loss above loss₀ + 1 nat for 10 consecutive steps",
            "critical_lr": "smallest grid rate at which most seeds are unstable",
            "optimal_lr": "grid rate with the best mean held-out accuracy",
            "claim": f"controls train (LayerNorm best-lr accuracy ≥ {CONTROL_ACCURACY} in "
                     f"every seed) and, in every seed (≥ 4 of 5), the norm-free arm's "
                     f"largest stable lr ≥ {LR_RATIO:g}× below LayerNorm's and its best-lr "
                     f"accuracy lower",
            "claim_undecided": "without controls that train the claim is undecided",
            "depth_scaling": "under time the optimal and critical lr move < 1 grid step "
                             "from depth 4 to 16 or 32; under step they move; undecided "
                             "short of depth 16 or where a critical rate is censored"},
        "verdicts": {"claim": claims, "depth_scaling": analysis["prediction"]},
        "drift": analysis["drift"], "depth_limit": data.get("depth_limit"),
        "runs": len(data["runs"]), "seconds_of_runs": round(data["seconds_of_runs"], 1)}


def _claim_verdict(holds: bool | None) -> str:
    if holds is None:
        return "**undecided** (the LayerNorm control does not train)"
    return "holds" if holds else "does not hold"


def render_markdown(data: Mapping[str, Any]) -> str:
    analysis = data["analysis"]
    grid = data["grid"]
    recipe = data["recipe"]
    out = ["# Training stability with controls that train", "",
           f"Family `{data['spec']}`, recipe `{recipe['name']}`: {recipe['epochs']} epochs of "
           f"batch {recipe['batch_size']}, AdamW (weight decay {recipe['weight_decay']}), "
           f"warm-up {recipe['warmup_epochs']:g} epochs then {recipe['schedule']} decay, label "
           f"smoothing {recipe['label_smoothing']}, shifts ±{recipe['max_shift']} px, "
           f"clipping {'off' if recipe['clip'] is None else recipe['clip']}, init "
           f"{recipe['init']}; {grid['seeds']} seeds; lrs "
           + ", ".join(_lr(v) for v in grid["lrs"]) + "."
           + (" **Quick run: not the study's numbers.**" if data["quick"] else ""), "",
           "## Arms", ""]
    out += [f"- `{name}`: {ARMS[name].what}" for name in grid["arms"]]
    out += ["", "## Decision rules (fixed before the runs)", "",
            "- Unstable run: NaN/Inf, or a loss above loss₀ + 1 nat for 10 consecutive steps.",
            "- Critical lr: the smallest grid rate at which most seeds are unstable "
            "(bracket: the rate below it).",
            "- Optimal lr: the grid rate with the best mean held-out accuracy.",
            "- Claim \"without normalization training explodes\" at a depth: LayerNorm's "
            "best-lr accuracy ≥ 0.90 in every seed (the control trains) **and** in every "
            "seed the norm-free arm's largest stable lr is ≥ 3× below LayerNorm's and its "
            "best-lr accuracy is lower. Without controls that train it is undecided.",
            "- Depth scaling: under `time` the optimal and critical lr move < 1 grid step "
            "from depth 4 to 16 or 32; under `step` they move (undecided short of depth 16, "
            "or where a critical rate lies beyond the rates run at one depth only).", "",
            "## The control: pre-LN with residual, best-lr held-out accuracy per seed", "",
            "| depth | scaling | seed accuracies (best lr each) | every seed ≥ 0.90 |",
            "|---|---|---|---|"]
    for depth, entry in baseline(data).items():
        for scaling, b in entry["by_scaling"].items():
            seeds = ", ".join(f"{_acc(v)}" for _, v in sorted(b["per_seed"].items()))
            out.append(f"| {depth} | {scaling} | {seeds} | "
                       f"{'yes' if b['every_seed_reaches'] else 'no'} |")
    out += ["",
            "## Held-out accuracy per cell (mean over seeds; ✗ = most seeds unstable)", ""]
    for key, line in analysis["lines"].items():
        arm, scaling, depth = key.split("|")
        cells = " | ".join(
            ("✗ " if c["unstable"] * 2 > c["runs"] else "")
            + (f"{_acc(c['accuracy_mean'])}±{c['accuracy_sd']:.3f}"
               if c["accuracy_mean"] is not None else "—")
            + (f" ({c['unstable']}/{c['runs']} unst.)" if 0 < c["unstable"] * 2 <= c["runs"]
               else "") for c in line["cells"])
        out.append(f"| {arm} | {scaling} | {depth} | {cells} | {_lr(line['critical_lr'])} | "
                   f"{_lr(line['optimal_lr'])} |")
    header = ("| arm | scaling | depth | " + " | ".join(f"lr {_lr(v)}" for v in grid["lrs"])
              + " | critical lr | optimal lr |")
    rule = "|" + "---|" * (len(grid["lrs"]) + 5)
    index = out.index("## Held-out accuracy per cell (mean over seeds; ✗ = most seeds "
                      "unstable)") + 2
    out[index:index] = [header, rule]
    out += ["", "## The claim, per norm-free arm, scaling and depth", "",
            "| arm | scaling | depth | controls train | seeds for / needed | verdict |",
            "|---|---|---|---|---|---|"]
    for c in analysis["claims"]:
        out.append(f"| {c['arm']} | {c['scaling']} | {c['depth']} | "
                   f"{'yes' if c['controls_train'] else 'no'} | {c['seeds_for']}/"
                   f"{c['seeds_needed']} | {_claim_verdict(c['holds'])} |")
    if analysis["movement"]:
        out += ["", "## Depth scaling: how far the rates move (grid steps)", "",
                "| arm | scaling | depths | optimal lr | steps | critical lr | steps |",
                "|---|---|---|---|---|---|---|"]
        for m in analysis["movement"]:
            def steps(v):
                return "—" if v is None else f"{v:+.1f}"
            out.append(f"| {m['arm']} | {m['scaling']} | {m['from']}→{m['to']} | "
                       f"{_lr(m['optimal_lr'][0])}→{_lr(m['optimal_lr'][1])} | "
                       f"{steps(m['optimal_steps'])} | {_lr(m['critical_lr'][0])}→"
                       f"{_lr(m['critical_lr'][1])} | {steps(m['critical_steps'])} |")
        for arm, p in analysis["prediction"].items():
            if p["holds"] is None:
                why = ("a critical rate beyond the rates run at one depth, or a grid rate "
                       "skipped inside the rates run (censored)"
                       if p.get("censored") else
                       f"the rule compares depth 4 with 16 or 32; this grid reaches "
                       f"{p['depths'][1]}")
                verdict = f"**undecided** ({why})"
            else:
                verdict = "holds" if p["holds"] else "does not hold"
            out.append(f"\n`{arm}` (depths {p['depths'][0]}→{p['depths'][1]}): time keeps "
                       f"the rates: {p['time_stays']}; step moves them: {p['step_moves']}; "
                       f"prediction {verdict}.")
    if analysis["drift"]:
        out += ["", "## Drift during training from scratch (at each line's optimal lr)", "",
                "‖u_L − u₀‖/‖u₀‖ (moved) and ‖u_L − 1ūᵀ‖/‖u_L‖ (token spread) on 64 "
                "held-out digits, at initialization → after training.", "",
                "| arm | scaling | depth | lr | moved | token spread |",
                "|---|---|---|---|---|---|"]
        for d in analysis["drift"]:
            out.append(f"| {d['arm']} | {d['scaling']} | {d['depth']} | {_lr(d['lr'])} | "
                       f"{d['moved_init']:.3g} → {d['moved_final']:.3g} | "
                       f"{d['spread_init']:.3g} → {d['spread_final']:.3g} |")
    limit = data.get("depth_limit")
    if limit:
        from pdelang.lab.ablation.continuum import render_markdown as depth_markdown  # lazy: torch

        out += ["", depth_markdown(limit)]
    out += ["", f"{len(data['runs'])} runs, {data['seconds_of_runs']:.0f} s of training "
                f"(one thread each)."]
    return "\n".join(out) + "\n"


def plot(data: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """One figure per scaling: held-out accuracy over (arm × depth) rows and lr columns,
    unstable cells hatched."""
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib
    import numpy as np  # lazy: numpy

    paths = {}
    grid = data["grid"]
    lines = data["analysis"]["lines"]
    for scaling in grid["scalings"]:
        rows = [(k, v) for k, v in lines.items() if k.split("|")[1] == scaling]
        if not rows:
            continue
        values = np.array([[np.nan if c["accuracy_mean"] is None else c["accuracy_mean"]
                            for c in line["cells"]] for _, line in rows])
        fig, ax = plt.subplots(figsize=(1.2 * len(grid["lrs"]) + 3, 0.35 * len(rows) + 1.5))
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for i, (_, line) in enumerate(rows):
            for j, c in enumerate(line["cells"]):
                mark = "✗" if c["runs"] and c["unstable"] * 2 > c["runs"] else ""
                text = "—" if c["accuracy_mean"] is None else f"{c['accuracy_mean']:.2f}"
                ax.text(j, i, f"{mark}{text}", ha="center", va="center", fontsize=7,
                        color="white" if (c["accuracy_mean"] or 0) < 0.6 else "black")
        ax.set_xticks(range(len(grid["lrs"])), [f"{v:g}" for v in grid["lrs"]])
        ax.set_yticks(range(len(rows)), [f"{k.split('|')[0]} L={k.split('|')[2]}"
                                         for k, _ in rows])
        ax.set_xlabel("peak learning rate")
        ax.set_title(f"held-out accuracy ({scaling} scaling; ✗ most seeds unstable)")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        path = out / f"accuracy_{scaling}.png"
        save_figure(fig, path, dpi=110)
        plt.close(fig)
        paths[path.name] = path
    return paths


def write_report(out_dir: str | Path, data: Mapping[str, Any]) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"phase.json": out / "phase.json", "summary.json": out / "summary.json",
             "phase.md": out / "phase.md"}
    keep = {k: v for k, v in data.items() if k != "files"}
    write_atomically(paths["phase.json"], json.dumps(json_safe(keep), indent=1,
                                                     allow_nan=False, ensure_ascii=False))
    write_atomically(paths["summary.json"], json.dumps(json_safe(study_summary(data)),
                                                       indent=2, allow_nan=False,
                                                       ensure_ascii=False) + "\n")
    write_atomically(paths["phase.md"], render_markdown(data))
    paths.update(plot(data, out))
    return paths
