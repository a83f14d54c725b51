"""``pdelang study paper1``: the first paper's claims as tests that can fail.

The first source paper models a Transformer as a continuous PDE process and claims (A) that
the PDE's attention distributions reach cosine similarity > 0.98 with the Transformer's in
every layer, on images and text, (B) an information-bottleneck picture (the representation
compresses with depth), and (C) that the PDE misses complex nonlinear transformations.

This study measures each claim so that it could fail (the rules are fixed here, before any
run, and printed into ``results.md``):

**Claim A** holds for a model when, on every one of ≥ :data:`MIN_SEEDS` reference seeds, at
every *non-trivial* layer (a layer whose maps the model computes with weights and inputs of
its own — not one exact by construction), its held-out attention cosine is ≥
:data:`RAW_THRESHOLD`, its rescaled cosine ``(s − f)/(1 − f)`` against the strongest floor
``f`` of that layer is ≥ :data:`RESCALED_THRESHOLD`, and the paired 95 % bootstrap CI of
``s − f`` over inputs excludes 0.  It is decided for the *reduced* PDE models (weight-tied
continuous depth, and the low-rank kernel model: :data:`IMAGE_MODELS`), whose weights are
fitted to the reference's states (``validate --mode distill``).  Fit mode (the Transformer's
own weights plus D Δu) is reported beside them and marked *cannot fail*: at D = 0 it is the
Transformer.

**Claim B (compression)** holds for a reference seed when ΔI(X;T) from layer 2 to layer L is
< 0 with a CI excluding 0 at every σ of :data:`COMPRESSION_SIGMAS`, relative and absolute,
and under the whitened-PCA control
(:func:`pdelang.lab.validation.information_controls.compression`); it holds when it holds on
every seed.

**Claim C ("the PDE misses nonlinear transformations")**: a reduced model *breaks down* at a
layer when its held-out relative state error is not below the previous-state floor's (the
reference's state one layer back: "nothing happens in this layer") — the paired CI of the
difference does not lie below 0.  The report sets each layer's error beside the size of the
reference MLP's contribution ‖R(u)‖/‖u‖ there, and the reference's accuracy with the MLPs
removed beside its full accuracy.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pdelang.lab.studies.rules import (  # the study's design, fixed in advance
    ABSOLUTE_UNIT,
    COMPRESSION_SIGMAS,
    IMAGE_FIT_SPEC,
    IMAGE_MODELS,
    RAW_THRESHOLD,
    RESCALED_THRESHOLD,
    SWEEP_SIGMAS,
    TEXT_FIT_SPEC,
    TEXT_MODELS,
)
from pdelang.io import write_atomically
from pdelang.lab.data import load_digits_images, load_corpus
from pdelang.lab.reference.base import quiet_transformers
from pdelang.lab.reference.vit_digits import model_dir, train_vit_digits, read_metadata
from pdelang.lab.validation.floors import (
    floor_values,
    layer_floors,
    heads_match,
    per_sample_attention_cosine,
    per_sample_hidden_cosine,
    per_sample_relative_error,
    compare_with_floor,
)
from pdelang.lab.validation.statistics import bootstrap_mean
from pdelang.lab.validation.validate import validate
from pdelang.lab.validation.stepper_runs import scalar_parameters, run_stepper
from pdelang.interpreters.builder import build_module
from pdelang.compiler.spec.load import load_spec
from pdelang.lab.validation.distill import distill
from pdelang.lab.validation.information_controls import (
    anisotropy_control,
    compression,
    participation_ratio,
    probe_information,
    sigma_sweep,
    to_json,
)
from pdelang.lab.validation.information_flow import flattened
from pdelang.lab.reference.registry import load_reference
from pdelang.lab.studies.summary import summarize, write_report

REPO = Path(__file__).resolve().parents[3]
SPECS = REPO / "specs"


@dataclass(frozen=True)
class StudyConfig:
    """What one study runs (the defaults are the documented full run)."""

    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    subsets: int = 3  # disjoint held-out text subsets
    subset_size: int | None = None  # sentences per subset (None: a third of the split each)
    restarts: int = 2  # distill restarts per reduced model
    steps: int = 3000  # distill: at most this many Adam steps per restart
    lr: float = 1e-2
    attention_weight: float = 1.0  # distill: λ of the attention-map KL in the loss
    train_samples: int = 1438  # distill: training digits (all of them)
    # the reduced text model: 2 s per Adam step of 32 sentences on one CPU thread, so the
    # documented run fits ~45 min (256 sentences, ≤ 400 steps per restart, 4 refits)
    text_train_samples: int = 256
    text_steps: int = 400
    text_batch_size: int = 32
    text_bootstrap: int = 4
    fit_train_samples: int = 256
    fit_steps: int = 100  # fit mode: at most this many L-BFGS iterations
    fit_bootstrap: int = 10  # fit and distill: bootstrap refits for the intervals
    bootstrap: int = 2000
    compression_resamples: int = 30
    probe_samples: int = 512
    text: bool = True
    text_distill: bool = True  # the reduced text models (the slowest piece: ~45 min here)
    images: bool = True
    quick: bool = False


def quick_config(out: Path) -> StudyConfig:
    """A smoke run of every piece (minutes, not the documented numbers)."""
    return StudyConfig(out=out, seeds=(0,), subsets=1, subset_size=24, restarts=1, steps=50,
                       train_samples=256, text_train_samples=32, text_steps=20,
                       fit_train_samples=32, fit_steps=8, fit_bootstrap=2, bootstrap=200,
                       compression_resamples=3,
                       probe_samples=128, quick=True)


# ----------------------------------------------------------------------------- caching
def _piece(path: Path, compute: Callable[[], dict], log) -> dict:
    """A piece of the study: read from ``path`` if an earlier run wrote it, else computed
    and written (so an interrupted study resumes where it stopped)."""
    if path.is_file():
        log(f"reused {path}")
        return json.loads(path.read_text())
    started = time.perf_counter()
    value = compute()
    value["seconds"] = round(time.perf_counter() - started, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(_plain(value), indent=1) + "\n")
    log(f"wrote {path} ({value['seconds']} s)")
    return json.loads(path.read_text())


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


# ----------------------------------------------------------------------------- inputs
def _image_inputs(reference, split: str, n: int | None = None):
    images, labels = load_digits_images(n, split)
    return reference.inputs_from_images(images), labels.numpy()


def _text_subset(reference, subset: int, subsets: int, max_length: int = 64,
                 size: int | None = None):
    """The held-out sentences cut into ``subsets`` disjoint, equal parts (of ``size`` each if
    given); part ``subset``."""
    sentences = load_corpus("heldout")
    size = size or len(sentences) // subsets
    return reference.inputs_from_text(sentences[subset * size:(subset + 1) * size],
                                      max_length=max_length)


# ----------------------------------------------------------------------------- the reference
def _classifier(seed: int):
    """The trained ViTForImageClassification of ``vit-digits@seed`` (head and final norm)."""
    from transformers import ViTForImageClassification  # lazy: transformers

    with quiet_transformers():
        model = ViTForImageClassification.from_pretrained(str(model_dir(None, seed)))
    return model.eval()


def _accuracy_from_state(model, state: torch.Tensor, labels: np.ndarray) -> float:
    """The classifier's accuracy on a last-layer state u_L (final LayerNorm, CLS token)."""
    with torch.no_grad():
        logits = model.classifier(model.vit.layernorm(state)[:, 0])
    return float((logits.argmax(-1).numpy() == labels).mean())


