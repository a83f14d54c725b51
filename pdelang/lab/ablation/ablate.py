"""``pdelang.ablate``: compile every combination of stabilizer swaps and measure each variant.

Every variant is the same spec with a different set of ``--set`` overrides (a Hydra-style
multirun).  For each variant:

* **drift** — inference with the reference Transformer's weights where the shapes allow
  (attention and MLP weights; norms where the variant has them): per layer the distance of
  the variant's states from the reference's (cosine, relative error), the rank-collapse
  ratio ‖X − 1x̄ᵀ‖/‖X‖ (Dong et al. 2021) and the growth of token-state norms;
* **training dynamics** — trained from the same initialization and data on a small task
  (digits on a patch grid, or a character-level text task), same optimizer and learning
  rate, several seeds: loss, gradient norm, update norm, max activation, divergence.

Every swap key and value is checked against the spec schema before anything runs (an
unknown key or a mistyped value is a located error with a suggestion).  A variant that
fails to compile (e.g. a combination the schema accepts but the compiler refuses) is
reported as such, and ``pdelang ablate`` then exits 1.  Swap keys under ``train.`` (``lr``,
``steps``, ``batch_size``, ``optimizer``) sweep the training set-up instead of the spec.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from collections.abc import Iterable
import yaml
import warnings
import re
import hashlib

from pdelang.errors import OverrideError, PdelangError, SourceLocation, did_you_mean
from pdelang.compiler.spec.load import load_spec_text, load_spec
from pdelang.interpreters.accelerate import check_dtype, PrecisionWarning
from pdelang.lab.ablation.executors import EXECUTORS, import_ray, Progress, run_local, run_ray
from pdelang.io import write_atomically
from pdelang.lab.ablation.units import shared_reference, torch_settings
from pdelang.lab.ablation.formatting import json_safe
from pdelang.lab.ablation.report import write_report

TRAIN_KEYS = {"lr": float, "steps": int, "batch_size": int, "optimizer": str}


def split_values(text: str) -> list[str]:
    """``a,b,[0, 6],c`` → ['a', 'b', '[0, 6]', 'c'] (commas inside brackets stay)."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    return [v for v in values if v != ""]


def value_offsets(text: str) -> list[int]:
    """Where each value of :func:`split_values` (stripped, non-empty) starts in ``text``."""
    starts, depth, start = [], 0, 0
    for index, char in enumerate(text + ","):
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if (char == "," and depth == 0) or index == len(text):
            piece = text[start:index]
            if piece.strip():
                starts.append(start + len(piece) - len(piece.lstrip()))
            start = index + 1
    return starts


