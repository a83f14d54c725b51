"""``validate --mode distill``: fit a *reduced* PDE model to a reference's per-layer states.

Fit mode keeps every Transformer weight and learns a few scalars, so at D = 0 it *is* the
Transformer and cannot fail.  Distill mode asks the paper's question instead: does a
continuous model with far fewer degrees of freedom reproduce the network's dynamics?  The
spec's own weights (all of them: a tied layer's attention and MLP, a low-rank kernel, D,
basis coefficients) start from the generated stepper's random initialization — nothing is
copied from the reference — and are fitted to the reference's states u_1 … u_L at the layer
boundaries (:func:`pdelang.lab.validation.fitting.state_loss`) on the training split:

* ``restarts`` independent initializations (seeds ``seed``, ``seed + 1``, …), each trained
  with mini-batch Adam until the plateau criterion of
  :func:`~pdelang.lab.validation.fitting.adam_to_plateau` holds on a validation tenth of the
  training inputs; the restart with the lowest validation loss is kept, and every
  restart's result is reported (their spread says how well-posed the fit is);
* the model's scalar coefficients (D, α(t)'s basis coefficients …) are then polished
  with L-BFGS at the kept weights (so the point estimate is the optimum the intervals are
  about) and get 95 % percentile bootstrap intervals: ``bootstrap`` refits with L-BFGS on
  resampled training inputs, warm-started at the fit, **with the weights held at the fit**
  (intervals conditional on the weights);
* the metrics — attention cosine, hidden cosine, relative error, CKA — are measured on the
  held-out split.  A reduced model may have another number of heads than the reference:
  then the maps compared are both sides' head means (the result says which).

``attention_weight`` λ > 0 adds λ · KL(P_ref ‖ P_model) of the attention maps (mean over
layers, heads and real query rows; head means when the head counts differ) to the loss,
so that a claim about attention distributions gets the model fitted to them too.

The spec must have the reference's channels, grid and number of layer boundaries
(``time.layers``; ``time.tied: true`` shares one weight set among them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pdelang.errors import PdelangError
from pdelang.interpreters.builder import structure_of
from pdelang.lab.validation.weights import mismatches
from pdelang.lab.metrics import layer_metrics
from pdelang.lab.validation.fitting import (
    Plateau,
    adam_to_plateau,
    bootstrap_refits,
    lbfgs_to_convergence,
    state_loss,
)
from pdelang.lab.validation.stepper_runs import (
    call_stepper,
    flat_values,
    per_layer_maps,
    sample_maps,
    scalar_parameters,
    scalar_values,
)

#: Defaults of the command line (``--steps``, ``--lr``, ``--restarts``, ``--batch-size``).
DEFAULT_STEPS = 3000
DEFAULT_LR = 3e-3
DEFAULT_RESTARTS = 3
DEFAULT_BATCH = 128
DEFAULT_TRAIN_SAMPLES = 1024
BOOTSTRAP = 10
#: L-BFGS iterations: the polish of the scalars at the fit, and each bootstrap refit.
POLISH_ITERATIONS = 30
REFIT_ITERATIONS = 8


@dataclass
class DistillResult:
    spec: str
    reference: str
    samples: int
    layers: list[dict]  # held-out metrics per layer (metrics.layer_metrics rows)
    restarts: list[dict]  # per restart: seed, validation loss, steps, converged, history
    best_restart: int
    parameters: dict  # {"model": n, "reference": n, "reference_counted": what}
    fitted: dict  # the scalar coefficients at the fit
    intervals: dict  # name → {value, low, high}: conditional bootstrap intervals
    heads_compared: str  # "per head" or "head means (H_model vs H_reference)"
    criterion: str
    train_inputs: int
    validation_inputs: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    attention_weight: float = 0.0
    mode: str = "distill"
    passed: None = None
    maps: tuple | None = None
    # in memory only (the study's floors and intervals need them)
    stepper: object = field(default=None, repr=False)
    run: object = field(default=None, repr=False)
    output: object = field(default=None, repr=False)
    model_maps: list = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {"spec": self.spec, "reference": self.reference, "mode": self.mode,
                "samples": self.samples, "passed": None, "layers": self.layers,
                "restarts": self.restarts, "best_restart": self.best_restart,
                "parameters": self.parameters, "fitted": self.fitted,
                "intervals": self.intervals, "heads_compared": self.heads_compared,
                "criterion": self.criterion, "train_inputs": self.train_inputs,
                "validation_inputs": self.validation_inputs, "seconds": self.seconds,
                "attention_weight": self.attention_weight,
                "warnings": self.warnings}


def reference_layer_parameters(reference) -> int:
    """Parameters of the reference's layer stack (attention, MLP and norms of every layer,
    plus a final norm): what the PDE's vector field stands for.  Embeddings, pooler and
    classifier are left out on both sides."""
    arch = reference.architecture
    c, hidden = arch.channels, arch.hidden
    per_layer = 4 * c * c + 4 * c + 2 * c * hidden + hidden + c + 4 * c  # + 2 LayerNorms
    return arch.layers * per_layer + (2 * c if arch.final_norm else 0)


def _check_shape(structure: dict, reference, spec) -> None:
    found, _ = mismatches(structure, reference, spec, stabilizers=False)
    blocking = [m for m in found if m.what in ("channels", "layers")
                or m.path.startswith("grid")]
    if blocking:
        raise PdelangError(
            "distill mode fits the spec's own weights to the reference's layer states, so "
            "the spec needs the reference's width, grid and number of layer boundaries: "
            + "; ".join(m.describe(reference.name) for m in blocking),
            suggestion="set " + ", ".join(f"{k}={v}" for m in blocking for k, v in m.settings)
            + " (time.tied: true shares one weight set among the layers)"
            if any(m.settings for m in blocking) else None)


def _maps_for_comparison(reference_maps, model_maps):
    """Both sides per head when the head counts agree, else both sides' head means."""
    if model_maps is None or reference_maps.shape[1] == model_maps.shape[1]:
        return reference_maps, model_maps
    return reference_maps.mean(1, keepdim=True), model_maps.mean(1, keepdim=True)


