"""The first paper's study, summarized: ``summary.json`` and ``results.md`` from the pieces
:mod:`pdelang.lab.studies.paper1` wrote (one per reference seed and model, one per text subset).

Across seeds a value is reported as mean ± SD with a t-based 95 % interval
(:func:`pdelang.lab.validation.statistics.across_seeds`); within a seed, over inputs, with the
paired 95 % bootstrap interval the piece holds.  The verdicts apply the decision rules of
:mod:`pdelang.lab.studies.paper1`, which were fixed before the runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pdelang.lab.validation.statistics import across_seeds
from pdelang.lab.studies import rules as P
from pdelang.io import write_atomically
from pdelang.lab.studies.figures import write_figures


def _model_table(pieces: list[dict]) -> list[dict]:
    """Per layer, a model's raw attention cosine, rescaled cosine, hidden cosine and
    relative error across seeds (or subsets), with each seed's paired CI against its
    strongest floor."""
    layers = len(pieces[0]["rows"])
    out = []
    for index in range(layers):
        rows = [p["rows"][index] for p in pieces]
        entry = {"layer": rows[0]["layer"],
                 "exact_by_construction": rows[0]["exact_by_construction"],
                 "heads_match": rows[0].get("heads_match")}
        if "attention_cosine" in rows[0]:
            entry["attention_cosine"] = across_seeds(
                [r["attention_cosine"]["mean"] for r in rows])
            entry["rescaled"] = across_seeds(
                [r["against_floor"]["rescaled"] for r in rows
                 if r["against_floor"]["rescaled"] is not None])
            entry["strongest_floor"] = [r["strongest_floor"] for r in rows]
            entry["difference_from_floor"] = [r["against_floor"]["difference"] for r in rows]
        entry["hidden_cosine"] = across_seeds([r["hidden_cosine"]["mean"] for r in rows])
        entry["relative_error"] = across_seeds([r["relative_error"]["mean"] for r in rows])
        entry["previous_state_error"] = across_seeds(
            [r["error_against_previous_state"]["floor_mean"] for r in rows])
        out.append(entry)
    return out


def _floor_table(references: list[dict]) -> list[dict]:
    """Per layer, every floor's mean score across seeds (or subsets)."""
    layers = len(references[0]["floors"])
    out = []
    for index in range(layers):
        entries = [r["floors"][index] for r in references]
        row = {"layer": entries[0]["layer"]}
        for name in ("uniform", "dataset_mean", "head_mean", "previous_layer"):
            values = [e[name]["attention_cosine"]["mean"] for e in entries
                      if e.get(name) is not None]
            row[f"attention_{name}"] = across_seeds(values) if values else None
        for name in ("identity", "previous_state"):
            for metric in ("hidden_cosine", "cka", "relative_error"):
                values = [e[name][metric]["mean"] for e in entries
                          if e.get(name) is not None and e[name].get(metric)]
                row[f"{metric}_{name}"] = across_seeds(values) if values else None
        out.append(row)
    return out


def _claim_a(pieces: list[dict], minimum: int, fits: list[dict] | None = None) -> dict:
    """Claim A across seeds; ``fits``: the distillations behind the pieces (default the
    pieces themselves; text: one fit scored on every subset)."""
    per_seed = [p["verdict"] for p in pieces]
    holds = len(per_seed) >= minimum and all(v["holds"] for v in per_seed)
    # A fitted reduced model that fails the rule refutes the claim only when its fit
    # converged: an optimizer stopped by its step budget says nothing about the family.
    unconverged = sorted({i for i, p in enumerate(pieces if fits is None else fits)
                          if "restarts" in p
                          and not p["restarts"][p["best_restart"]]["converged"]})
    undecided = not holds and bool(unconverged)
    return {"holds": None if undecided else holds, "seeds": len(per_seed),
            "per_seed": per_seed, "unconverged_fits": unconverged,
            "rule": f"raw ≥ 0.98, rescaled ≥ 0.9 and above the strongest floor (paired CI) at "
                    f"every non-trivial layer, on each of ≥ {minimum} seeds"}


