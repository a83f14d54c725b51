"""Figures of ``pdelang study paper1``, drawn from ``summary.json``
(:func:`pdelang.lab.studies.summary.summarize`).

* ``attention_cosine.png`` — claim A: per layer, each model's attention cosine (mean over
  seeds or subsets; error bars the seeds' 95 % interval where there is one, else the SD)
  against the attention floors (every floor a faint marker, the strongest a dashed line)
  and the 0.98 threshold; layers exact by construction ringed.  One panel for the images,
  one for text when the summary has a ``text`` section.
* ``state_error.png`` — claim C: per layer, each reduced model's held-out relative state
  error against the previous-state floor ("nothing happens in this layer"); on a twin axis
  of the image panel, the reference's update sizes ‖A‖/‖u‖ (attention) and ‖R‖/‖u‖ (MLP),
  mean over seeds.  Fit mode is left out (it keeps every Transformer weight).
* ``information_plane.png`` — claim B: ΔI(X;T) per σ for the relative and absolute scales
  and the whitened-PCA control, one marker per seed with its 95 % CI (hollow where the
  estimate saturated), a zero line; and I(X;T_ℓ) over layers per σ (relative scale).

Missing sections are skipped: no ``text`` gives one-panel figures, no images no image
figures.  Figures use the object API (no pyplot state) and are written atomically with no
``Software`` entry in the PNG metadata, so the same summary gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pdelang.io import save_figure
from pdelang.lab.validation.plots import COLORS, MARKERS, new_figure, plain_ticks

__all__ = ["attention_figure", "information_plane_figure", "state_error_figure",
           "write_figures"]

# claim A's raw threshold
from pdelang.lab.studies.rules import RAW_THRESHOLD as ATTENTION_THRESHOLD
ATTENTION_FLOORS = (("attention_uniform", "uniform"),
                    ("attention_dataset_mean", "dataset-mean map"),
                    ("attention_head_mean", "head-mean"),
                    ("attention_previous_layer", "previous layer's map"))
FLOOR_MARKERS = ("_", "x", "+", "1")
DPI = 100
SAVE_OPTIONS = {"format": "png", "dpi": DPI, "metadata": {"Software": None}}


# ----------------------------------------------------------------------------- helpers
def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _stat(stat: Mapping | None) -> tuple[float, float, float] | None:
    """(mean, error below, error above) of an ``across_seeds`` dict: the interval's
    [low, high] where present, else ± SD (0 for one seed); None without a mean."""
    if not stat or not _finite(stat.get("mean")):
        return None
    mean = float(stat["mean"])
    low, high = stat.get("low"), stat.get("high")
    if _finite(low) and _finite(high):
        return mean, max(mean - low, 0.0), max(high - mean, 0.0)
    sd = stat.get("sd")
    sd = float(sd) if _finite(sd) else 0.0
    return mean, sd, sd


def _errorbar(axis, xs: Sequence[float], stats: Sequence[Mapping | None], **style):
    """Draw the points of ``stats`` that have a mean; returns the container or None."""
    points = [(x, s) for x, s in zip(xs, (_stat(s) for s in stats)) if s is not None]
    if not points:
        return None
    x = [p[0] for p in points]
    y = [p[1][0] for p in points]
    err = [[p[1][1] for p in points], [p[1][2] for p in points]]
    style.setdefault("capsize", 3)
    style.setdefault("markersize", 5)
    return axis.errorbar(x, y, yerr=err, **style)


def _offsets(count: int, width: float = 0.3) -> list[float]:
    """x offsets that spread ``count`` series over ``width`` around a tick."""
    if count <= 1:
        return [0.0] * count
    return [-width / 2 + width * i / (count - 1) for i in range(count)]


def _sections(summary: Mapping) -> list[tuple[str, Mapping, list]]:
    """(title, models, floors) of the images and the text sections present."""
    out = []
    if summary.get("models"):
        out.append(("images", summary["models"], summary.get("floors") or []))
    text = summary.get("text")
    if text and text.get("models"):
        out.append(("text", text["models"], text.get("floors") or []))
    return out


def _axes(panels: int, size=(6.4, 5.4)):
    figure, axes = new_figure(1, panels, size=size, dpi=DPI)
    figure.set_layout_engine("constrained")
    return figure, axes


def _legend(axis, handles=None, labels=None, columns: int = 2) -> None:
    """The panel's legend below it (clear of the data); constrained layout makes room."""
    if handles is None:
        handles, labels = axis.get_legend_handles_labels()
    if handles:
        axis.legend(handles, labels, fontsize="x-small", loc="upper center",
                    bbox_to_anchor=(0.5, -0.13), ncol=columns, frameon=False)


