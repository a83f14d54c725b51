"""The data of an ablation report: one row per variant (divergence over seeds, final loss
mean ± std, gradient norm, accuracy, final-layer drift), why a cell is empty, the seeds'
runs and information-plane observations of a variant."""

from __future__ import annotations
import math
from collections.abc import Iterable, Mapping
from typing import Any
from pdelang.lab.ablation.formatting import as_float, format_overrides

__all__ = [
    "empty_reasons",
    "finite_mean_std",
    "finite_values",
    "seed_runs",
    "variant_label",
    "variant_observations",
    "variant_row",
]


def seed_runs(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
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
    import numpy as np  # lazy: numpy

    finite = finite_values(values)
    if not finite:
        return None, None
    return float(np.mean(finite)), float(np.std(finite))


def variant_label(variant: Mapping[str, Any]) -> str:
    return str(variant.get("label") or format_overrides(variant.get("overrides")))


def variant_row(variant: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers shown in the report for one variant (missing values are ``None``).

    Seed-level values (``training.seeds``) take precedence for the loss statistics and
    the divergence count; the variant-level ``final_loss`` / ``diverged`` are used when no
    seed runs are present.
    """
    runs = seed_runs(variant)
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
        "label": variant_label(variant),
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


def variant_observations(variant: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Seed 0's information-plane observations (``ablate --metrics info``)."""
    runs = seed_runs(variant)
    return list(runs[0].get("information") or []) if runs else []
