"""``pdelang reference list [--json]`` and ``pdelang reference train NAME[@SEED] [--seed N]
[--epochs N] [--force] [--json]``: the references ``validate`` knows (with every trained seed
of ``vit-digits`` in the cache), and training the ones that are trained locally
(``vit-digits``) into the cache (``$PDELANG_CACHE_DIR`` or ``~/.cache/pdelang``).

Each seed is a reference of its own, in a folder of its own: ``vit-digits`` (seed 0,
``references/vit-digits``) and ``vit-digits@S`` (``references/vit-digits-seed{S}``).
``train vit-digits@S`` is ``train vit-digits --seed S``; both at once must agree."""

from __future__ import annotations

import json
import sys

from pdelang.errors import PdelangError, did_you_mean
from pdelang.compiler.spec.initial import option_location

#: Every fixed reference name with one line about it; trainable ones name their trainer.
DESCRIPTIONS = {
    "minilm": "pretrained all-MiniLM-L6-v2 (post-LN BERT, 6 x 384, 12 heads), text",
    "vit-digits": "pre-LN ViT (4 x 64, 4 heads, 2x2 patches + CLS) trained on 8x8 digits, "
                  "images",
    "hf-config:bert": "small random BERT (3 x 64, 4 heads), text",
    "hf-config:vit": "small random ViT on 8x8 digits (3 x 64, 4 heads), images",
    "hf-config:gpt2": "small random GPT-2 (3 x 64, 4 heads), text",
    "torch": "nn.TransformerEncoder, post-LN, GELU (3 x 64, 4 heads)",
    "torch:pre": "nn.TransformerEncoder, pre-LN + final norm, GELU",
    "torch:post": "nn.TransformerEncoder, post-LN, GELU",
    "torch:relu": "nn.TransformerEncoder, post-LN, ReLU",
    "torch:pre:relu": "nn.TransformerEncoder, pre-LN + final norm, ReLU",
    "torch:post:relu": "nn.TransformerEncoder, post-LN, ReLU",
    "hf:PATH": "a local Hugging Face directory (BertModel, ViTModel or GPT2Model)",
}

TRAINABLE = ("vit-digits",)


#: ``pdelang.lab.reference.vit_digits.DEFAULT_EPOCHS``, for the help text: building the parser must
#: not import ``pdelang.lab.reference`` (it imports torch, and ``pdelang check`` never does); a
#: test keeps the two equal.
DEFAULT_EPOCHS = 150


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="the known references; trained copies in the cache",
                             description="the known references; for trainable ones, whether "
                                         "a trained copy is in the cache and where")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    train = sub.add_parser("train", help="train a reference into the cache (reused if there)",
                           description="train a reference into the cache "
                                       "($PDELANG_CACHE_DIR or ~/.cache/pdelang), one folder "
                                       "per seed; a trained copy of that seed already there "
                                       "is reused unless --force")
    train.add_argument("name", help=f"the reference to train: {', '.join(TRAINABLE)}, or "
                                    "vit-digits@SEED (the same as --seed SEED)")
    train.add_argument("--seed", type=int, default=None,
                       help="seed, a non-negative integer (default 0): seed 0 is the reference "
                            "vit-digits, seed S the reference vit-digits@S, each trained into "
                            "a cache folder of its own")
    train.add_argument("--epochs", type=int, default=None,
                       help=f"passes over the training digits (default {DEFAULT_EPOCHS})")
    train.add_argument("--max-steps", type=int, default=None,
                       help="stop after this many optimiser steps (a quick check)")
    train.add_argument("--force", action="store_true",
                       help="retrain and replace a trained copy that is already there")
    train.add_argument("--json", action="store_true", help="print one JSON object")


def _listing() -> list[dict]:
    """One row per fixed reference, then one per trained seed S ≠ 0 of ``vit-digits``
    (``vit-digits@S``) right after the ``vit-digits`` row (seed 0, trained or not)."""
    # lazy: torch
    from pdelang.lab.reference.vit_digits import (
        model_dir,
        read_metadata,
        reference_name,
        trained_seeds,
    )

    def trained_row(seed, path, metadata) -> dict:
        return {"seed": seed, "path": str(path), "trained": metadata is not None,
                "accuracy": metadata.get("accuracy") if metadata else None,
                "trained_seed": metadata.get("seed", seed) if metadata else None,
                "epochs": metadata.get("epochs") if metadata else None}

    rows = []
    for name, text in DESCRIPTIONS.items():
        row = {"name": name, "description": text, "trainable": name in TRAINABLE}
        rows.append(row)
        if name == "vit-digits":
            path = model_dir()
            row.update(trained_row(0, path, read_metadata(path)))
            for seed, folder, metadata in trained_seeds():
                if seed != 0:
                    rows.append({"name": reference_name(seed),
                                 "description": f"vit-digits trained with seed {seed}",
                                 "trainable": True} | trained_row(seed, folder, metadata))
    return rows