def _layers_of(model):
    vit = model.vit
    return vit.layers if hasattr(vit, "layers") else vit.encoder.layer


def _last_state(model, run) -> torch.Tensor:
    """u_L: the classifier's layer stack from the reference's embeddings (under the hooks
    the caller placed), before the final norm."""
    with torch.no_grad():
        state = run.embeddings
        for layer in _layers_of(model):
            state = layer(state)
            state = state[0] if isinstance(state, tuple) else state
    return state


def _accuracy_without(model, run, labels, part: str) -> float:
    """Accuracy with every layer's ``part`` ("mlp": R(u), "attention": A[u]) output zeroed:
    the layer keeps its residual, so u ← u + A[u] (or u + R(u)) only."""
    hooks = []
    for layer in _layers_of(model):
        target = layer.mlp.fc2 if part == "mlp" else layer.attention.o_proj
        hooks.append(target.register_forward_hook(lambda m, i, o: torch.zeros_like(o)))
    try:
        state = _last_state(model, run)
    finally:
        for hook in hooks:
            hook.remove()
    return _accuracy_from_state(model, state, labels)


def _contributions(model, run) -> list[dict]:
    """Per layer, the size of each part's update relative to the layer's output state:
    ‖A[LN u]‖/‖u_ℓ‖ and ‖R(LN v)‖/‖u_ℓ‖ (Frobenius over the held-out inputs' tokens)."""
    captured: dict[str, list] = {"attention": [], "mlp": []}
    hooks = []
    for layer in _layers_of(model):
        hooks.append(layer.attention.o_proj.register_forward_hook(
            lambda m, i, o: captured["attention"].append(o.detach())))
        hooks.append(layer.mlp.fc2.register_forward_hook(
            lambda m, i, o: captured["mlp"].append(o.detach())))
    try:
        _last_state(model, run)  # the hooks capture each part's output
    finally:
        for hook in hooks:
            hook.remove()
    rows = []
    for index, after in enumerate(run.hidden_states[1:]):
        size = float(after.norm())
        rows.append({"layer": index + 1,
                     "attention": float(captured["attention"][index].norm()) / size,
                     "mlp": float(captured["mlp"][index].norm()) / size,
                     "update": float((after - run.hidden_states[index]).norm()) / size})
    return rows


