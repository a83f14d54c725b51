"""``pdelang validate SPEC --reference R --mode exact|continuous|fit|depth [--json] [--out D]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
import math

from pdelang.cli.main import add_common
from pdelang.errors import PdelangError
from pdelang.io import write_atomically


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--reference", default="minilm",
                        help="minilm (default), vit-digits, hf:PATH, hf-config:bert|vit|gpt2, "
                             "torch, torch:pre, torch:post")
    parser.add_argument("--mode", default="exact",
                        choices=["exact", "continuous", "fit", "depth", "distill"],
                        help="exact | continuous | fit | depth (the continuous-depth limit: "
                             "substeps 1 … 64 per layer against an adaptive dopri5 solution) "
                             "| distill (a reduced model's own weights fitted to the "
                             "reference's layer states, with restarts, to a plateau)")
    parser.add_argument("--metrics", default="standard", choices=["standard", "info"],
                        help="info: also the information flow per layer — I(X;T) "
                             "(sample propagation), I(T;Y) (a logistic probe; digits or the "
                             "labelled corpus), attention entropy, token flow maps")
    parser.add_argument("--sigma", type=float, default=0.3,
                        help="--metrics info: the noise σ of I(X; T + N(0, σ²I)), in units of "
                             "each layer's RMS spread (default 0.3; see --sigma-scale)")
    parser.add_argument("--sigma-scale", choices=["relative", "absolute"], default="relative",
                        help="--metrics info: σ relative to each layer's spread (default) or "
                             "absolute")
    parser.add_argument("--representation", choices=["auto", "flat", "mean"], default="auto",
                        help="--metrics info: T = the flattened state (auto for images) or "
                             "the mean over real tokens (auto for text)")
    parser.add_argument("--probe-samples", type=int, default=512,
                        help="--metrics info: train inputs for the I(T;Y) probe (default 512)")
    parser.add_argument("--flow-samples", type=int, default=4,
                        help="--metrics info: held-out inputs whose token flow is computed "
                             "(default 4; 0 skips it)")
    parser.add_argument("--levels", default="1,2,4,8,16,32,64",
                        help="depth mode: the substeps per layer to compare (default "
                             "1,2,4,8,16,32,64)")
    parser.add_argument("--rtol", type=float, default=1e-10,
                        help="depth mode: dopri5's relative tolerance (default 1e-10)")
    parser.add_argument("--atol", type=float, default=1e-10,
                        help="depth mode: dopri5's absolute tolerance (default 1e-10)")
    parser.add_argument("--sentences", "--samples", dest="samples", type=int, default=64,
                        help="held-out inputs to evaluate on (default 64)")
    parser.add_argument("--text", default=None, help="your own text file instead of the corpus")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per input")
    parser.add_argument("--steps", type=int, default=None,
                        help="fit mode: at most this many L-BFGS iterations (default 100; it "
                             "stops earlier once converged); distill mode: at most this many "
                             "Adam steps per restart (default 3000)")
    parser.add_argument("--lr", type=float, default=None,
                        help="distill mode: Adam's initial learning rate (default 3e-3; fit "
                             "mode's L-BFGS has no learning rate)")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="training inputs (fit mode: default 32; distill mode: default "
                             "1024, or the whole split if smaller)")
    parser.add_argument("--restarts", type=int, default=3,
                        help="distill mode: independent initializations (default 3)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="distill mode: Adam's mini-batch (default 128)")
    parser.add_argument("--bootstrap", type=int, default=None,
                        help="fit and distill mode: bootstrap refits on resampled training "
                             "inputs for the coefficients' 95 %% intervals (default 10; 0: none)")
    parser.add_argument("--attention-weight", type=float, default=0.0,
                        help="distill mode: λ of λ·KL(P_ref ‖ P_model) of the attention maps "
                             "added to the state loss (default 0: states only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="directory for plots and results.json")
    parser.add_argument("--compile", action="store_true",
                        help="compile the stepper with torch.compile (the first call compiles, "
                             "tens of seconds on a CPU; one warning and uncompiled where "
                             "torch.compile cannot be used)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                        default="float32",
                        help="the stepper's precision: float32 (default), or bfloat16/float16 "
                             "under autocast (continuous and fit mode; the reference stays "
                             "float32)")


def _check_options(args) -> None:
    for flag, value, low in (("--sentences", args.samples, 1),
                             ("--max-length", args.max_length, 3),  # [CLS] word [SEP]
                             ("--steps", args.steps, 1),
                             ("--train-samples", args.train_samples, 1),
                             ("--restarts", args.restarts, 1),
                             ("--batch-size", args.batch_size, 1),
                             ("--bootstrap", args.bootstrap, 0)):
        if value is not None and value < low:
            raise PdelangError(f"{flag} {value}: must be at least {low}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise PdelangError(f"--lr {args.lr}: the learning rate must be a positive number")
    if args.metrics == "info" and args.mode in ("depth", "distill"):
        raise PdelangError(f"--metrics info with --mode {args.mode}: that mode has its own "
                           "table", suggestion="run --metrics info with exact, continuous "
                                               "or fit mode")
    if args.metrics == "info" and args.samples < 2:
        raise PdelangError(f"--samples {args.samples} with --metrics info: I(X;T) needs at "
                           "least 2 held-out inputs", suggestion="use --samples 64 or more")
    if args.probe_samples < 2 or args.flow_samples < 0:
        raise PdelangError("--probe-samples must be at least 2 and --flow-samples at least 0")
    if not (math.isfinite(args.attention_weight) and args.attention_weight >= 0):
        raise PdelangError(f"--attention-weight {args.attention_weight}: must be ≥ 0")
    for flag, value in (("--rtol", args.rtol), ("--atol", args.atol), ("--sigma", args.sigma)):
        if not (math.isfinite(value) and value > 0):
            raise PdelangError(f"{flag} {value}: must be a positive number")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise PdelangError(f"--out {args.out} is a file, not a directory")


def execute(args) -> int:
    _check_options(args)

    progress = None
    bar = None
    if args.mode == "fit" and not args.json:
        from tqdm import tqdm  # lazy: tqdm
        bar = tqdm(desc="fit (L-BFGS)", unit="evaluation", file=sys.stderr)

        def progress(loss):
            bar.set_postfix(loss=f"{loss:.4g}")
            bar.update(1)
    if args.mode == "distill" and not args.json:
        from tqdm import tqdm  # lazy: tqdm
        bar = tqdm(desc="distill", unit="eval", file=sys.stderr)

        def progress(restart, step, loss):
            bar.set_postfix_str(f"restart {restart}, step {step}, validation loss {loss:.4g}")
            bar.update(1)

    levels = None
    if args.mode == "depth":
        from pdelang.lab.validation.depth import parse_levels  # lazy: torch
        levels = parse_levels(args.levels)
        if not args.json:
            from tqdm import tqdm  # lazy: tqdm
            bar = tqdm(total=len(levels) + 1, desc="depth", unit="solve", file=sys.stderr)

            def progress(label):
                bar.set_postfix_str(label)
                bar.update(1)
    try:
        result = _run(args, progress, levels)
    finally:
        if bar is not None:
            bar.close()
    return _report(args, result)


def _run(args, progress, levels):
    from pdelang.lab.validation.validate import validate  # lazy: torch

    return validate(args.spec, args.reference, args.mode, overrides=args.overrides,
                    samples=args.samples, text=args.text, max_length=args.max_length,
                    steps=args.steps, lr=args.lr,
                    train_samples=args.train_samples or (32 if args.mode == "fit" else None),
                    seed=args.seed, progress=progress, compile=args.compile,
                    dtype=args.dtype, levels=levels, rtol=args.rtol, atol=args.atol,
                    metrics=(args.metrics,), sigma=args.sigma,
                    probe_samples=args.probe_samples, flow_samples=args.flow_samples,
                    sigma_scale=args.sigma_scale, representation=args.representation,
                    restarts=args.restarts, batch_size=args.batch_size,
                    attention_weight=args.attention_weight, bootstrap=args.bootstrap)


def _report(args, result) -> int:
    """The table (or JSON) on stdout, plots and results.json in ``--out``; the exit code."""
    if args.mode == "depth":
        from pdelang.lab.validation.depth import format_depth_table as format_table  # lazy: torch
        from pdelang.lab.validation.depth import write_depth_plots as write_plots  # lazy: torch
    elif args.mode == "distill":
        from pdelang.lab.validation.distill import format_distill as format_table  # lazy: torch

        def write_plots(result, out):
            out.mkdir(parents=True, exist_ok=True)
            return []
    else:
        from pdelang.lab.validation.validate import format_table, write_plots  # lazy: torch
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    data = result.to_json()
    if args.out:
        out = Path(args.out)
        paths = write_plots(result, out)
        write_atomically(out / "results.json", json.dumps(data, indent=2) + "\n")
        data["plots"] = [str(p) for p in paths]
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_table(result))
        if args.out:
            print(f"wrote {args.out}/results.json, " + ", ".join(data["plots"]))
    return 0 if result.passed in (None, True) else 1
