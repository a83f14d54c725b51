"""``pdelang phase SPEC [--depths 6,12,24,48] [--lrs 1e-4,…,1e-2] [--norms layernorm,rmsnorm,none]
[--residual on,off] [--seeds 3] [--steps 500] [--out DIR] [--executor local|ray …] [--resume]``:
the phase diagram of training stability (:mod:`pdelang.ablation.phase`).

``--quick``: the reduced grid :data:`pdelang.ablation.phase.QUICK_GRID` (depths 3,6 × lrs
1e-3,1e-2 × norms layernorm,none × residual on: 8 cells; an axis given explicitly wins), 1
seed, 8 steps of batch 8, the held-out loss on 64 digits, 1 thread.

Exit 2 before anything runs for a bad axis value (located in its option) or spec; 1 when a
cell failed (an error, not a divergence: divergence is a measurement); 0 otherwise."""

from __future__ import annotations

import json


def configure(parser) -> None:
    from pdelang.ablation.phase import (
        DEFAULT_DEPTHS,
        DEFAULT_LRS,
        DEFAULT_NORMS,
        QUICK_EVAL_EXAMPLES,
        QUICK_GRID,
    )
    from pdelang.cli.ablate import add_sweep_options
    from pdelang.cli.main import add_common

    add_common(parser)
    parser.add_argument("--depths", default=None, metavar="L1,L2",
                        help="layer counts (default: "
                             + ",".join(map(str, DEFAULT_DEPTHS)) + ")")
    parser.add_argument("--lrs", default=None, metavar="LR1,LR2",
                        help="AdamW learning rates (default: "
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
    parser.add_argument("--steps", type=int, default=500, help="training steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per cell")
    parser.add_argument("--batch-size", type=int, default=None)
    quick = QUICK_GRID
    parser.add_argument("--quick", action="store_true",
                        help="a quick run (under a minute on specs/master.yaml): the reduced "
                             "grid --depths " + ",".join(map(str, quick.depths))
                             + " --lrs " + ",".join(f"{v:.0e}".replace("e-0", "e-")
                                                    for v in quick.lrs)
                             + " --norms " + ",".join(quick.norms) + ", residual on "
                             f"({quick.cells} cells; an axis given explicitly wins), 1 seed, "
                             f"8 steps of batch 8, the held-out loss on {QUICK_EVAL_EXAMPLES} "
                             "digits, 1 thread"),
    parser.add_argument("--out", default="results/phase", help="report directory")
    add_sweep_options(parser)


def execute(args) -> int:
    from pdelang.ablation.phase import (
        parse_grid,
        phase,
        phase_summary,
        render_phase_markdown,
    )
    from pdelang.ablation.report import json_safe
    from pdelang.cli.ablate import _failures

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