# ----------------------------------------------------------------------------- claim A
def _attention_panel(axis, title: str, models: Mapping, floors: Sequence[Mapping]) -> None:
    keys = [k for k, m in models.items()
            if any(r.get("attention_cosine") for r in m.get("layers", []))]
    layers = sorted({r["layer"] for k in keys for r in models[k]["layers"]}
                    | {f["layer"] for f in floors})
    values: list[float] = [ATTENTION_THRESHOLD]
    # every floor, faint
    strongest: dict[int, float] = {}
    for (name, label), marker in zip(ATTENTION_FLOORS, FLOOR_MARKERS):
        xs, ys = [], []
        for row in floors:
            s = _stat(row.get(name))
            if s is None:
                continue
            xs.append(row["layer"])
            ys.append(s[0])
            strongest[row["layer"]] = max(strongest.get(row["layer"], -math.inf), s[0])
        if xs:
            axis.plot(xs, ys, linestyle="none", marker=marker, color="0.55", alpha=0.6,
                      markersize=8, label=f"floor: {label}")
            values += ys
    if strongest:
        xs = sorted(strongest)
        axis.plot(xs, [strongest[x] for x in xs], linestyle="--", color="0.3",
                  linewidth=1.2, label="strongest floor")
    axis.axhline(ATTENTION_THRESHOLD, color="#d62728", linestyle=":", linewidth=1.2,
                 label=f"threshold {ATTENTION_THRESHOLD:g}")
    exact_x, exact_y = [], []
    for index, (key, offset) in enumerate(zip(keys, _offsets(len(keys)))):
        rows = models[key]["layers"]
        xs = [r["layer"] + offset for r in rows]
        stats = [r.get("attention_cosine") for r in rows]
        _errorbar(axis, xs, stats, color=COLORS[index % len(COLORS)],
                  marker=MARKERS[index % len(MARKERS)], linewidth=1.3, label=key)
        for x, r, s in zip(xs, rows, stats):
            point = _stat(s)
            if point is not None:
                values.append(point[0])
                if r.get("exact_by_construction"):
                    exact_x.append(x)
                    exact_y.append(point[0])
    if exact_x:
        axis.plot(exact_x, exact_y, linestyle="none", marker="o", markersize=13,
                  markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.0,
                  label="exact by construction")
    finite = [v for v in values if math.isfinite(v)]
    axis.set_ylim(min(0.0, min(finite) - 0.05), 1.03)
    if layers:
        axis.set_xticks(layers)
    axis.set_xlabel("layer")
    axis.set_ylabel("attention cosine to the Transformer")
    axis.set_title(f"{title}: attention cosine per layer")
    axis.grid(alpha=0.25)
    _legend(axis, columns=3)
    plain_ticks(axis)


def attention_figure(summary: Mapping):
    """Claim A's figure (one panel per section present), or None without any section."""
    sections = _sections(summary)
    if not sections:
        return None
    figure, axes = _axes(len(sections))
    for axis, (title, models, floors) in zip(axes, sections):
        _attention_panel(axis, title, models, floors)
    return figure


# ----------------------------------------------------------------------------- claim C
def _contributions(references: Sequence[Mapping]) -> list[tuple[int, float, float]]:
    """Per layer (layer, mean ‖A‖/‖u‖, mean ‖R‖/‖u‖) over the seeds."""
    if not references or not references[0].get("contributions"):
        return []
    out = []
    for index, first in enumerate(references[0]["contributions"]):
        rows = [r["contributions"][index] for r in references
                if len(r.get("contributions", [])) > index]
        attention = [r["attention"] for r in rows if _finite(r.get("attention"))]
        mlp = [r["mlp"] for r in rows if _finite(r.get("mlp"))]
        out.append((first["layer"], sum(attention) / len(attention) if attention else math.nan,
                    sum(mlp) / len(mlp) if mlp else math.nan))
    return out


