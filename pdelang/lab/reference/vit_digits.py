"""``vit-digits``: a small Vision Transformer trained on scikit-learn's 8x8 digits, cached.

The model is a Hugging Face ``ViTForImageClassification`` — a ``ViTModel`` (pre-LN, CLS token,
final LayerNorm) plus a linear classifier on the final CLS state::

    u_0    = [cls; patches(x) W_pᵀ + b_p] + pos          # (B, 1 + 16, 64): CLS + 4x4 grid
    v      = u + A(LN_att(u));  u' = v + F(LN_mlp(v))     # 4 layers, 4 heads, F: 64→256→64 GELU
    logits = LN_final(u_L)[:, 0] W_cᵀ + b_c               # (B, 10)

with 1 channel, 2x2 patches, width 64, 4 heads, MLP width 256, exact GELU, ε = 1e-12 and
query/key/value biases — the architecture of ``specs/vit2d.yaml``, so that
``pdelang validate specs/vit2d.yaml --reference vit-digits --mode exact`` reproduces it.

Training (:func:`train_vit_digits`): images of :func:`pdelang.lab.data.load_digits_images`'s
``'train'`` split (1438 digits), in ``[0, 1]`` and normalised ``x ↦ (x − 0.5) / 0.5``; each
batch shifted by a random whole pixel in ``{−1, 0, 1}²`` per image (zero padding); AdamW
(lr 3e-3, weight decay 0.05, batch 64), a linear warm-up over 2 epochs then a cosine decay to 0,
cross-entropy with label smoothing 0.1; no dropout.  Test accuracy is measured on the
``'heldout'`` split (359 digits), the split ``validate`` evaluates on.  Everything random comes
from ``seed`` (the initialisation from ``torch.manual_seed(seed)`` inside a forked RNG, the
batch order and shifts from a ``torch.Generator``), and training runs on one thread
(:data:`THREADS`): on one machine (CPU, torch and transformers versions) a run is
reproducible bit for bit.

The trained model is an ordinary Hugging Face directory (``save_pretrained``, a
``preprocessor_config.json`` with the normalisation, and ``pdelang_reference.json`` with the
accuracy, seed, epochs, seconds and library versions) under
``$PDELANG_CACHE_DIR/references/vit-digits`` (``~/.cache/pdelang`` when the variable is unset),
written atomically: trained into a temporary directory beside it, then renamed into place.

Seeds side by side: each seed has its own folder (:func:`model_dir`) — seed 0 the one above,
seed ``S`` ≠ 0 ``references/vit-digits-seed{S}`` — and its own reference name
(:func:`reference_name`): ``vit-digits`` for seed 0 (``vit-digits@0`` is the same), and
``vit-digits@S`` for seed ``S``.  :func:`trained_seeds` lists the trained copies in a cache.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from tqdm import tqdm
import torch
import torch.nn.functional as F
import sys

from pdelang.lab.data import load_digits_images
from pdelang.lab.reference.base import quiet_transformers, set_offline
from pdelang.version import __version__
from pdelang.io import atomic_directory, write_atomically
from pdelang.lab.reference.vit import load_vit_dir

NAME = "vit-digits"
METADATA_FILE = "pdelang_reference.json"
DEFAULT_EPOCHS = 150
DEFAULT_SEED = 0
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.05
WARMUP_EPOCHS = 2
LABEL_SMOOTHING = 0.1
MAX_SHIFT = 1
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
#: Training runs on one thread: the model is tiny (batches of 64 × 17 tokens × 64 channels),
#: so a second intra-op thread gains little on a quiet machine and loses up to 10× on a busy
#: one (measured: 40 steps in 1.8 s on 1 thread, 7.6–76 s on 2, with two other processes
#: running); and a fixed thread count keeps a run reproducible bit for bit.
THREADS = 1

#: The architecture of ``specs/vit2d.yaml`` (``ViTConfig`` keyword arguments).
VIT_DIGITS_CONFIG: dict[str, Any] = {
    "image_size": 8,
    "patch_size": 2,
    "num_channels": 1,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 4,
    "intermediate_size": 256,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "num_labels": 10,
}


def cache_dir() -> Path:
    """pdelang's cache folder: ``$PDELANG_CACHE_DIR`` if set (and not empty), else
    ``~/.cache/pdelang``."""
    configured = os.environ.get("PDELANG_CACHE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "pdelang"


#: ``vit-digits@S``: the reference trained with seed ``S`` (a non-negative integer).
NAME_FORM = f"{NAME}@SEED"
_SEED_FOLDER = re.compile(re.escape(NAME) + r"-seed([1-9][0-9]*)")


def _checked_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def parse_seed(name: str) -> int | None:
    """The seed a ``vit-digits`` reference name names: ``0`` for ``vit-digits`` (and
    ``vit-digits@0``), ``S`` for ``vit-digits@S``; ``None`` for a name that is not
    ``vit-digits`` with or without ``@`` (so the caller can try others).  Case is ignored.

    A ``vit-digits@…`` whose part after ``@`` is not a non-negative integer is a
    ``ValueError`` naming the form ``vit-digits@SEED``."""
    text = name.strip().lower()
    base, at, suffix = text.partition("@")
    if base.strip() != NAME:
        return None
    return seed_from_suffix(suffix, name) if at else 0


def seed_from_suffix(suffix: str, name: str) -> int:
    """The seed ``S`` of ``vit-digits@S`` from the text after the ``@``; a ``ValueError``
    naming ``name`` and the form ``vit-digits@SEED`` unless it is a non-negative integer."""
    suffix = suffix.strip()
    if not suffix.isascii() or not suffix.isdigit():
        raise ValueError(
            f"malformed reference {name.strip()!r}: the form is {NAME_FORM} with SEED a "
            f"non-negative integer, e.g. {NAME}@1 ({NAME} alone is seed 0)")
    return int(suffix)


def reference_name(seed: int = DEFAULT_SEED) -> str:
    """The reference name of the copy trained with ``seed``: ``vit-digits`` for seed 0,
    ``vit-digits@S`` otherwise."""
    return NAME if _checked_seed(seed) == 0 else f"{NAME}@{seed}"


def train_command(seed: int = DEFAULT_SEED) -> str:
    """The command that trains the copy of ``seed``."""
    return f"pdelang reference train {NAME}" + (f" --seed {seed}" if seed else "")


def model_dir(cache: str | os.PathLike | None = None, seed: int = DEFAULT_SEED) -> Path:
    """Where the ``vit-digits`` trained with ``seed`` lives: ``CACHE/references/vit-digits``
    for seed 0 (where it always was), ``CACHE/references/vit-digits-seed{S}`` for seed ``S``
    ≠ 0; ``ValueError`` for a negative seed."""
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    seed = _checked_seed(seed)
    return root / "references" / (NAME if seed == 0 else f"{NAME}-seed{seed}")


def trained_seeds(cache: str | os.PathLike | None = None) -> list[tuple[int, Path, dict[str, Any]]]:
    """Every trained copy in the cache as ``(seed, folder, metadata)``, by seed: the seed of
    the folder (:func:`model_dir`); ``metadata["seed"]`` says what it was trained with."""
    found = []
    zero = model_dir(cache)
    metadata = read_metadata(zero)
    if metadata is not None:
        found.append((0, zero, metadata))
    if zero.parent.is_dir():
        for folder in zero.parent.iterdir():
            match = _SEED_FOLDER.fullmatch(folder.name)
            if match and folder.is_dir():
                metadata = read_metadata(folder)
                if metadata is not None:
                    found.append((int(match.group(1)), folder, metadata))
    return sorted(found, key=lambda row: row[0])


def read_metadata(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The ``pdelang_reference.json`` of a trained copy, or ``None`` when the directory does
    not hold a complete one (no config, weights or metadata)."""
    directory = Path(directory)
    needed = [directory / "config.json", directory / METADATA_FILE]
    if not all(path.is_file() for path in needed):
        return None
    if not any(directory.glob("*.safetensors")) and not (directory / "pytorch_model.bin").is_file():
        return None
    try:
        data = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class TrainedReference:
    """The result of :func:`train_vit_digits`.

    Attributes:
        path: the Hugging Face directory.
        accuracy: held-out test accuracy (fraction of the 359 ``'heldout'`` digits).
        seconds: wall time of the training that produced it (the stored value when reused).
        reused: ``True`` when an existing trained copy was returned without training.
        metadata: the whole ``pdelang_reference.json``.
        name: the reference name of the seed asked (:func:`reference_name`): ``vit-digits``
            or ``vit-digits@S``.
    """

    path: Path
    accuracy: float
    seconds: float
    reused: bool
    metadata: dict[str, Any]
    name: str = NAME

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "accuracy": self.accuracy,
                "seconds": self.seconds, "reused": self.reused, "metadata": self.metadata}


