"""Write an ablation sweep's results: ``results.json``, ``report.md`` and PNG plots.

The ``results`` dict (built by ``pdelang ablate``)::

    {"spec": str, "swaps": {key: [values]}, "task": str, "steps": int, "seeds": [int],
     "variants": [{
         "overrides": {"stabilizers.residual": False, ...}, "label": str,
         "compiled": bool, "error": str | None,
         "drift": [per-layer dicts from pdelang.lab.ablation.drift] | None,
         "diverged": bool, "divergence_step": int | None,
         "final_loss": float | None, "max_grad_norm": float | None,
         "training": {"seeds": [{"losses", "grad_norms", "update_norms",
                                 "max_activations", "diverged", "divergence_step",
                                 optional "steps", "final_loss", "eval_accuracy", ...}]},
     }, ...]}

Files written by :func:`write_report` (all deterministic for the same input):

* ``results.json``: the dict made JSON-safe by :func:`json_safe` (NaN -> ``null``,
  +Inf -> ``"Infinity"``, -Inf -> ``"-Infinity"``, tuples -> lists, tensors/arrays -> lists,
  dataclasses -> dicts), sorted keys, 2-space indent;
* ``report.md``: one table row per variant (in the given order) with overrides,
  compiled, diverged (``yes (k/n seeds)``), earliest divergence step, final training loss
  ``mean ± std`` over seeds (finite values, population std), max gradient norm, eval
  accuracy, and final-layer drift (hidden cosine, relative error, rank-collapse ratio),
  followed by the errors of variants that did not compile and per-layer drift tables;
* ``drift.png``: per-layer rank-collapse ratio and relative error (log y) per variant
  (a variant whose relative error is zero everywhere, e.g. the reference, is named in a
  note instead of drawn);
* ``loss.png``, ``grad_norm.png``: training curves per variant, log y, the mean over seeds
  with a shaded min-max band.  Non-finite and non-positive points are left out.

Every variant has its own colour, line style and marker (later ones smaller), curves drawn
over each other are named in a note, and no axis uses offset notation
(:mod:`pdelang.lab.validation.plots`).

Variants with ``compiled: False`` appear in the table only.  Numbers are printed with
4 significant digits (``format_number``).
"""

from __future__ import annotations
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from pdelang.io import write_atomically
from pdelang.lab.ablation.formatting import (
    MISSING,
    format_number,
    format_value,
    json_safe,
    markdown_table,
    one_line,
)
from pdelang.lab.ablation.report_plots import plot_curves, plot_drift, plot_information
from pdelang.lab.ablation.report_rows import (
    empty_reasons,
    variant_label,
    variant_observations,
    variant_row,
)

__all__ = ["render_markdown", "write_report"]


_TABLE_COLUMNS = ("#", "Variant", "Overrides", "Compiled", "Diverged", "Div. step",
                  "Final loss (mean ± std)", "Max grad norm", "Eval acc.",
                  "Cosine (final)", "Rel. error (final)", "Rank collapse (final)", "Error")


def _empty(value: Any, marker: str | None) -> str:
    text = format_number(value)
    return f"{text} {marker}" if marker and text == MISSING else text


def _table_row(index: int, row: Mapping[str, Any], markers: Mapping[str, str] | None = None
               ) -> list[str]:
    """One row of the variants table; ``markers`` (group → footnote marker, see
    :func:`empty_reasons`) tag the empty cells."""
    markers = markers or {}
    drift = markers.get("drift")
    reference = markers.get("reference") or drift
    training = markers.get("training")
    accuracy = markers.get("accuracy") or training
    if not row["compiled"]:
        cells = [str(index), row["label"], row["overrides"], "no"]
        cells += [_empty(None, training)] * 5
        cells += [_empty(None, drift)] * 3
        cells.append(one_line(row["error"] or "not compiled", 80))
        return cells
    if row["seeds"]:
        diverged = f"{'yes' if row['diverged_seeds'] else 'no'} " \
                   f"({row['diverged_seeds']}/{row['seeds']})"
    elif training:
        diverged = _empty(None, training)
    else:
        diverged = "yes" if row["diverged"] else "no"
    loss = _empty(row["final_loss_mean"], training)
    if row["final_loss_std"] is not None:
        loss += f" ± {format_number(row['final_loss_std'])}"
    return [
        str(index), row["label"], row["overrides"], "yes", diverged,
        format_number(row["divergence_step"]), loss,
        _empty(row["max_grad_norm"], training), _empty(row["eval_accuracy"], accuracy),
        _empty(row["hidden_cosine"], reference), _empty(row["relative_error"], reference),
        _empty(row["rank_collapse_ratio"], drift),
        one_line(row["error"], 80) if row["error"] else "",
    ]


def _footnotes(variants, rows, task) -> tuple[list[dict[str, str]], list[str]]:
    """Per row, group → marker; and the footnote lines (one per distinct reason)."""
    labels: dict[str, str] = {}
    per_row = []
    for variant, row in zip(variants, rows):
        markers = {}
        for group, reason in empty_reasons(variant, row, task).items():
            if reason not in labels:
                labels[reason] = f"[{_letters(len(labels))}]"
            markers[group] = labels[reason]
        per_row.append(markers)
    lines = [f"{marker} empty: {one_line(reason)}" for reason, marker in labels.items()]
    return per_row, lines


def _letters(index: int) -> str:
    """a, b, …, z, aa, ab, …"""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


_DRIFT_COLUMNS = (("layer", "Layer"), ("hidden_cosine", "Cosine"),
                  ("relative_error", "Rel. error"), ("rank_collapse_ratio", "Rank collapse"),
                  ("state_norm", "State norm"), ("norm_growth", "Norm growth"),
                  ("finite", "Finite"))