def _floor_piece(reference, run, train_run, bootstrap: int) -> dict:
    mask = run.bool_mask
    floors = layer_floors(run.hidden_states, run.attentions, mask,
                          train_attentions=train_run.attentions,
                          train_mask=train_run.bool_mask, resamples=bootstrap)
    values = []
    for layer in range(1, len(run.attentions) + 1):
        v = floor_values(run.hidden_states, run.attentions, mask, layer,
                         train_attentions=train_run.attentions, train_mask=train_run.bool_mask)
        values.append({key: {name: (None if arr is None else np.asarray(arr).tolist())
                             for name, arr in v[key].items()}
                       for key in ("attention_cosine", "hidden_cosine", "relative_error")})
    return {"floors": floors, "values": values}


# ----------------------------------------------------------------------------- a model
def _model_values(result, run) -> list[dict]:
    """Per layer, a model's per-input attention cosine, hidden cosine and relative error on
    the held-out inputs (maps compared per head, or as head means when the counts differ)."""
    out = []
    mask = run.bool_mask
    for index, reference_maps in enumerate(run.attentions):
        maps = result.model_maps[index]
        state = result.output.states[index + 1]
        target = run.hidden_states[index + 1]
        out.append({
            "layer": index + 1,
            "heads_match": None if maps is None else heads_match(reference_maps, maps),
            "attention_cosine": None if maps is None else
            per_sample_attention_cosine(reference_maps, maps, mask).tolist(),
            "hidden_cosine": per_sample_hidden_cosine(target, state, mask).tolist(),
            "relative_error": per_sample_relative_error(target, state, mask).tolist(),
        })
    return out


def _against_floors(values: list[dict], floor_piece: dict, exact_layers: set[int],
                    bootstrap: int, seed: int) -> list[dict]:
    """Every layer's model values against its floors: raw, rescaled against the strongest
    attention floor, the paired CI of the difference, and the state error against the
    previous-state floor (claim C)."""
    rows = []
    for model, floors in zip(values, floor_piece["values"]):
        layer = model["layer"]
        row = {"layer": layer, "exact_by_construction": layer in exact_layers,
               "heads_match": model["heads_match"]}
        if model["attention_cosine"] is not None:
            raw = bootstrap_mean(model["attention_cosine"], resamples=bootstrap, seed=seed)
            row["attention_cosine"] = raw.to_json()
            candidates = {name: v for name, v in floors["attention_cosine"].items()
                          if v is not None}
            strongest = max(candidates, key=lambda name: float(np.mean(candidates[name])))
            row["strongest_floor"] = strongest
            row["against_floor"] = compare_with_floor(
                model["attention_cosine"], candidates[strongest], resamples=bootstrap,
                seed=seed)
            row["floors"] = {name: float(np.mean(v)) for name, v in candidates.items()}
        row["hidden_cosine"] = bootstrap_mean(model["hidden_cosine"], resamples=bootstrap,
                                              seed=seed).to_json()
        row["hidden_floor"] = compare_with_floor(
            model["hidden_cosine"], floors["hidden_cosine"]["previous_state"],
            resamples=bootstrap, seed=seed)
        row["relative_error"] = bootstrap_mean(model["relative_error"], resamples=bootstrap,
                                               seed=seed).to_json()
        row["error_against_previous_state"] = compare_with_floor(
            model["relative_error"], floors["relative_error"]["previous_state"],
            higher_is_better=False, resamples=bootstrap, seed=seed)
        rows.append(row)
    return rows


