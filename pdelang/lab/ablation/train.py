"""A small, deterministic training loop that records the dynamics of an ablation variant.

Per step ``k`` (0-based) it records

* ``loss_k``: the training loss of the step's batch (before the update);
* ``grad_norm_k = ||g_k||_2 = sqrt(sum_p sum_i g_{p,i}^2)``: the global L2 norm of every
  parameter gradient, measured *before* any clipping (no clipping by default);
* ``update_norm_k = ||theta_{k+1} - theta_k||_2``: the global L2 norm of the parameter
  change made by the optimizer step (``nan`` where no step was taken);
* ``max_activation_k = max |y|`` over the stepper output ``y`` of the step's batch.

Divergence: step ``k`` diverges when its loss or gradient norm is NaN/Inf, or when
``loss_k > divergence_threshold``; the default threshold is ``10 x loss_0`` (ten times the
loss of the very first step; for cross-entropy ``loss_0 ~ log(classes)``).  A diverging
step is recorded, *no* update is applied, ``diverged=True, divergence_step=k`` is set and
training stops (the record is truncated there).

Determinism: :func:`train` seeds the global torch RNG (dropout) and its batch generator
with ``seed``; the *model* must be built by the caller under the same seed, e.g.::

    with seeded(seed):
        task = DigitsTask(StepperClass())
    record = train(task, steps=60, lr=1e-3, seed=seed)

or use :func:`train_seeds` which does both.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from pdelang.lab.ablation.report_rows import finite_mean_std, finite_values
from pdelang.lab.ablation.tasks import AblationTask

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "OPTIMIZERS",
    "TrainingRecord",
    "global_norm",
    "make_optimizer",
    "seed_everything",
    "seeded",
    "summarize",
    "train",
    "train_seeds",
]

OPTIMIZERS = ("adamw", "adam", "sgd")
DEFAULT_DIVERGENCE_FACTOR = 10.0


@dataclass
class TrainingRecord:
    """What one training run did.  Lists hold one entry per *logged* step.

    ``steps`` holds the 0-based step index of each entry (every ``log_every``-th step, plus
    the last and the diverging step).  ``final_loss`` is the training loss of the last step
    executed (for a diverged run: the loss of the diverging step, possibly ``inf``/``nan``);
    ``max_grad_norm`` the largest gradient norm seen (NaN entries ignored; ``nan`` if none);
    ``eval_accuracy`` / ``eval_loss`` come from ``task.evaluate('test')`` after training.
    """

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    update_norms: list[float] = field(default_factory=list)
    max_activations: list[float] = field(default_factory=list)
    diverged: bool = False
    divergence_step: int | None = None
    final_loss: float | None = None
    max_grad_norm: float | None = None
    eval_accuracy: float | None = None
    eval_loss: float | None = None
    steps: list[int] = field(default_factory=list)
    divergence_reason: str | None = None
    divergence_threshold: float | None = None
    seed: int | None = None
    steps_completed: int = 0
    seconds: float = 0.0
    information: list[dict] = field(default_factory=list)  # observe(step) results

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` (lists of floats; NaN/Inf kept as floats: see report.json_safe)."""
        return asdict(self)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global RNGs; restore their states on exit.

    Build a stepper and its task inside ``with seeded(seed):`` so their initial parameters
    depend on ``seed`` only.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (no restoring)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(
    name: str, parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float | None
) -> torch.optim.Optimizer:
    """``adamw`` (weight decay 0.01 by default), ``adam`` or plain ``sgd`` (no momentum)."""
    name = name.lower()
    params = list(parameters)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01 if weight_decay is None
                                 else weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay or 0.0)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay or 0.0)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def global_norm(tensors: Iterable[torch.Tensor]) -> float:
    """``sqrt(sum_t ||t||_2^2)`` in float64 (``nan``/``inf`` propagate; 0 for no tensors)."""
    squares = [torch.linalg.vector_norm(t.detach(), dtype=torch.float64) ** 2 for t in tensors]
    if not squares:
        return 0.0
    return float(torch.stack(squares).sum().sqrt())


def _report_progress(progress: Any, step: int, metrics: dict[str, float]) -> None:
    if progress is None:
        return
    if hasattr(progress, "update"):  # tqdm-like
        if hasattr(progress, "set_postfix"):
            progress.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
        progress.update(1)
    else:
        progress(step, metrics)


