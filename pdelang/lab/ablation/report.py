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

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pdelang.io import save_figure, write_atomically

__all__ = [
    "as_float",
    "curves_figure",
    "drift_figure",
    "finite_mean_std",
    "finite_values",
    "format_number",
    "format_overrides",
    "json_safe",
    "markdown_cell",
    "markdown_table",
    "plot_curves",
    "plot_drift",
    "render_markdown",
    "variant_row",
    "write_report",
]

MISSING = "—"
_STRING_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


# ---------------------------------------------------------------------------------------
# JSON and formatting
# ---------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    NaN -> ``None`` (``null``); +Inf / -Inf -> the strings ``"Infinity"`` / ``"-Infinity"``;
    tensors, numpy arrays and scalars -> Python lists / numbers; tuples and lists -> lists;
    sets -> sorted lists; dataclasses -> dicts; mapping keys -> ``str``; other objects ->
    ``str(value)``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return [json_safe(item) for item in sorted(value, key=repr)]
    if hasattr(value, "tolist"):  # torch.Tensor, numpy array or numpy scalar
        return json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return str(value)


def as_float(value: Any) -> float | None:
    """A float from a number or a JSON-safe string (``"Infinity"``...); ``None`` stays."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _STRING_FLOATS.get(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def format_number(value: Any) -> str:
    """4 significant digits (``%.4g``); ``—`` for missing, ``nan``, ``inf``, ``-inf``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = as_float(value)
    if number is None:
        return MISSING
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.4g}"


def _format_value(value: Any) -> str:
    return json.dumps(json_safe(value), sort_keys=True)


def format_overrides(overrides: Mapping[str, Any] | None) -> str:
    """``key=value, ...`` sorted by key, values as JSON (``false``, ``"none"``...)."""
    if not overrides:
        return "(none)"
    return ", ".join(f"{key}={_format_value(overrides[key])}" for key in sorted(overrides))


def _one_line(text: Any, limit: int | None = None) -> str:
    """``text`` on one line (whitespace runs -> one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def markdown_cell(text: Any) -> str:
    """A markdown table cell: one line, ``|`` escaped."""
    return _one_line(text).replace("|", "\\|")


# ---------------------------------------------------------------------------------------
# Per-variant summary
# ---------------------------------------------------------------------------------------


def _seed_runs(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    training = variant.get("training") or {}
    return list(training.get("seeds") or [])


def _seed_final_loss(run: Mapping[str, Any]) -> float | None:
    if run.get("final_loss") is not None:
        return as_float(run["final_loss"])
    losses = run.get("losses") or []
    return as_float(losses[-1]) if losses else None


def finite_values(values: Iterable[float | None]) -> list[float]:
    """The finite numbers among ``values`` (``None``, NaN and ±Inf left out)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def finite_mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and population standard deviation (ddof=0) of the finite values, or Nones.

    The one seed statistic of the ablation: :func:`pdelang.lab.ablation.train.summarize` and the
    report's table both use it.
    """
    import numpy as np

    finite = finite_values(values)
    if not finite:
        return None, None
    return float(np.mean(finite)), float(np.std(finite))


def _label(variant: Mapping[str, Any]) -> str:
    return str(variant.get("label") or format_overrides(variant.get("overrides")))


def variant_row(variant: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers shown in the report for one variant (missing values are ``None``).

    Seed-level values (``training.seeds``) take precedence for the loss statistics and
    the divergence count; the variant-level ``final_loss`` / ``diverged`` are used when no
    seed runs are present.
    """
    runs = _seed_runs(variant)
    finals = [_seed_final_loss(run) for run in runs]
    if finals:
        loss_mean, loss_std = finite_mean_std(finals)
        if loss_mean is None and any(v is not None for v in finals):
            loss_mean = next(v for v in finals if v is not None)  # all nan/inf: show one
    else:
        loss_mean, loss_std = as_float(variant.get("final_loss")), None
    diverged_seeds = sum(1 for run in runs if run.get("diverged"))
    steps = [run.get("divergence_step") for run in runs if run.get("diverged")]
    steps = [s for s in steps if s is not None]
    divergence_step = variant.get("divergence_step")
    if divergence_step is None and steps:
        divergence_step = min(steps)
    accuracies = [as_float(run.get("eval_accuracy")) for run in runs]
    final = (variant.get("drift") or [None])[-1] or {}
    return {
        "label": _label(variant),
        "overrides": format_overrides(variant.get("overrides")),
        "compiled": bool(variant.get("compiled", True)),
        "error": variant.get("error"),
        "diverged": bool(variant.get("diverged")) or diverged_seeds > 0,
        "diverged_seeds": diverged_seeds,
        "seeds": len(runs),
        "divergence_step": divergence_step,
        "final_loss_mean": loss_mean,
        "final_loss_std": loss_std,
        "max_grad_norm": as_float(variant.get("max_grad_norm")),
        "eval_accuracy": finite_mean_std(accuracies)[0],
        "hidden_cosine": as_float(final.get("hidden_cosine")),
        "relative_error": as_float(final.get("relative_error")),
        "rank_collapse_ratio": as_float(final.get("rank_collapse_ratio")),
        "has_drift": bool(variant.get("drift")),
    }