def _attention_verdict(rows: list[dict]) -> dict:
    """Claim A on one seed: every non-trivial layer passes all three tests."""
    checked = [r for r in rows if not r["exact_by_construction"] and "against_floor" in r]
    failures = []
    for r in checked:
        raw = r["attention_cosine"]["mean"]
        rescaled = r["against_floor"]["rescaled"]
        difference = r["against_floor"]["difference"]
        reasons = []
        if raw < RAW_THRESHOLD:
            reasons.append(f"raw {raw:.4f} < {RAW_THRESHOLD}")
        if rescaled is None or rescaled < RESCALED_THRESHOLD:
            reasons.append(f"rescaled {rescaled if rescaled is None else round(rescaled, 4)} "
                           f"< {RESCALED_THRESHOLD}")
        if not (difference["excludes_zero"] and difference["mean"] > 0):
            reasons.append("not above its floor (CI includes 0)")
        if reasons:
            failures.append({"layer": r["layer"], "reasons": reasons})
    return {"holds": bool(checked) and not failures, "layers_checked": [r["layer"]
                                                                         for r in checked],
            "failures": failures}


def _breakdown(rows: list[dict]) -> list[int]:
    """Claim C: the layers where the model's state error is not below the previous-state
    floor's (the paired CI of model − floor does not lie below 0)."""
    out = []
    for r in rows:
        d = r["error_against_previous_state"]["difference"]
        if not (d["excludes_zero"] and d["mean"] < 0):
            out.append(r["layer"])
    return out


# ----------------------------------------------------------------------------- pieces
def _fit_piece(spec: Path, reference_name: str, run_floor: dict, config: StudyConfig,
               samples: int, seed: int) -> dict:
    bootstrap = config.bootstrap
    result = validate(str(spec), reference_name, "fit", samples=samples,
                      train_samples=config.fit_train_samples, seed=seed,
                      steps=config.fit_steps, bootstrap=config.fit_bootstrap)
    values = _model_values(result, result.run)
    return _fit_json(spec, result, _against_floors(values, run_floor, {1}, bootstrap, seed))


def _fit_json(spec: Path, result, rows: list[dict]) -> dict:
    return {"spec": str(spec.relative_to(REPO)), "fitted": result.fitted,
            "convergence": result.convergence, "rows": rows,
            "verdict": _attention_verdict(rows),
            "parameters": {"learned": sum(p.numel() for p in
                                          _learned_scalars(result.stepper))},
            "note": "fit mode keeps every Transformer weight (at D = 0 it is the "
                    "Transformer): its confirmation cannot fail; layer 1 is exact by "
                    "construction (its attention sees u(0))"}


def _learned_scalars(stepper):
    return list(scalar_parameters(stepper).values())


class _Outputs:
    """A fitted stepper's outputs on some inputs, shaped like a validation result."""

    def __init__(self, stepper, run) -> None:
        with torch.no_grad():
            self.output, self.model_maps = run_stepper(stepper, run)


