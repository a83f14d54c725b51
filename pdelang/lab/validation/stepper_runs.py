"""A generated stepper run on a reference's inputs, and its learnable scalars: what
``validate`` (every mode), ``distill`` and the claim studies share (here, so that none of
them imports another's private helpers)."""

from __future__ import annotations

import torch

from pdelang.errors import PdelangError
from pdelang.interpreters.builder import structure_of

__all__ = ["call_stepper", "flat_values", "per_layer_maps", "run_stepper", "sample_maps",
           "scalar_parameters", "scalar_values"]


def sample_maps(reference_maps, model_maps, bool_mask) -> tuple[list, list]:
    """Sample 0's head-mean maps per layer, reference and model, cut to its real tokens
    (for the plots)."""
    length = int(bool_mask[0].sum())
    return tuple([None if m is None else m[0].mean(0)[:length, :length].detach().cpu()
                  for m in group] for group in (reference_maps, model_maps))


def per_layer_maps(attentions: list, layers: int) -> list:
    """The last attention evaluation of every layer (substeps and RK stages repeat it)."""
    if not attentions:
        return [None] * layers
    per_layer = len(attentions) // layers
    return [attentions[(i + 1) * per_layer - 1] for i in range(layers)]


def call_stepper(stepper, run, **options):
    """The stepper on the reference's embeddings and mask.  The generated module raises a
    ValueError for inputs its grid cannot take (a sequence no longer than the stencil's
    radius, a mask that is not right padding); here that is the user's to fix."""
    try:
        return stepper(run.embeddings, run.mask, return_trajectory=True, **options)
    except ValueError as exc:
        raise PdelangError(f"the generated stepper rejected the reference's inputs: {exc}",
                           suggestion="use longer texts, or a lower "
                                      "discretization accuracy (a smaller stencil)") from None


def run_stepper(stepper, run):
    out = call_stepper(stepper, run, return_attention=True)
    return out, per_layer_maps(out.attentions, len(run.attentions))


def scalar_parameters(stepper) -> dict[str, torch.nn.Parameter]:
    """The spec's learnable scalar parameters: shared ones, per-layer ones and the
    coefficients of depth-dependent (``basis``) ones (a tied stepper's layers are one)."""
    out = {}
    for name, param in stepper.named_parameters():
        if param.dim() == 0 or name.endswith("_coefficients"):
            out[name] = param
    return out


def scalar_values(stepper) -> dict:
    structure = structure_of(stepper)
    values = {}
    for name, info in structure["parameters"].items():
        if info.get("basis"):
            values[name] = getattr(stepper.shared, f"{name}_coefficients").detach().tolist()
        elif info["per_layer"]:
            values[name] = [getattr(layer, name).detach().item() for layer in stepper.layers]
        else:
            values[name] = getattr(stepper.shared, name).detach().item()
    return values


def flat_values(values: dict) -> dict[str, float]:
    """``{"D": 0.01, "alpha": [1, 0.9]}`` → ``{"D": 0.01, "alpha[0]": 1, "alpha[1]": 0.9}``."""
    out = {}
    for name, value in values.items():
        if isinstance(value, list):
            out.update({f"{name}[{i}]": float(v) for i, v in enumerate(value)})
        else:
            out[name] = float(value)
    return out