def parse_swaps(swaps: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for text in swaps:
        where = SourceLocation("<--swap>", 1, 8, f"--swap {text}", len(text))
        if "=" not in text:
            raise OverrideError(f"swap '{text}' has no '='", where,
                                "write --swap KEY=V1,V2, e.g. stabilizers.residual=true,false")
        key, values = text.split("=", 1)
        parsed = split_values(values)
        if not parsed:
            raise OverrideError(f"swap '{text}' lists no values", where)
        if key.startswith("train.") and key[6:] not in TRAIN_KEYS:
            raise OverrideError(f"unknown training key '{key}'", where,
                                "train.* keys: " + ", ".join(TRAIN_KEYS))
        if key.startswith("train."):
            for value in parsed:
                _check_train_value(key[6:], value, where)
        out[key.strip()] = parsed
    return out


def _check_train_value(key: str, value: str, where: SourceLocation) -> None:
    """A training swap value the optimizer loop can take (checked before any variant runs)."""
    from pdelang.lab.ablation.train import OPTIMIZERS  # lazy: torch

    try:
        number = TRAIN_KEYS[key](value)
    except ValueError:
        raise OverrideError(f"train.{key}={value}: not a {TRAIN_KEYS[key].__name__}", where) \
            from None
    if key == "optimizer" and number not in OPTIMIZERS:
        raise OverrideError(f"train.optimizer={value}: unknown optimizer", where,
                            did_you_mean(value, OPTIMIZERS) or ", ".join(OPTIMIZERS))
    if key in ("lr", "steps", "batch_size") and not (math.isfinite(number) and number > 0):
        raise OverrideError(f"train.{key}={value}: must be positive", where)


def load_sweep_file(path: str) -> dict[str, list[str]]:
    """A sweep from YAML: ``{swap: {KEY: [V1, V2], …}}`` (or the mapping itself)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise PdelangError(f"cannot read the sweep file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PdelangError(f"the sweep file {path} is not valid YAML: {exc}") from None
    data = data.get("swap", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise PdelangError(f"the sweep file {path} must map KEY to a list of values")

    def text(v):
        if isinstance(v, bool):
            return str(v).lower()
        return json.dumps(v) if isinstance(v, (list, dict)) else str(v)

    return {str(k): [text(v) for v in (vs if isinstance(vs, list) else [vs])]
            for k, vs in data.items()}


def check_swaps(spec: str, swaps: dict[str, list[str]], base: Iterable[str] = (),
                texts: Iterable[str] = (), sweep_file: str | None = None) -> None:
    """Every spec swap ``KEY=VALUE`` must pass the spec schema on its own (on top of the
    ``base`` overrides): an unknown key or a value of the wrong type is an
    :class:`OverrideError` located in its ``--swap`` text (``texts``, as given) or naming the
    sweep file — raised before anything runs.  Errors that depend on the combination (e.g.
    heads that do not divide a swapped channel count) are the variants' to report."""
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # load_spec reports it (it already ran on the base spec)
    given = {}
    for swap in texts:
        key, _, values = swap.partition("=")
        given[key.strip()] = swap
    base = list(base)
    for key, values in swaps.items():
        if key.startswith("train."):
            continue
        for index, value in enumerate(values):
            try:
                load_spec_text(text, str(path), base + [f"{key}={value}"])
            except PdelangError as exc:
                where = exc.location
                if where is None or where.file != "<--set>":
                    continue  # about the spec itself: the variant reports it
                raise _relocated(exc, key, value, index, given.get(key), sweep_file) from None


def _relocated(exc: PdelangError, key: str, value: str, index: int, swap: str | None,
               sweep_file: str | None) -> PdelangError:
    """``exc`` (located in ``--set KEY=VALUE``) located in the ``--swap`` text instead."""
    if swap is None:  # from the sweep file: no text to point into
        message = exc.message.removeprefix(f"--set {key}={value}: ")
        return type(exc)(f"sweep file {sweep_file}: {key}={value}: {message}", None,
                         exc.suggestion)
    message = exc.message.replace(f"--set {key}={value}", f"--swap {swap}")
    where = exc.location
    raw_key, _, raw_values = swap.partition("=")
    key_end = 7 + len(raw_key)  # columns of "--set KEY" (1-based: the '=' is key_end)
    if where.col < key_end:  # in the key: "--swap " is one column longer than "--set "
        col = where.col + 1 + (len(raw_key) - len(raw_key.lstrip()))
    else:  # in the value: shift to where this value starts in the --swap text
        offsets = value_offsets(raw_values)
        start = offsets[index] if index < len(offsets) else 0
        col = 8 + len(raw_key) + 1 + start + (where.col - (key_end + 1))
    location = SourceLocation("<--swap>", 1, col, f"--swap {swap}", where.length)
    return type(exc)(message, location, exc.suggestion)


def variants_of(swaps: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(swaps)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(swaps[k] for k in keys))]


def _label(overrides: dict[str, str]) -> str:
    return ", ".join(f"{k.split('.')[-1] if k.count('.') else k}={v}"
                     for k, v in overrides.items()) or "baseline"


def _finite_or_none(value):
    if value is None:
        return None
    return value if math.isfinite(value) else None


