"""``pdelang study paper1 [--out docs/paper1] [--seeds 0,1,2] [--quick] [--text-steps N]
[--images-only | --text-only]``: the first paper's claims as tests that can fail
(:mod:`pdelang.lab.studies.paper1`).  Every piece is written to ``--out`` as it finishes and
reused by a later call (delete a piece's JSON to recompute it); ``summary.json`` and
``results.md`` are written from the pieces at the end."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from pdelang.errors import PdelangError
from pdelang.compiler.spec.initial import option_location


def configure(parser) -> None:
    parser.add_argument("study", choices=["paper1"], help="the study: paper1")
    parser.add_argument("--out", default="docs/paper1", help="the study's folder")
    parser.add_argument("--seeds", default="0,1,2",
                        help="vit-digits reference seeds (default 0,1,2); a seed not yet in "
                             "the cache is trained first, as `pdelang reference train "
                             "vit-digits --seed S` would (about 2.5 min each)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of every piece (seed 0, one text subset, short "
                             "fits): minutes, not the documented numbers")
    parser.add_argument("--skip-text-distill", action="store_true",
                        help="leave out the reduced text model (MiniLM tied; about 45 min "
                             "on one CPU thread)")
    parser.add_argument("--text-steps", type=int, default=None, metavar="N",
                        help="Adam steps per restart of the reduced text model (default "
                             "400, which stops short of convergence on CPU: about 2.6 s a "
                             "step on one thread); delete text/distill_tied.json to refit")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--images-only", action="store_true")
    which.add_argument("--text-only", action="store_true")


def execute(args) -> int:
    from pdelang.lab.studies.paper1 import StudyConfig, quick_config, run_study  # lazy: torch

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise PdelangError(f"--seeds {args.seeds}: a comma-separated list of seeds",
                           option_location("--seeds", args.seeds), "e.g. --seeds 0,1,2") \
            from None
    if not seeds or any(s < 0 for s in seeds):
        raise PdelangError(f"--seeds {args.seeds}: give non-negative seeds",
                           option_location("--seeds", args.seeds), "e.g. --seeds 0,1,2")
    if args.text_steps is not None and args.text_steps < 1:
        raise PdelangError(f"--text-steps {args.text_steps}: give a positive number of steps",
                           option_location("--text-steps", str(args.text_steps)),
                           "e.g. --text-steps 3000")
    out = Path(args.out)
    config = quick_config(out) if args.quick else StudyConfig(out=out, seeds=seeds)
    if args.quick and args.seeds != "0,1,2":
        config = replace(config, seeds=seeds)
    config = replace(config, images=not args.text_only, text=not args.images_only,
                     text_distill=not args.skip_text_distill)
    if args.text_steps is not None:
        config = replace(config, text_steps=args.text_steps)
    summary = run_study(config, log=lambda line: print(line, file=sys.stderr))
    for key, value in summary["verdicts"].items():
        print(f"{key}: {value}")
    print(f"wrote {out}/summary.json and {out}/results.md")
    return 0
