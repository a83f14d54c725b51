"""``pdelang phase``: where training explodes — a phase diagram of training stability over
depth × learning rate × normalization × residual, several seeds each.

The grid is an ablation sweep (:func:`pdelang.lab.ablation.ablate.run_sweep`): every cell
(depth L, learning rate η, norm kind, residual on/off) is a variant of the spec, trained
from the same initialization and data for every seed, with no drift measurement.  It runs
on either executor (``local`` or ``ray``), writes a file per variant as it finishes and
resumes like ``pdelang ablate``.

**Depth.**  ``depth_scaling="step"`` (default) adds layers of the spec's own step
Δt = (t₁ − t₀)/layers: ``time.layers = L`` and ``time.span = [t₀, t₀ + L·Δt]`` — for the
master spec (Δt = 1) a standard Transformer L layers deep.  ``"time"`` keeps the span and
takes L smaller steps, Δt = (t₁ − t₀)/L: the same ODE resolved more finely (the depth limit
of the residual network).

**Per run** (one seed of one cell; :func:`run_metrics`), from the per-step record of
:func:`pdelang.lab.ablation.train.train`:

* divergence step k*: the first step whose loss or gradient norm is NaN/Inf or whose loss
  exceeds 10 × the first step's (training stops there);
* final loss: the mean training loss over the last tenth of the steps of a run that did not
  diverge (one batch's loss is noisy), and the held-out loss and accuracy after training;
* gradient-norm growth: G = max_k ‖g_k‖₂ / ‖g_0‖₂ over the steps run (the diverging step
  included when its norm is finite), and G_end = median(‖g_k‖₂ over the last tenth of the
  steps) / ‖g_0‖₂;
* progress: 1 − final loss / first loss.

**Per cell** (:func:`cell_summary`): the seeds that diverged and their steps (median), the
mean ± std final loss of the seeds that did not, the median G over seeds, and a regime:
``diverged`` (every seed), ``partly diverged`` (some), ``stalled`` (none diverged and the
median progress is within ±5 %: the network does not learn, e.g. a residual-free stack
whose state collapsed), ``loss rose`` (none diverged, but the loss ended more than 5 % above
where it started: unstable below the divergence threshold), ``trains`` otherwise.

**The claim** "without normalization training explodes" holds in a (residual, depth, η)
cell when most seeds of the norm-free variant diverge and no normalized variant's seeds
mostly do (:func:`claim_table`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdelang.lab.ablation.options import option_items
from pdelang.errors import OverrideError, PdelangError, SourceLocation

__all__ = [
    "DEFAULT_DEPTHS",
    "DEFAULT_LRS",
    "DEFAULT_NORMS",
    "QUICK_EVAL_EXAMPLES",
    "QUICK_GRID",
    "PhaseGrid",
    "cell_summary",
    "claim_table",
    "parse_grid",
    "phase",
    "phase_variants",
    "render_phase_markdown",
    "run_metrics",
    "write_phase_report",
]

DEFAULT_DEPTHS = (6, 12, 24, 48)
DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
DEFAULT_NORMS = ("layernorm", "rmsnorm", "none")
DEFAULT_RESIDUALS = (True, False)
DEPTH_SCALINGS = ("step", "time")
STALLED_PROGRESS = 0.05  # below 5 % loss reduction a cell is "stalled"

NORM_KEY, RESIDUAL_KEY, LR_KEY = "stabilizers.norm.kind", "stabilizers.residual", "train.lr"
LAYERS_KEY, SPAN_KEY = "time.layers", "time.span"
_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass(frozen=True)
class PhaseGrid:
    """The axes of the phase diagram."""

    depths: tuple[int, ...] = DEFAULT_DEPTHS
    lrs: tuple[float, ...] = DEFAULT_LRS
    norms: tuple[str, ...] = DEFAULT_NORMS
    residuals: tuple[bool, ...] = DEFAULT_RESIDUALS
    depth_scaling: str = "step"

    @property
    def cells(self) -> int:
        return len(self.depths) * len(self.lrs) * len(self.norms) * len(self.residuals)


# ``--quick``: a reduced grid that still asks the question — a stable and an unstable learning
# rate, with and without normalization, the residual on, at the spec's depth 6 and half of
# it — 8 cells (the full grid has 120) of 1 seed, 8 steps of batch 8 (the sweep's quick
# settings) and the held-out loss on QUICK_EVAL_EXAMPLES digits: measured 23 s and 30 s wall
# for specs/master.yaml on a shared 2-core machine (load 3).  Axes given explicitly win.
QUICK_GRID = PhaseGrid(depths=(3, 6), lrs=(1e-3, 1e-2), norms=("layernorm", "none"),
                       residuals=(True,))
QUICK_EVAL_EXAMPLES = 64


# ---------------------------------------------------------------------------------------
# The grid from the command line, and its variants
# ---------------------------------------------------------------------------------------


def _unique(option: str, values: list, where: list[SourceLocation]) -> tuple:
    seen = set()
    for value, location in zip(values, where):
        if value in seen:
            raise OverrideError(f"{option}: {value} is listed twice", location,
                                "list each value once")
        seen.add(value)
    return tuple(values)


def _numbers(option: str, text: str, kind, valid, what: str, example: str) -> tuple:
    """The numbers of ``--option TEXT`` (``kind`` int or float, each ``valid``), every bad
    one an :class:`OverrideError` at its place in the option."""
    items = option_items(option, text)
    values = []
    for item, where in items:
        try:
            value = kind(item)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise OverrideError(f"{option}: '{item}' is not {what}", where, example)
        values.append(value)
    return _unique(option, values, [w for _, w in items])


def parse_grid(depths: str | None = None, lrs: str | None = None, norms: str | None = None,
               residuals: str | None = None, depth_scaling: str = "step", *,
               quick: bool = False) -> PhaseGrid:
    """The grid of ``--depths 6,12 --lrs 1e-4,1e-2 --norms layernorm,none --residual on,off``
    (``None``: the default axis, or with ``quick`` the axis of :data:`QUICK_GRID`); a bad
    value is an :class:`OverrideError` located in its option's text.  Norm kinds are checked
    against the spec by :func:`check_grid`."""
    grid = QUICK_GRID if quick else PhaseGrid()
    grid = PhaseGrid(grid.depths, grid.lrs, grid.norms, grid.residuals, depth_scaling)
    if depth_scaling not in DEPTH_SCALINGS:
        raise PdelangError(f"--depth-scaling {depth_scaling}: unknown",
                           suggestion="step (add layers of the spec's Δt) or time (keep the "
                                      "span, Δt = span / depth)")
    fields: dict[str, Any] = {}
    if depths is not None:
        fields["depths"] = _numbers("--depths", depths, int, lambda v: v >= 1,
                                    "a whole number of layers, at least 1",
                                    "e.g. --depths 6,12,24,48")
    if lrs is not None:
        fields["lrs"] = _numbers("--lrs", lrs, float, lambda v: math.isfinite(v) and v > 0,
                                 "a positive learning rate", "e.g. --lrs 1e-4,1e-3,1e-2")
    if norms is not None:
        items = option_items("--norms", norms)
        fields["norms"] = _unique("--norms", [t for t, _ in items], [w for _, w in items])
    if residuals is not None:
        items = option_items("--residual", residuals)
        values = []
        for text, where in items:
            if text.lower() not in _TRUE + _FALSE:
                raise OverrideError(f"--residual: '{text}' is neither on nor off", where,
                                    "--residual on,off (or true,false)")
            values.append(text.lower() in _TRUE)
        fields["residuals"] = _unique("--residual", values, [w for _, w in items])
    return PhaseGrid(**{**grid.__dict__, **fields})


def check_grid(spec: str, grid: PhaseGrid, base: Sequence[str] = (),
               norms_text: str | None = None) -> None:
    """Every norm kind must be one the spec schema accepts: an unknown one is an
    :class:`OverrideError` located in ``--norms`` (``norms_text``, as given) before anything
    runs.  (Errors of a combination — a spec that does not compile at some depth — are the
    cells' to report.)"""
    from pdelang.compiler.spec.load import load_spec

    where = dict(option_items("--norms", norms_text)) if norms_text is not None else {}
    for norm in grid.norms:
        try:
            load_spec(spec, [*base, f"{NORM_KEY}={norm}"])
        except PdelangError as exc:
            if exc.location is None or exc.location.file != "<--set>":
                raise
            message = exc.message.removeprefix(f"--set {NORM_KEY}={norm}: ")
            raise OverrideError(f"--norms: {norm}: {message}", where.get(norm),
                                exc.suggestion) from None


def _number(value: float) -> str:
    """A float as the shortest text that reads back as it (``1e-4``, ``0.003``)."""
    return repr(float(value)).replace("e-0", "e-").replace("e+0", "e+")


def phase_variants(spec, grid: PhaseGrid) -> list[dict[str, str]]:
    """One variant (``--set``-style key → value) per cell of ``grid``, the deepest first.

    ``spec``: the loaded base spec (its time span and layers give Δt).  The deepest cells
    come first because they take longest: a queue that starts its longest tasks first ends
    soonest when there are more tasks than workers (the longest-processing-time rule)."""
    t0, t1 = spec.time.span
    step = (t1 - t0) / spec.time.layers
    variants = []
    for depth in sorted(grid.depths, reverse=True):
        end = t0 + depth * step if grid.depth_scaling == "step" else t1
        for residual in grid.residuals:
            for norm in grid.norms:
                for lr in grid.lrs:
                    variants.append({LAYERS_KEY: str(depth),
                                     SPAN_KEY: f"[{_number(t0)}, {_number(end)}]",
                                     RESIDUAL_KEY: "true" if residual else "false",
                                     NORM_KEY: norm, LR_KEY: _number(lr)})
    return variants


def cell_of(overrides: Mapping[str, str]) -> tuple[bool, str, int, float]:
    """(residual, norm, depth, lr) of a variant of :func:`phase_variants`."""
    return (overrides[RESIDUAL_KEY] == "true", overrides[NORM_KEY],
            int(overrides[LAYERS_KEY]), float(overrides[LR_KEY]))


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    from pdelang.lab.ablation.report import as_float

    number = as_float(value)
    return number if number is not None and math.isfinite(number) else None


def run_metrics(record: Mapping[str, Any]) -> dict[str, Any]:
    """The measurements of one training run (a ``TrainingRecord.to_dict()``, JSON-safe or
    not; module docstring).  Needs the record of every step (``log_every=1``)."""
    losses = [_finite(v) for v in record.get("losses") or []]
    grads = [_finite(v) for v in record.get("grad_norms") or []]
    diverged = bool(record.get("diverged"))
    first_loss = losses[0] if losses else None
    final = None
    if not diverged and losses and None not in losses:
        final = statistics.fmean(losses[-max(1, len(losses) // 10):])
    g0 = grads[0] if grads else None
    seen = [g for g in grads if g is not None]
    growth = growth_end = None
    if g0 and seen:
        growth = max(seen) / g0
        if not diverged:
            tail = seen[-max(1, len(seen) // 10):]
            growth_end = statistics.median(tail) / g0
    progress = None
    if final is not None and first_loss:
        progress = 1.0 - final / first_loss
    return {"seed": record.get("seed"), "diverged": diverged,
            "divergence_step": record.get("divergence_step") if diverged else None,
            "divergence_reason": record.get("divergence_reason") if diverged else None,
            "steps_completed": record.get("steps_completed"),
            "first_loss": first_loss, "final_loss": final,
            "eval_accuracy": None if diverged else _finite(record.get("eval_accuracy")),
            "eval_loss": None if diverged else _finite(record.get("eval_loss")),
            "grad_norm_0": g0, "grad_growth": growth, "grad_growth_end": growth_end,
            "progress": progress}


def _mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None, None
    return statistics.fmean(numbers), statistics.pstdev(numbers)


def _median(values: Iterable[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return statistics.median(numbers) if numbers else None


def cell_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A cell's summary over its seeds' :func:`run_metrics` (module docstring)."""
    diverged = [r for r in runs if r["diverged"]]
    survived = [r for r in runs if not r["diverged"]]
    steps = sorted(r["divergence_step"] for r in diverged if r["divergence_step"] is not None)
    loss_mean, loss_std = _mean_std(r["final_loss"] for r in survived)
    progress = _median(r["progress"] for r in survived)
    if runs and len(diverged) == len(runs):
        regime = "diverged"
    elif diverged:
        regime = "partly diverged"
    elif progress is not None and progress < -STALLED_PROGRESS:
        regime = "loss rose"
    elif progress is not None and progress < STALLED_PROGRESS:
        regime = "stalled"
    else:
        regime = "trains"
    return {"seeds": len(runs), "diverged": len(diverged), "divergence_steps": steps,
            "divergence_step_median": statistics.median(steps) if steps else None,
            "final_loss_mean": loss_mean, "final_loss_std": loss_std,
            "eval_accuracy_mean": _mean_std(r["eval_accuracy"] for r in survived)[0],
            "eval_loss_mean": _mean_std(r["eval_loss"] for r in survived)[0],
            "grad_growth_median": _median(r["grad_growth"] for r in runs),
            "grad_growth_end_median": _median(r["grad_growth_end"] for r in survived),
            "progress_median": progress, "regime": regime}


def phase_cells(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per variant of a phase sweep's results: its cell, runs and summary (a
    variant that failed keeps its error and has no summary)."""
    cells = []
    for variant in results.get("variants") or []:
        if variant is None:
            continue
        residual, norm, depth, lr = cell_of(variant["overrides"])
        entry = {"residual": residual, "norm": norm, "depth": depth, "lr": lr,
                 "label": variant["label"], "error": variant.get("error"), "runs": [],
                 "summary": None}
        training = variant.get("training")
        if not entry["error"] and training:
            entry["runs"] = [run_metrics(record) for record in training["seeds"]]
            entry["summary"] = cell_summary(entry["runs"])
        cells.append(entry)
    return sorted(cells, key=lambda c: (not c["residual"], c["norm"], c["depth"], c["lr"]))


def _mostly_diverged(cell: Mapping[str, Any] | None) -> bool | None:
    if cell is None or cell["summary"] is None:
        return None
    summary = cell["summary"]
    return 2 * summary["diverged"] > summary["seeds"]


def claim_table(cells: Sequence[Mapping[str, Any]]) -> dict[tuple[bool, int, float], str]:
    """For each (residual, depth, lr): does "without normalization training explodes" hold?

    ``holds``: most seeds of the norm-free cell diverge, and no normalized cell's seeds
    mostly do; ``no: nothing diverges``; ``no: normalized diverge too``; ``no: only
    normalized diverge``; ``unknown`` where a needed cell failed or the grid lacks ``none``
    or every normalized kind."""
    by_key = {(c["residual"], c["norm"], c["depth"], c["lr"]): c for c in cells}
    keys = sorted({(c["residual"], c["depth"], c["lr"]) for c in cells},
                  key=lambda k: (not k[0], k[1], k[2]))
    normed = sorted({c["norm"] for c in cells} - {"none"})
    table = {}
    for residual, depth, lr in keys:
        free = _mostly_diverged(by_key.get((residual, "none", depth, lr)))
        others = [_mostly_diverged(by_key.get((residual, n, depth, lr))) for n in normed]
        if free is None or not others or None in others:
            table[(residual, depth, lr)] = "unknown"
        elif free and not any(others):
            table[(residual, depth, lr)] = "holds"
        elif free:
            table[(residual, depth, lr)] = "no: normalized diverge too"
        elif any(others):
            table[(residual, depth, lr)] = "no: only normalized diverge"
        else:
            table[(residual, depth, lr)] = "no: nothing diverges"
    return table


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------


def _lr_text(lr: float) -> str:
    """``1e-4``, ``3e-4``, ``2.5e-3``: a learning rate in short scientific notation."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _growth_text(value: float | None) -> str:
    """``×1.7``, ``×35``, ``×160``, ``×3.2e5``: a growth factor in at most 4 characters."""
    if value is None:
        return "—"
    if value < 10:
        return f"×{value:.2g}"
    if value < 1000:
        return f"×{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"×{mantissa.removesuffix('.0')}e{int(exponent)}"


def cell_text(cell: Mapping[str, Any]) -> str:
    """A cell in one line: ``✗ 3/3 @ 4 · G ×1e30``, ``2.13 ± 0.05 · G ×3.1``, ``stalled``…"""
    from pdelang.lab.ablation.report import format_number

    if cell["error"]:
        return "error"
    summary = cell["summary"]
    if summary is None:
        return "—"
    growth = _growth_text(summary["grad_growth_median"])
    if summary["diverged"]:
        text = (f"✗ {summary['diverged']}/{summary['seeds']} @ "
                f"{summary['divergence_step_median']:g}")
        if summary["final_loss_mean"] is not None:
            text += f" (others {format_number(summary['final_loss_mean'])})"
        return f"{text} · G {growth}"
    loss = format_number(summary["final_loss_mean"])
    if summary["seeds"] > 1 and summary["final_loss_std"] is not None:
        loss += f" ± {summary['final_loss_std']:.2g}"
    regime = f" ({summary['regime']})" if summary["regime"] in ("stalled", "loss rose") else ""
    return f"{loss}{regime} · G {growth}"


def render_phase_markdown(results: Mapping[str, Any]) -> str:
    """The phase report (``phase.md``) of a phase sweep's results."""
    from pdelang.lab.ablation.report import markdown_cell, markdown_table

    cells = phase_cells(results)
    grid = results["grid"]
    lrs = sorted(grid["lrs"])
    depths = sorted(grid["depths"])
    lines = [f"# Phase diagram: {results['spec']}", "",
             f"- grid: depth {', '.join(map(str, depths))} × lr "
             f"{', '.join(_lr_text(v) for v in lrs)} × norm {', '.join(grid['norms'])} × "
             f"residual {', '.join('on' if r else 'off' for r in grid['residuals'])} — "
             f"{len(cells)} cells × {len(results['seeds'])} seed"
             + ("s" if len(results["seeds"]) != 1 else ""),
             f"- depth: {_scaling_text(grid['depth_scaling'], results.get('time_step'))}",
             f"- training: {results['task']}, {results['steps']} AdamW steps per run"
             + (" (--quick)" if results.get("quick") else ""),
             f"- executor: {results['executor']}; {results['seconds']} s wall"
             + (f"; {results['resumed']} cells resumed" if results.get("resumed") else ""),
             ""]
    claims = claim_table(cells)
    for residual in grid["residuals"]:
        lines += [f"## Does \"without normalization training explodes\" hold? "
                  f"(residual {'on' if residual else 'off'})", ""]
        rows = [[str(depth)] + [claims.get((residual, depth, lr), "—") for lr in lrs]
                for depth in depths]
        lines += markdown_table(["depth \\ lr"] + [_lr_text(v) for v in lrs], rows) + [""]
    lines += ["## Every cell", "",
              "`✗ k/n @ s`: k of n seeds diverged, at median step s; otherwise the final "
              "training loss (mean over the last tenth of the steps; mean ± std over "
              "seeds); `G`: the median over seeds of the gradient-norm growth "
              "max‖g_k‖/‖g_0‖; `stalled`: the loss changed by less than "
              f"{STALLED_PROGRESS:.0%}; `loss rose`: it ended more than {STALLED_PROGRESS:.0%} "
              "above its start without diverging.", ""]
    by_key = {(c["residual"], c["norm"], c["depth"], c["lr"]): c for c in cells}
    rows = []
    for residual in grid["residuals"]:
        for norm in grid["norms"]:
            for depth in depths:
                rows.append([f"{'on' if residual else 'off'}", norm, str(depth)]
                            + [cell_text(by_key[key]) if (key := (residual, norm, depth, lr))
                               in by_key else "—" for lr in lrs])
    header = ["residual", "norm", "depth"] + [_lr_text(v) for v in lrs]
    lines += markdown_table(header, rows) + [""]
    failed = [c for c in cells if c["error"]]
    if failed:
        lines += ["## Errors", ""] + [f"- {c['label']}: {markdown_cell(c['error'])}"
                                      for c in failed]
        lines.append("")
    lines += ["Divergence: a step's loss or gradient norm is NaN/Inf or its loss exceeds 10× "
              "the first step's; the run stops there. Final loss and G_end exclude diverged "
              "seeds. Per-seed numbers are in phase.json; per-step curves in "
              "variants/*.json.", ""]
    return "\n".join(lines)


def _scaling_text(scaling: str, step: float | None) -> str:
    if scaling == "step":
        return (f"layers of the spec's step Δt = {step:g} (time.span = [t0, t0 + depth·Δt])"
                if step is not None else "layers of the spec's step")
    return "the spec's time span in depth steps (Δt = span / depth)"


def _heatmaps(cells, grid, title: str, value, text, colour: dict[str, Any]):
    """A figure of (residual rows) × (norm columns) heatmaps, depth (y) × lr (x)."""
    import numpy as np

    from pdelang.lab.validation.plots import new_figure

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
            axis.set_xticks(range(len(lrs)), [_lr_text(v) for v in lrs], fontsize=8)
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
    from pdelang.io import save_figure

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
        return _growth_text(cell["summary"]["grad_growth_median"])

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


def phase_summary(results: Mapping[str, Any]) -> dict[str, Any]:
    """``phase.json``: the run's settings, every cell with its per-seed measurements, and the
    claim table (no per-step curves: those are in ``variants/*.json``)."""
    from pdelang.lab.ablation.report import json_safe

    cells = phase_cells(results)
    claims = claim_table(cells)
    keep = ("spec", "overrides", "task", "steps", "seeds", "quick", "dtype", "executor",
            "resumed", "seconds", "grid", "time_step", "device")
    return json_safe({
        **{k: results[k] for k in keep if k in results},
        "cells": cells,
        "claim": [{"residual": r, "depth": d, "lr": lr, "verdict": verdict}
                  for (r, d, lr), verdict in claims.items()],
    })


def write_phase_report(out_dir: str | Path, results: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``phase.json``, ``phase.md`` and the three heatmaps; returns ``{name: path}``."""
    from pdelang.io import write_atomically

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = phase_summary(results)
    paths = {"phase.json": out / "phase.json", "phase.md": out / "phase.md"}
    write_atomically(paths["phase.json"],
                     json.dumps(summary, sort_keys=True, indent=2, allow_nan=False,
                                ensure_ascii=False) + "\n")
    write_atomically(paths["phase.md"], render_phase_markdown(results))
    paths.update(plot_phase(phase_cells(results), results["grid"], out))
    return paths


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def phase(spec: str, grid: PhaseGrid | None = None, *, overrides: Iterable[str] = (),
          norms_text: str | None = None, train: str = "digits", steps: int = 500,
          seeds: int = 3, batch_size: int | None = None, quick: bool = False,
          out: str | None = None, progress: bool = True, threads: int | None = None,
          compile: bool = False, dtype: str = "float32", executor: str = "local",
          address: str | None = None, resume: bool = False, device: str = "cpu",
          ray_cpus: int | None = None) -> dict:
    """Train every cell of ``grid`` (default: the full 4 × 5 × 3 × 2 grid; with ``quick``,
    :data:`QUICK_GRID`) for ``seeds`` seeds of ``steps`` steps and return the sweep's results
    (``grid``, ``time_step`` and the variants; ``phase_cells(results)`` reads them); with
    ``out``, also the report (:func:`write_phase_report`) and a file per cell (``--resume``).
    ``quick``: 1 seed, at most 8 steps of batch 8 (unless given), the held-out loss on
    :data:`QUICK_EVAL_EXAMPLES` digits."""
    from pdelang.lab.ablation.ablate import run_sweep, sweep_options
    from pdelang.compiler.spec.load import load_spec

    grid = grid or (QUICK_GRID if quick else PhaseGrid())
    options, runner, seed_count = sweep_options(
        reference=None, train=train, steps=steps, seeds=seeds, lr=grid.lrs[0],
        batch_size=batch_size, drift_samples=0, quick=quick, out=out, threads=threads,
        compile=compile, dtype=dtype, metrics=(), sigma=None, info_every=None,
        executor=executor, address=address, resume=resume, device=device,
        ray_cpus=ray_cpus, drift=False)
    if quick and train == "digits":  # small data: the held-out loss on fewer digits
        options["eval_examples"] = QUICK_EVAL_EXAMPLES
    base = list(overrides)
    loaded = load_spec(spec, base)  # the base spec's own errors first
    check_grid(spec, grid, base, norms_text)
    variants = phase_variants(loaded, grid)
    t0, t1 = loaded.time.span
    extra = {"grid": {"depths": list(grid.depths), "lrs": list(grid.lrs),
                      "norms": list(grid.norms), "residuals": list(grid.residuals),
                      "depth_scaling": grid.depth_scaling},
             "time_step": (t1 - t0) / loaded.time.layers}
    swaps = {LAYERS_KEY: [str(d) for d in grid.depths], LR_KEY: [_number(v) for v in grid.lrs],
             NORM_KEY: list(grid.norms),
             RESIDUAL_KEY: ["true" if r else "false" for r in grid.residuals]}
    return run_sweep(spec, variants, base, seed_count, options, runner, quick=quick, out=out,
                     progress=progress, swaps=swaps, report=write_phase_report, extra=extra)
