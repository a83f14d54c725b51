"""``pdelang phase SPEC [--recipe vit-digits] [--arms …] [--depths 4,8,16,32] [--scalings
step,sqrt,time] [--lrs …] [--seeds 3] [--epochs 30] [--warmup 2] [--clip off] [--depth-limit
4,8,16,32] [--out DIR] [--executor local|ray …] [--resume] [--quick]``: training stability
with controls that train (:mod:`pdelang.lab.ablation.stability`), and the continuous-depth
question (:mod:`pdelang.lab.ablation.continuum`).

``--recipe legacy`` runs the earlier phase diagram (:mod:`pdelang.lab.ablation.phase`: a constant
learning rate, a zero-initialized head on the raw stream, ``--norms``/``--residual``/
``--depth-scaling``/``--steps``), kept to show its artefact; its options below.

``--quick``: the reduced grid :data:`pdelang.lab.ablation.phase.QUICK_GRID` (depths 3,6 × lrs
1e-3,1e-2 × norms layernorm,none × residual on: 8 cells; an axis given explicitly wins), 1
seed, 8 steps of batch 8, the held-out loss on 64 digits, 1 thread.

Exit 2 before anything runs for a bad axis value (located in its option) or spec; 1 when a
cell failed (an error, not a divergence: divergence is a measurement); 0 otherwise."""

from __future__ import annotations

import json
import math
from dataclasses import replace
import sys

from pdelang.lab.ablation.phase_grid import (
    DEFAULT_DEPTHS,
    DEFAULT_LRS,
    DEFAULT_NORMS,
    QUICK_EVAL_EXAMPLES,
    QUICK_GRID,
    parse_grid,
)
from pdelang.cli.ablate import add_sweep_options, _failures
from pdelang.cli.main import add_common
from pdelang.lab.ablation.recipe_settings import RECIPES
from pdelang.lab.ablation.stability import ARMS, DEFAULT_STUDY, SCALINGS, parse_study, study_units
from pdelang.errors import OverrideError, SourceLocation, PdelangError
from pdelang.lab.ablation.formatting import json_safe
from pdelang.lab.ablation.stability_run import stability
from pdelang.lab.ablation.stability_report import write_report, render_markdown, study_summary
from pdelang.lab.ablation.phase import phase
from pdelang.lab.ablation.phase_cells import phase_summary
from pdelang.lab.ablation.phase_report import render_phase_markdown


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--recipe", choices=[*RECIPES, "legacy"], default="vit-digits",
                        help="vit-digits (default): the study with controls that train; "
                             "legacy: the earlier phase diagram (its artefact)")
    parser.add_argument("--arms", default=None, metavar="ARM,…",
                        help="arms (default all: " + ",".join(ARMS) + ")")
    parser.add_argument("--scalings", default=None, metavar="S,…",
                        help="depth scalings (default " + ",".join(SCALINGS) + "): step Δt = 1, "
                             "sqrt Δt ∝ 1/√L (depth-μP), time Δt = T/L")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per run (default {RECIPES['vit-digits'].epochs})")
    parser.add_argument("--warmup", type=float, default=None, metavar="EPOCHS",
                        help="linear warm-up epochs (default "
                             f"{RECIPES['vit-digits'].warmup_epochs:g})")
    parser.add_argument("--clip", default="off", metavar="off|NORM",
                        help="global gradient-norm clipping (default off)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: the report of the runs already in OUT/runs (a "
                             "grid assembled over several sittings)")
    parser.add_argument("--depth-limit", default=None, metavar="L1,L2",
                        help="also the continuous-depth question at these depths (pre-LN, "
                             "time scaling, iid and smooth initializations)")
    parser.add_argument("--depth-limit-lr", type=float, default=1e-3,
                        help="--depth-limit: the peak learning rate (default 1e-3)")
    parser.add_argument("--depth-limit-seeds", type=int, default=1,
                        help="--depth-limit: seeds per depth and initialization (default 1)")
    parser.add_argument("--depths", default=None, metavar="L1,L2",
                        help="layer counts (default " + ",".join(map(str, DEFAULT_STUDY.depths))
                             + "; legacy " + ",".join(map(str, DEFAULT_DEPTHS)) + ")")
    parser.add_argument("--lrs", default=None, metavar="LR1,LR2",
                        help="peak AdamW learning rates (default "
                             + ",".join(f"{v:g}" for v in DEFAULT_STUDY.lrs) + "; legacy "
                             + ",".join(f"{v:g}" for v in DEFAULT_LRS) + ")")
    parser.add_argument("--norms", default=None, metavar="KIND,…",
                        help="stabilizers.norm.kind values (default: "
                             + ",".join(DEFAULT_NORMS) + ")")
    parser.add_argument("--residual", default=None, metavar="on,off",
                        help="stabilizers.residual values (default: on,off)")
    parser.add_argument("--depth-scaling", choices=["step", "time"], default="step",
                        help="step (default): depth L adds layers of the spec's Δt, span "
                             "[t0, t0+L·Δt]; time: the spec's span in L steps of span/L")
    parser.add_argument("--train", default="digits", choices=["digits", "text"])
    parser.add_argument("--steps", type=int, default=500,
                        help="legacy: training steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per cell")
    parser.add_argument("--batch-size", type=int, default=None)
    quick = QUICK_GRID
    parser.add_argument("--quick", action="store_true",
                        help="a quick run. vit-digits: arms layernorm,none × depths 2,4 × lrs "
                             "1e-3,1e-1, 1 seed of 4 epochs on 512 digits (about 20 s); "
                             "legacy: the reduced grid --depths "
                             + ",".join(map(str, quick.depths))
                             + " --lrs " + ",".join(f"{v:.0e}".replace("e-0", "e-")
                                                    for v in quick.lrs)
                             + " --norms " + ",".join(quick.norms) + ", residual on "
                             f"({quick.cells} cells; an axis given explicitly wins), 1 seed, "
                             f"8 steps of batch 8, the held-out loss on {QUICK_EVAL_EXAMPLES} "
                             "digits, 1 thread")
    parser.add_argument("--out", default="results/phase", help="report directory")
    add_sweep_options(parser)