def ablate(spec: str, swaps: Iterable[str] = (), *, sweep_file: str | None = None,
           overrides: Iterable[str] = (), reference: str | None = "minilm",
           train: str = "digits", steps: int = 100, seeds: int = 2, lr: float = 1e-4,
           batch_size: int | None = None, drift_samples: int = 16, quick: bool = False,
           out: str | None = None, progress: bool = True, threads: int | None = None,
           compile: bool = False, dtype: str = "float32", metrics: Iterable[str] = (),
           sigma: float | None = None, info_every: int | None = None,
           executor: str = "local", address: str | None = None, resume: bool = False,
           device: str = "cpu", ray_cpus: int | None = None) -> dict:
    """Run the sweep; returns the results dict (also written to ``out`` when given).

    ``threads``: torch intra-op threads of every unit (None: torch's default, or 1 with
    ``quick`` or the Ray executor).  Small models on a loaded CPU run several times faster on
    one thread than with oversubscribed OpenMP workers (measured: ``--quick`` 179 s on 2
    threads next to another process, against 39 s alone).

    ``compile``: every variant's steppers compiled with ``torch.compile`` (each new stepper
    compiles on its first call: worth it for long sweeps only).  ``dtype`` ``bfloat16``:
    the steppers' forward passes (drift and training) under autocast; the reference run,
    the metrics and the optimizer stay float32/float64.

    ``metrics=("info",)`` (digits only): the information plane of every training run at
    step 0, every ``info_every`` steps (default: a tenth of the steps) and at the end
    (:mod:`pdelang.lab.ablation.info_plane`; ``sigma`` relative to each layer's spread).

    ``executor``: ``local`` (this process) or ``ray`` (one Ray task per variant's drift and
    per variant × seed's training, :mod:`pdelang.lab.ablation.executors`; ``address`` joins a
    running cluster, otherwise a local instance with ``ray_cpus`` CPUs — default: the
    machine's — is started).  Both give the same numbers (only ``seconds`` fields differ)
    when the units run on the same number of threads.  ``device`` ``cuda``: training on a
    GPU (the drift measurement stays on the CPU); under Ray each task then asks for a GPU.

    With ``out``, each variant's result is written to ``out/variants/LABEL-HASH.json``
    (atomically) as soon as its units are done; ``resume`` takes the variants whose files
    are there instead of running them again — an error if a file was written by a different
    sweep (another spec text, base overrides, seeds or training options).
    """
    options, runner, seed_count = sweep_options(
        reference=reference, train=train, steps=steps, seeds=seeds, lr=lr,
        batch_size=batch_size, drift_samples=drift_samples, quick=quick, out=out,
        threads=threads, compile=compile, dtype=dtype, metrics=metrics, sigma=sigma,
        info_every=info_every, executor=executor, address=address, resume=resume,
        device=device, ray_cpus=ray_cpus)
    swaps = list(swaps)
    from_file = load_sweep_file(sweep_file) if sweep_file else {}
    from_options = parse_swaps(swaps)
    swap_values = {**from_file, **from_options}
    variants = variants_of(swap_values)
    base = list(overrides)
    load_spec(spec, base)  # the base spec must be valid: report its errors, not each variant's
    check_swaps(spec, from_file, base, sweep_file=sweep_file)  # before anything runs
    check_swaps(spec, from_options, base, swaps)
    return run_sweep(spec, variants, base, seed_count, options, runner, quick=quick, out=out,
                     progress=progress, swaps=swap_values)