def _shift(images, generator, max_shift: int):
    """Each ``(B, 1, H, W)`` image moved by a random whole pixel offset in
    ``[−max_shift, max_shift]²`` (zero padding)."""
    if max_shift <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, 1, H + 2s, W + 2s)
    dy = torch.randint(0, 2 * max_shift + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(width))[:, None, :]  # (B, 1, W)
    picked = padded[torch.arange(batch)[:, None, None], 0, rows, cols]  # (B, H, W)
    return picked.unsqueeze(1)


def _normalise(images):
    return (images - IMAGE_MEAN) / IMAGE_STD


def _accuracy(model, images, labels) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(pixel_values=_normalise(images)).logits
    return float((logits.argmax(-1) == labels).float().mean())


def _preprocessor_config() -> dict[str, Any]:
    """ViTImageProcessor's settings for raw scikit-learn digits (values 0..16, 8x8, 1 channel):
    rescale by 1/16 to ``[0, 1]``, then normalise with mean = std = 0.5."""
    return {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": False,
        "image_mean": [IMAGE_MEAN],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [IMAGE_STD],
        "resample": 2,
        "rescale_factor": 1.0 / 16.0,
        "size": {"height": 8, "width": 8},
    }


def _train(seed: int, epochs: int, max_steps: int | None,
           progress: Callable[[int, int, float], None] | None, total_steps: int):
    """Train a fresh model on one thread (see :data:`THREADS`); returns ``(model, accuracy,
    steps_done, train_images, heldout_images)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _train_steps(seed, epochs, max_steps, progress, total_steps)
    finally:
        torch.set_num_threads(threads)


def _train_steps(seed: int, epochs: int, max_steps: int | None,
                 progress: Callable[[int, int, float], None] | None, total_steps: int):
    from transformers import ViTConfig, ViTForImageClassification  # lazy: transformers

    set_offline()
    train_images, train_labels = load_digits_images(None, "train")  # (1438, 1, 8, 8), (1438,)
    test_images, test_labels = load_digits_images(None, "heldout")  # (359, 1, 8, 8), (359,)
    config = ViTConfig(**VIT_DIGITS_CONFIG, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with quiet_transformers():
            model = ViTForImageClassification(config)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)
    per_epoch = math.ceil(len(train_labels) / BATCH_SIZE)
    schedule_steps = max(epochs * per_epoch, 1)
    warmup = max(min(WARMUP_EPOCHS * per_epoch, schedule_steps // 10), 1)

    def rate(step: int) -> float:  # linear warm-up, then cosine to 0 at the last step
        ramp = min(1.0, (step + 1) / warmup)
        return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, schedule_steps) / schedule_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_labels), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            if max_steps is not None and step >= max_steps:
                break
            batch = order[start:start + BATCH_SIZE]
            images = _normalise(_shift(train_images[batch], generator, MAX_SHIFT))
            logits = model(pixel_values=images).logits  # (b, 10)
            loss = F.cross_entropy(logits, train_labels[batch],
                                   label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if progress is not None:
                progress(step, total_steps, float(loss.detach()))
        if max_steps is not None and step >= max_steps:
            break
    accuracy = _accuracy(model, test_images, test_labels)
    return model, accuracy, step, len(train_labels), len(test_labels)


def train_vit_digits(
    cache_dir: str | os.PathLike | None = None,
    seed: int = DEFAULT_SEED,
    epochs: int = DEFAULT_EPOCHS,
    force: bool = False,
    progress: bool | Callable[[int, int, float], None] = True,
    max_steps: int | None = None,
) -> TrainedReference:
    """Train ``vit-digits`` with ``seed`` into the seed's folder in the cache, or reuse the
    trained copy already in that folder.

    Args:
        cache_dir: the cache folder (default :func:`cache_dir`: ``$PDELANG_CACHE_DIR`` or
            ``~/.cache/pdelang``); the model goes to ``model_dir(cache_dir, seed)``:
            ``references/vit-digits`` for seed 0, ``references/vit-digits-seed{S}`` otherwise.
        seed: a non-negative integer; seeds the initialisation, the batch order and the
            shifts, and chooses the folder.  Only the copy in this seed's folder is reused
            (whatever its epochs: ``metadata`` tells them, ``force`` retrains); other seeds'
            copies are never touched.
        epochs: passes over the 1438 training digits (23 batches of 64 each); the cosine
            schedule spans them.
        force: retrain (and replace) even when a trained copy is present.
        progress: ``True`` for a tqdm bar on stderr, ``False`` for none, or a callable
            ``progress(step, total_steps, loss)``.
        max_steps: stop after this many optimiser steps (for quick checks; the schedule
            still spans ``epochs``).

    Returns:
        A :class:`TrainedReference` (``reused`` tells whether it trained).

    Raises:
        ValueError: ``epochs`` or ``max_steps`` below 1, or a negative ``seed``.
    """
    import transformers  # lazy: transformers

    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    target = model_dir(cache_dir, seed)
    name = reference_name(seed)
    existing = read_metadata(target)
    if existing is not None and not force:
        return TrainedReference(target, float(existing.get("accuracy", float("nan"))),
                                float(existing.get("seconds", float("nan"))), True, existing,
                                name)

    per_epoch = math.ceil(len(load_digits_images(None, "train")[1]) / BATCH_SIZE)
    total = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        bar = tqdm(total=total, desc=f"train {name}", unit="step", file=sys.stderr)

        def callback(step: int, total_steps: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(1)

    started = time.perf_counter()
    try:
        model, accuracy, steps, n_train, n_test = _train(seed, epochs, max_steps, callback, total)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    metadata = {
        "name": NAME,
        "accuracy": accuracy,
        "heldout_images": n_test,
        "train_images": n_train,
        "seed": seed,
        "epochs": epochs,
        "steps": steps,
        "max_steps": max_steps,
        "seconds": round(seconds, 3),
        "threads": THREADS,
        "training": {
            "optimizer": "AdamW", "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY, "batch_size": BATCH_SIZE,
            "schedule": f"linear warm-up ({WARMUP_EPOCHS} epochs), cosine to 0",
            "label_smoothing": LABEL_SMOOTHING,
            "augmentation": f"random shift by whole pixels in [-{MAX_SHIFT}, {MAX_SHIFT}]^2",
            "normalisation": f"(x - {IMAGE_MEAN}) / {IMAGE_STD}, x in [0, 1]",
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "pdelang": __version__},
    }
    with atomic_directory(target) as tmp:
        with quiet_transformers():
            model.save_pretrained(str(tmp), safe_serialization=True)
        write_atomically(tmp / "preprocessor_config.json",
                         json.dumps(_preprocessor_config(), indent=2) + "\n")
        write_atomically(tmp / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
    return TrainedReference(target, accuracy, seconds, False, metadata, name)


class NotTrainedError(ValueError):
    """A locally trained reference is not in the cache (or is unreadable there).

    ``suggestion`` is the command that fixes it."""

    def __init__(self, message: str, suggestion: str) -> None:
        super().__init__(message)
        self.suggestion = suggestion


def load_vit_digits(cache: str | os.PathLike | None = None, seed: int = DEFAULT_SEED):
    """The ``vit-digits`` trained with ``seed`` (from ``model_dir(cache, seed)``) as a
    :class:`~pdelang.lab.reference.vit.ViTReference` named ``reference_name(seed)``.

    :class:`NotTrainedError` (a ``ValueError``) naming the command that trains it
    (``pdelang reference train vit-digits --seed S``) when the cache holds no copy of that
    seed, holds one that cannot be loaded, or holds in the seed's folder a copy trained with
    another seed (the folder of seed 0 can, when written before seeds had folders of their
    own); ``ValueError`` for a negative seed."""
    directory = model_dir(cache, seed)
    name = reference_name(seed)
    metadata = read_metadata(directory)
    if metadata is None:
        raise NotTrainedError(
            f"reference {name!r} is not trained yet: no trained copy in {directory}",
            f"run `{train_command(seed)}` once (a few minutes on a CPU; it is "
            "cached there and reused; PDELANG_CACHE_DIR chooses another cache folder)")
    stored = metadata.get("seed", seed)
    if stored != seed:
        raise NotTrainedError(
            f"reference {name!r}: the trained copy in {directory} was trained with seed "
            f"{stored}, not {seed}",
            f"run `{train_command(seed)} --force` to train it with seed {seed}")

    try:
        return load_vit_dir(directory, name=name)
    except Exception as exc:  # a damaged cache: the weights file, the config
        raise NotTrainedError(
            f"reference {name!r}: the trained copy in {directory} cannot be loaded "
            f"({type(exc).__name__}: {exc})",
            f"run `{train_command(seed)} --force` to train it again") from exc