def _list(args) -> int:
    rows = _listing()
    if args.json:
        print(json.dumps({"references": rows}, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        print(f"{row['name']:<{width}}  {row['description']}")
        if row["trainable"]:
            if row["trained"]:
                state = f"trained (held-out accuracy {row['accuracy']:.4f}) in {row['path']}"
                if row["trained_seed"] != row["seed"]:
                    state += (f" (but with seed {row['trained_seed']}: `pdelang reference "
                              f"train {row['name']} --force` trains seed {row['seed']})")
            else:
                state = (f"not trained: `pdelang reference train {row['name']}` "
                         f"writes {row['path']}")
            print(f"{'':<{width}}  {state}")
    return 0


def _check(args) -> tuple[str, int]:
    """The reference to train and its seed (``NAME@SEED`` and ``--seed`` resolved), or a
    located :class:`~pdelang.errors.PdelangError`."""
    base, at, suffix = args.name.partition("@")
    if base not in TRAINABLE:
        known = DESCRIPTIONS.get(base)
        detail = ("it is not trained locally (validate loads it as it is)" if known
                  else "unknown reference")
        hint = did_you_mean(base, TRAINABLE)
        raise PdelangError(f"reference {args.name!r}: {detail}; trainable: "
                           f"{', '.join(TRAINABLE)}",
                           option_location("train", args.name),
                           hint or f"pdelang reference train {TRAINABLE[0]}")
    seed = args.seed
    if seed is not None and seed < 0:
        raise PdelangError(f"--seed {seed}: must be a non-negative integer",
                           option_location("--seed", str(seed)), "e.g. --seed 1")
    if at:
        from pdelang.lab.reference.vit_digits import seed_from_suffix  # lazy: torch

        try:
            named = seed_from_suffix(suffix, args.name)
        except ValueError as exc:
            raise PdelangError(str(exc), option_location("train", args.name),
                               f"e.g. pdelang reference train {base}@1") from None
        if seed is not None and seed != named:
            raise PdelangError(f"reference {args.name!r} names seed {named} but --seed is "
                               f"{seed}", option_location("--seed", str(seed)),
                               f"drop --seed, or train {base}@{seed}")
        seed = named
    for flag, value in (("--epochs", args.epochs), ("--max-steps", args.max_steps)):
        if value is not None and value < 1:
            raise PdelangError(f"{flag} {value}: must be at least 1",
                               option_location(flag, str(value)), f"e.g. {flag} 10")
    return base, 0 if seed is None else seed


def _train(args) -> int:
    from pdelang.lab.reference.vit_digits import DEFAULT_EPOCHS, train_vit_digits  # lazy: torch

    _, seed = _check(args)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS
    result = train_vit_digits(seed=seed, epochs=epochs, force=args.force,
                              progress=not args.json, max_steps=args.max_steps)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    stored = result.metadata
    if result.reused:
        print(f"reused the trained {result.name} in {result.path}: held-out accuracy "
              f"{result.accuracy:.4f} (seed {stored.get('seed')}, {stored.get('epochs')} epochs, "
              f"trained in {result.seconds:.1f} s); --force retrains")
        asked = (seed, epochs)
        if asked != (stored.get("seed"), stored.get("epochs")):
            print(f"note: it was trained with seed {stored.get('seed')} and "
                  f"{stored.get('epochs')} epochs, not the seed {seed} and {epochs} "
                  "epochs asked; --force retrains with these", file=sys.stderr)
    else:
        print(f"trained {result.name}: held-out accuracy {result.accuracy:.4f} on "
              f"{stored['heldout_images']} digits, {stored['steps']} steps "
              f"({epochs} epochs, seed {seed}) in {result.seconds:.1f} s; "
              f"saved to {result.path}")
    return 0


def execute(args) -> int:
    if args.action == "list":
        return _list(args)
    return _train(args)