def attention_kl(pairs, mask: torch.Tensor) -> torch.Tensor:
    """The mean over layers of KL(P_ref ‖ P_model), averaged over heads and real query rows
    (padding keys carry no reference mass): the attention part of distill's loss."""
    real = mask.to(pairs[0][0].dtype)  # (B, N)
    total = 0.0
    for reference_maps, model_maps in pairs:
        p = reference_maps
        log_ratio = torch.log(p.clamp_min(1e-12)) - torch.log(model_maps.clamp_min(1e-12))
        rows = (p * log_ratio).sum(-1).mean(1)  # (B, N): KL per query row, head mean
        total = total + (rows * real).sum() / real.sum()
    return total / len(pairs)


def distill(spec_value, module, reference, train_inputs, heldout_inputs, *,
            reference_name: str, restarts: int = DEFAULT_RESTARTS,
            steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
            batch_size: int = DEFAULT_BATCH, seed: int = 0, bootstrap: int = BOOTSTRAP,
            attention_weight: float = 0.0, progress=None) -> DistillResult:
    """Distill mode (module docstring) on the given train and held-out inputs."""
    started = time.perf_counter()
    _check_shape(structure_of(module.Stepper), reference, spec_value)
    run = reference.run(train_inputs)
    n = int(run.embeddings.shape[0])
    if n < 4:
        raise PdelangError(f"distill mode needs at least 4 training inputs, got {n}",
                           suggestion="use --train-samples 256 or more")
    validation = max(1, n // 10)
    fit_index, check_index = np.arange(n - validation), np.arange(n - validation, n)
    targets = run.hidden_states[1:]
    mask = run.bool_mask

    def loss_of(stepper, index):
        index = torch.as_tensor(index)
        out = stepper(run.embeddings[index], run.mask[index] if run.mask is not None
                      else None, return_trajectory=True, return_attention=attention_weight > 0)
        loss = state_loss(out.states[1:], [t[index] for t in targets], mask[index])
        if attention_weight > 0:
            maps = per_layer_maps(out.attentions, len(run.attentions))
            loss = loss + attention_weight * attention_kl(
                [_maps_for_comparison(a[index], m) for a, m in zip(run.attentions, maps)],
                mask[index])
        return loss

    reports, candidates = [], []
    plateau = Plateau()
    for restart in range(restarts):
        torch.manual_seed(seed + restart)
        stepper = module.Stepper().train()
        params = [p for p in stepper.parameters()]

        def validation_loss(stepper=stepper):
            with torch.no_grad():
                return float(loss_of(stepper, check_index))

        report = adam_to_plateau(
            stepper, params, lambda index, stepper=stepper: loss_of(stepper, fit_index[index]),
            validation_loss, len(fit_index), lr=lr, batch_size=batch_size, max_steps=steps,
            plateau=plateau, seed=seed + restart,
            progress=None if progress is None else
            (lambda step, loss, r=restart: progress(r, step, loss)))
        stepper.eval()
        final = validation_loss()
        reports.append({"seed": seed + restart, "validation_loss": final,
                        **report.to_json()})
        candidates.append((final, restart, stepper))
    _, best, stepper = min(candidates, key=lambda c: (np.nan_to_num(c[0], nan=np.inf),
                                                      c[1]))
    # conditional bootstrap intervals of the scalar coefficients (weights held at the fit)
    for p in stepper.parameters():
        p.requires_grad_(False)
    scalars = scalar_parameters(stepper)
    if scalars:  # the scalars at their optimum given the weights: the interval's centre
        for p in scalars.values():
            p.requires_grad_(True)
        lbfgs_to_convergence(list(scalars.values()), lambda: loss_of(stepper, fit_index),
                             max_iterations=POLISH_ITERATIONS, tolerance=1e-7)
        for p in scalars.values():
            p.requires_grad_(False)
    intervals = bootstrap_refits(
        scalars, lambda sample: lambda: loss_of(stepper, sample), fit_index,
        lambda: flat_values(scalar_values(stepper)),
        resamples=bootstrap if scalars else 0, max_iterations=REFIT_ITERATIONS, seed=seed)

    held = reference.run(heldout_inputs)
    with torch.no_grad():
        out = call_stepper(stepper, held, return_attention=True)
    maps = per_layer_maps(out.attentions, len(held.attentions))
    compared = [_maps_for_comparison(r, m) for r, m in zip(held.attentions, maps)]
    rows = layer_metrics(held.hidden_states, [c[0] for c in compared], out.states,
                         [c[1] for c in compared], held.mask)
    model_heads = next((m.shape[1] for m in maps if m is not None), None)
    ref_heads = int(held.attentions[0].shape[1])
    heads = "per head" if model_heads in (None, ref_heads) else \
        f"head means ({model_heads} model heads vs {ref_heads} reference heads)"
    maps_of_sample = sample_maps(held.attentions, maps, held.bool_mask)
    return DistillResult(
        spec=str(spec_value.file), reference=reference_name,
        samples=int(held.embeddings.shape[0]), layers=rows, restarts=reports,
        best_restart=best,
        parameters={"model": sum(p.numel() for p in stepper.parameters()),
                    "reference": reference_layer_parameters(reference),
                    "reference_counted": "the layer stack (attention, MLP, norms) and the "
                                         "final norm; embeddings and head left out"},
        fitted=scalar_values(stepper), intervals=intervals, heads_compared=heads,
        criterion=plateau.describe(steps), train_inputs=len(fit_index),
        validation_inputs=len(check_index), seconds=time.perf_counter() - started,
        attention_weight=attention_weight,
        maps=maps_of_sample, stepper=stepper, run=held, output=out, model_maps=maps)


def format_distill(result: DistillResult) -> str:
    lines = [f"{result.spec} distilled from {result.reference} ({result.samples} held-out "
             f"samples, {result.seconds:.1f} s)",
             f"parameters: model {result.parameters['model']:,}, reference "
             f"{result.parameters['reference']:,} ({result.parameters['reference_counted']})",
             f"attention maps compared: {result.heads_compared}",
             "layer  attn cosine   hidden cosine  rel. error    CKA"]
    for r in result.layers:
        lines.append(f"{r['layer']:>5}  {r['attention_cosine']:>11.7f}  "
                     f"{r['hidden_cosine']:>13.7f}  {r['relative_error']:>10.3e}  "
                     f"{r['cka']:>9.6f}")
    lines.append(f"fit: {result.criterion}; loss = state loss"
                 + (f" + {result.attention_weight:g} · attention KL"
                    if result.attention_weight else ""))
    for i, r in enumerate(result.restarts):
        mark = " (kept)" if i == result.best_restart else ""
        state = "converged" if r["converged"] else "NOT converged (raise --steps)"
        lines.append(f"  restart {i} (seed {r['seed']}): validation loss "
                     f"{r['validation_loss']:.4g} after {r['iterations']} steps, {state}"
                     f"{mark}")
    if result.intervals:
        lines.append("coefficients, 95 % bootstrap intervals (weights held at the fit): "
                     + ", ".join(f"{k} = {v['value']:.4g} [{v['low']:.4g}, {v['high']:.4g}]"
                                 for k, v in result.intervals.items()))
    return "\n".join(lines)
