"""The unit of work of an ablation sweep: one variant's drift, or one variant × seed's training.

A unit is a plain dict (JSON-able, picklable) and :func:`run_unit` a pure function of it::

    {"kind": "drift" | "train", "variant": index, "seed": k,
     "spec_text": the spec file's text, "spec_path": its name (for error locations),
     "base": [base --set overrides], "overrides": {KEY: VALUE of the variant's spec swaps},
     "train_overrides": {lr|steps|batch_size|optimizer: value of the variant's train.* swaps},
     "options": {"task", "steps", "lr", "batch_size", "drift_samples", "reference", "dtype",
                 "compile", "info", "device", "threads"}}

→ a JSON-able result dict (floats may be NaN/Inf: :func:`pdelang.lab.ablation.report.json_safe`
writes them).  The numbers depend on the unit only: every unit seeds its own random state
(drift: ``torch.manual_seed(0)``; training: :func:`pdelang.lab.ablation.train.seeded` around the
model's construction, then :func:`~pdelang.lab.ablation.train.train`'s own seeding), sets
torch's thread count to ``options["threads"]`` and flushes subnormal floats to zero, so the
local executor (in process, one unit after the other) and the Ray executor (one Ray task
per unit, in whichever worker process of whichever machine) produce the same numbers.
Only the ``seconds`` fields differ.

Two per-process caches make repeated units cheap without changing their results: the
compiled module of a (spec text, overrides) pair and the reference run of the drift
measurement (a Ray worker process keeps both across the tasks it runs).
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections.abc import Iterator
from typing import Any

from pdelang.errors import PdelangError
from pdelang.interpreters.builder import structure_of, build_module
from pdelang.compiler.spec.load import load_spec_text
from pdelang.interpreters.accelerate import precision, compile_stepper

__all__ = ["run_unit", "unit_error"]


def unit_error(exc: BaseException) -> str:
    """One line naming ``exc``: a PdelangError's first line, ``Type: message`` otherwise."""
    if isinstance(exc, PdelangError):
        return str(exc).splitlines()[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@functools.lru_cache(maxsize=16)
def compiled_module(spec_text: str, spec_path: str, overrides: tuple[str, ...]):
    """(spec, generated module) of the spec text with ``overrides`` (cached per process)."""
    spec = load_spec_text(spec_text, spec_path, overrides)
    return spec, build_module(spec)


@functools.lru_cache(maxsize=2)
def shared_reference(name: str, samples: int, max_length: int):
    """The reference run every drift unit of a process shares (cached)."""
    from pdelang.lab.ablation.drift import DriftReference  # lazy: torch

    return DriftReference(name, samples, max_length)


@contextlib.contextmanager
def torch_settings(threads: int | None) -> Iterator[None]:
    """Flush subnormals to zero (states of residual-free variants decay towards zero, and
    subnormal arithmetic is ~50× slower on a CPU) and run on ``threads`` intra-op threads;
    both restored afterwards."""
    import torch  # lazy: torch

    flush = torch.set_flush_denormal(True)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if flush:
            torch.set_flush_denormal(False)


def run_unit(unit: dict, progress: bool = False) -> dict:
    """Run one unit (module docstring); never raises for a failure of the unit itself: a spec
    that does not compile gives ``{"compiled": False, "error": …}``, any other exception
    ``{"compiled": True, "error": "Type: message", "traceback": …}``.

    ``progress``: a per-step tqdm bar for a training unit (the local executor's, on a
    terminal); it does not change the result.
    """
    options = unit["options"]
    overrides = tuple(unit["base"]) + tuple(f"{k}={v}" for k, v in unit["overrides"].items())
    result: dict[str, Any] = {"kind": unit["kind"], "variant": unit["variant"],
                              "seed": unit.get("seed"), "compiled": False, "error": None}
    try:
        spec, module = compiled_module(unit["spec_text"], unit["spec_path"], overrides)
    except PdelangError as exc:
        result["error"] = unit_error(exc)
        return result
    except Exception as exc:
        result.update(error=unit_error(exc), traceback=traceback.format_exc())
        return result
    result["compiled"] = True
    try:
        with torch_settings(options.get("threads")):
            if unit["kind"] == "drift":
                result.update(_drift_unit(module, spec, options))
            elif unit["kind"] == "recipe":  # pdelang phase --recipe vit-digits
                from pdelang.lab.ablation.recipe import run_recipe_unit  # lazy: torch

                result.update(run_recipe_unit(unit, module))
            else:
                result.update(_train_unit(module, unit["seed"], unit["train_overrides"],
                                          options, progress))
    except Exception as exc:
        result.update(error=unit_error(exc), traceback=traceback.format_exc())
    return result


def _drift_unit(module, spec, options: dict) -> dict:
    from pdelang.lab.ablation.drift import measure_variant  # lazy: torch

    name = options["reference"]
    ref = None if name in (None, "none") else shared_reference(name, options["drift_samples"], 64)
    with precision(options["dtype"], "cpu"):  # the stepper's forward only: the reference ran
        drift, source = measure_variant(module, spec, ref, seed=0, compile=options["compile"])
    return {"drift": drift, "drift_source": source}


def _train_unit(module, seed: int, train_overrides: dict, options: dict,
                progress: bool) -> dict:
    from pdelang.lab.ablation.tasks import make_task  # lazy: torch
    from pdelang.lab.ablation.train import train_seeds  # lazy: torch

    device = options.get("device") or "cpu"
    settings = {"steps": options["steps"], "lr": options["lr"],
                "batch_size": options["batch_size"], **train_overrides}
    if options.get("eval_examples"):  # a smaller held-out subset (phase --quick)
        settings["eval_examples"] = options["eval_examples"]

    def fresh_task():
        stepper = module.Stepper()  # drawn on the CPU under the seed, then moved
        if device != "cpu":
            stepper = stepper.to(device)
        if options["compile"]:
            compile_stepper(stepper)
        return make_task(options["task"], stepper, structure_of(module.Stepper))

    bar_factory = None
    if progress:
        from tqdm import tqdm  # lazy: tqdm

        def bar_factory(seed):
            return tqdm(total=settings["steps"], desc=f"  seed {seed}", unit="step",
                        position=1, leave=False)

    observer = None
    info = options.get("info")
    if info is not None:
        from pdelang.lab.ablation.info_plane import digits_observer  # lazy: torch

        def observer(task):
            return digits_observer(task, sigma=info["sigma"])
        settings = {**settings, "observe_every": info["every"]}
    with precision(options["dtype"], device):
        record, = train_seeds(fresh_task, [seed], progress=bar_factory, observer=observer,
                              **settings)
    return {"record": record.to_dict(), "settings": settings}