def summarize(images: dict, text: dict, config) -> dict:
    seeds = sorted(images)
    summary: dict = {"seeds": seeds, "decision_rules": dict(P.RULES),
        "quick": config.quick}
    if images:
        references = [images[s]["reference"] for s in seeds]
        summary["references"] = [{
            "seed": s, "accuracy": images[s]["reference"]["accuracy"],
            "accuracy_here": images[s]["reference"]["accuracy_here"],
            "accuracy_without_mlp": images[s]["reference"]["accuracy_without_mlp"],
            "accuracy_without_attention": images[s]["reference"]["accuracy_without_attention"],
            "contributions": images[s]["reference"]["contributions"],
            "training_seconds": images[s]["reference"]["training"].get("seconds")}
            for s in seeds]
        summary["accuracy"] = across_seeds([r["accuracy"] for r in summary["references"]])
        summary["floors"] = _floor_table(references)
        models = {}
        for key in ("fit", *P.IMAGE_MODELS):
            pieces = [images[s][key] for s in seeds]
            model = {"spec": pieces[0]["spec"], "layers": _model_table(pieces),
                     "claim_a": _claim_a(pieces, P.MIN_SEEDS)}
            if key == "fit":
                model["fitted"] = [p["fitted"] for p in pieces]
                model["convergence"] = [p["convergence"] for p in pieces]
                model["note"] = pieces[0]["note"]
                model["parameters"] = {"learned": pieces[0]["parameters"]["learned"],
                                       "reference": references[0]["parameters"]}
            else:
                model["parameters"] = pieces[0]["parameters"]
                model["fitted"] = [p["fitted"] for p in pieces]
                model["intervals"] = [p["intervals"] for p in pieces]
                model["restarts"] = [p["restarts"] for p in pieces]
                model["breakdown"] = [p["breakdown"] for p in pieces]
                model["accuracy"] = across_seeds([p["accuracy"] for p in pieces])
                model["heads_compared"] = pieces[0]["heads_compared"]
            models[key] = model
        summary["models"] = models
        info = [images[s]["information"] for s in seeds]
        summary["information_plane"] = {
            "per_sigma": _compression_table(info),
            "verdicts": [i["compression"]["verdict"] for i in info],
            "reasons": [i["compression"]["reason"] for i in info],
            "probe": [[{k: p.get(k) for k in ("bits", "standard_error_bits", "C", "accuracy",
                                              "failed", "reason")}
                       for p in i["probe"]] for i in info],
            "participation_ratio": [i["participation_ratio"] for i in info],
            "sweep": _sweep_table(info),
            "anisotropy": [i["anisotropy"]["rows"] for i in info],
            "from_layer": info[0]["from_layer"], "to_layer": info[0]["to_layer"]}
        verdicts = summary["information_plane"]["verdicts"]
        summary["claim_b_holds"] = bool(verdicts) and all(v == "compression" for v in verdicts)
    if text:
        subsets = text["reference"]
        summary["text"] = {
            "subsets": [r["sentences"] for r in subsets],
            "floors": _floor_table(subsets),
            "models": {"fit": {"spec": text["fit"]["subsets"][0]["spec"],
                               "layers": _model_table(text["fit"]["subsets"]),
                               "claim_a": _claim_a(text["fit"]["subsets"], P.MIN_SEEDS),
                               "fitted": text["fit"]["subsets"][0]["fitted"],
                               # one fit on training sentences, evaluated on every subset
                               "convergence": [text["fit"]["subsets"][0]["convergence"]]}}}
        for key in (k for k in P.TEXT_MODELS if k in text):
            piece = text[key]
            summary["text"]["models"][key] = {
                "spec": piece["spec"], "parameters": piece["parameters"],
                "layers": _model_table(piece["subsets"]),
                "claim_a": _claim_a(piece["subsets"], P.MIN_SEEDS, fits=[piece]),
                "restarts": [piece["restarts"]], "fitted": piece["fitted"],
                "intervals": [piece["intervals"]],
                "breakdown": [s["breakdown"] for s in piece["subsets"]]}
    summary["verdicts"] = _verdicts(summary)
    return summary


def _sweep_table(info: list[dict]) -> list[dict]:
    """I(X;T_ℓ) per (scale, σ, layer): mean over seeds of the estimate and of its MC SE."""
    rows = []
    for index, row in enumerate(info[0]["sweep"]["rows"]):
        entries = [i["sweep"]["rows"][index] for i in info]
        rows.append({"scale": row["scale"], "sigma": row["sigma"], "layer": row["layer"],
                     "bits": across_seeds([e["bits"] for e in entries]),
                     "standard_error_bits": float(np.mean([e["standard_error_bits"]
                                                           for e in entries])),
                     "saturated": any(e["saturated"] for e in entries),
                     "participation_ratio": float(np.mean([e["participation_ratio"]
                                                           for e in entries]))})
    return rows


