"""``pdelang.validate``: compare a compiled spec with a reference Transformer, layer by layer.

Modes
-----
``exact``       the spec configured as the reference, with the reference's weights, must
                reproduce it: per-layer relative error ≤ 1e-5 and attention cosine ≥ 0.99999.
                One Lie–Trotter step of Δt = 1 per layer: a Δt ≠ 1, more substeps or another
                scheme are reported as mismatches, with the overrides.  Terms besides
                attention and MLP (diffusion, …) are the PDE's additions, not the
                Transformer's: exact mode switches them off and lists them (``left_out``).
``continuous``  the same weights under the spec's own continuous model (diffusion D > 0,
                ``substeps > 1``, …): how far the continuous model departs.  No pass/fail.
``fit``         the reference's weights stay frozen; only the spec's *learnable scalar
                parameters* (e.g. D and α of specs/master.yaml) are fitted, with Adam, to the
                reference's per-layer states on training text; metrics on held-out text.
``depth``       the continuous-depth limit: the same weights, substeps 1, 2, 4, … 64 per
                layer, against an adaptive dopri5 solution of the ODE the refinements
                converge to (:mod:`pdelang.lab.validation.depth`).

The reference's own embedding output is u(0); its attention mask is passed through.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable

import numpy as np
import torch

from pdelang.interpreters.builder import structure_of, build_module
from pdelang.interpreters.accelerate import (
    PrecisionWarning,
    precision,
    REDUCED,
    check_dtype,
    compile_stepper,
)
from pdelang.lab.validation.stepper_runs import (
    call_stepper,
    flat_values,
    run_stepper,
    sample_maps,
    scalar_parameters,
    scalar_values,
)
from pdelang.errors import PdelangError
from pdelang.lab.metrics import layer_metrics, linear_cka
from pdelang.lab.validation.weights import (
    EXTRA_TERMS,
    complete_hint,
    exact_mismatches,
    load_reference_weights,
    mismatch_error,
    mismatches,
)
from pdelang.lab.reference.registry import load_reference
from pdelang.lab.data import load_digits_images, load_labelled_corpus, read_text_file, load_corpus
from pdelang.lab.validation.fitting import bootstrap_refits, lbfgs_to_convergence, state_loss
from pdelang.compiler.spec.load import load_spec
from pdelang.lab.validation.depth import check_ode
from pdelang.lab.validation import distill as D, depth, information_flow as flow
from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.schemes import SCHEMES
from pdelang.lab.validation.floors import floor_values, state_floors
from pdelang.lab.validation.information_flow import format_information
from pdelang.lab.validation.plots import write_plots as write

EXACT_RELATIVE_ERROR = 1e-5
EXACT_ATTENTION_COSINE = 0.99999
MODES = ("exact", "continuous", "fit", "depth", "distill")


@dataclass
class ValidationResult:
    spec: str
    reference: str
    mode: str
    samples: int
    layers: list[dict]
    passed: bool | None  # None: no pass/fail in this mode
    tolerances: dict = field(default_factory=dict)
    fitted: dict = field(default_factory=dict)
    fit_history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    maps: tuple | None = None  # (reference maps, model maps) of sample 0 for plots
    problems: list[dict] = field(default_factory=list)  # exact mode: Δt, substeps, scheme …
    warnings: list[str] = field(default_factory=list)  # the spec's analysis warnings
    hint: str | None = None  # overrides that fix every problem at once
    information: object = None  # --metrics info: an information_flow.InformationFlow
    left_out: list[str] = field(default_factory=list)  # exact mode: terms switched off
    convergence: dict = field(default_factory=dict)  # fit mode: criterion, intervals, D → 0
    # in memory only (a study's floors and intervals need them; not in to_json)
    stepper: object = field(default=None, repr=False)
    run: object = field(default=None, repr=False)
    output: object = field(default=None, repr=False)
    model_maps: list = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        def clean(value):
            return None if isinstance(value, float) and not math.isfinite(value) else value
        return {
            "spec": self.spec, "reference": self.reference, "mode": self.mode,
            "samples": self.samples, "passed": self.passed, "tolerances": self.tolerances,
            "layers": [{k: clean(v) for k, v in row.items()} for row in self.layers],
            "fitted": self.fitted, "fit_loss": self.fit_history, "seconds": self.seconds,
            "problems": self.problems, "hint": self.hint, "warnings": self.warnings,
            "left_out": self.left_out, "convergence": self.convergence,
        } | ({"information": self.information.to_json()} if self.information else {})


def _load_reference(name: str):
    try:
        return load_reference(name)
    except ValueError as exc:  # a NotTrainedError names the command that trains it
        raise PdelangError(str(exc), suggestion=getattr(
            exc, "suggestion", "see `pdelang validate --help` for references")) from None
    except Exception as exc:  # a user's hf:PATH directory can be broken in many ways
        if not name.strip().lower().startswith("hf:"):
            raise
        raise PdelangError(f"cannot load {name}: {type(exc).__name__}: {exc}",
                           suggestion="point hf: at a directory saved with save_pretrained()") \
            from None


def _inputs(reference, samples: int, split: str, text_file: str | None, max_length: int):
    return _labelled_inputs(reference, samples, split, text_file, max_length)[0]


def _labelled_inputs(reference, samples: int, split: str, text_file: str | None,
                     max_length: int, labelled: bool = False):
    """(inputs, labels or None, what the labels are): digits with their digit; with
    ``labelled``, text from the labelled corpus (a sentence's pydoc topic); a user's
    ``--text`` has no labels."""
    if reference.modality == "image":
        images, labels = load_digits_images(samples, split)
        return reference.inputs_from_images(images), labels.numpy(), "the digit (10 classes)"
    if labelled and not text_file:
        sentences, labels, names = load_labelled_corpus(split, samples)
        return (reference.inputs_from_text(sentences, max_length=max_length),
                np.asarray(labels), f"the sentence's pydoc topic ({len(names)} classes)")
    if text_file:
        try:
            sentences = read_text_file(text_file)
        except OSError as exc:
            raise PdelangError(f"cannot read --text {text_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PdelangError(f"--text {text_file} is not UTF-8 text") from None
        except ValueError as exc:
            raise PdelangError(f"--text {text_file}: {exc}") from None
        if not sentences:
            raise PdelangError(f"--text {text_file} holds no sentences")
        cut = max(1, len(sentences) // 2)
        sentences = sentences[:cut] if split == "train" else (sentences[cut:] or sentences)
        sentences = sentences[:samples]
    else:
        sentences = load_corpus(split, samples)
    return reference.inputs_from_text(sentences, max_length=max_length), None, None


def _available(reference, split: str, text: str | None) -> int:
    """How many inputs the split has (a user's --text: as many as asked)."""
    if text:
        return 1 << 30
    if reference.modality == "image":
        return len(load_digits_images(None, split)[1])
    return len(load_corpus(split))


#: Fit mode's L-BFGS: at most this many iterations, and the relative change of the loss
#: in one iteration that counts as converged.
FIT_ITERATIONS = 100
FIT_TOLERANCE = 1e-7
#: Bootstrap refits (resampled training inputs, warm-started at the fit) for the intervals.
FIT_BOOTSTRAP = 10
#: A positive coefficient below this is at the boundary of its range (D → 0).
AT_ZERO = 1e-4


def _positive_names(stepper) -> list[str]:
    structure = structure_of(stepper)
    return [name for name, info in structure["parameters"].items()
            if info["positive"] and info["learnable"] and not info["per_layer"]]


def _fit(stepper, reference, inputs, steps: int, lr: float, progress=None,
         dtype: str = "float32", bootstrap: int = FIT_BOOTSTRAP, seed: int = 0) -> dict:
    """The spec's learnable scalars fitted with L-BFGS to the reference's per-layer states
    (:mod:`pdelang.lab.validation.fitting`; ``steps`` caps the iterations, ``lr`` is unused by
    L-BFGS and kept for the command line), then ``bootstrap`` refits on resampled inputs for
    percentile intervals, and for every positive coefficient the loss with it at exactly 0:
    when that is no worse, the optimum is the boundary (D → 0) and the report says so."""
    del lr
    params = scalar_parameters(stepper)
    if not params:
        raise PdelangError("fit mode needs learnable scalar parameters in the spec",
                           suggestion="declare e.g. D: {value: 0.1, learnable: true}")
    for p in stepper.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    run = reference.run(inputs)
    targets = run.hidden_states[1:]

    def loss_on(index=None):
        def loss():
            with precision(dtype, "cpu"):
                out = call_stepper(stepper, run)
            states = out.states[1:]
            if index is None:
                return state_loss(states, targets, run.bool_mask)
            return state_loss([s[index] for s in states], [t[index] for t in targets],
                              run.bool_mask[index])
        return loss

    report = lbfgs_to_convergence(list(params.values()), loss_on(), max_iterations=steps,
                                  tolerance=FIT_TOLERANCE, progress=progress)
    point = flat_values(scalar_values(stepper))
    n = int(run.embeddings.shape[0])
    intervals = bootstrap_refits(
        params, lambda sample: loss_on(torch.as_tensor(sample)), np.arange(n),
        lambda: flat_values(scalar_values(stepper)), resamples=bootstrap if n > 1 else 0,
        max_iterations=min(10, steps), seed=seed)
    boundary = {}
    with torch.no_grad():
        fitted_loss = float(loss_on()())
        for name in _positive_names(stepper):
            original = stepper.shared.parametrizations[name].original
            kept = original.clone()
            original.fill_(-1e4)  # softplus(−1e4) = 0 exactly: the term switched off
            at_zero = float(loss_on()())
            original.copy_(kept)
            value = point[name]
            boundary[name] = {
                "value": value, "loss_at_fit": fitted_loss, "loss_at_zero": at_zero,
                "optimum_at_zero": bool(value < AT_ZERO or at_zero <= fitted_loss),
            }
            if boundary[name]["optimum_at_zero"] and name in intervals:
                # the optimum is the boundary: the interval reaches it, whatever the refits
                # (warm-started at a point on the way to 0) did
                intervals[name] = {**intervals[name], "low": 0.0,
                                   "note": f"optimum at the boundary {name} → 0"}
    for p in stepper.parameters():
        p.requires_grad_(False)
    return {"report": report, "intervals": intervals, "boundary": boundary,
            "bootstrap": bootstrap, "train_inputs": n}


def validate(spec, reference: str = "minilm", mode: str = "exact", *,
             overrides: Iterable[str] = (), samples: int = 64, text: str | None = None,
             max_length: int = 128, steps: int | None = None, lr: float | None = None,
             train_samples: int | None = None, seed: int = 0, progress=None, compile: bool = False,
             dtype: str = "float32", levels=None, rtol: float | None = None,
             atol: float | None = None, metrics: Iterable[str] = (),
             sigma: float | None = None, probe_samples: int | None = None,
             flow_samples: int | None = None, sigma_scale: str = "relative",
             representation: str = "auto", restarts: int = 3, batch_size: int = 128,
             attention_weight: float = 0.0, bootstrap: int | None = None):
    """Validate a spec against a reference (see the module docstring for the modes).

    ``compile``: the stepper compiled with ``torch.compile`` (one warning and uncompiled
    where it cannot be); ``dtype`` ``bfloat16``/``float16``: the stepper under autocast
    (the reference stays float32) — continuous and fit mode only, exact mode's 1e-5
    tolerance is a float32 one.  ``mode="depth"`` returns a
    :class:`~pdelang.lab.validation.depth.DepthResult` (``levels``, ``rtol``, ``atol``: the
    refinements and the adaptive solver's tolerances).  ``metrics=("info",)`` adds the
    information flow per layer (:mod:`pdelang.lab.validation.information_flow`: ``sigma``,
    ``probe_samples`` train inputs for the probe, ``flow_samples`` inputs for the flow)."""
    if mode not in MODES:
        raise PdelangError(f"unknown mode '{mode}'", suggestion="use exact, continuous or fit")
    if dtype not in ("float32",) + REDUCED:
        raise PdelangError(f"--dtype {dtype}: validate runs float32, bfloat16 or float16",
                           suggestion="the reference runs in float32; use --dtype float32")
    if mode == "depth" and (dtype != "float32" or compile):
        raise PdelangError("--mode depth runs in float64 (its distances are discretization "
                           "errors, not round-off); --dtype and --compile do not apply",
                           suggestion="drop --dtype/--compile")
    if dtype in REDUCED and mode == "exact":
        raise PdelangError(f"--dtype {dtype} with --mode exact: exact mode's tolerances "
                           f"(relative error ≤ {EXACT_RELATIVE_ERROR:g}) are float32 ones, "
                           f"which {dtype} (about {3 if dtype == 'float16' else 2} significant "
                           "digits) cannot meet",
                           suggestion=f"use --mode continuous to see how far {dtype} departs "
                                      "from the reference, or --dtype float32")
    slow = check_dtype(dtype, "cpu")
    if slow:
        warnings.warn(f"--dtype {dtype}: {slow}", PrecisionWarning, stacklevel=2)
    started = time.perf_counter()
    spec_value = load_spec(spec, overrides) if not hasattr(spec, "raw") else spec
    module = build_module(spec_value)
    if mode == "depth":  # before the reference loads: a spec without an ODE limit is an error
        check_ode(spec_value, module.COMPILATION.discrete.program)
    ref = _load_reference(reference)
    if mode == "distill":
        train = min(train_samples or D.DEFAULT_TRAIN_SAMPLES, _available(ref, "train", text))
        result = D.distill(
            spec_value, module, ref, _inputs(ref, train, "train", text, max_length),
            _inputs(ref, samples, "heldout", text, max_length), reference_name=reference,
            restarts=restarts, steps=steps if steps is not None else D.DEFAULT_STEPS,
            lr=lr or D.DEFAULT_LR,
            batch_size=batch_size, seed=seed, attention_weight=attention_weight,
            progress=progress, **({} if bootstrap is None else {"bootstrap": bootstrap}))
        result.warnings = list(module.COMPILATION.analysis.warnings)
        result.seconds = time.perf_counter() - started
        return result

    def against_reference(spec_value, module):
        """The stepper (seeded), what keeps it from carrying the reference's weights, and
        exact mode's problems: one Lie–Trotter step of Δt = 1 per layer — said explicitly,
        and part of the one complete hint when something else does not fit either."""
        torch.manual_seed(seed)
        stepper = module.Stepper().eval()
        structure = structure_of(stepper)
        found, names = mismatches(structure, ref, spec_value, exact=mode == "exact")
        problems = exact_mismatches(structure, ref, spec_value, names) \
            if mode == "exact" and names else []
        return stepper, found, problems

    stepper, found, problems = against_reference(spec_value, module)
    left_out: list[str] = []
    extra = next((p for p in problems if p.what == EXTRA_TERMS), None)
    if extra is not None and not hasattr(spec, "raw"):
        # exact mode checks the spec's Transformer part: the terms the reference does not
        # have (diffusion, …) are switched off — and listed; continuous and fit keep them
        left_out = str(extra.ours).split(", ")
        spec_value = load_spec(spec, [*overrides, *(f"{k}={v}" for k, v in extra.settings)])
        module = build_module(spec_value)
        stepper, found, problems = against_reference(spec_value, module)
    if found:
        raise mismatch_error(found, ref, spec_value, problems)
    load_reference_weights(stepper, ref, spec_value)
    if mode == "depth":
        result = depth.continuous_limit(
            spec_value, ref, _inputs(ref, samples, "heldout", text, max_length),
            reference_name=reference, levels=levels or depth.DEFAULT_LEVELS,
            rtol=rtol or depth.DEFAULT_RTOL, atol=atol or depth.DEFAULT_ATOL,
            progress=progress)
        result.warnings = list(module.COMPILATION.analysis.warnings)
        result.seconds = time.perf_counter() - started
        return result
    if compile:
        compile_stepper(stepper)
    history: list[float] = []
    fit_details: dict = {}
    if mode == "fit":
        train_inputs = _inputs(ref, train_samples or 32, "train", text, max_length)
        fit_details = _fit(stepper, ref, train_inputs, steps or FIT_ITERATIONS, lr, progress,
                           dtype, seed=seed,
                           bootstrap=FIT_BOOTSTRAP if bootstrap is None else bootstrap)
        history = fit_details["report"].history
    info = "info" in tuple(metrics)
    inputs, labels, label_name = _labelled_inputs(ref, samples, "heldout", text, max_length,
                                                  labelled=info)
    run = ref.run(inputs)
    with torch.no_grad(), precision(dtype, "cpu"):
        out, maps = run_stepper(stepper, run)
    information = None
    if info:
        information = _information(ref, stepper, run, out, maps, inputs, labels, label_name,
                                   text, max_length, dtype, sigma, probe_samples,
                                   flow_samples, sigma_scale, representation)
    rows = layer_metrics(run.hidden_states, run.attentions, out.states, maps, run.mask)
    floor_run = ref.run(_inputs(ref, min(FLOOR_TRAIN_INPUTS, _available(ref, "train", text)),
                                "train", text, max_length))
    _add_floors(rows, run, floor_run, _exact_first_layer(structure_of(stepper)))
    passed = None
    tolerances = {}
    if mode == "exact":
        tolerances = {"relative_error": EXACT_RELATIVE_ERROR,
                      "attention_cosine": EXACT_ATTENTION_COSINE}
        final = layer_metrics([run.final_state], [run.attentions[-1]], [out.state],
                              [maps[-1]], run.mask)[0]["relative_error"]
        for row in rows:
            row["passed"] = bool(row["relative_error"] <= EXACT_RELATIVE_ERROR
                                 and row["attention_cosine"] >= EXACT_ATTENTION_COSINE)
        passed = all(r["passed"] for r in rows) and final <= EXACT_RELATIVE_ERROR
        tolerances["final_state_relative_error"] = final
    maps_of_sample = sample_maps(run.attentions, maps, run.bool_mask)
    return ValidationResult(
        spec=str(spec_value.file), reference=reference, mode=mode,
        samples=int(run.embeddings.shape[0]), layers=rows, passed=passed,
        tolerances=tolerances, fitted=scalar_values(stepper) if mode != "exact" else {},
        fit_history=history, seconds=time.perf_counter() - started, maps=maps_of_sample,
        problems=[m.to_json(ref.name) for m in problems],
        warnings=list(module.COMPILATION.analysis.warnings),
        hint=complete_hint(problems, spec_value) if problems else None,
        information=information, left_out=left_out,
        convergence=_convergence_json(fit_details), stepper=stepper, run=run, output=out,
        model_maps=maps)


#: Training inputs whose reference maps make the dataset-mean floor (never the evaluated ones).
FLOOR_TRAIN_INPUTS = 64


def _exact_first_layer(structure: dict) -> bool:
    """Whether layer 1's recorded attention is the reference's by construction: one
    splitting step per layer whose first sub-step is the attention's term sees u(0) itself
    (a pre-norm or no norm in front), so with the reference's weights its maps are the
    reference's whatever the other terms do."""
    attention = [name for name, m in structure["modules"].items()
                 if OPERATORS[m["op"]].records_attention]
    first = structure["split_order"][0] if structure["split_order"] else None
    splitting = SCHEMES[structure["scheme"]].kind == "splitting"
    return bool(attention and splitting and structure["substeps"] == 1
                and first is not None and attention[0].startswith(first + "_")
                and (structure["norm"]["placement"] == "pre"
                     or structure["norm"]["kind"] == "none"))


def _add_floors(rows: list[dict], run, train_run, exact_first: bool) -> None:
    """Each row gains the floors of :mod:`pdelang.lab.validation.floors` (means over the
    evaluated inputs): every attention floor, the strongest one and the rescaled attention
    cosine (s − f)/(1 − f) against it, the hidden-cosine and CKA floors of the identity
    dynamics u_ℓ = u₀ and of the previous state, and whether the layer is exact by
    construction (then it does not count toward "every layer")."""
    for layer, row in enumerate(rows, 1):
        values = floor_values(run.hidden_states, run.attentions, run.bool_mask, layer,
                              train_attentions=train_run.attentions,
                              train_mask=train_run.bool_mask)
        attention = {name: float(np.mean(v)) for name, v in values["attention_cosine"].items()
                     if v is not None}
        strongest = max(attention, key=attention.get)
        floor = attention[strongest]
        score = row["attention_cosine"]
        row["attention_floors"] = attention
        row["attention_floor"] = strongest
        row["attention_rescaled"] = (score - floor) / (1 - floor) \
            if math.isfinite(score) and floor < 1 else float("nan")
        row["hidden_cosine_floor"] = max(float(np.mean(v))
                                         for v in values["hidden_cosine"].values())
        row["cka_floor"] = max(linear_cka(run.hidden_states[layer], state, run.mask)
                               for state in state_floors(run.hidden_states, layer).values())
        row["exact_by_construction"] = bool(exact_first and layer == 1)


def _convergence_json(details: dict) -> dict:
    if not details:
        return {}
    return {"fit": details["report"].to_json(), "intervals": details["intervals"],
            "boundary": details["boundary"], "bootstrap": details["bootstrap"],
            "train_inputs": details["train_inputs"]}


def _information(ref, stepper, run, out, maps, inputs, labels, label_name, text, max_length,
                 dtype, sigma, probe_samples, flow_samples, sigma_scale, representation):
    """``--metrics info``: the probe's train inputs through both models, then every
    quantity of :mod:`pdelang.lab.validation.information_flow`."""
    run_train = out_train = train_labels = None
    if labels is not None:
        train_inputs, train_labels, _ = _labelled_inputs(
            ref, probe_samples or flow.DEFAULT_PROBE_SAMPLES, "train", text, max_length,
            labelled=True)
        missing = sorted(set(np.asarray(labels).tolist()) - set(train_labels.tolist()))
        if missing:
            raise PdelangError(
                f"--probe-samples {len(train_labels)}: the probe's train inputs have no "
                f"example of class(es) {missing[:5]} that the held-out inputs have, so I(T;Y) "
                "cannot be estimated", suggestion="use more --probe-samples")
        run_train = ref.run(train_inputs)
        with torch.no_grad(), precision(dtype, "cpu"):
            out_train = call_stepper(stepper, run_train)
    return flow.measure(
        ref, stepper, run_test=run, out_test=out, maps_test=maps, inputs_test=inputs,
        labels_test=labels, run_train=run_train, out_train=out_train,
        labels_train=train_labels, sigma=sigma or flow.DEFAULT_SIGMA,
        flow_samples=flow.DEFAULT_FLOW_SAMPLES if flow_samples is None else flow_samples,
        label_name=label_name, sigma_scale=sigma_scale, representation=representation)


def format_table(result: ValidationResult) -> str:
    lines = [f"{result.spec} vs {result.reference} ({result.mode}, {result.samples} samples, "
             f"{result.seconds:.1f} s)",
             "layer  attn cosine   hidden cosine  rel. error    CKA        attn KL     "
             "| floors: attention (strongest), rescaled, hidden cos, CKA"]
    for r in result.layers:
        mark = "" if "passed" not in r else ("  ok" if r["passed"] else "  FAIL")
        floors = ""
        if "attention_floor" in r:
            exact = "  (exact by construction)" if r["exact_by_construction"] else ""
            floors = (f"  | {r['attention_floors'][r['attention_floor']]:.3f} "
                      f"({r['attention_floor']}), {r['attention_rescaled']:.3f}, "
                      f"{r['hidden_cosine_floor']:.3f}, {r['cka_floor']:.3f}{exact}")
        lines.append(f"{r['layer']:>5}  {r['attention_cosine']:>11.7f}  {r['hidden_cosine']:>13.7f}"
                     f"  {r['relative_error']:>10.3e}  {r['cka']:>9.6f}  {r['attention_kl']:>9.3e}"
                     f"{mark}{floors}")
    if result.mode == "exact":
        t = result.tolerances
        lines.append(f"final state relative error {t['final_state_relative_error']:.3e}; "
                     f"tolerances: relative error ≤ {t['relative_error']:g}, attention cosine ≥ "
                     f"{t['attention_cosine']}")
        if result.left_out:
            lines.append(f"left out in exact mode: {', '.join(result.left_out)} (terms the "
                         "reference does not have; continuous and fit modes keep them)")
        lines.append("PASSED" if result.passed else "FAILED")
        for problem in result.problems:
            lines.append(f"mismatch: {problem['message']}")
        if result.hint:
            lines.append(f"hint: {result.hint}")
    if result.fitted:
        lines.append("parameters: " + ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else
            f"{k} = [{', '.join(f'{x:.4g}' for x in v)}]" for k, v in result.fitted.items()))
    if result.information is not None:
        lines.append(format_information(result.information))
    if result.fit_history:
        fit = result.convergence.get("fit", {})
        state = "converged" if fit.get("converged") else "NOT converged (raise --steps)"
        lines.append(f"fit loss: {result.fit_history[0]:.4g} → {result.fit_history[-1]:.4g} "
                     f"({fit.get('iterations')} L-BFGS iterations, {state}; only the spec's "
                     "scalar parameters were learned, the reference's weights stayed frozen)")
        intervals = result.convergence.get("intervals", {})
        if intervals:
            lines.append(f"95 % bootstrap intervals ({result.convergence['bootstrap']} refits "
                         f"on resampled training inputs): " + ", ".join(
                             f"{k} = {v['value']:.6g} [{v['low']:.6g}, {v['high']:.6g}]"
                             for k, v in intervals.items()))
        for name, b in result.convergence.get("boundary", {}).items():
            if b["optimum_at_zero"]:
                lines.append(f"{name}: the optimum is {name} → 0 (loss {b['loss_at_zero']:.4g} "
                             f"with {name} = 0 against {b['loss_at_fit']:.4g} at the fit): the "
                             f"reference is best matched without this term")
            else:
                lines.append(f"{name}: an interior optimum (loss {b['loss_at_fit']:.4g} at the "
                             f"fit, {b['loss_at_zero']:.4g} with {name} = 0)")
    return "\n".join(lines)


def write_plots(result: ValidationResult, out_dir: Path) -> list[Path]:
    """``metrics.png`` and ``attention_maps.png`` (see :mod:`pdelang.lab.validation.plots`)."""
    return write(result, out_dir)
