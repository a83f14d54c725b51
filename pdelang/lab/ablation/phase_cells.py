"""The legacy phase diagram's measurements: per run the divergence step, final loss and
gradient growth; per cell the seeds that diverged and a regime; the claim table."""

from __future__ import annotations
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from pdelang.lab.ablation.phase_grid import LAYERS_KEY, LR_KEY, NORM_KEY, RESIDUAL_KEY
from pdelang.lab.ablation.formatting import as_float, json_safe

__all__ = [
    "STALLED_PROGRESS",
    "cell_of",
    "cell_summary",
    "claim_table",
    "format_growth",
    "lr_text",
    "phase_cells",
    "phase_summary",
    "run_metrics",
]


STALLED_PROGRESS = 0.05  # below 5 % loss reduction a cell is "stalled"


def cell_of(overrides: Mapping[str, str]) -> tuple[bool, str, int, float]:
    """(residual, norm, depth, lr) of a variant of :func:`phase_variants`."""
    return (overrides[RESIDUAL_KEY] == "true", overrides[NORM_KEY],
            int(overrides[LAYERS_KEY]), float(overrides[LR_KEY]))


def _finite(value: Any) -> float | None:
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


def lr_text(lr: float) -> str:
    """``1e-4``, ``3e-4``, ``2.5e-3``: a learning rate in short scientific notation."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def format_growth(value: float | None) -> str:
    """``×1.7``, ``×35``, ``×160``, ``×3.2e5``: a growth factor in at most 4 characters."""
    if value is None:
        return "—"
    if value < 10:
        return f"×{value:.2g}"
    if value < 1000:
        return f"×{value:.0f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"×{mantissa.removesuffix('.0')}e{int(exponent)}"


def phase_summary(results: Mapping[str, Any]) -> dict[str, Any]:
    """``phase.json``: the run's settings, every cell with its per-seed measurements, and the
    claim table (no per-step curves: those are in ``variants/*.json``)."""
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
