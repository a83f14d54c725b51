"""The legacy phase diagram's report: ``phase.md`` and ``phase.json``."""

from __future__ import annotations
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from pdelang.lab.ablation.phase_cells import (
    STALLED_PROGRESS,
    claim_table,
    format_growth,
    lr_text,
    phase_cells,
    phase_summary,
)
from pdelang.lab.ablation.phase_plots import plot_phase
from pdelang.lab.ablation.formatting import format_number, markdown_cell, markdown_table
from pdelang.io import write_atomically

__all__ = ["cell_text", "render_phase_markdown", "write_phase_report"]


def cell_text(cell: Mapping[str, Any]) -> str:
    """A cell in one line: ``✗ 3/3 @ 4 · G ×1e30``, ``2.13 ± 0.05 · G ×3.1``, ``stalled``…"""
    if cell["error"]:
        return "error"
    summary = cell["summary"]
    if summary is None:
        return "—"
    growth = format_growth(summary["grad_growth_median"])
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
    cells = phase_cells(results)
    grid = results["grid"]
    lrs = sorted(grid["lrs"])
    depths = sorted(grid["depths"])
    lines = [f"# Phase diagram: {results['spec']}", "",
             f"- grid: depth {', '.join(map(str, depths))} × lr "
             f"{', '.join(lr_text(v) for v in lrs)} × norm {', '.join(grid['norms'])} × "
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
        lines += markdown_table(["depth \\ lr"] + [lr_text(v) for v in lrs], rows) + [""]
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
    header = ["residual", "norm", "depth"] + [lr_text(v) for v in lrs]
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


def write_phase_report(out_dir: str | Path, results: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``phase.json``, ``phase.md`` and the three heatmaps; returns ``{name: path}``."""
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
