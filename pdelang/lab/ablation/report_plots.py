"""The plots of an ablation report: per-layer drift, training curves (mean over seeds with
a min–max band), the information plane; each variant its own colour, line style and
marker."""

from __future__ import annotations
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from pdelang.io import save_figure
from pdelang.lab.ablation.formatting import as_float
from pdelang.lab.ablation.report_rows import seed_runs, variant_label, variant_observations
from pdelang.lab.validation.plots import (
    information_plane,
    new_figure,
    style,
    coinciding,
    note_coinciding,
    plain_ticks,
)

__all__ = ["curves_figure", "drift_figure", "plot_curves", "plot_drift", "plot_information"]


def plot_information(variants: Sequence[Mapping[str, Any]], out: Path) -> dict[str, Path]:
    """``information_plane_<k>.png`` per variant with observations: one curve per step."""
    paths = {}
    for index, variant in enumerate(variants, start=1):
        observations = [o for o in variant_observations(variant) if o.get("layers")]
        if not observations:
            continue
        series = {f"step {o['step']}": [(row["i_xt_bits"], row.get("i_ty_bits"))
                                        for row in o["layers"]] for o in observations}
        figure = information_plane(series, f"{index}. {variant_label(variant)} (seed 0)",
                                   steps={k: [] for k in series})
        name = f"information_plane_{index}.png"
        paths[name] = out / name
        _save(figure, paths[name])
    return paths


def _new_figure(columns: int = 1):
    return new_figure(1, columns)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    save_figure(figure, path, format="png", dpi=100, metadata={"Software": None})


def _style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of variant ``index`` (distinct for every variant, later
    ones smaller: coinciding curves stay visible)."""
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
    figure, (collapse_axis, error_axis) = _new_figure(2)
    zero_error: list[str] = []  # e.g. the reference itself: nothing to draw on log y
    collapse: dict[str, tuple[list, list]] = {}
    error: dict[str, tuple[list, list]] = {}
    for index, variant in enumerate(variants):
        drift = variant.get("drift")
        if not variant.get("compiled", True) or not drift:
            continue
        layers = [int(row.get("layer", i)) for i, row in enumerate(drift)]
        label = f"{index + 1}. {variant_label(variant)}"
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
    import matplotlib.style  # lazy: matplotlib

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
    figure, (axis,) = _new_figure(1)
    series: dict[str, tuple[list, list]] = {}
    for index, variant in enumerate(variants):
        runs = seed_runs(variant)
        if not variant.get("compiled", True) or not runs:
            continue
        steps, mean, low, high = _aggregate(runs, key)
        if not steps:
            continue
        style = _style(index)
        label = f"{index + 1}. {variant_label(variant)}"
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
    import matplotlib.style  # lazy: matplotlib

    with matplotlib.style.context("default"):
        _save(curves_figure(variants, key, title, ylabel), path)
    return path