def _compression_table(info: list[dict]) -> list[dict]:
    rows = []
    for index, row in enumerate(info[0]["compression"]["rows"]):
        entries = [i["compression"]["rows"][index] for i in info]
        rows.append({"scale": row["scale"], "sigma": row["sigma"],
                     "delta_bits": [e["delta_bits"] for e in entries],
                     "low": [e["ci_low"] for e in entries],
                     "high": [e["ci_high"] for e in entries],
                     "saturated": [e["saturated"] for e in entries]})
    for index, row in enumerate(info[0]["compression"]["control_rows"]):
        entries = [i["compression"]["control_rows"][index] for i in info]
        rows.append({"scale": f"whitened PCA control (k = {info[0]['compression']['k']})",
                     "sigma": row["sigma"], "delta_bits": [e["delta_bits"] for e in entries],
                     "low": [e["ci_low"] for e in entries],
                     "high": [e["ci_high"] for e in entries],
                     "saturated": [e["saturated"] for e in entries]})
    return rows


def _verdicts(summary: dict) -> dict:
    out = {}

    def verdict(key, model):
        holds = model["claim_a"]["holds"]
        if holds is None:
            return "undecided (the reduced model's fit did not converge within its budget)"
        if key == "fit":  # the Transformer's own weights plus D Δu: cannot fail
            return f"{'holds' if holds else 'does not hold'} (cannot fail: fit mode keeps " \
                   "every Transformer weight)"
        return holds

    for key, model in summary.get("models", {}).items():
        out[f"claim_a_images_{key}"] = verdict(key, model)
    for key, model in summary.get("text", {}).get("models", {}).items():
        out[f"claim_a_text_{key}"] = verdict(key, model)
    if "claim_b_holds" in summary:
        out["claim_b_compression"] = summary["claim_b_holds"]
    for key, model in summary.get("models", {}).items():
        if "breakdown" in model:
            out[f"claim_c_breakdown_layers_{key}"] = model["breakdown"]
    return out


# ----------------------------------------------------------------------------- report
def _pm(stat: dict | None, digits: int = 4) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    if stat.get("n", 1) > 1 and stat.get("sd") is not None:
        return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def _ci(d: dict) -> str:
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def _model_lines(name: str, model: dict) -> list[str]:
    lines = [f"**{name}** (`{model.get('spec', '')}`)", "",
             "| layer | attn cosine | rescaled vs strongest floor | model − floor, paired CI "
             "per seed | hidden cosine | rel. error | prev.-state error |",
             "|---|---|---|---|---|---|---|"]
    for row in model["layers"]:
        mark = " (exact by construction)" if row["exact_by_construction"] else ""
        diffs = "; ".join(_ci(d) for d in row.get("difference_from_floor", []))
        lines.append(f"| {row['layer']}{mark} | {_pm(row.get('attention_cosine'))} | "
                     f"{_pm(row.get('rescaled'), 3)} | {diffs or '–'} | "
                     f"{_pm(row['hidden_cosine'])} | {_pm(row['relative_error'], 3)} | "
                     f"{_pm(row['previous_state_error'], 3)} |")
    verdict = model["claim_a"]
    state = {True: "holds", False: "does not hold",
             None: "undecided: the fit stopped at its step budget before converging, and a "
                   "failure of an unconverged fit refutes nothing"}[verdict["holds"]]
    lines += ["", f"Claim A: **{state}** ({verdict['seeds']} seeds/subsets)."]
    lines += _coefficient_lines(model)
    failures = [f"seed/subset {i}: " + "; ".join(
        f"layer {f['layer']}: {', '.join(f['reasons'])}" for f in v["failures"])
        for i, v in enumerate(verdict["per_seed"]) if v["failures"]]
    if failures:
        lines.append("Failures: " + " · ".join(failures[:3]))
    return lines + [""]


