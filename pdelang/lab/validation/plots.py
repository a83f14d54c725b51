"""Plots a reader can use: the figures of ``pdelang validate`` and the helpers the ablation
report's figures share.

* No offset notation: a cosine of 0.99999994 is labelled as such, never as "+1 −6e-8";
  bounded metrics whose values differ only by rounding noise are drawn on a y-range of at
  least :data:`MIN_SPAN`, so the noise looks flat, as it is.
* Curves that coincide stay visible: every series has its own colour, line style and
  marker, later ones drawn smaller, and a note names the series drawn over each other.
* Attention maps: reference, PDE and their difference per layer, each row with a colorbar
  (the maps share one scale; the difference a symmetric, diverging one).

Figures are built with the object API (no pyplot state) and returned, so tests can inspect
them; :func:`write_plots` saves them atomically (:mod:`pdelang.io`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pdelang.io import save_figure

MIN_SPAN = 1e-3  # smallest y-range of a bounded metric (cosine, CKA, ratio)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def new_figure(rows: int = 1, columns: int = 1, size: tuple[float, float] = (6.4, 4.4),
               dpi: int = 100):
    """A Figure on an Agg canvas and its axes (rows × columns, a flat list)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib
    from matplotlib.figure import Figure  # lazy: matplotlib

    figure = Figure(figsize=(size[0] * columns, size[1] * rows), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]
    return figure, axes


def plain_ticks(axis, integer_x: bool = False) -> None:
    """No offset ("+9.99e-1") on the linear axes of ``axis``; plain numbers ("2.3", not
    "2.3 × 10⁰") on its log axes; integer ticks on x with ``integer_x`` (layers, steps)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter  # lazy: matplotlib

    def plain(value, _position=None):
        return f"{value:.3g}"

    for which, scale in ((axis.xaxis, axis.get_xscale()), (axis.yaxis, axis.get_yscale())):
        formatter = which.get_major_formatter()
        if isinstance(formatter, ScalarFormatter):
            formatter.set_useOffset(False)
        elif scale == "log":
            which.set_major_formatter(FuncFormatter(plain))
            which.set_minor_formatter(FuncFormatter(
                lambda v, p, which=which: plain(v) if _few_decades(which) else ""))
    if integer_x:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _few_decades(which) -> bool:
    """Whether a log axis spans under one decade (then minor ticks carry the labels)."""
    low, high = sorted(which.get_view_interval())
    return low > 0 and high / low < 10


def min_span(axis, values: Sequence[float], span: float = MIN_SPAN,
             top: float | None = None) -> None:
    """Widen the y-range to at least ``span`` around finite ``values`` (not above ``top``)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return
    low, high = min(finite), max(finite)
    if high - low >= span:
        return
    middle = (low + high) / 2
    upper = middle + span / 2
    if top is not None and upper > top:
        upper = max(top, high) + 0.05 * span
    axis.set_ylim(upper - span, upper)