def _clip(text: str) -> float | None:
    if text.lower() in ("off", "none", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise OverrideError(f"--clip: '{text}' is neither off nor a positive norm",
                            SourceLocation("<--clip>", 1, 8, f"--clip {text}", len(text)),
                            "--clip off or --clip 1.0")
    return value


def _depths(option: str, text: str) -> tuple[int, ...]:
    try:
        return parse_study(depths=text).depths
    except OverrideError as exc:  # located in --depths' text: relocate to this option
        raise OverrideError(exc.message.replace("--depths", option), None,
                            exc.suggestion) from None


def _legacy_only(args) -> None:
    given = [o for o, v in (("--norms", args.norms), ("--residual", args.residual),
                            ("--depth-scaling", args.depth_scaling != "step" or None))
             if v is not None]
    if given:
        raise PdelangError(f"{', '.join(given)}: options of --recipe legacy",
                           suggestion="with --recipe vit-digits choose arms (--arms "
                                      "layernorm,none,none-nores…) and --scalings")


def execute_study(args) -> int:
    from pdelang.lab.ablation.recipe import RECIPES, quick_recipe  # lazy: torch

    _legacy_only(args)
    grid = parse_study(args.arms, args.depths, args.scalings, args.lrs,
                       args.seeds if args.seeds != 3 or not args.quick else None,
                       quick=args.quick)
    recipe = RECIPES[args.recipe]
    if args.quick:
        recipe = quick_recipe(recipe)
    changes = {"clip": _clip(args.clip)}
    if args.epochs is not None:
        if args.epochs < 1:
            raise PdelangError(f"--epochs {args.epochs}: at least 1", suggestion="--epochs 30")
        changes["epochs"] = args.epochs
    if args.warmup is not None:
        changes["warmup_epochs"] = args.warmup
    recipe = replace(recipe, **changes)
    depth_limit = _depths("--depth-limit", args.depth_limit) if args.depth_limit else ()
    study_units(args.spec, grid, recipe, args.overrides)  # the family's errors first
    out = args.out if args.out != "results/phase" else "results/stability"
    log = None if args.json else (lambda line: print(line, file=sys.stderr))
    data = stability(args.spec, grid, recipe, overrides=args.overrides, out=out,
                     resume=args.resume, executor=args.executor, address=args.address,
                     threads=args.threads or 1, ray_cpus=args.ray_cpus,
                     progress=False, log=log, quick=args.quick,
                     report_only=args.report_only, device=args.device)
    if depth_limit:
        from pdelang.lab.ablation.continuum import run_depth_limit  # lazy: torch

        data["depth_limit"] = run_depth_limit(
            args.spec, depth_limit, recipe, args.depth_limit_lr,
            tuple(range(args.depth_limit_seeds)), base=args.overrides, out=out, log=log,
            threads=args.threads or 1, train_missing=not args.report_only)
        data["files"] = {k: str(v) for k, v in write_report(out, data).items()}

    if args.json:
        print(json.dumps(json_safe(study_summary(data)), indent=2))
    else:
        print(render_markdown(json_safe(data)))
        print(f"\nwrote {out}: " + ", ".join(sorted(data.get("files", {}))))
    failed = [r for r in data["runs"] if r["error"]]
    return 1 if failed else 0


def execute(args) -> int:
    if args.recipe != "legacy":
        return execute_study(args)

    grid = parse_grid(args.depths, args.lrs, args.norms, args.residual, args.depth_scaling,
                      quick=args.quick)
    data = phase(args.spec, grid, overrides=args.overrides, norms_text=args.norms,
                 train=args.train, steps=args.steps, seeds=args.seeds,
                 batch_size=args.batch_size, quick=args.quick, out=args.out,
                 progress=not args.json, threads=args.threads, compile=args.compile,
                 dtype=args.dtype, executor=args.executor, address=args.address,
                 resume=args.resume, device=args.device, ray_cpus=args.ray_cpus)
    if args.json:
        summary = phase_summary(data)
        if data.get("files"):
            summary["files"] = data["files"]
        print(json.dumps(json_safe(summary), indent=2))
    else:
        print(render_phase_markdown(json_safe(data)))
        if args.out:
            print(f"\nwrote {args.out}: " + ", ".join(sorted(data.get("files", {}))))
    return _failures(data["variants"])
