"""Running the training-stability study (``pdelang phase``): every unit of the grid through
an executor, each run written to ``OUT/runs`` with the settings that identify it (so
``--resume`` reuses only runs of the same study), then the analysis
(:func:`pdelang.lab.ablation.stability.analyse`) and the report
(:mod:`pdelang.lab.ablation.stability_report`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
import hashlib

from pdelang.lab.ablation.stability import (
    ARMS,
    StudyGrid,
    analyse,
    load_family,
    run_summary,
    study_units,
)
from pdelang.errors import PdelangError
from pdelang.lab.ablation.executors import Progress, run_local, run_ray
from pdelang.lab.ablation.formatting import json_safe
from pdelang.io import write_atomically
from pdelang.lab.ablation.stability_report import write_report

__all__ = ["stability"]


def _identity(unit: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a stored run the same run (the executor, threads and device do not)."""
    return {"spec_sha256": hashlib.sha256(unit["spec_text"].encode()).hexdigest(),
            "overrides": list(unit["base"]), "recipe": dict(unit["recipe"]),
            "readout": unit["readout"]}


def _check_same_run(path: Path, stored: Mapping[str, Any] | None,
                    wanted: Mapping[str, Any]) -> None:
    if stored is None:
        raise PdelangError(f"{path}: a run without its settings (not written by this "
                           "command)", suggestion="remove the file or choose another --out")
    differs = [key for key in wanted if stored.get(key) != wanted[key]]
    if key_recipe := [k for k in wanted["recipe"]
                      if (stored.get("recipe") or {}).get(k) != wanted["recipe"][k]]:
        differs = [d for d in differs if d != "recipe"] + [f"recipe.{k}" for k in key_recipe]
    if differs:
        raise PdelangError(f"{path}: written by a different study ({', '.join(differs)} "
                           "differ)", suggestion="resume with the same spec, --set, recipe "
                                                 "and --epochs/--warmup/--clip, or choose "
                                                 "another --out")


def stability(spec: str, grid: StudyGrid, recipe, *, overrides: Iterable[str] = (),
              out: str | Path | None = None, resume: bool = False, executor: str = "local",
              address: str | None = None, threads: int = 1, ray_cpus: int | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None,
              quick: bool = False, report_only: bool = False,
              device: str = "cpu") -> dict[str, Any]:
    """Run every unit of the grid (reusing ``OUT/runs/*.json`` with ``resume``), then
    analyse and, with ``out``, write the report (:mod:`pdelang.lab.ablation.stability_report`).
    ``report_only``: run nothing; the report of the runs already in ``OUT/runs`` (a grid
    assembled over several sittings; the units not run are counted as such)."""
    started = time.perf_counter()
    base = list(overrides)
    text = Path(spec).read_text()
    family, _ = load_family(text, spec, base)
    units = study_units(spec, grid, recipe, base, threads, device)
    runs_dir = Path(out) / "runs" if out else None
    results: dict[str, dict] = {}
    if runs_dir is not None and (resume or report_only):
        for unit in units:
            path = runs_dir / f"{unit['variant']}.json"
            if path.exists():
                stored = json.loads(path.read_text())
                _check_same_run(path, stored.get("unit"), _identity(unit))
                results[unit["variant"]] = stored
    pending = [u for u in units if u["variant"] not in results]
    not_run = len(pending) if report_only else 0
    if report_only:
        pending = []
    bar = Progress(len(pending), progress, desc="runs")
    labels = lambda u: u["variant"]  # noqa: E731
    runner = run_local(pending, bar, labels=labels) if executor == "local" else \
        run_ray(pending, bar, address=address, cpus=threads, labels=labels,
                num_cpus=ray_cpus, gpus=1 if device == "cuda" else 0)
    try:
        for position, result in runner:
            unit = pending[position]
            result = {**result, "arm": unit["arm"], "scaling": unit["scaling"],
                      "depth": unit["depth"], "lr": unit["lr"], "seed": unit["seed"],
                      "unit": _identity(unit)}
            results[unit["variant"]] = result
            if runs_dir is not None:
                runs_dir.mkdir(parents=True, exist_ok=True)
                write_atomically(runs_dir / f"{unit['variant']}.json",
                                 json.dumps(json_safe(result), allow_nan=False))
            if log is not None:
                record = result.get("record") or {}
                log(f"{unit['variant']}: " + (result.get("error") or
                    f"accuracy {record.get('heldout_accuracy')}, unstable "
                    f"{record.get('unstable')} ({record.get('seconds', 0):.0f} s)"))
    finally:
        bar.close()
    runs = [run_summary(results[u["variant"]]) for u in units if u["variant"] in results]
    analysis = analyse(runs, grid, family.time.layers)
    data = {"spec": spec, "overrides": base, "recipe": recipe.to_json(), "quick": quick,
            "grid": {"arms": list(grid.arms), "depths": list(grid.depths),
                     "scalings": list(grid.scalings), "lrs": list(grid.lrs),
                     "seeds": grid.seeds},
            "arms": {name: ARMS[name].what for name in grid.arms},
            "family_layers": family.time.layers, "executor": executor, "device": device,
            "resumed": len(units) - len(pending) - not_run, "not_run": not_run,
            "runs": runs, "analysis": analysis,
            "seconds_this_call": time.perf_counter() - started,
            "seconds_of_runs": sum(r["seconds"] or 0 for r in runs)}
    if out is not None:
        data["files"] = {k: str(v) for k, v in write_report(out, data).items()}
    return data
