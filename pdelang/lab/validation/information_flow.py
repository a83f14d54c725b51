"""``validate --metrics info``: information flow per layer, reference and PDE model side by
side (the estimators are :mod:`pdelang.lab.information`; this module applies them).

For every layer boundary ℓ = 0 … L (ℓ = 0 is u(0), the reference's own embeddings, shared by
both models) and both models:

* **I(T_ℓ; Y)** — the V-usable information of a logistic-regression probe (Xu et al. 2020):
  fitted on the representations of ``probe_samples`` *train* inputs, its cross-entropy
  measured on the held-out inputs; labels: the digit (images) or the pydoc topic of the
  sentence (:func:`pdelang.lab.data.load_labelled_corpus`).  None for a user's ``--text``.
* **I(X; T_ℓ + Z)**, Z ~ N(0, σ²I) — Goldfeld et al.'s sample-propagation estimator on the
  held-out representations (biased low, at most log₂ n: both stated in the output).

A representation T_ℓ is, by default (``representation="auto"``), the whole state flattened
(``flat``: N·C features) when every input has the same real tokens (images), and the *mean
over the real tokens* (``mean``: C features) otherwise (text of different lengths; a mean
over the patches of an image would discard where things are, which is what a digit is).

The noise: ``sigma_scale="relative"`` (default) measures ``I(X; T/s + Z)`` with ``s`` the
RMS distance of T_ℓ's held-out samples to their mean (``s² = Σ over features of the
variance``), i.e. σ is in units of the layer's own spread (samples are ≈ √2 apart), so
layers of growing scale (a residual stream) are comparable; ``"absolute"`` uses σ as given
(Goldfeld et al.'s setting, bounded activations).

Per layer and head: the **attention entropy** (bits, mean over real query rows).  And the
**token information flow** ‖∂u_L(x)/∂u_0(y)‖_F of the whole stack (before any final norm),
for the first ``flow_samples`` held-out inputs, reference and PDE model, with their cosine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pdelang.lab import information
from pdelang.errors import PdelangError
from pdelang.lab.validation.floors import flow_floor_values

# relative σ: on a small ViT on 256 digits, I(X;T) is 5–6 bits of log2 256 = 8 at 0.3;
# at 0.1 every layer saturates at log2 n, at 1 every layer is below 1 bit (measured)
DEFAULT_SIGMA = 0.3
REPRESENTATIONS = ("auto", "flat", "mean")
SIGMA_SCALES = ("relative", "absolute")
DEFAULT_PROBE_SAMPLES = 512
DEFAULT_FLOW_SAMPLES = 4


@dataclass
class InformationFlow:
    """What ``--metrics info`` measured (plain data; ``to_json`` for results.json)."""

    sigma: float
    labels: str | None  # what Y is, or None without labels
    layers: list[dict]  # per boundary ℓ: {"layer", "reference": {...}, "model": {...}}
    attention_entropy: dict  # {"reference": [[bits per head] per layer], "model": ...}
    flow: dict  # {"samples", "cosine", "per_sample"}
    estimators: dict  # name → the estimator and its bias, as the library states them
    flow_maps: tuple | None = field(default=None, repr=False)  # sample 0: (reference, model)

    representation: str = "mean"
    sigma_scale: str = "relative"

    def to_json(self) -> dict:
        return {"units": "bits", "sigma": self.sigma, "sigma_scale": self.sigma_scale,
                "labels": self.labels, "representation": self.representation,
                "layers": self.layers, "attention_entropy": self.attention_entropy,
                "flow": self.flow, "estimators": self.estimators}


def pooled(state: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """``(B, N, C)`` → ``(B, C)``: the mean over the real tokens of each input (float64)."""
    weights = mask.to(torch.float64)[..., None]  # (B, N, 1)
    total = (state.detach().to(torch.float64) * weights).sum(1)
    return (total / weights.sum(1).clamp_min(1.0)).numpy()


def flattened(state: torch.Tensor) -> np.ndarray:
    """``(B, N, C)`` → ``(B, N·C)`` (float64)."""
    return state.detach().to(torch.float64).reshape(state.shape[0], -1).numpy()


def per_layer(states, mask, representation: str) -> list[np.ndarray]:
    if representation == "flat":
        return [flattened(s) for s in states]
    return [pooled(s, mask) for s in states]


def choose_representation(representation: str, *masks: torch.Tensor) -> str:
    """``auto`` → ``flat`` when every input of every mask has the same real tokens."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}")
    first = masks[0][0]  # (N,): every input of every mask must equal it
    same = all(m.shape[1] == first.shape[0] and bool((m == first).all()) for m in masks)
    if representation == "flat" and not same:
        raise PdelangError("--representation flat needs the same real tokens in every input "
                           "(text of different lengths has not)",
                           suggestion="use --representation mean (or auto)")
    if representation == "auto":
        return "flat" if same else "mean"
    return representation