def render_markdown(results: Mapping[str, Any]) -> str:
    """The text of ``report.md`` (see module docstring)."""
    variants = list(results.get("variants") or [])
    rows = [variant_row(v) for v in variants]
    swaps = results.get("swaps") or {}
    seeds = results.get("seeds") or []
    lines = [f"# Ablation report: {results.get('spec', '?')}", ""]
    lines.append(f"- Task: `{results.get('task', '?')}`; steps: {results.get('steps', '?')}; "
                 f"seeds: {', '.join(str(s) for s in seeds) or MISSING}")
    for key in sorted(swaps):
        values = swaps[key] if isinstance(swaps[key], (list, tuple)) else [swaps[key]]
        lines.append(f"- Swap `{key}`: {', '.join(format_value(v) for v in values)}")
    lines += ["", "## Variants", ""]
    markers, notes = _footnotes(variants, rows, results.get("task"))
    lines += markdown_table(_TABLE_COLUMNS, [_table_row(i + 1, r, m) for i, (r, m)
                                              in enumerate(zip(rows, markers))])
    if notes:
        lines += [""] + [f"{note}  " for note in notes[:-1]] + notes[-1:]
    lines += [
        "",
        (
            "Diverged: seeds whose loss or gradient norm became NaN/Inf or whose loss exceeded "
            "the divergence threshold (training stops there).  Div. step: the first step at "
            "which a seed diverged (— when no seed diverged).  Final loss: training loss of the "
            "last step run, mean ± population std over seeds with a finite value.  Drift columns: "
            "the stepper output compared with the reference variant — mean per-token cosine, "
            "relative error ‖X − R‖_F/‖R‖_F, and rank-collapse ratio ‖X − 1x̄ᵀ‖_F/‖X‖_F "
            "(0 = all tokens identical).  An empty cell (— [a]) has its reason in the note "
            "of that letter under the table."
        ),
    ]
    failed = [(i + 1, r) for i, r in enumerate(rows) if not r["compiled"] or r["error"]]
    if failed:
        lines += ["", "## Errors", ""]
        for index, row in failed:
            lines += [f"### {index}. {row['label']}", "", "```",
                      str(row["error"] or "not compiled").rstrip(), "```", ""]
        lines.pop()
    with_drift = [(i + 1, v) for i, v in enumerate(variants) if v.get("drift")]
    if with_drift:
        lines += ["", "## Per-layer drift", ""]
        for index, variant in with_drift:
            lines += [f"### {index}. {variant_label(variant)}", ""]
            reason = empty_reasons(variant, rows[index - 1]).get("reference")
            if reason:
                lines += [f"Cosine and relative error: {one_line(reason)}.", ""]
            table = [[_format_drift(layer.get(key), key) for key, _ in _DRIFT_COLUMNS]
                     for layer in variant["drift"]]
            lines += markdown_table([title for _, title in _DRIFT_COLUMNS], table)
            lines.append("")
        lines.pop()
    lines += _information_section(variants, results.get("information"))
    return "\n".join(lines) + "\n"


def _information_section(variants, settings) -> list[str]:
    """Per variant: I(X;T) and I(T;Y) of every layer at the first and last observation."""
    observed = [(i + 1, v, variant_observations(v)) for i, v in enumerate(variants)]
    observed = [(i, v, o) for i, v, o in observed if o]
    if not observed:
        return []
    sigma = (settings or {}).get("sigma")
    lines = ["", "## Information plane along training", "",
             "Seed 0; per layer boundary (0 = the embedded patches) I(X; T + Z) by sample "
             f"propagation (σ = {sigma} × the layer's spread) and I(T; Y) = H(Y) − held-out "
             "cross-entropy of a logistic probe, in bits; T = the flattened state.  Plots: "
             "`information_plane_<variant>.png`.", ""]
    for index, variant, observations in observed:
        first, last = observations[0], observations[-1]
        lines += [f"### {index}. {variant_label(variant)}", ""]
        if not first.get("layers") or not last.get("layers"):
            lines += [f"{first.get('note') or last.get('note') or 'no observation'}", ""]
            continue
        table = [[str(a["layer"]), format_number(a["i_xt_bits"]), format_number(b["i_xt_bits"]),
                  format_number(a.get("i_ty_bits")), format_number(b.get("i_ty_bits"))]
                 for a, b in zip(first["layers"], last["layers"])]
        lines += markdown_table(
            ["layer", f"I(X;T) step {first['step']}", f"I(X;T) step {last['step']}",
             f"I(T;Y) step {first['step']}", f"I(T;Y) step {last['step']}"], table)
        lines.append("")
    lines.pop()
    return lines


def _format_drift(value: Any, key: str) -> str:
    if key == "finite":
        return MISSING if value is None else ("yes" if value else "no")
    return format_number(value)


def write_report(out_dir: str | Path, results: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, ``drift.png``, ``loss.png``, ``grad_norm.png``.

    Creates ``out_dir`` if needed and returns ``{name: path}`` of the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    safe = json_safe(results)
    paths = {
        "results.json": out / "results.json",
        "report.md": out / "report.md",
        "drift.png": out / "drift.png",
        "loss.png": out / "loss.png",
        "grad_norm.png": out / "grad_norm.png",
    }
    text = json.dumps(safe, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
    write_atomically(paths["results.json"], text + "\n")
    write_atomically(paths["report.md"], render_markdown(safe))
    variants = list(safe.get("variants") or [])
    plot_drift(variants, paths["drift.png"])
    plot_curves(variants, "losses", paths["loss.png"], "Training loss", "loss")
    plot_curves(variants, "grad_norms", paths["grad_norm.png"], "Gradient norm (global L2)",
                "‖g‖₂")
    paths.update(plot_information(variants, out))
    return paths