def _coefficient_lines(model: dict) -> list[str]:
    """The fitted coefficients per seed with their intervals, and fit mode's D → 0."""
    lines = []
    for index, conv in enumerate(model.get("convergence") or []):
        for name, interval in conv.get("intervals", {}).items():
            boundary = conv.get("boundary", {}).get(name, {})
            low = 0.0 if boundary.get("optimum_at_zero") else interval["low"]
            note = " — **the optimum is the boundary, D → 0** (loss with D = 0: " \
                   f"{boundary['loss_at_zero']:.3g}, at the fit: {boundary['loss_at_fit']:.3g})" \
                if boundary.get("optimum_at_zero") else ""
            state = "converged" if conv["fit"]["converged"] else "NOT converged"
            lines.append(f"Seed/subset {index}: {name}* = {interval['value']:.3g} "
                         f"[{low:.3g}, {interval['high']:.3g}] ({conv['fit']['iterations']} "
                         f"L-BFGS iterations, {state}){note}")
    for index, intervals in enumerate(model.get("intervals") or []):
        lines.append(f"Seed/subset {index}, coefficients [95 % conditional bootstrap]: "
                     + ", ".join(f"{k} = {v['value']:.3g} [{v['low']:.3g}, {v['high']:.3g}]"
                                 for k, v in intervals.items()))
    for index, restarts in enumerate(model.get("restarts") or []):
        lines.append(f"Seed/subset {index}, restarts (validation loss, steps, converged): "
                     + "; ".join(f"{r['validation_loss']:.4f}, {r['iterations']}, "
                                 f"{'yes' if r['converged'] else 'NO'}" for r in restarts))
    return lines


def _floor_lines(floors: list[dict]) -> list[str]:
    lines = ["| layer | uniform | dataset-mean map | head-mean | previous layer's map | "
             "identity u₀: hidden cos / CKA | previous state: hidden cos / CKA |",
             "|---|---|---|---|---|---|---|"]
    for r in floors:
        lines.append(
            f"| {r['layer']} | {_pm(r['attention_uniform'], 3)} | "
            f"{_pm(r['attention_dataset_mean'], 3)} | {_pm(r['attention_head_mean'], 3)} | "
            f"{_pm(r['attention_previous_layer'], 3)} | {_pm(r['hidden_cosine_identity'], 3)}"
            f" / {_pm(r['cka_identity'], 3)} | {_pm(r['hidden_cosine_previous_state'], 3)} / "
            f"{_pm(r['cka_previous_state'], 3)} |")
    return lines + [""]