def spread(features: np.ndarray) -> float:
    """RMS distance of ``(n, d)`` samples to their mean: sqrt(Σ over features of the
    variance).  In units of it, two samples are about √2 apart in any dimension, so a
    relative σ means the same overlap of the noisy samples for d = C or d = N·C."""
    return float(np.sqrt(features.var(axis=0).sum()))


def _expand(inputs: dict, index: int, copies: int) -> dict:
    """Sample ``index`` of a batch of inputs, repeated ``copies`` times."""
    out = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1:
            piece = value[index:index + 1]
            out[key] = piece.expand(copies, *piece.shape[1:])
        else:
            out[key] = value
    return out


def token_flows(reference, stepper, inputs: dict, run, samples: int) -> tuple:
    """(reference maps, model maps) ``(S, N, N)`` for the first ``samples`` inputs."""
    reference_maps, model_maps = [], []
    for b in range(min(samples, run.embeddings.shape[0])):
        u0 = run.embeddings[b:b + 1]
        mask = run.bool_mask[b:b + 1]

        def through_reference(u, m=None, b=b):
            return reference.propagate(_expand(inputs, b, u.shape[0]), u)

        def through_model(u, m=None):
            return stepper(u, m, return_trajectory=True).states[-1]

        reference_maps.append(information.token_flow(through_reference, u0, mask)[0])
        model_maps.append(information.token_flow(through_model, u0, mask)[0])
    return torch.stack(reference_maps), torch.stack(model_maps)


def layer_information(states_train, states_test, labels_train, labels_test, sigma, layer,
                      sigma_scale) -> dict:
    """I(X; T_ℓ + Z) and (with labels) I(T_ℓ; Y) of layer ``layer``, in bits."""
    row: dict = {}
    scale = spread(states_test[layer]) if sigma_scale == "relative" else 1.0
    if scale == 0.0:  # constant representation (a CLS token before the first layer)
        scale = 1.0
    mi = information.sample_propagation_mi(states_test[layer] / scale, sigma)
    row["spread"] = spread(states_test[layer])
    row["i_xt_bits"] = mi["bits"]
    row["i_xt_standard_error_bits"] = mi["standard_error_bits"]
    row["i_xt_max_bits"] = mi["max_bits"]
    if labels_train is not None:
        probe = information.usable_information(states_train[layer], labels_train,
                                               states_test[layer], labels_test)
        row["i_ty_bits"] = probe["bits"]
        row["probe_accuracy"] = probe["accuracy"]
        row["label_entropy_bits"] = probe["entropy_bits"]
    return row