def _state_panel(axis, title: str, models: Mapping, floors: Sequence[Mapping],
                 references: Sequence[Mapping] | None) -> None:
    keys = [k for k in models if k != "fit"]
    layers = sorted({r["layer"] for k in keys for r in models[k]["layers"]})
    # the previous-state floor: one dashed line when the models share it (they should:
    # it is the reference's own), else one per model
    floor_series = {}
    for key in keys:
        floor_series[key] = [_stat(r.get("previous_state_error")) for r in models[key]["layers"]]
    means = [tuple(None if s is None else round(s[0], 12) for s in v)
             for v in floor_series.values()]
    shared = len(set(means)) <= 1
    if not any(s for v in floor_series.values() for s in v):  # fall back on the floor table
        shared = True
        keys_floor = [(f["layer"], f.get("relative_error_previous_state")) for f in floors]
        if keys_floor:
            _errorbar(axis, [x for x, _ in keys_floor], [s for _, s in keys_floor],
                      color="black", linestyle="--", marker="_", markersize=10,
                      label="previous-state floor")
    elif shared and keys:
        rows = models[keys[0]]["layers"]
        _errorbar(axis, [r["layer"] for r in rows],
                  [r.get("previous_state_error") for r in rows], color="black",
                  linestyle="--", marker="_", markersize=10, label="previous-state floor")
    offsets = _offsets(len(keys), 0.2)
    for index, (key, offset) in enumerate(zip(keys, offsets)):
        rows = models[key]["layers"]
        color = COLORS[index % len(COLORS)]
        _errorbar(axis, [r["layer"] + offset for r in rows],
                  [r.get("relative_error") for r in rows], color=color,
                  marker=MARKERS[index % len(MARKERS)], linewidth=1.3,
                  label=f"{key}: relative error")
        if not shared:
            _errorbar(axis, [r["layer"] + offset for r in rows],
                      [r.get("previous_state_error") for r in rows], color=color,
                      linestyle="--", marker="_", markersize=10,
                      label=f"{key}: previous-state floor")
    handles, labels = axis.get_legend_handles_labels()
    twin = None
    if references:
        contributions = _contributions(references)
        if contributions:
            twin = axis.twinx()
            xs = [c[0] for c in contributions]
            bar_handles = [
                twin.bar([x - 0.17 for x in xs], [c[1] for c in contributions], width=0.3,
                         color="#9ecae1", alpha=0.55, label="reference ‖A‖/‖u‖ (attention)"),
                twin.bar([x + 0.17 for x in xs], [c[2] for c in contributions], width=0.3,
                         color="#fdae6b", alpha=0.55, label="reference ‖R‖/‖u‖ (MLP)")]
            twin.set_ylabel("reference update size ‖·‖/‖u‖ (bars)")
            plain_ticks(twin)
            axis.set_zorder(twin.get_zorder() + 1)  # lines over the bars
            axis.patch.set_visible(False)
            handles += bar_handles
            labels += [h.get_label() for h in bar_handles]
            layers = sorted(set(layers) | set(xs))
    # both axes are relative norms ‖·‖/‖u‖: one scale, so bars and lines compare
    top = max(axis.get_ylim()[1], twin.get_ylim()[1] if twin is not None else 0.0)
    axis.set_ylim(0, top)
    if twin is not None:
        twin.set_ylim(0, top)
    if layers:
        axis.set_xticks(layers)
    axis.set_xlabel("layer")
    axis.set_ylabel("held-out relative state error")
    axis.set_title(f"{title}: state error vs the previous-state floor")
    axis.grid(alpha=0.25)
    _legend(axis, handles, labels)
    plain_ticks(axis)


def state_error_figure(summary: Mapping):
    """Claim C's figure (a panel per section with reduced models), or None."""
    sections = [(t, m, f) for t, m, f in _sections(summary) if any(k != "fit" for k in m)]
    if not sections:
        return None
    figure, axes = _axes(len(sections))
    for axis, (title, models, floors) in zip(axes, sections):
        references = summary.get("references") if title == "images" else None
        _state_panel(axis, title, models, floors, references)
    return figure


# ----------------------------------------------------------------------------- claim B
def _scale_label(scale: str) -> str:
    return scale if len(scale) < 40 else scale[:37] + "…"