def _distill_piece(spec: Path, reference, reference_name: str, train_inputs, heldout_inputs,
                   run_floor: dict, config: StudyConfig, seed: int, steps: int,
                   classifier=None, labels=None, log=None, batch_size: int = 128,
                   bootstrap: int | None = None) -> dict:
    spec_value = load_spec(str(spec))
    module = build_module(spec_value)
    result = distill(spec_value, module, reference, train_inputs, heldout_inputs,
                     reference_name=reference_name, restarts=config.restarts, steps=steps,
                     lr=config.lr, seed=seed, attention_weight=config.attention_weight,
                     bootstrap=config.fit_bootstrap if bootstrap is None else bootstrap,
                     batch_size=batch_size,
                     progress=None if log is None else lambda restart, step, loss: log(
                         f"  {spec.name} restart {restart}: step {step}, validation loss "
                         f"{loss:.5g}"))
    values = _model_values(result, result.run)
    rows = _against_floors(values, run_floor, set(), config.bootstrap, seed)
    piece = {"spec": str(spec.relative_to(REPO)), "parameters": result.parameters,
             "restarts": [{k: v for k, v in r.items() if k != "history"}
                          for r in result.restarts],
             "best_restart": result.best_restart, "criterion": result.criterion,
             "fitted": result.fitted, "intervals": result.intervals,
             "heads_compared": result.heads_compared, "rows": rows,
             "attention_weight": result.attention_weight,
             "verdict": _attention_verdict(rows), "breakdown": _breakdown(rows)}
    if classifier is not None:
        piece["accuracy"] = _accuracy_from_state(classifier, result.output.states[-1], labels)
    piece["stepper"] = result.stepper  # popped before writing (text: other subsets)
    return piece


def _information_piece(run_test, labels_test, run_train, labels_train, config) -> dict:
    test = [flattened(s) for s in run_test.hidden_states]
    train = [flattened(s) for s in run_train.hidden_states]
    last = len(test) - 1
    sweep = sigma_sweep(test, SWEEP_SIGMAS, seed=0, absolute_unit=ABSOLUTE_UNIT)
    test_compression = compression(test, 2, last, COMPRESSION_SIGMAS,
                                   resamples=config.compression_resamples, seed=0,
                                   absolute_unit=ABSOLUTE_UNIT)
    probes = [to_json(probe_information(tr, labels_train, te, labels_test, seed=0))
              for tr, te in zip(train, test)]
    anisotropy = anisotropy_control(test, (0.3,), seed=0)
    return {"sweep": to_json(sweep), "compression": to_json(test_compression),
            "anisotropy": to_json(anisotropy),
            "participation_ratio": [participation_ratio(t) for t in test],
            "probe": probes, "from_layer": 2, "to_layer": last}


# ----------------------------------------------------------------------------- the study
def run_image_seed(seed: int, config: StudyConfig, log) -> dict:
    name = f"vit-digits@{seed}"
    folder = config.out / f"seed{seed}"
    state: dict = {}

    def reference_bits():
        if not state:
            trained = train_vit_digits(seed=seed, progress=False)  # reused when cached
            if not trained.reused:
                log(f"trained {name}: held-out accuracy {trained.accuracy:.4f} "
                    f"({trained.seconds:.0f} s)")
            reference = load_reference(name)
            train_inputs, train_labels = _image_inputs(reference, "train")
            test_inputs, test_labels = _image_inputs(reference, "heldout")
            state.update(reference=reference, train_inputs=train_inputs,
                         train_labels=train_labels, test_inputs=test_inputs,
                         test_labels=test_labels, run_train=reference.run(train_inputs),
                         run_test=reference.run(test_inputs), classifier=_classifier(seed))
        return state

    def reference_piece():
        s = reference_bits()

        metadata = read_metadata(model_dir(None, seed))
        piece = _floor_piece(s["reference"], s["run_test"], s["run_train"], config.bootstrap)
        piece.update(
            reference=name, accuracy=metadata["accuracy"], training=metadata,
            accuracy_here=_accuracy_from_state(s["classifier"], s["run_test"].hidden_states[-1],
                                               s["test_labels"]),
            accuracy_without_mlp=_accuracy_without(s["classifier"], s["run_test"],
                                                   s["test_labels"], "mlp"),
            accuracy_without_attention=_accuracy_without(s["classifier"], s["run_test"],
                                                         s["test_labels"], "attention"),
            contributions=_contributions(s["classifier"], s["run_test"]),
            parameters=s["reference"].parameter_count())
        return piece

    reference = _piece(folder / "reference.json", reference_piece, log)
    pieces = {"reference": reference}
    pieces["fit"] = _piece(folder / "fit.json", lambda: _fit_piece(
        SPECS / IMAGE_FIT_SPEC, name, reference, config, 359, seed), log)
    for key, spec in IMAGE_MODELS.items():
        def distill_piece(spec=spec):
            s = reference_bits()
            train_inputs = {k: (v[:config.train_samples] if torch.is_tensor(v) else v)
                            for k, v in s["train_inputs"].items()}
            piece = _distill_piece(SPECS / spec, s["reference"], name, train_inputs,
                                   s["test_inputs"], reference, config, seed, config.steps,
                                   s["classifier"], s["test_labels"])
            piece.pop("stepper")
            return piece
        pieces[key] = _piece(folder / f"distill_{key}.json", distill_piece, log)

    def information_piece():
        s = reference_bits()
        index = np.arange(min(config.probe_samples, len(s["train_labels"])))
        train_inputs = {k: (v[index] if torch.is_tensor(v) else v)
                        for k, v in s["train_inputs"].items()}
        run_train = s["reference"].run(train_inputs)
        return _information_piece(s["run_test"], s["test_labels"], run_train,
                                  s["train_labels"][index], config)
    pieces["information"] = _piece(folder / "information.json", information_piece, log)
    return pieces


