"""``pdelang reference list [--json]`` and ``pdelang reference train NAME [--seed N]
[--epochs N] [--force] [--json]``: the references ``validate`` knows, and training the ones
that are trained locally (``vit-digits``) into the cache (``$PDELANG_CACHE_DIR`` or
``~/.cache/pdelang``)."""

from __future__ import annotations

import json
import sys

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


#: ``pdelang.reference.vit_digits.DEFAULT_EPOCHS``, for the help text: building the parser must
#: not import ``pdelang.reference`` (it imports torch, and ``pdelang check`` never does); a
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
                                       "($PDELANG_CACHE_DIR or ~/.cache/pdelang); a trained "
                                       "copy already there is reused unless --force")
    train.add_argument("name", help=f"the reference to train: {', '.join(TRAINABLE)}")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--epochs", type=int, default=None,
                       help=f"passes over the training digits (default {DEFAULT_EPOCHS})")
    train.add_argument("--max-steps", type=int, default=None,
                       help="stop after this many optimiser steps (a quick check)")
    train.add_argument("--force", action="store_true",
                       help="retrain and replace a trained copy that is already there")
    train.add_argument("--json", action="store_true", help="print one JSON object")


def _listing() -> list[dict]:
    from pdelang.reference.vit_digits import model_dir, read_metadata

    rows = []
    for name, text in DESCRIPTIONS.items():
        row = {"name": name, "description": text, "trainable": name in TRAINABLE}
        if name == "vit-digits":
            path = model_dir()
            metadata = read_metadata(path)
            row.update(path=str(path), trained=metadata is not None,
                       accuracy=metadata.get("accuracy") if metadata else None)
        rows.append(row)
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
            else:
                state = (f"not trained: `pdelang reference train {row['name']}` "
                         f"writes {row['path']}")
            print(f"{'':<{width}}  {state}")
    return 0


def _check(args) -> None:
    from pdelang.errors import PdelangError, did_you_mean
    from pdelang.spec.initial import option_location

    if args.name not in TRAINABLE:
        known = DESCRIPTIONS.get(args.name)
        detail = ("it is not trained locally (validate loads it as it is)" if known
                  else "unknown reference")
        hint = did_you_mean(args.name, TRAINABLE)
        raise PdelangError(f"reference {args.name!r}: {detail}; trainable: "
                           f"{', '.join(TRAINABLE)}",
                           option_location("train", args.name),
                           hint or f"pdelang reference train {TRAINABLE[0]}")
    for flag, value in (("--epochs", args.epochs), ("--max-steps", args.max_steps)):
        if value is not None and value < 1:
            raise PdelangError(f"{flag} {value}: must be at least 1",
                               option_location(flag, str(value)), f"e.g. {flag} 10")


def _train(args) -> int:
    from pdelang.reference.vit_digits import DEFAULT_EPOCHS, train_vit_digits

    _check(args)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS
    result = train_vit_digits(seed=args.seed, epochs=epochs, force=args.force,
                              progress=not args.json, max_steps=args.max_steps)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    stored = result.metadata
    if result.reused:
        print(f"reused the trained {args.name} in {result.path}: held-out accuracy "
              f"{result.accuracy:.4f} (seed {stored.get('seed')}, {stored.get('epochs')} epochs, "
              f"trained in {result.seconds:.1f} s); --force retrains")
        asked = (args.seed, epochs)
        if asked != (stored.get("seed"), stored.get("epochs")):
            print(f"note: it was trained with seed {stored.get('seed')} and "
                  f"{stored.get('epochs')} epochs, not the seed {args.seed} and {epochs} "
                  "epochs asked; --force retrains with these", file=sys.stderr)
    else:
        print(f"trained {args.name}: held-out accuracy {result.accuracy:.4f} on "
              f"{stored['heldout_images']} digits, {stored['steps']} steps "
              f"({epochs} epochs, seed {args.seed}) in {result.seconds:.1f} s; "
              f"saved to {result.path}")
    return 0


def execute(args) -> int:
    if args.action == "list":
        return _list(args)
    return _train(args)