def report_markdown(summary: dict) -> str:
    lines = ["# The first paper's claims, tested", "",
             "Generated by `pdelang study paper1` from the pieces in this folder; the decision "
             "rules were fixed in `pdelang/lab/studies/rules.py` before the runs.", ""]
    if summary.get("quick"):
        lines += ["**A quick run: a smoke test of every piece, not the documented numbers.**",
                  ""]
    lines += ["## Decision rules", ""] + [f"- **{k}**: {' '.join(v.split())}"
                                          for k, v in summary["decision_rules"].items()] + [""]
    if "models" in summary:
        refs = summary["references"]
        lines += ["## Images: `vit-digits`, seeds " + ", ".join(map(str, summary["seeds"])),
                  "",
                  f"Held-out accuracy {_pm(summary['accuracy'])} (per seed: "
                  + ", ".join(f"{r['accuracy']:.4f}" for r in refs) + "); without the MLPs "
                  + ", ".join(f"{r['accuracy_without_mlp']:.4f}" for r in refs)
                  + "; without attention "
                  + ", ".join(f"{r['accuracy_without_attention']:.4f}" for r in refs) + ".", "",
                  "### Floors (what trivial maps score)", ""] + _floor_lines(summary["floors"])
        lines += ["### Models", "", "| model | parameters | reference's | held-out accuracy "
                  "through the reference's head |", "|---|---|---|---|"]
        for key, model in summary["models"].items():
            p = model["parameters"]
            count = f"{p['model']:,}" if "model" in p else \
                f"{p['learned']:,} learned + the reference's weights, frozen"
            lines.append(f"| {key} | {count} | {p['reference']:,} | "
                         f"{_pm(model.get('accuracy'))} |")
        lines.append("")
        for key, model in summary["models"].items():
            lines += _model_lines(key, model)
        lines += ["### What the PDE misses (claim C)", "",
                  "| layer | ‖A‖/‖u‖ | ‖R‖/‖u‖ (MLP) | "
                  + " | ".join(f"{k}: rel. error / prev.-state floor"
                               for k in summary["models"] if k != "fit") + " |",
                  "|---|---|---|" + "---|" * (len(summary["models"]) - 1)]
        for index, c in enumerate(refs[0]["contributions"]):
            attention = np.mean([r["contributions"][index]["attention"] for r in refs])
            mlp = np.mean([r["contributions"][index]["mlp"] for r in refs])
            cells = [f"{_pm(m['layers'][index]['relative_error'], 3)} / "
                     f"{_pm(m['layers'][index]['previous_state_error'], 3)}"
                     for k, m in summary["models"].items() if k != "fit"]
            lines.append(f"| {c['layer']} | {attention:.3f} | {mlp:.3f} | "
                         + " | ".join(cells) + " |")
        lines += ["", "Layers where a reduced model breaks down (per seed): " + "; ".join(
            f"{k}: {m['breakdown']}" for k, m in summary["models"].items()
            if "breakdown" in m), ""]
        plane = summary["information_plane"]
        lines += [f"### Information plane under controls (ΔI(X;T), layer {plane['from_layer']}"
                  f" → {plane['to_layer']}, bits, 95 % CI per seed)", "",
                  "| scale | σ | ΔI per seed [CI] |", "|---|---|---|"]
        for row in plane["per_sigma"]:
            cells = "; ".join(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in
                              zip(row["delta_bits"], row["low"], row["high"])
                              if d is not None and lo is not None and hi is not None)
            lines.append(f"| {row['scale']} | {row['sigma']} | {cells} |")
        lines += ["", "Verdict per seed: " + ", ".join(plane["verdicts"]) + " — "
                  + " · ".join(plane["reasons"][:1]), ""]
        layers = sorted({r["layer"] for r in plane["sweep"]})
        lines += ["I(X;T_ℓ) per σ (bits, mean ± SD over seeds; participation ratio of T_ℓ "
                  "in the last row):", "",
                  "| scale | σ | " + " | ".join(f"ℓ = {ell}" for ell in layers) + " |",
                  "|---|---|" + "---|" * len(layers)]
        for scale in ("relative", "absolute"):
            for sigma in sorted({r["sigma"] for r in plane["sweep"]}):
                cells = [_pm(r["bits"], 3) + (" (sat.)" if r["saturated"] else "")
                         for ell in layers for r in plane["sweep"]
                         if r["scale"] == scale and r["sigma"] == sigma and r["layer"] == ell]
                lines.append(f"| {scale} | {sigma:g} | " + " | ".join(cells) + " |")
        ratios = [r for r in plane["sweep"] if r["scale"] == "relative"
                  and r["sigma"] == plane["sweep"][0]["sigma"]]
        lines.append("| participation ratio | | " + " | ".join(
            f"{r['participation_ratio']:.1f}" for r in ratios) + " |")
        probe = plane["probe"]
        lines += ["", "I(T_ℓ;Y) by a logistic probe with C cross-validated on the training "
                  "digits (bits ± bootstrap SE, seed by seed; C chosen):", "",
                  "| seed | " + " | ".join(f"ℓ = {ell}" for ell in layers) + " |",
                  "|---|" + "---|" * len(layers)]
        for seed, rows in zip(summary["seeds"], probe):
            lines.append(f"| {seed} | " + " | ".join(
                f"{p['bits']:.3f} ± {p['standard_error_bits']:.3f} (C = {p['C']:g})"
                + (" FAILED" if p["failed"] else "") for p in rows) + " |")
        lines.append("")
    if "text" in summary:
        t = summary["text"]
        lines += ["## Text: MiniLM, disjoint held-out subsets of "
                  + ", ".join(map(str, t["subsets"])) + " sentences", "",
                  "### Floors", ""] + _floor_lines(t["floors"])
        for key, model in t["models"].items():
            lines += _model_lines(f"text {key}", model)
    lines += ["## Verdicts", ""] + [f"- {k}: {v}" for k, v in summary["verdicts"].items()]
    return "\n".join(lines) + "\n"


def write_report(summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    write_atomically(out / "results.md", report_markdown(summary))

    write_figures(summary, out)