def train(
    task: AblationTask,
    *,
    steps: int,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    seed: int = 0,
    batch_size: int | None = None,
    divergence_threshold: float | None = None,
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
    log_every: int = 1,
    progress: Any = None,
    weight_decay: float | None = None,
    grad_clip: float | None = None,
    eval_examples: int | None = None,
    evaluate: bool = True,
    warmup_steps: int = 0,
    observe: Callable[[int], dict] | None = None,
    observe_every: int = 0,
) -> TrainingRecord:
    """Train ``task`` for ``steps`` optimizer steps and record its dynamics (module docstring).

    ``divergence_threshold=None`` means ``divergence_factor x loss_0`` (default 10x).
    ``batch_size=None`` uses ``task.default_batch_size``.  ``grad_clip`` clips the global
    norm *after* it is recorded.  ``progress``: a tqdm-like object (``update(1)`` per step,
    plus ``set_postfix``) or a callable ``progress(step, metrics)``.  After training, unless
    ``evaluate=False``, ``task.evaluate('test', eval_examples)`` fills ``eval_accuracy`` and
    ``eval_loss`` (a fixed small subset: default 256 digits / 32 text windows).
    ``warmup_steps``: linear learning-rate warm-up, ``lr_k = lr * min(1, (k + 1) / warmup)``
    (0 = constant ``lr``).
    ``observe``: called as ``observe(k)`` after ``k`` optimizer updates — at 0, every
    ``observe_every`` updates (0: only at 0 and the end) and after the last — its results
    go to ``record.information`` (``ablate --metrics info``: the information plane).
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    log_every = max(1, int(log_every))
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    batches = task.batches("train", batch_size or task.default_batch_size, generator)
    params = [p for p in task.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr, weight_decay)
    record = TrainingRecord(seed=seed, divergence_threshold=divergence_threshold)
    threshold = divergence_threshold
    max_grad = -math.inf
    task.train()
    if observe is not None:
        record.information.append(observe(0))

    for step in range(steps):
        batch = next(batches)
        if warmup_steps > 0:
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup_steps)
        opt.zero_grad(set_to_none=True)
        output = task.forward(batch)
        loss = float(output.loss.detach())
        max_activation = float(output.state.detach().abs().max()) if output.state.numel() else 0.0
        if threshold is None and math.isfinite(loss):
            threshold = divergence_factor * loss
            record.divergence_threshold = threshold

        reason = None
        grad_norm = math.nan
        update_norm = math.nan
        if not math.isfinite(loss):
            reason = "non-finite loss"
        else:
            output.loss.backward()
            grad_norm = global_norm(p.grad for p in params if p.grad is not None)
            if not math.isfinite(grad_norm):
                reason = "non-finite gradient norm"
            elif threshold is not None and loss > threshold:
                reason = f"loss above threshold {threshold:.4g}"
        if reason is None:
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            before = [p.detach().clone() for p in params]
            opt.step()
            update_norm = global_norm(p.detach() - b for p, b in zip(params, before))
            done = step + 1
            if observe is not None and (done == steps or (observe_every
                                                          and done % observe_every == 0)):
                record.information.append(observe(done))
        if not math.isnan(grad_norm):
            max_grad = max(max_grad, grad_norm)

        record.steps_completed = step + 1
        record.final_loss = loss
        if step % log_every == 0 or reason is not None or step == steps - 1:
            record.steps.append(step)
            record.losses.append(loss)
            record.grad_norms.append(grad_norm)
            record.update_norms.append(update_norm)
            record.max_activations.append(max_activation)
        _report_progress(progress, step, {"loss": loss, "grad_norm": grad_norm,
                                          "update_norm": update_norm,
                                          "max_activation": max_activation})
        if reason is not None:
            record.diverged = True
            record.divergence_step = step
            record.divergence_reason = reason
            break

    record.max_grad_norm = max_grad if max_grad > -math.inf else (math.nan if steps else None)
    if evaluate:
        metrics = task.evaluate("test", max_examples=eval_examples)
        record.eval_accuracy = metrics["accuracy"]
        record.eval_loss = metrics["loss"]
    record.seconds = time.perf_counter() - started
    return record


def train_seeds(
    make_task: Callable[[], AblationTask],
    seeds: Sequence[int],
    progress: Callable[[int], Any] | None = None,
    observer: Callable[[AblationTask], Callable[[int], dict]] | None = None,
    **train_options: Any,
) -> list[TrainingRecord]:
    """One :func:`train` run per seed, building a fresh task with ``make_task()`` under
    :func:`seeded` (so the stepper, embedding and head initialisation depend on the seed).

    ``progress``: optional factory ``progress(seed)`` returning a per-run progress object;
    ``observer``: optional factory ``observer(task)`` of :func:`train`'s ``observe``.
    """
    records = []
    for seed in seeds:
        with seeded(seed):
            task = make_task()
            bar = progress(seed) if progress is not None else None
            observe = observer(task) if observer is not None else None
            records.append(train(task, seed=seed, progress=bar, observe=observe,
                                 **train_options))
            if bar is not None and hasattr(bar, "close"):
                bar.close()
    return records


def summarize(records: Sequence[TrainingRecord]) -> dict[str, Any]:
    """Aggregate runs of one variant over seeds.

    Means/stds (population, ddof=0) are over the *finite* values only; ``*_finite`` counts
    how many entered.  ``max_grad_norm`` is the largest over seeds (``inf`` kept),
    ``divergence_step`` the earliest divergence step (``None`` if no seed diverged).
    """
    final_mean, final_std = finite_mean_std(r.final_loss for r in records)
    acc_mean, acc_std = finite_mean_std(r.eval_accuracy for r in records)
    eval_mean, eval_std = finite_mean_std(r.eval_loss for r in records)
    divergence_steps = [r.divergence_step for r in records if r.diverged]
    grad_maxima = [r.max_grad_norm for r in records
                   if r.max_grad_norm is not None and not math.isnan(r.max_grad_norm)]
    activations = [a for r in records for a in r.max_activations if not math.isnan(a)]
    return {
        "seeds": len(records),
        "final_loss_mean": final_mean,
        "final_loss_std": final_std,
        "final_loss_finite": len(finite_values(r.final_loss for r in records)),
        "eval_accuracy_mean": acc_mean,
        "eval_accuracy_std": acc_std,
        "eval_loss_mean": eval_mean,
        "eval_loss_std": eval_std,
        "diverged": bool(divergence_steps),
        "fraction_diverged": len(divergence_steps) / len(records) if records else 0.0,
        "divergence_step": min(divergence_steps) if divergence_steps else None,
        "divergence_steps": [r.divergence_step for r in records],
        "max_grad_norm": max(grad_maxima) if grad_maxima else None,
        "max_activation": max(activations) if activations else None,
        "steps_completed_mean": float(np.mean([r.steps_completed for r in records]))
        if records else 0.0,
        "seconds_total": float(sum(r.seconds for r in records)),
    }
