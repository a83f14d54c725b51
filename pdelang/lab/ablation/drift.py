"""Per-layer drift tables of a stepper's trajectory.

A trajectory is the list of states at every layer boundary, initial state included:
``states[0]`` is the input ``u``, ``states[l]`` the state after layer ``l``; each state is a
``(B, N, C)`` tensor.  ``mask`` (optional) is a ``(B, N)`` tensor marking the tokens that
count: **True / nonzero = valid token** (padding positions are False); ``None`` = every token
counts.

The metrics themselves (``state_norm``, ``rank_collapse_ratio``, ``hidden_cosine``,
``relative_error``; formulas in :mod:`pdelang.lab.metrics`, the module validation uses too) are
computed in float64; here they are tabulated per layer, with
``norm_growth_l = state_norm_l / state_norm_0``.

Non-finite states never raise: a NaN/Inf state gives ``nan``/``inf`` metrics and the layer's
entry carries ``finite: False`` (``True`` when every valid entry of every state used is
finite).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pdelang.interpreters.builder import structure_of
from pdelang.lab.metrics import (
    hidden_cosine,
    is_finite,
    rank_collapse_ratio,
    relative_error,
    state_norm,
)
from pdelang.lab.validation.validate import _inputs, _load_reference
from pdelang.interpreters.accelerate import compile_stepper
from pdelang.lab.validation.weights import ReferenceMismatchError, load_reference_weights

__all__ = [
    "DriftReference",
    "collect_states",
    "drift_against_reference",
    "final_layer",
    "measure_variant",
    "variant_drift",
]


def variant_drift(states: Sequence[Tensor], mask: Tensor | None = None) -> list[dict[str, Any]]:
    """Per layer ``{layer, rank_collapse_ratio, state_norm, norm_growth, finite}``.

    ``norm_growth = state_norm_l / state_norm_0`` (``nan`` if ``state_norm_0`` is 0 or
    not finite).
    """
    if not states:
        return []
    norms = [state_norm(s, mask) for s in states]
    initial = norms[0]
    rows = []
    for layer, (state, norm) in enumerate(zip(states, norms)):
        growth = norm / initial if math.isfinite(initial) and initial > 0 else math.nan
        rows.append({
            "layer": layer,
            "rank_collapse_ratio": rank_collapse_ratio(state, mask),
            "state_norm": norm,
            "norm_growth": growth,
            "finite": is_finite(state, mask),
        })
    return rows


def drift_against_reference(
    reference_states: Sequence[Tensor],
    variant_states: Sequence[Tensor],
    mask: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Per layer drift of a variant from a reference trajectory (same length and shapes).

    Each entry: ``layer, hidden_cosine, relative_error, rank_collapse_ratio, state_norm,
    norm_growth`` (of the variant), ``reference_rank_collapse_ratio,
    reference_state_norm`` and ``finite`` (variant *and* reference finite at that layer).
    """
    if len(reference_states) != len(variant_states):
        raise ValueError(f"reference has {len(reference_states)} states, variant "
                         f"{len(variant_states)}: compare trajectories of equal depth")
    rows = variant_drift(variant_states, mask)
    for row, reference, variant in zip(rows, reference_states, variant_states):
        row["hidden_cosine"] = hidden_cosine(reference, variant, mask)
        row["relative_error"] = relative_error(reference, variant, mask)
        row["reference_rank_collapse_ratio"] = rank_collapse_ratio(reference, mask)
        row["reference_state_norm"] = state_norm(reference, mask)
        row["finite"] = bool(row["finite"] and is_finite(reference, mask))
    return rows


@torch.no_grad()
def collect_states(stepper: nn.Module, u: Tensor, mask: Tensor | None = None) -> list[Tensor]:
    """The trajectory ``[u, state_1, ..., state_L]`` of ``stepper`` from ``u`` (eval mode).

    Calls ``stepper(u, mask, return_trajectory=True).states``; restores the training mode.
    """
    was_training = stepper.training
    stepper.eval()
    try:
        result = stepper(u, mask, return_trajectory=True)
    finally:
        stepper.train(was_training)
    states = getattr(result, "states", None)
    if states is None:
        raise TypeError("stepper(return_trajectory=True) returned no `.states`")
    return [s.detach() for s in states]


def final_layer(rows: Sequence[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The last per-layer entry (the stepper output), or ``None``."""
    return dict(rows[-1]) if rows else None


class DriftReference:
    """The reference run shared by every variant's drift measurement."""

    def __init__(self, name: str, samples: int, max_length: int) -> None:
        self.name = name
        self.reference = _load_reference(name)
        self.run = self.reference.run(_inputs(self.reference, samples, "heldout", None,
                                              max_length))


def measure_variant(module, spec, reference: DriftReference | None, seed: int,
           compile: bool = False) -> tuple[list, str]:
    """A variant's per-layer drift: against the reference's hidden states when its weights
    load into the variant, else of a random-weight variant on a random state; and a note
    saying which."""
    torch.manual_seed(seed)
    stepper = module.Stepper().eval()
    if compile:
        compile_stepper(stepper)
    if reference is not None:
        try:
            load_reference_weights(stepper, reference.reference, spec, stabilizers=False)
        except ReferenceMismatchError as exc:
            note = f"random weights: {exc.message}"
        else:
            run = reference.run
            states = collect_states(stepper, run.embeddings, run.mask)
            return (drift_against_reference(run.hidden_states, states, run.mask),
                    f"{reference.name} weights and embeddings")
    else:
        note = "random weights, random initial state"
    structure = structure_of(module.Stepper)
    grid = structure["grid_shape"]
    tokens = grid[0] * grid[1] + structure["extra_tokens"] if grid else 32
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(4, tokens, structure["channels"], generator=generator)
    return variant_drift(collect_states(stepper, u)), note