# ---------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------

_TABLE_COLUMNS = ("#", "Variant", "Overrides", "Compiled", "Diverged", "Div. step",
                  "Final loss (mean ± std)", "Max grad norm", "Eval acc.",
                  "Cosine (final)", "Rel. error (final)", "Rank collapse (final)", "Error")


def empty_reasons(variant: Mapping[str, Any], row: Mapping[str, Any],
                  task: str | None = None) -> dict[str, str]:
    """Why a variant's cells are empty, per group of columns: ``drift`` (cosine, relative
    error and rank collapse), ``reference`` (cosine and relative error only), ``training``
    (diverged, loss, gradient norm, accuracy) and ``accuracy``."""
    if not row["compiled"]:
        return {"drift": "not compiled (see Errors)", "training": "not compiled (see Errors)"}
    out = {}
    source = str(variant.get("drift_source") or "")
    if not row["has_drift"]:
        out["drift"] = "no drift measured"
    elif row["hidden_cosine"] is None and row["relative_error"] is None:
        if source.startswith("random weights: "):  # the reference's weights did not fit
            out["reference"] = f"no reference comparison — {source}"
        elif source:
            out["reference"] = f"no reference comparison (--reference none: {source})"
        else:
            out["reference"] = "no reference comparison"
    if not row["seeds"] and row["final_loss_mean"] is None:
        out["training"] = ("not trained (--train none)" if task == "none"
                           else "no training record")
    elif row["eval_accuracy"] is None:
        out["accuracy"] = "not evaluated"
    return out


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
        cells.append(_one_line(row["error"] or "not compiled", 80))
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
        _one_line(row["error"], 80) if row["error"] else "",
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
    lines = [f"{marker} empty: {_one_line(reason)}" for reason, marker in labels.items()]
    return per_row, lines


def _letters(index: int) -> str:
    """a, b, …, z, aa, ab, …"""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return lines


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
        lines.append(f"- Swap `{key}`: {', '.join(_format_value(v) for v in values)}")
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
            lines += [f"### {index}. {_label(variant)}", ""]
            reason = empty_reasons(variant, rows[index - 1]).get("reference")
            if reason:
                lines += [f"Cosine and relative error: {_one_line(reason)}.", ""]
            table = [[_format_drift(layer.get(key), key) for key, _ in _DRIFT_COLUMNS]
                     for layer in variant["drift"]]
            lines += markdown_table([title for _, title in _DRIFT_COLUMNS], table)
            lines.append("")
        lines.pop()
    lines += _information_section(variants, results.get("information"))
    return "\n".join(lines) + "\n"


