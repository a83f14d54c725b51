"""``pdelang ablate SPEC --swap KEY=V1,V2 … [--reference minilm] [--train digits|text]
[--steps N] [--seeds K] [--out DIR] [--json] [--quick] [--executor local|ray [--address ADDR]]
[--resume]``.

Exit 2 before anything runs when a swap key or value does not fit the spec schema (a
located error with a suggestion); exit 1 when any variant failed (listed on stderr and in
the report's Errors section); 0 when every variant ran."""

from __future__ import annotations

import json
import sys

from pdelang.cli.main import add_common
from pdelang.lab.ablation.ablate import ablate
from pdelang.lab.ablation.formatting import json_safe
from pdelang.lab.ablation.report import render_markdown


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--swap", action="append", default=[], metavar="KEY=V1,V2",
                        help="values to sweep (repeatable; every combination runs); "
                             "train.lr/steps/batch_size/optimizer sweep the training set-up")
    parser.add_argument("--sweep", default=None, help="a YAML file mapping KEY to values")
    parser.add_argument("--reference", default="minilm",
                        help="weights and inputs for the drift measurement (or 'none')")
    parser.add_argument("--train", default="digits", choices=["digits", "text", "none"])
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per variant")
    parser.add_argument("--lr", type=float, default=1e-4,
                        help="AdamW learning rate (1e-3 does not train the post-LN master "
                             "spec on digits in 100 steps: measured, see README)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--drift-samples", type=int, default=16,
                        help="held-out inputs for the drift measurement")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 8 steps, 1 seed, 4 drift samples, 1 thread")
    parser.add_argument("--out", default="results/ablate", help="report directory")
    add_sweep_options(parser)
    parser.add_argument("--metrics", choices=["standard", "info"], default="standard",
                        help="info (digits): the information plane I(X;T), I(T;Y) per layer "
                             "along training (see validate --metrics info)")
    parser.add_argument("--sigma", type=float, default=None,
                        help="--metrics info: noise σ relative to each layer's spread "
                             "(default 0.3)")
    parser.add_argument("--info-every", type=int, default=None,
                        help="--metrics info: observe every N steps (default steps/10)")


def add_sweep_options(parser) -> None:
    """The options of every sweep command (ablate, phase): threads, compile, precision, the
    executor and where it runs, resume, device."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of each unit (default: torch's; 1 with --quick or "
                             "--executor ray, where it is also the CPUs each task declares)")
    parser.add_argument("--compile", action="store_true",
                        help="compile every stepper with torch.compile (each compiles on its "
                             "first call, tens of seconds on a CPU: for long sweeps; one "
                             "warning and uncompiled where torch.compile cannot be used)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="where the units (a variant × seed's training; ablate: a "
                             "variant's drift) run: this process (default) or one Ray task each "
                             '(pip install -e ".[distributed]")')
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="--executor ray: join this Ray cluster (auto, or HOST:PORT of "
                             "`ray start --head`); default: start a local Ray instance "
                             "sized to the machine")
    parser.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                        help="--executor ray without --address: CPUs of the local Ray "
                             "instance (default: the machine's)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the variants whose results are already in "
                             "OUT/variants (written by the same sweep)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where training runs (ablate's drift stays on the CPU); under "
                             "Ray each task asks for one GPU with cuda")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="the steppers' precision in drift and training: float32 "
                             "(default) or bfloat16 under autocast")


def execute(args) -> int:
    data = ablate(args.spec, args.swap, sweep_file=args.sweep, overrides=args.overrides,
                  reference=args.reference, train=args.train, steps=args.steps,
                  seeds=args.seeds, lr=args.lr, batch_size=args.batch_size,
                  drift_samples=args.drift_samples, quick=args.quick, out=args.out,
                  threads=args.threads, compile=args.compile, dtype=args.dtype,
                  progress=not args.json, metrics=(args.metrics,), sigma=args.sigma,
                  info_every=args.info_every, executor=args.executor,
                  address=args.address, resume=args.resume, device=args.device,
                  ray_cpus=args.ray_cpus)
    if args.json:
        summary = {k: v for k, v in data.items() if k != "variants"}
        summary["variants"] = [{k: v for k, v in variant.items() if k != "training"}
                               for variant in data["variants"]]
        print(json.dumps(json_safe(summary), indent=2))
    else:
        print(render_markdown(json_safe(data)))
        if args.out:
            print(f"\nwrote {args.out}: " + ", ".join(sorted(data.get("files", {}))))
    return _failures(data["variants"])


def _failures(variants: list[dict]) -> int:
    """Exit 1 (listing them on stderr) when any variant failed, 0 otherwise."""
    failed = [v for v in variants if not v.get("compiled") or v.get("error")]
    if not failed:
        return 0
    if len(failed) == len(variants):
        print(f"error: no variant compiled ({len(variants)} tried):", file=sys.stderr)
    else:
        print(f"error: {len(failed)} of {len(variants)} variants failed:", file=sys.stderr)
    for variant in failed:
        print(f"  {variant['label']}: {variant.get('error') or 'not compiled'}", file=sys.stderr)
    return 1
