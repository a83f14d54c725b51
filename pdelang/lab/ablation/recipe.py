"""Training a generated stepper as a digit classifier with a real recipe (``pdelang phase``).

The model wraps any stepper whose grid is the 4 × 4 patch grid of an 8 × 8 digit (one CLS
token off the grid, ``specs/vit2d.yaml``'s layout)::

    u₀     = [cls; patches(x) W_pᵀ + b_p] + pos        # (B, 1 + 16, C), 2 × 2 patches
    u_L    = stepper(u₀)                               # (B, 17, C)
    logits = W_c · N(u_L[:, 0]) + b_c                  # (B, 10)

with ``N`` the **read-out norm**: a LayerNorm (``readout="norm"``, every arm of the study:
the head sees a bounded input whatever the body does) or the identity (``readout="raw"``:
the head reads the raw stream, the artefact of the earlier study kept as its own arm).  The
head starts at zero (loss₀ = log 10 exactly, whatever the body), the CLS token and the
position embeddings at N(0, 0.02²), the patch embedding at PyTorch's default.

The recipe (:data:`RECIPES`) is ``vit-digits``'s (:mod:`pdelang.lab.reference.vit_digits`):
images in ``[0, 1]`` normalised ``(x − 0.5)/0.5``, each batch shifted by a random whole pixel
in ``{−1, 0, 1}²``; AdamW (weight decay 0.05, batch 64); a linear warm-up then a cosine decay
to 0 at the last step; cross-entropy with label smoothing 0.1; gradient clipping off unless
asked.  Data: :func:`pdelang.lab.data.load_digits_images`'s ``train`` (1438 digits) and
``heldout`` (359) splits, the held-out accuracy on all 359.

**Instability** (decided before any run): a step whose loss or gradient norm is NaN/Inf, or
a loss above loss₀ + 1 nat for :data:`UNSTABLE_WINDOW` consecutive steps (loss₀ the first
step's loss).  Training stops there; the held-out accuracy is still measured on the weights
where it stopped (non-finite logits count as wrong).

**Drift during training** (:func:`representation_drift`): on a fixed batch of held-out
digits, at initialization and after training, the relative distance the stream moved from
its input, ‖u_L − u₀‖/‖u₀‖, and how far its tokens stay from their mean,
‖u_L − 1ūᵀ‖/‖u_L‖ (0: every token the same, rank collapse).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdelang.lab.ablation.recipe_settings import RECIPES, Recipe, quick_recipe
from pdelang.interpreters.builder import structure_of
from pdelang.lab.data import load_digits_images
from pdelang.lab.reference.vit_digits import _shift as shift
from pdelang.lab.ablation.train import seeded

__all__ = ["DRIFT_EXAMPLES", "READOUTS", "RECIPES", "UNSTABLE_MARGIN", "UNSTABLE_WINDOW",
           "DigitsClassifier", "Recipe", "RecipeRecord", "digits_splits",
           "normalise_images", "quick_recipe", "representation_drift", "run_recipe_unit",
           "train_recipe"]

UNSTABLE_MARGIN = 1.0  # nats above loss₀
UNSTABLE_WINDOW = 10  # consecutive steps
READOUTS = ("norm", "raw")
DRIFT_EXAMPLES = 64
CLASSES = 10
INIT_STD = 0.02




def digits_splits(recipe: Recipe):
    """``(train_images, train_labels, heldout_images, heldout_labels)``: (N, 1, 8, 8) in [0, 1]."""
    train = load_digits_images(recipe.max_train, "train")
    heldout = load_digits_images(recipe.max_heldout, "heldout")
    return (*train, *heldout)


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5) / 0.5


def _shift(images: torch.Tensor, generator: torch.Generator, max_shift: int) -> torch.Tensor:
    return shift(images, generator, max_shift)


class DigitsClassifier(nn.Module):
    """Patch embedding → stepper → read-out norm → linear head (module docstring)."""

    def __init__(self, stepper: nn.Module, channels: int, readout: str = "norm") -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout {readout!r}: expected one of {READOUTS}")
        self.patch_embedding = nn.Linear(4, channels)  # 2 × 2 patches
        self.cls = nn.Parameter(torch.randn(1, 1, channels) * INIT_STD)
        self.position = nn.Parameter(torch.randn(1, 16, channels) * INIT_STD)
        self.stepper = stepper
        self.readout = nn.LayerNorm(channels) if readout == "norm" else nn.Identity()
        self.head = nn.Linear(channels, CLASSES)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def vit_init(self) -> DigitsClassifier:
        """Hugging Face ViT's initialization: every Linear weight but the head's from a
        normal truncated at ±2σ with σ = 0.02, every bias 0 (norms keep their ones/zeros)."""
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.head:
                nn.init.trunc_normal_(module.weight, std=INIT_STD, a=-2 * INIT_STD,
                                      b=2 * INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        return self

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) → (B, 17, C)."""
        batch = images.shape[0]
        patches = images.reshape(batch, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(batch, 16, 4)
        tokens = self.patch_embedding(patches) + self.position  # (B, 16, C)
        return torch.cat([self.cls.expand(batch, -1, -1), tokens], dim=1)

    def body(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u₀, u_L), both (B, 17, C)."""
        u0 = self.embed(images)
        out = self.stepper(u0)
        return u0, (out.state if hasattr(out, "state") else out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, state = self.body(images)
        return self.head(self.readout(state[:, 0]))  # (B, 10)


@dataclass
class RecipeRecord:
    """What one run did: per-step loss and gradient norm (before clipping), the stop."""

    seed: int
    lr: float
    steps_planned: int
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    unstable: bool = False
    unstable_step: int | None = None
    unstable_reason: str | None = None
    heldout_accuracy: float | None = None
    heldout_loss: float | None = None
    drift_init: dict | None = None
    drift_final: dict | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def representation_drift(model: DigitsClassifier, images: torch.Tensor) -> dict[str, float]:
    """On ``images`` (normalised): ``moved`` = ‖u_L − u₀‖/‖u₀‖ and ``token_spread`` =
    ‖u_L − 1ūᵀ‖/‖u_L‖ (per image, then the median)."""
    was = model.training
    model.eval()
    u0, state = model.body(images)
    model.train(was)
    moved = (state - u0).flatten(1).norm(dim=1) / u0.flatten(1).norm(dim=1)
    centred = state - state.mean(dim=1, keepdim=True)
    spread = centred.flatten(1).norm(dim=1) / state.flatten(1).norm(dim=1).clamp_min(1e-30)
    return {"moved": float(moved.median()), "token_spread": float(spread.median())}


@torch.no_grad()
def _evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              label_smoothing: float) -> tuple[float, float]:
    was = model.training
    model.eval()
    logits = model(images)
    model.train(was)
    finite = torch.isfinite(logits).all(dim=1)
    correct = (logits.argmax(dim=1) == labels) & finite
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    return float(correct.float().mean()), float(loss)


def train_recipe(model: DigitsClassifier, recipe: Recipe, lr: float, seed: int,
                 data=None, progress: Callable[[int, float], None] | None = None,
                 measure_drift: bool = True, device: str = "cpu") -> RecipeRecord:
    """Train ``model`` (built by the caller under ``seed``) with ``recipe`` at peak rate
    ``lr``; the batch order and shifts come from ``seed`` (drawn on the CPU, so a run's
    batches do not depend on ``device``).  Stops at instability (module docstring)."""
    started = time.perf_counter()
    train_x, train_y, held_x, held_y = data if data is not None else digits_splits(recipe)
    model.to(device)
    held_x, held_y = normalise_images(held_x).to(device), held_y.to(device)
    per_epoch = math.ceil(len(train_y) / recipe.batch_size)
    total = recipe.steps(len(train_y))
    warmup = max(1, round(recipe.warmup_epochs * per_epoch)) if recipe.warmup_epochs else 0
    record = RecipeRecord(seed=seed, lr=lr, steps_planned=total)
    drift_images = held_x[:DRIFT_EXAMPLES]
    if measure_drift:
        record.drift_init = representation_drift(model, drift_images)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=recipe.weight_decay)

    def rate(step: int) -> float:  # warm-up, then cosine to 0 at the last step (or constant)
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        if recipe.schedule == "constant":
            return ramp
        return ramp * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    generator = torch.Generator().manual_seed(seed)
    model.train()
    loss0, above, step = None, 0, 0
    while step < total and not record.unstable:
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            if step >= total:
                break
            batch = order[start:start + recipe.batch_size]
            shifted = _shift(train_x[batch], generator, recipe.max_shift)
            images = normalise_images(shifted).to(device)
            for group in optimizer.param_groups:
                group["lr"] = lr * rate(step)
            logits = model(images)
            loss = F.cross_entropy(logits, train_y[batch].to(device),
                                   label_smoothing=recipe.label_smoothing)
            value = float(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            reason = None
            grad_norm = math.nan
            if math.isfinite(value):
                loss.backward()
                grad_norm = float(torch.linalg.vector_norm(torch.stack(
                    [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])))
                if not math.isfinite(grad_norm):
                    reason = "non-finite gradient norm"
            else:
                reason = "non-finite loss"
            if loss0 is None:
                loss0 = value
            above = above + 1 if (math.isfinite(value) and value > loss0 + UNSTABLE_MARGIN) \
                else 0
            if reason is None and above >= UNSTABLE_WINDOW:
                reason = f"loss above loss₀ + {UNSTABLE_MARGIN:g} nat for {UNSTABLE_WINDOW} steps"
            record.losses.append(value)
            record.grad_norms.append(grad_norm)
            if reason is not None:
                record.unstable, record.unstable_step, record.unstable_reason = True, step, reason
                break
            if recipe.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, recipe.clip)
            optimizer.step()
            step += 1
            if progress is not None:
                progress(step, value)
    record.heldout_accuracy, record.heldout_loss = _evaluate(model, held_x, held_y,
                                                              recipe.label_smoothing)
    if measure_drift:
        record.drift_final = representation_drift(model, drift_images)
    record.seconds = time.perf_counter() - started
    return record


def run_recipe_unit(unit: dict, module) -> dict:
    """Train one unit's model (built under its seed) and return the run's record."""
    recipe = Recipe(**unit["recipe"])
    with seeded(unit["seed"]):
        stepper = module.Stepper()
        channels = int(structure_of(module.Stepper)["channels"])
        model = DigitsClassifier(stepper, channels, unit["readout"])
        if recipe.init == "vit":
            model.vit_init()
    flush = torch.set_flush_denormal(True)
    try:
        record = train_recipe(model, recipe, unit["lr"], unit["seed"],
                              device=unit["options"].get("device") or "cpu")
    finally:
        if flush:
            torch.set_flush_denormal(False)
    return {"record": record.to_json()}