def measure(reference, stepper, *, run_test, out_test, maps_test, inputs_test,
            labels_test, run_train=None, out_train=None, labels_train=None,
            sigma: float = DEFAULT_SIGMA, flow_samples: int = DEFAULT_FLOW_SAMPLES,
            label_name: str | None = None, representation: str = "auto",
            sigma_scale: str = "relative") -> InformationFlow:
    """Every quantity of the module docstring, from runs the caller already made.

    ``run_*``: the reference's :class:`~pdelang.lab.reference.base.ReferenceRun`; ``out_*``:
    the stepper's trajectory on the same embeddings; ``maps_test``: the stepper's last
    attention map per layer (None for a layer without attention)."""
    if sigma_scale not in SIGMA_SCALES:
        raise ValueError(f"sigma_scale must be one of {SIGMA_SCALES}")
    mask_test = run_test.bool_mask
    masks = [mask_test] + ([run_train.bool_mask] if labels_train is not None else [])
    representation = choose_representation(representation, *masks)
    reference_test = per_layer(run_test.hidden_states, mask_test, representation)
    model_test = per_layer(out_test.states, mask_test, representation)
    reference_train = model_train = None
    if labels_train is not None:
        mask_train = run_train.bool_mask
        reference_train = per_layer(run_train.hidden_states, mask_train, representation)
        model_train = per_layer(out_train.states, mask_train, representation)
    labels = None if labels_train is None else np.asarray(labels_train)
    targets = None if labels_test is None else np.asarray(labels_test)
    rows = []
    for layer in range(len(reference_test)):
        rows.append({
            "layer": layer,
            "reference": layer_information(reference_train, reference_test, labels, targets,
                                           sigma, layer, sigma_scale),
            "model": layer_information(model_train, model_test, labels, targets, sigma, layer,
                                       sigma_scale)})
    entropy = {
        "reference": [information.attention_entropy(a, mask_test).tolist()
                      for a in run_test.attentions],
        "model": [None if m is None else information.attention_entropy(m, mask_test).tolist()
                  for m in maps_test]}
    flow = {"samples": 0, "cosine": None, "per_sample": []}
    flow_maps = None
    if flow_samples > 0:
        reference_maps, model_maps = token_flows(reference, stepper, inputs_test, run_test,
                                                 flow_samples)
        count = reference_maps.shape[0]
        masks = mask_test[:count]
        per_sample = [information.flow_cosine(reference_maps[i], model_maps[i],
                                              masks[i:i + 1]) for i in range(count)]

        floor = flow_floor_values(reference_maps, masks)  # the all-ones flow map
        flow = {"samples": count, "cosine": float(np.mean(per_sample)),
                "per_sample": per_sample, "floor": float(np.mean(floor)),
                "floor_per_sample": [float(v) for v in floor],
                "floor_what": "an all-ones token-flow map (every token affects every token "
                              "equally)",
                "norm": "Frobenius norm of the C×C block of ∂u_L(x)/∂u_0(y), before any "
                        "final norm"}
        length = int(masks[0].sum())
        flow_maps = (reference_maps[0, :length, :length], model_maps[0, :length, :length])
    noise = "times each layer's RMS spread" if sigma_scale == "relative" else "absolute"
    estimators = {
        "I(X;T)": f"sample propagation (Goldfeld et al. 2019), σ = {sigma:g} "
                  f"({noise}), "
                  f"n = {len(reference_test[0])}: biased low in expectation (concavity of "
                  f"entropy), at most log2 n = {math.log2(len(reference_test[0])):.2f} bits",
        "I(T;Y)": None if labels is None else
        "V-usable information (Xu et al. 2020): H(Y) of the train labels minus the held-out "
        "cross-entropy of a logistic-regression probe; a lower bound up to estimation error, "
        "negative when the probe overfits"}
    return InformationFlow(sigma=sigma, labels=label_name, layers=rows,
                           attention_entropy=entropy, flow=flow, estimators=estimators,
                           flow_maps=flow_maps, representation=representation,
                           sigma_scale=sigma_scale)


def format_information(info: InformationFlow) -> str:
    """The per-layer table: I(X;T) and I(T;Y), reference → PDE, in bits."""
    has_labels = info.labels is not None
    what = "state flattened" if info.representation == "flat" else "mean over real tokens"
    lines = [f"information flow (bits; T = {what}; σ = {info.sigma:g}"
             + (" × the layer's spread" if info.sigma_scale == "relative" else "")
             + (f"; Y = {info.labels}" if has_labels else "; no labels: I(T;Y) not measured")
             + ")",
             "layer  I(X;T) ref  I(X;T) PDE" + ("  I(T;Y) ref  I(T;Y) PDE  probe acc ref/PDE"
                                               if has_labels else "")]
    for row in info.layers:
        ref, model = row["reference"], row["model"]
        line = f"{row['layer']:>5}  {ref['i_xt_bits']:>10.3f}  {model['i_xt_bits']:>10.3f}"
        if has_labels:
            line += (f"  {ref['i_ty_bits']:>10.3f}  {model['i_ty_bits']:>10.3f}"
                     f"  {ref['probe_accuracy']:.3f}/{model['probe_accuracy']:.3f}")
        lines.append(line)
    lines.append("attention entropy (bits, mean over heads) ref → PDE: " + ", ".join(
        f"L{i + 1} {np.mean(r):.2f}→" + ("—" if m is None else f"{np.mean(m):.2f}")
        for i, (r, m) in enumerate(zip(info.attention_entropy["reference"],
                                       info.attention_entropy["model"]))))
    if info.flow["samples"]:
        floor = info.flow.get("floor")
        rescaled = "" if floor is None or floor >= 1 else \
            f", rescaled {(info.flow['cosine'] - floor) / (1 - floor):.4f}"
        lines.append(f"token flow ‖∂u_L(x)/∂u_0(y)‖: cosine(reference, PDE) = "
                     f"{info.flow['cosine']:.4f} over {info.flow['samples']} samples"
                     + ("" if floor is None else
                        f" (floor: an all-ones map scores {floor:.4f}{rescaled})"))
    for name, text in info.estimators.items():
        if text:
            lines.append(f"{name}: {text}")
    return "\n".join(lines)