def _delta_panel(axis, plane: Mapping, seeds: Sequence) -> None:
    rows = plane.get("per_sigma") or []
    scales = list(dict.fromkeys(r["scale"] for r in rows))
    sigmas = sorted({r["sigma"] for r in rows})
    position = {s: i for i, s in enumerate(sigmas)}
    seed_count = max((len(r["delta_bits"]) for r in rows), default=0)
    slots = len(scales) * max(seed_count, 1)
    offsets = _offsets(slots, 0.7)
    for si, scale in enumerate(scales):
        color = COLORS[si % len(COLORS)]
        for k in range(seed_count):
            xs, ys, lo, hi, hollow = [], [], [], [], []
            for row in rows:
                if row["scale"] != scale or len(row["delta_bits"]) <= k:
                    continue
                d = row["delta_bits"][k]
                if not _finite(d):
                    continue
                x = position[row["sigma"]] + offsets[si * max(seed_count, 1) + k]
                low = row["low"][k] if len(row["low"]) > k else None
                high = row["high"][k] if len(row["high"]) > k else None
                xs.append(x)
                ys.append(d)
                lo.append(d - low if _finite(low) else 0.0)
                hi.append(high - d if _finite(high) else 0.0)
                saturated = row.get("saturated") or []
                hollow.append(bool(saturated[k]) if len(saturated) > k else False)
            if not xs:
                continue
            marker = MARKERS[k % len(MARKERS)]
            label = _scale_label(scale) if k == 0 else None
            axis.errorbar(xs, ys, yerr=[lo, hi], linestyle="none", color=color,
                          capsize=2.5)
            solid = [(x, y) for x, y, h in zip(xs, ys, hollow) if not h]
            empty = [(x, y) for x, y, h in zip(xs, ys, hollow) if h]
            if solid:
                axis.plot(*zip(*solid), linestyle="none", marker=marker, color=color,
                          markersize=6, label=label)
                label = None
            if empty:
                axis.plot(*zip(*empty), linestyle="none", marker=marker, color=color,
                          markerfacecolor="white", markersize=6, label=label)
    if seed_count > 1:  # a key to the seeds' markers
        for k in range(seed_count):
            seed = seeds[k] if k < len(seeds) else k
            axis.plot([], [], linestyle="none", marker=MARKERS[k % len(MARKERS)], color="0.4",
                      label=f"seed {seed}")
    axis.plot([], [], linestyle="none", marker="o", color="0.4", markerfacecolor="white",
              label="saturated estimate")
    axis.axhline(0.0, color="black", linewidth=0.9)
    axis.set_xticks(range(len(sigmas)))
    axis.set_xticklabels([f"σ = {s:g}" for s in sigmas])
    axis.set_ylabel("ΔI(X;T) (bits, 95 % CI per seed)")
    axis.set_title(f"ΔI(X;T), layer {plane.get('from_layer', '?')} → "
                   f"{plane.get('to_layer', '?')}")
    axis.grid(alpha=0.25, axis="y")
    _legend(axis, columns=3)
    plain_ticks(axis)


def _sweep_panel(axis, plane: Mapping, scale: str = "relative") -> None:
    rows = [r for r in plane.get("sweep") or [] if r.get("scale") == scale]
    sigmas = sorted({r["sigma"] for r in rows})
    for index, sigma in enumerate(sigmas):
        series = sorted((r for r in rows if r["sigma"] == sigma), key=lambda r: r["layer"])
        color = COLORS[index % len(COLORS)]
        container = _errorbar(axis, [r["layer"] for r in series],
                              [r.get("bits") for r in series], color=color,
                              marker=MARKERS[index % len(MARKERS)], linewidth=1.2,
                              label=f"σ = {sigma:g}")
        if container is None:
            continue
        empty = [(r["layer"], r["bits"]["mean"]) for r in series
                 if r.get("saturated") and _stat(r.get("bits"))]
        if empty:
            axis.plot(*zip(*empty), linestyle="none", marker="o", markersize=9,
                      markerfacecolor="none", markeredgecolor=color, markeredgewidth=0.8)
    low, high = plane.get("from_layer"), plane.get("to_layer")
    if _finite(low) and _finite(high):
        axis.axvspan(low, high, color="0.9", zorder=0,
                     label=f"ΔI window {low} → {high}")
    axis.plot([], [], linestyle="none", marker="o", markersize=9, markerfacecolor="none",
              markeredgecolor="0.4", label="saturated")
    layers = sorted({r["layer"] for r in rows})
    if layers:
        axis.set_xticks(layers)
    axis.set_xlabel("layer ℓ (0 = embedding)")
    axis.set_ylabel("I(X;T_ℓ) (bits, mean over seeds)")
    axis.set_title(f"I(X;T_ℓ) per σ ({scale} scale)")
    axis.grid(alpha=0.25)
    _legend(axis, columns=4)
    plain_ticks(axis)


def information_plane_figure(summary: Mapping):
    """Claim B's figure (ΔI per σ; the layer sweep when there is one), or None."""
    plane = summary.get("information_plane")
    if not plane or not plane.get("per_sigma"):
        return None
    has_sweep = any(r.get("scale") == "relative" for r in plane.get("sweep") or [])
    figure, axes = _axes(2 if has_sweep else 1)
    _delta_panel(axes[0], plane, summary.get("seeds") or [])
    if has_sweep:
        _sweep_panel(axes[1], plane)
    return figure


# ----------------------------------------------------------------------------- writing
def write_figures(summary: dict, out: Path) -> list[Path]:
    """Write the study's figures that ``summary`` has data for into ``out``; returns
    their paths (``attention_cosine.png``, ``state_error.png``, ``information_plane.png``
    in that order, those without data left out)."""
    out = Path(out)
    paths = []
    for name, build in (("attention_cosine.png", attention_figure),
                        ("state_error.png", state_error_figure),
                        ("information_plane.png", information_plane_figure)):
        figure = build(summary)
        if figure is None:
            continue
        paths.append(save_figure(figure, out / name, **SAVE_OPTIONS))
    return paths