def _observations(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Seed 0's information-plane observations (``ablate --metrics info``)."""
    runs = _seed_runs(variant)
    return list(runs[0].get("information") or []) if runs else []


def _information_section(variants, settings) -> list[str]:
    """Per variant: I(X;T) and I(T;Y) of every layer at the first and last observation."""
    observed = [(i + 1, v, _observations(v)) for i, v in enumerate(variants)]
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
        lines += [f"### {index}. {_label(variant)}", ""]
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


def plot_information(variants: Sequence[Mapping[str, Any]], out: Path) -> dict[str, Path]:
    """``information_plane_<k>.png`` per variant with observations: one curve per step."""
    from pdelang.lab.validation.plots import information_plane

    paths = {}
    for index, variant in enumerate(variants, start=1):
        observations = [o for o in _observations(variant) if o.get("layers")]
        if not observations:
            continue
        series = {f"step {o['step']}": [(row["i_xt_bits"], row.get("i_ty_bits"))
                                        for row in o["layers"]] for o in observations}
        figure = information_plane(series, f"{index}. {_label(variant)} (seed 0)",
                                   steps={k: [] for k in series})
        name = f"information_plane_{index}.png"
        paths[name] = out / name
        _save(figure, paths[name])
    return paths


def _format_drift(value: Any, key: str) -> str:
    if key == "finite":
        return MISSING if value is None else ("yes" if value else "no")
    return format_number(value)


# ---------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------


def _new_figure(columns: int = 1):
    from pdelang.lab.validation.plots import new_figure

    return new_figure(1, columns)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    save_figure(figure, path, format="png", dpi=100, metadata={"Software": None})


def _style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of variant ``index`` (distinct for every variant, later
    ones smaller: coinciding curves stay visible)."""
    from pdelang.lab.validation.plots import style

    return style(index)


def _no_data(axis, message: str = "no data") -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)


def _finite_points(xs: Sequence[float], ys: Sequence[Any], positive: bool):
    points = []
    for x, y in zip(xs, ys):
        value = as_float(y)
        if value is None or not math.isfinite(value) or (positive and value <= 0):
            continue
        points.append((x, value))
    return [p[0] for p in points], [p[1] for p in points]


def drift_figure(variants: Sequence[Mapping[str, Any]]):
    """The figure of ``drift.png``: per-layer rank-collapse ratio (left) and relative error
    (right, log y) per variant; curves drawn over each other are named in a note."""
    from pdelang.lab.validation.plots import coinciding, note_coinciding, plain_ticks

    figure, (collapse_axis, error_axis) = _new_figure(2)
    zero_error: list[str] = []  # e.g. the reference itself: nothing to draw on log y
    collapse: dict[str, tuple[list, list]] = {}
    error: dict[str, tuple[list, list]] = {}
    for index, variant in enumerate(variants):
        drift = variant.get("drift")
        if not variant.get("compiled", True) or not drift:
            continue
        layers = [int(row.get("layer", i)) for i, row in enumerate(drift)]
        label = f"{index + 1}. {_label(variant)}"
        broken = [row.get("layer", i) for i, row in enumerate(drift)
                  if row.get("finite") is False]
        if broken:
            label += f" (non-finite from layer {broken[0]})"
        xs, ys = _finite_points(layers, [r.get("rank_collapse_ratio") for r in drift], False)
        if xs:
            collapse_axis.plot(xs, ys, label=label, **_style(index))
            collapse[label] = (xs, ys)
        errors = [as_float(r.get("relative_error")) for r in drift]
        xs, ys = _finite_points(layers, errors, True)
        if xs:
            error_axis.plot(xs, ys, label=label, **_style(index))
            error[label] = (xs, ys)
        elif errors and all(e == 0 for e in errors):
            zero_error.append(label)
    collapse_axis.set(title="Rank-collapse ratio ‖X − 1x̄ᵀ‖/‖X‖", xlabel="layer",
                      ylabel="ratio (0 = collapsed)")
    error_axis.set(title="Relative error vs reference ‖X − R‖/‖R‖", xlabel="layer",
                   ylabel="relative error")
    if collapse:
        collapse_axis.set_ylim(bottom=0)  # 0 = collapsed: rounding noise near 1 is flat
        note_coinciding(collapse_axis, coinciding(collapse), fontsize="small")
    else:
        _no_data(collapse_axis)
    if error:
        error_axis.set_yscale("log")
        note_coinciding(error_axis, coinciding(error), fontsize="small")
    else:
        _no_data(error_axis, "no nonzero relative error")
    if zero_error:
        error_axis.text(0.01, 0.01, "zero error, not shown: " + "; ".join(zero_error),
                        transform=error_axis.transAxes, fontsize="x-small", va="bottom")
    for axis in (collapse_axis, error_axis):
        axis.grid(True, alpha=0.3)
        plain_ticks(axis, integer_x=True)
    return figure


def plot_drift(variants: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write :func:`drift_figure` to ``path``."""
    import matplotlib.style

    with matplotlib.style.context("default"):
        _save(drift_figure(variants), path)
    return path


def _aggregate(runs: Sequence[Mapping[str, Any]], key: str):
    """Per step: mean, min and max over the seeds that logged a finite positive value."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        values = list(run.get(key) or [])
        steps = run.get("steps")
        if not steps or len(steps) != len(values):
            steps = list(range(len(values)))
        for step, value in zip(steps, values):
            number = as_float(value)
            if number is not None and math.isfinite(number) and number > 0:
                by_step.setdefault(int(step), []).append(number)
    ordered = sorted(by_step)
    return (ordered, [sum(by_step[s]) / len(by_step[s]) for s in ordered],
            [min(by_step[s]) for s in ordered], [max(by_step[s]) for s in ordered])


def curves_figure(variants: Sequence[Mapping[str, Any]], key: str, title: str, ylabel: str):
    """The figure of ``training.seeds[*][key]`` per variant: mean (line, markers every
    tenth of the run) and min-max band; curves drawn over each other are named in a note."""
    from pdelang.lab.validation.plots import coinciding, note_coinciding, plain_ticks

    figure, (axis,) = _new_figure(1)
    series: dict[str, tuple[list, list]] = {}
    for index, variant in enumerate(variants):
        runs = _seed_runs(variant)
        if not variant.get("compiled", True) or not runs:
            continue
        steps, mean, low, high = _aggregate(runs, key)
        if not steps:
            continue
        style = _style(index)
        label = f"{index + 1}. {_label(variant)}"
        diverged = [r.get("divergence_step") for r in runs if r.get("diverged")]
        diverged = [s for s in diverged if s is not None]
        if diverged:
            label += f" (diverged at {min(diverged)})"
        axis.plot(steps, mean, label=label, markevery=max(1, len(steps) // 10), **style)
        series[label] = (steps, mean)
        if len(runs) > 1:
            axis.fill_between(steps, low, high, color=style["color"], alpha=0.2, linewidth=0)
        if diverged:
            axis.axvline(min(diverged), color=style["color"], linestyle=":", alpha=0.8)
    axis.set(title=title, xlabel="step", ylabel=ylabel)
    if series:
        axis.set_yscale("log")
        note_coinciding(axis, coinciding(series), fontsize="small")
    else:
        _no_data(axis)
    axis.grid(True, alpha=0.3)
    plain_ticks(axis, integer_x=True)
    return figure


def plot_curves(
    variants: Sequence[Mapping[str, Any]], key: str, path: Path, title: str, ylabel: str
) -> Path:
    """Write :func:`curves_figure` to ``path``."""
    import matplotlib.style

    with matplotlib.style.context("default"):
        _save(curves_figure(variants, key, title, ylabel), path)
    return path


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


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