def run_text(config: StudyConfig, log) -> dict:
    """MiniLM on ``config.subsets`` disjoint held-out subsets: the floors per subset; fit
    mode and each reduced model fitted once (on training sentences, which no subset holds)
    and evaluated on every subset."""
    folder = config.out / "text"
    state: dict = {}

    def bits():
        if not state:
            reference = load_reference("minilm")
            tests = [_text_subset(reference, k, config.subsets, size=config.subset_size)
                     for k in range(config.subsets)]
            train = load_corpus("train", config.text_train_samples)
            train_inputs = reference.inputs_from_text(train, max_length=64)
            state.update(reference=reference, tests=tests, train_inputs=train_inputs,
                         runs=[reference.run(t) for t in tests],
                         run_train=reference.run(train_inputs))
        return state

    floors = []
    for k in range(config.subsets):
        def reference_piece(k=k):
            s = bits()
            piece = _floor_piece(s["reference"], s["runs"][k], s["run_train"], config.bootstrap)
            piece.update(reference="minilm", subset=k, sentences=int(
                s["runs"][k].embeddings.shape[0]), parameters=s["reference"].parameter_count())
            return piece
        floors.append(_piece(folder / f"reference{k}.json", reference_piece, log))

    def per_subset(stepper, make_rows):
        s = bits()
        return [make_rows(_model_values(_Outputs(stepper, run), run), floors[k])
                for k, run in enumerate(s["runs"])]

    def fit_piece():
        s = bits()
        result = validate(str(SPECS / TEXT_FIT_SPEC), "minilm", "fit", samples=2,
                          train_samples=32, max_length=64, seed=0, steps=config.fit_steps,
                          bootstrap=config.fit_bootstrap)
        subsets = per_subset(result.stepper, lambda v, f: _against_floors(
            v, f, {1}, config.bootstrap, 0))
        del s
        return {"subsets": [_fit_json(SPECS / TEXT_FIT_SPEC, result, rows)
                            for rows in subsets]}
    pieces = {"reference": floors, "fit": _piece(folder / "fit.json", fit_piece, log)}
    for key, spec in (TEXT_MODELS.items() if config.text_distill else ()):
        def distill_piece(spec=spec):
            s = bits()
            piece = _distill_piece(SPECS / spec, s["reference"], "minilm", s["train_inputs"],
                                   s["tests"][0], floors[0], config, 0, config.text_steps,
                                   log=log, batch_size=config.text_batch_size,
                                   bootstrap=config.text_bootstrap)
            stepper = piece.pop("stepper")
            subsets = per_subset(stepper, lambda v, f: _against_floors(
                v, f, set(), config.bootstrap, 0))
            piece["subsets"] = [{"rows": rows, "verdict": _attention_verdict(rows),
                                 "breakdown": _breakdown(rows)} for rows in subsets]
            return piece
        pieces[key] = _piece(folder / f"distill_{key}.json", distill_piece, log)
    return pieces


def run_study(config: StudyConfig, log=print) -> dict:
    """Every piece (reused when already written), then ``summary.json`` and
    ``results.md`` in ``config.out``."""
    started = time.perf_counter()
    images = {seed: run_image_seed(seed, config, log) for seed in config.seeds} \
        if config.images else {}
    text = run_text(config, log) if config.text else {}
    summary = summarize(images, text, config)
    summary["seconds_this_run"] = round(time.perf_counter() - started, 1)
    write_report(summary, config.out)
    return summary
