"""The legacy phase diagram's heatmaps (divergence, final loss, gradient growth)."""

from __future__ import annotations
import math
from pathlib import Path
from typing import Any
from pdelang.lab.ablation.phase_cells import format_growth, lr_text
from pdelang.lab.validation.plots import new_figure
from pdelang.io import save_figure

__all__ = ["plot_phase"]


def _heatmaps(cells, grid, title: str, value, text, colour: dict[str, Any]):
    """A figure of (residual rows) × (norm columns) heatmaps, depth (y) × lr (x)."""
    import numpy as np  # lazy: numpy

    residuals, norms = list(grid["residuals"]), list(grid["norms"])
    lrs, depths = sorted(grid["lrs"]), sorted(grid["depths"])
    figure, axes = new_figure(len(residuals), len(norms),
                              size=(1.1 * len(lrs) + 1.6, 0.55 * len(depths) + 1.6))
    by_key = {(c["residual"], c["norm"], c["depth"], c["lr"]): c for c in cells}
    numbers = [v for c in cells if c["summary"] and (v := value(c)) is not None
               and math.isfinite(v)]
    if numbers:  # one colour scale for every panel (the colour bar's)
        colour = {"vmin": min(numbers), "vmax": max(numbers), **colour}
    image = None
    for row, residual in enumerate(residuals):
        for column, norm in enumerate(norms):
            axis = axes[row * len(norms) + column]
            grid_values = np.full((len(depths), len(lrs)), np.nan)
            labels = {}
            for i, depth in enumerate(depths):
                for j, lr in enumerate(lrs):
                    cell = by_key.get((residual, norm, depth, lr))
                    number = value(cell) if cell and cell["summary"] else None
                    if number is not None:
                        grid_values[i, j] = number
                    labels[i, j] = text(cell) if cell and cell["summary"] else (
                        "error" if cell and cell["error"] else "")
            image = axis.imshow(np.ma.masked_invalid(grid_values), origin="lower",
                                aspect="auto", **colour)
            for (i, j), label in labels.items():
                axis.text(j, i, label, ha="center", va="center", fontsize=7,
                          color=_ink(image, grid_values[i, j]))
            axis.set_xticks(range(len(lrs)), [lr_text(v) for v in lrs], fontsize=8)
            axis.set_yticks(range(len(depths)), [str(d) for d in depths], fontsize=8)
            axis.set_xlabel("learning rate")
            axis.set_ylabel("depth (layers)")
            axis.set_title(f"residual {'on' if residual else 'off'}, norm {norm}", fontsize=9)
    figure.set_layout_engine("constrained")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8)
    figure.suptitle(title)
    return figure


def _ink(image, number: float) -> str:
    """White on a dark cell, black on a light one (or an empty one)."""
    if not math.isfinite(number):
        return "black"
    red, green, blue, _ = image.cmap(image.norm(number))
    return "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"


def plot_phase(cells, grid, out: Path) -> dict[str, Path]:
    """``phase_divergence.png``, ``phase_final_loss.png``, ``phase_grad_growth.png``."""
    def divergence(cell):
        summary = cell["summary"]
        return summary["diverged"] / summary["seeds"]

    def divergence_text(cell):
        summary = cell["summary"]
        if not summary["diverged"]:
            regime = {"stalled": " stalled", "loss rose": " loss rose"}.get(summary["regime"], "")
            return f"0/{summary['seeds']}{regime}"
        return f"{summary['diverged']}/{summary['seeds']}@{summary['divergence_step_median']:g}"

    def final_loss(cell):
        return cell["summary"]["final_loss_mean"]

    def final_loss_text(cell):
        loss = cell["summary"]["final_loss_mean"]
        return "✗" if loss is None else f"{loss:.3g}"

    def growth(cell):
        value = cell["summary"]["grad_growth_median"]
        return math.log10(value) if value else None

    def growth_text(cell):
        return format_growth(cell["summary"]["grad_growth_median"])

    figures = {
        "phase_divergence.png": ("fraction of seeds diverged (label: k/n @ median divergence "
                                 "step; regime of cells that did not diverge)",
                                 divergence, divergence_text,
                                 {"cmap": "Reds", "vmin": 0.0, "vmax": 1.0}),
        "phase_final_loss.png": ("final training loss (mean over seeds that did not "
                                 "diverge; ✗: all diverged)", final_loss, final_loss_text,
                                 {"cmap": "viridis"}),
        "phase_grad_growth.png": ("log10 gradient-norm growth max‖g_k‖/‖g_0‖ (median over "
                                  "seeds)", growth, growth_text, {"cmap": "magma"}),
    }
    paths = {}
    for name, (title, value, text, colour) in figures.items():
        figure = _heatmaps(cells, grid, title, value, text, colour)
        save_figure(figure, out / name, format="png", dpi=100, metadata={"Software": None})
        paths[name] = out / name
    return paths