def style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of series ``index``: no two of the first 40 alike, and
    later series drawn smaller so that coinciding ones stay visible beneath."""
    return {"color": COLORS[index % len(COLORS)],
            "linestyle": LINESTYLES[index % len(LINESTYLES)],
            "marker": MARKERS[index % len(MARKERS)],
            "markersize": max(3.0, 8.0 - 1.0 * index),
            "linewidth": max(1.0, 2.6 - 0.4 * index)}


def coinciding(series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
               rtol: float = 1e-9) -> list[list[str]]:
    """Groups (≥ 2) of series whose points are equal to ``rtol``: drawn over each other."""
    groups: list[list[str]] = []
    for label, (xs, ys) in series.items():
        for group in groups:
            other_xs, other_ys = series[group[0]]
            if list(xs) == list(other_xs) and all(
                    math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)
                    for a, b in zip(ys, other_ys, strict=True)):
                group.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


def note_coinciding(axis, groups: list[list[str]], **legend) -> None:
    """The legend, titled with the series drawn over each other (by their number when the
    labels are numbered "N. …"), so the note never covers a curve."""
    def short(label: str) -> str:
        number = label.split(".", 1)[0]
        return number if number.isdigit() else label

    title = None
    if groups:
        title = "drawn over each other (equal values): " + "; ".join(
            " = ".join(short(label) for label in group) for group in groups)
    axis.legend(title=title, title_fontsize="x-small", **legend)


# ----------------------------------------------------------------------------- validate
PANELS = (("attention_cosine", "attention cosine", True), ("hidden_cosine", "hidden cosine", True),
          ("relative_error", "relative error", False), ("cka", "linear CKA", True))


def metrics_figure(result):
    """Per-layer metrics of a validation: attention cosine, hidden cosine, relative error
    (log y; zeros noted, not drawn) and CKA."""
    figure, axes = new_figure(1, len(PANELS), size=(4.0, 3.6), dpi=110)
    layers = [r["layer"] for r in result.layers]
    for axis, (key, title, bounded) in zip(axes, PANELS):
        values = [r.get(key) for r in result.layers]
        values = [math.nan if v is None else float(v) for v in values]
        axis.set_title(title)
        axis.set_xlabel("layer")
        axis.grid(alpha=0.3)
        if bounded:
            axis.plot(layers, values, **style(0))
            min_span(axis, values, top=1.0)
        else:
            shown = [(x, v) for x, v in zip(layers, values) if math.isfinite(v) and v > 0]
            if shown:
                axis.plot(*zip(*shown), **style(0))
                axis.set_yscale("log")
            zeros = [x for x, v in zip(layers, values) if v == 0]
            if zeros:
                where = "every layer" if len(zeros) == len(layers) else \
                    f"layer{'s' if len(zeros) > 1 else ''} " + ", ".join(map(str, zeros))
                axis.text(0.5 if not shown else 0.02, 0.5 if not shown else 0.02,
                          f"0 (exact) in {where}" + (": not on a log axis" if shown else ""),
                          transform=axis.transAxes, fontsize="x-small" if shown else "medium",
                          ha="center" if not shown else "left",
                          va="center" if not shown else "bottom")
            if not shown:
                axis.set_yticks([])
        axis.set_xticks(layers)
        plain_ticks(axis)
    figure.suptitle(f"{Path(result.spec).name} vs {result.reference} ({result.mode})")
    figure.tight_layout()
    return figure


def attention_figure(result):
    """Attention maps of sample 0 (mean over heads) per layer: the reference's, the PDE's
    (one shared colour scale and colorbar) and PDE − reference (a symmetric diverging scale
    and its own colorbar); None without maps."""
    import numpy as np  # lazy: numpy

    if result.maps is None:
        return None
    reference, model = result.maps
    n = len(reference)
    figure, axes = new_figure(3, n, size=(2.6, 2.5), dpi=110)
    grid = [axes[row * n:(row + 1) * n] for row in range(3)]

    def array(m):
        return None if m is None else np.asarray(m.numpy() if hasattr(m, "numpy") else m,
                                                 dtype=float)

    reference = [array(m) for m in reference]
    model = [array(m) for m in model]
    largest = max([float(np.max(m)) for m in reference + model if m is not None] or [1.0])
    differences = [None if a is None or b is None else b - a for a, b in zip(reference, model)]
    spread = max([float(np.max(np.abs(d))) for d in differences if d is not None] or [0.0])
    spread = spread or 1e-12  # an exact match: a scale that shows zeros as zeros
    images = {0: None, 1: None, 2: None}
    for i in range(n):
        for row, (maps, label) in enumerate(((reference, "reference"), (model, "PDE"),
                                             (differences, "PDE − reference"))):
            axis = grid[row][i]
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"{label}, layer {i + 1}", fontsize=8)
            if maps[i] is None:
                axis.text(0.5, 0.5, "no map", ha="center", va="center",
                          transform=axis.transAxes, fontsize=8)
                continue
            if row < 2:
                image = axis.imshow(maps[i], cmap="viridis", vmin=0, vmax=largest)
            else:
                image = axis.imshow(maps[i], cmap="RdBu_r", vmin=-spread, vmax=spread)
            images[row] = image
    for row, label in ((0, "attention weight"), (1, "attention weight"),
                       (2, "difference")):
        if images[row] is not None:
            colorbar = figure.colorbar(images[row], ax=grid[row], fraction=0.025, pad=0.02)
            colorbar.set_label(label, fontsize=8)
            if row == 2:  # tiny differences: each label says its own power of ten
                from matplotlib.ticker import FormatStrFormatter  # lazy: matplotlib
                colorbar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
            plain_ticks(colorbar.ax)
    figure.suptitle(f"attention maps of sample 0 (mean over heads); largest |PDE − reference| "
                    f"= {spread if spread > 1e-12 else 0:.3g}")
    return figure


def information_plane(series: Mapping[str, Sequence[tuple[float, float]]], title: str,
                      max_bits: float | None = None, steps: Mapping[str, Sequence] | None = None):
    """The information plane: I(X;T) (x) against I(T;Y) (y), one point per layer, joined
    in layer order and numbered (0 = u(0)); one series per model.  ``steps``: series are
    training steps of one model — drawn as separate curves, lighter for earlier steps."""
    figure, (axis,) = new_figure(size=(6.4, 4.8), dpi=110)
    names = list(series)
    for index, name in enumerate(names):
        points = [(x, y) for x, y in series[name]
                  if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
        if not points:
            continue
        look = style(index)
        if steps is not None:  # one model along training: a sequential colour per step
            import matplotlib  # lazy: matplotlib

            colour = matplotlib.colormaps["viridis"](index / max(1, len(names) - 1))
            look = {**look, "color": colour, "linestyle": "-"}
        xs, ys = zip(*points)
        axis.plot(xs, ys, label=name, **look)
        for layer, (x, y) in enumerate(points):
            axis.annotate(str(layer), (x, y), textcoords="offset points", xytext=(4, 3),
                          fontsize=7, color=look["color"])
    if max_bits is not None:
        axis.axvline(max_bits, color="0.6", linestyle=":", linewidth=1)
        axis.text(max_bits, axis.get_ylim()[0], " log2 n", color="0.4", fontsize=7,
                  rotation=90, va="bottom")
    axis.set_xlabel("I(X; T + Z) [bits]  (sample propagation)")
    axis.set_ylabel("I(T; Y) [bits]  (usable information, logistic probe)")
    axis.set_title(title, fontsize=10)
    plain_ticks(axis)
    axis.legend(fontsize="small")
    return figure


def flow_figure(reference, model, cosine: float | None):
    """Token information flow ‖∂u_L(x)/∂u_0(y)‖ of sample 0: reference and PDE side by
    side, one shared colour scale."""
    import numpy as np  # lazy: numpy

    figure, axes = new_figure(1, 2, size=(3.6, 3.4), dpi=110)
    reference, model = np.asarray(reference, dtype=float), np.asarray(model, dtype=float)
    largest = max(float(reference.max()), float(model.max()), 1e-300)
    image = None
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib

    for axis, values, label in ((axes[0], reference, "reference"), (axes[1], model, "PDE")):
        image = axis.imshow(values, cmap="magma", vmin=0, vmax=largest)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("input token y", fontsize=8)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("output token x", fontsize=8)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.03)
    colorbar.set_label("‖∂u_L(x)/∂u_0(y)‖_F", fontsize=8)
    plain_ticks(colorbar.ax)
    figure.suptitle("token information flow, sample 0"
                    + ("" if cosine is None else f" (cosine over the samples {cosine:.4f})"),
                    fontsize=10)
    return figure


def write_plots(result, out_dir: Path) -> list[Path]:
    """``metrics.png``, (with maps) ``attention_maps.png`` and (``--metrics info``)
    ``information_plane.png`` and ``token_flow.png`` in ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [save_figure(metrics_figure(result), out_dir / "metrics.png", dpi=110)]
    maps = attention_figure(result)
    if maps is not None:
        paths.append(save_figure(maps, out_dir / "attention_maps.png", dpi=110))
    info = getattr(result, "information", None)
    if info is not None:
        if info.labels is not None:
            series = {side: [(row[key]["i_xt_bits"], row[key]["i_ty_bits"])
                             for row in info.layers]
                      for side, key in (("reference", "reference"), ("PDE", "model"))}
            plane = information_plane(
                series, f"information plane: {result.reference} vs {Path(result.spec).name} "
                        f"(σ = {info.sigma:g})",
                max_bits=info.layers[0]["reference"]["i_xt_max_bits"])
            paths.append(save_figure(plane, out_dir / "information_plane.png", dpi=110))
        if info.flow_maps is not None:
            figure = flow_figure(*info.flow_maps, info.flow["cosine"])
            paths.append(save_figure(figure, out_dir / "token_flow.png", dpi=110))
    return paths