def sweep_options(*, reference: str | None, train: str, steps: int, seeds: int, lr: float,
                  batch_size: int | None, drift_samples: int, quick: bool, out: str | None,
                  threads: int | None, compile: bool, dtype: str, metrics: Iterable[str],
                  sigma: float | None, info_every: int | None, executor: str,
                  address: str | None, resume: bool, device: str, ray_cpus: int | None,
                  drift: bool = True) -> tuple[dict, dict, int]:
    """Check a sweep's options (every error before anything runs) and return ``(options,
    runner, seeds)``: the units' ``options`` (:mod:`pdelang.lab.ablation.units`), the executor's
    settings, and the number of seeds (``quick`` shortens the steps, seeds and samples).
    ``drift=False``: no drift unit per variant (training only, e.g. ``pdelang phase``)."""
    if executor not in EXECUTORS:
        raise PdelangError(f"unknown executor '{executor}'", suggestion="local or ray")
    if executor == "ray":
        import_ray()  # the missing extra is an error before anything runs
    elif address:
        raise PdelangError("--address joins a Ray cluster: it needs --executor ray")
    if device not in ("cpu", "cuda"):
        raise PdelangError(f"--device {device}: ablate runs on cpu or cuda")
    if device == "cuda" and executor == "local":
        import torch  # lazy: torch
        if not torch.cuda.is_available():
            raise PdelangError("--device cuda: torch sees no CUDA device here",
                               suggestion="use --device cpu, or --executor ray --address "
                                          "of a cluster with GPUs")
    if resume and not out:
        raise PdelangError("--resume needs the --out directory of the sweep to resume")
    if threads is not None and threads < 1:
        raise PdelangError(f"--threads {threads}: must be at least 1")
    if dtype not in ("float32", "bfloat16"):
        raise PdelangError(f"--dtype {dtype}: ablate trains in float32 or bfloat16",
                           suggestion="float16 training needs loss scaling, which ablate does "
                                      "not do; use --dtype bfloat16")
    slow = check_dtype(dtype, device) if executor == "local" or device == "cpu" else None
    if slow:
        warnings.warn(f"--dtype {dtype}: {slow}", PrecisionWarning, stacklevel=2)

    if quick:
        steps, seeds, drift_samples = min(steps, 8), 1, min(drift_samples, 4)
        batch_size = batch_size or 8
    if train not in ("digits", "text", "none"):
        raise PdelangError(f"unknown training task '{train}'", suggestion="digits, text or none")
    info = None
    if "info" in tuple(metrics):
        if train != "digits":
            raise PdelangError(f"--metrics info needs labels: the {train} task has none for "
                               "I(T;Y)", suggestion="use --train digits")
        from pdelang.lab.validation.information_flow import DEFAULT_SIGMA  # lazy: torch
        if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
            raise PdelangError(f"--sigma {sigma}: must be a positive number")
        if info_every is not None and info_every < 1:
            raise PdelangError(f"--info-every {info_every}: must be at least 1")
        info = {"sigma": sigma or DEFAULT_SIGMA,
                # --quick: only before and after training (each observation fits a probe
                # per layer: measured about 1 s a layer on 512 digits)
                "every": info_every or (steps if quick else max(1, steps // 10))}
    if seeds < 1:
        raise PdelangError(f"--seeds {seeds}: must be at least 1")
    if steps < 1 and train != "none":
        raise PdelangError(f"--steps {steps}: must be at least 1")
    if not (math.isfinite(lr) and lr > 0):
        raise PdelangError(f"--lr {lr}: must be a positive number")
    if not drift and train == "none":
        raise PdelangError("nothing to measure: no drift and no training task",
                           suggestion="choose a training task (--train digits or text)")
    options = {"task": train, "steps": steps, "lr": lr, "batch_size": batch_size,
               "drift_samples": drift_samples, "reference": reference, "dtype": dtype,
               "compile": compile, "info": info, "device": device,
               "threads": threads or (1 if quick or executor == "ray" else None)}
    if not drift:  # only then: the files of drift-measuring sweeps keep resuming
        options["drift"] = False
    runner = {"executor": executor, "address": address, "resume": resume,
              "ray_cpus": ray_cpus}
    return options, runner, seeds


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")[:60] or "variant"


def _variant_digest(choice: dict[str, str]) -> str:
    text = json.dumps(choice, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _variant_file(out: str, choice: dict[str, str]) -> Path:
    """``out/variants/LABEL-HASH.json``: named by the variant's overrides only (HASH: their
    SHA-256, whatever their order), not by its place in the sweep, so a grown sweep (another
    value on an axis) resumes the variants it already ran."""
    return Path(out) / "variants" / f"{_slug(_label(choice))}-{_variant_digest(choice)}.json"


def _stored_variant_file(out: str, choice: dict[str, str]) -> Path:
    """The file of ``choice`` in ``out/variants`` (found by its HASH: the label part is for
    people), or where it would be written."""
    found = sorted((Path(out) / "variants").glob(f"*-{_variant_digest(choice)}.json"))
    return found[0] if found else _variant_file(out, choice)


def run_sweep(spec: str, variants: list[dict[str, str]], base: list[str], seeds: int,
              options: dict, runner: dict, *, quick: bool, out: str | None, progress: bool,
              swaps: dict, report=None, extra: dict | None = None) -> dict:
    """Run the ``variants`` (each a mapping of spec and ``train.`` keys to values, the same
    ``base`` overrides under all) with :func:`sweep_options`' ``options`` and ``runner``.

    Plan the units, take finished variants from ``out/variants`` (``--resume``), run the
    rest on the executor, write each variant's file as its last unit finishes, and at the end
    the report: ``report(out, results)`` → ``{name: path}`` (default:
    :func:`pdelang.lab.ablation.report.write_report`).  ``extra``: more fields of the results."""
    started = time.perf_counter()
    spec_text = Path(spec).read_text(encoding="utf-8")
    spec_hash = hashlib.sha256(spec_text.encode("utf-8")).hexdigest()
    seed_list = list(range(seeds))
    entries: list[dict | None] = [None] * len(variants)
    units, expected, collected, sweeps, resumed = [], {}, {}, {}, []
    for index, choice in enumerate(variants):
        spec_overrides = {k: v for k, v in choice.items() if not k.startswith("train.")}
        train_overrides = {k[6:]: TRAIN_KEYS[k[6:]](v) for k, v in choice.items()
                           if k.startswith("train.")}
        sweep = {"spec_sha256": spec_hash, "base": base, "overrides": choice,
                 "seeds": seed_list,
                 "options": {k: ("none" if k == "reference" and v is None else v)
                             for k, v in options.items() if k != "threads"}}
        sweeps[index] = sweep
        if runner["resume"]:
            entry = _resumed(_stored_variant_file(out, choice), sweep)
            if entry is not None:
                entries[index] = entry
                resumed.append(index)
                continue
        common = {"variant": index, "spec_text": spec_text, "spec_path": spec, "base": base,
                  "overrides": spec_overrides, "train_overrides": train_overrides,
                  "options": options}
        mine = [{"kind": "drift", "seed": 0, **common}] if options.get("drift", True) else []
        if options["task"] != "none":
            mine += [{"kind": "train", "seed": seed, **common} for seed in seed_list]
        expected[index] = len(mine)
        collected[index] = []
        units += mine

    if units and options.get("drift", True) and options["reference"] not in (None, "none"):
        # an unknown or broken reference is an error before anything runs; the local
        # executor's units then reuse this run (made under the units' own torch settings)
        with torch_settings(options["threads"]):
            shared_reference(options["reference"], options["drift_samples"], 64)
    bar = Progress(len(units), progress)
    labels = {index: _label(choice) for index, choice in enumerate(variants)}

    def label(unit):
        return labels[unit["variant"]]

    if runner["executor"] == "ray":
        threads = options["threads"] or 1
        stream = run_ray(units, bar, address=runner["address"], cpus=threads,
                         gpus=1 if options["device"] == "cuda" else 0, labels=label,
                         num_cpus=runner["ray_cpus"])
    else:
        stream = run_local(units, bar, step_bars=progress, labels=label)
    try:
        for _position, result in stream:
            index = result["variant"]
            collected[index].append(result)
            if len(collected[index]) < expected[index]:
                continue
            entry = _assemble(variants[index], collected.pop(index), options["task"])
            entries[index] = entry
            if out:
                record = {"sweep": sweeps[index], "variant": json_safe(entry)}
                write_atomically(_variant_file(out, variants[index]),
                                 json.dumps(record, sort_keys=True, indent=2, allow_nan=False,
                                            ensure_ascii=False) + "\n")
    finally:
        bar.close()
    data = {
        "spec": spec, "swaps": swaps, "overrides": base, "task": options["task"],
        "steps": options["steps"], "seeds": seed_list, "lr": options["lr"],
        "reference": options["reference"], "quick": quick, "dtype": options["dtype"],
        "compile": options["compile"], "information": options["info"],
        "executor": runner["executor"], "resumed": len(resumed),
        "seconds": round(time.perf_counter() - started, 1),
        **(extra or {}),
        "variants": entries,
    }
    if options["device"] != "cpu":
        data["device"] = options["device"]
    if out:
        data["files"] = {k: str(v) for k, v in (report or write_report)(out, data).items()}
    return data


def _resumed(path: Path, sweep: dict) -> dict | None:
    """The variant stored at ``path`` by the same sweep; None when there is no such file."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PdelangError(f"--resume: cannot read {path}: {exc}",
                           suggestion="delete the file to run that variant again") from None
    theirs = stored.get("sweep") if isinstance(stored, dict) else None
    if theirs != json.loads(json.dumps(sweep, default=str)):
        differs = [key for key in sweep if not isinstance(theirs, dict)
                   or json.dumps(theirs.get(key), sort_keys=True, default=str)
                   != json.dumps(sweep[key], sort_keys=True, default=str)]
        what = {"spec_sha256": "the spec text", "base": "the --set overrides",
                "overrides": "the variant's swaps", "seeds": "the seeds",
                "options": "the training options"}
        raise PdelangError(
            f"--resume: {path} was written by a different sweep ("
            + ", ".join(what[k] for k in differs or ["options"]) + " differ)",
            suggestion="resume with the same spec and options, or drop --resume (or use "
                       "another --out) to run the sweep anew")
    return stored["variant"]


def _assemble(choice: dict, results: list[dict], task: str) -> dict:
    """A variant's row from its units' results (drift first, then the seeds in order)."""
    from pdelang.lab.ablation.train import TrainingRecord, summarize  # lazy: torch

    entry = {"overrides": choice, "label": _label(choice), "compiled": False, "error": None,
             "drift": None, "drift_source": None, "diverged": False,
             "divergence_step": None, "final_loss": None, "max_grad_norm": None,
             "training": None}
    results = sorted(results, key=lambda r: (r["kind"] != "drift", r.get("seed") or 0))
    refused = [r for r in results if not r["compiled"]]
    if refused:
        entry["error"] = refused[0]["error"]
        return entry
    entry["compiled"] = True
    drift = next((r for r in results if r["kind"] == "drift"), None)
    trained = [r for r in results if r["kind"] == "train"]
    if drift is not None and not drift["error"]:
        entry["drift"], entry["drift_source"] = drift["drift"], drift["drift_source"]
    errors = [("drift" if r["kind"] == "drift" else f"training seed {r['seed']}", r["error"])
              for r in results if r["error"]]
    if errors:
        entry["error"] = "; ".join(f"{what}: {error}" for what, error in errors)
        return entry
    if task != "none":
        records = [TrainingRecord(**r["record"]) for r in trained]
        summary = summarize(records)
        entry.update({
            "diverged": summary["diverged"],
            "divergence_step": summary["divergence_step"],
            "final_loss": _finite_or_none(summary["final_loss_mean"]),
            "max_grad_norm": summary["max_grad_norm"],
            "summary": summary,
            "training": {"seeds": [r.to_dict() for r in records],
                         "options": trained[0]["settings"]},
        })
    return entry
