"""Fitting a stepper to a reference's per-layer states, to convergence.

The loss is the mean over layers ℓ = 1 … L of the relative squared error on real tokens,

    loss = (1/L) Σ_ℓ Σ_{b,n} m_{bn} |s_ℓ − t_ℓ|² / Σ_{b,n} m_{bn} |t_ℓ|²,

with s_ℓ the model's state and t_ℓ the reference's at layer boundary ℓ.

Two optimizers, both run until a stated criterion holds rather than for a fixed budget:

* :func:`lbfgs_to_convergence` — full-batch L-BFGS with a strong-Wolfe line search, for a
  few scalar coefficients (D, α, basis coefficients).  A line search has no step size that
  bounds where a coefficient can go (Adam at learning rate η moves a parameter by about η
  per step: 40 steps cannot take softplus⁻¹(D) further than ≈ 2).  It stops when the
  loss or the step changes by less than ``tolerance`` in one iteration or the gradient
  vanishes (converged), or after ``max_iterations`` (reported as not converged).
* :func:`adam_to_plateau` — mini-batch Adam for a model's weights, evaluated on a separate
  validation set every ``eval_every`` steps.  **Plateau**: the best validation loss has not
  improved by more than ``tolerance`` (relative) for ``patience`` evaluations.  At a plateau
  the learning rate drops by ``factor`` and training continues from the best weights; the
  plateau at the last learning rate (after ``drops`` drops) is convergence.  Hitting
  ``max_steps`` first is reported as not converged.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pdelang.lab.validation.statistics import percentile_interval


def state_loss(states: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
               mask: torch.Tensor | None) -> torch.Tensor:
    """The mean over layers of the masked relative squared error (module docstring)."""
    if mask is None:
        weight = torch.ones(targets[0].shape[:2], dtype=targets[0].dtype)
    else:
        weight = mask.to(targets[0].dtype)
    weight = weight[..., None]
    total = sum(((s - t) ** 2 * weight).sum() / ((t ** 2) * weight).sum()
                for s, t in zip(states, targets))
    return total / len(targets)


@dataclass
class FitReport:
    """How a fit ended: the loss per iteration (or evaluation), the iterations taken, whether
    the stated criterion held, the criterion in words, the wall time."""

    history: list[float]
    iterations: int
    converged: bool
    criterion: str
    seconds: float
    learning_rates: list[float] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.history[-1] if self.history else math.nan

    def to_json(self) -> dict:
        return {"history": self.history, "iterations": self.iterations,
                "converged": self.converged, "criterion": self.criterion,
                "seconds": round(self.seconds, 3), "final_loss": self.final_loss,
                "learning_rates": self.learning_rates}


def lbfgs_to_convergence(params: Sequence[torch.nn.Parameter],
                         loss_fn: Callable[[], torch.Tensor], *, max_iterations: int = 100,
                         tolerance: float = 1e-7, progress=None) -> FitReport:
    """Minimize ``loss_fn()`` over ``params`` with L-BFGS (strong-Wolfe line search) until
    the loss or the step changes by ≤ ``tolerance`` × the starting loss in one iteration, or
    the gradient vanishes (≤ 1e-10), or ``max_iterations`` pass (then: not converged).
    ``history`` is the loss at each evaluation (line-search trials included)."""
    started = time.perf_counter()
    params = list(params)
    with torch.no_grad():
        start = abs(float(loss_fn()))
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iterations,
                                  max_eval=25 * max_iterations, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                  tolerance_change=tolerance * max(start, 1e-30))
    history: list[float] = []

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        history.append(float(loss.detach()))
        if progress is not None:
            progress(history[-1])
        return loss

    optimizer.step(closure)
    iterations = int(optimizer.state[params[0]].get("n_iter", 0)) if params else 0
    evaluations = int(optimizer.state[params[0]].get("func_evals", 0)) if params else 0
    with torch.no_grad():
        history.append(float(loss_fn()))
    converged = (math.isfinite(history[-1]) and iterations < max_iterations
                 and evaluations < 25 * max_iterations)
    return FitReport(history, iterations, converged,
                     f"L-BFGS (strong Wolfe) until the loss or the step changes by ≤ "
                     f"{tolerance:g} × the starting loss in one iteration or the gradient "
                     f"vanishes; at most "
                     f"{max_iterations} iterations", time.perf_counter() - started)


@dataclass(frozen=True)
class Plateau:
    """The plateau criterion of :func:`adam_to_plateau` (module docstring)."""

    patience: int = 4
    tolerance: float = 3e-3
    drops: int = 2
    factor: float = 0.2
    eval_every: int = 25

    def describe(self, max_steps: int) -> str:
        return (f"Adam until the validation loss improves by < {self.tolerance:g} (relative) "
                f"over {self.patience} evaluations {self.eval_every} steps apart, after "
                f"{self.drops} learning-rate drops ×{self.factor:g} at earlier plateaus; "
                f"at most {max_steps} steps")


def adam_to_plateau(model: torch.nn.Module, params: Sequence[torch.nn.Parameter],
                    batch_loss: Callable[[np.ndarray], torch.Tensor],
                    validation_loss: Callable[[], float], n_train: int, *,
                    lr: float = 3e-3, batch_size: int = 128, max_steps: int = 3000,
                    plateau: Plateau = Plateau(), seed: int = 0,
                    progress=None) -> FitReport:
    """Mini-batch Adam on ``params`` until the plateau criterion holds (module docstring).

    ``batch_loss(indices)`` is the training loss on those training inputs;
    ``validation_loss()`` the loss on the validation inputs (no gradient).  The model ends
    with the weights of the best validation loss."""
    started = time.perf_counter()
    params = list(params)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = np.random.default_rng(seed)
    best = validation_loss()
    best_state = copy.deepcopy(model.state_dict())
    history, rates = [best], [lr]
    since, drops_left, step, converged = 0, plateau.drops, 0, False
    order = generator.permutation(n_train)
    cursor = 0
    while step < max_steps:
        if cursor + batch_size > n_train:
            order, cursor = generator.permutation(n_train), 0
        indices = order[cursor: cursor + batch_size]
        cursor += batch_size
        optimizer.zero_grad()
        loss = batch_loss(indices)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        step += 1
        if step % plateau.eval_every:
            continue
        current = validation_loss()
        history.append(current)
        rates.append(optimizer.param_groups[0]["lr"])
        if progress is not None:
            progress(step, current)
        if math.isfinite(current) and current < best * (1 - plateau.tolerance):
            best, since = current, 0
            best_state = copy.deepcopy(model.state_dict())
            continue
        if math.isfinite(current) and current < best:
            best = current
            best_state = copy.deepcopy(model.state_dict())
        since += 1
        if since >= plateau.patience or not math.isfinite(current):
            if drops_left == 0:
                converged = math.isfinite(current)
                break
            drops_left -= 1
            since = 0
            model.load_state_dict(best_state)
            for group in optimizer.param_groups:
                group["lr"] *= plateau.factor
    model.load_state_dict(best_state)
    history.append(best)
    return FitReport(history, step, converged, plateau.describe(max_steps),
                     time.perf_counter() - started, rates)


def bootstrap_refits(params: dict[str, torch.nn.Parameter],
                     loss_on: Callable[[np.ndarray], Callable[[], torch.Tensor]],
                     pool: np.ndarray, values: Callable[[], dict[str, float]], *,
                     resamples: int, max_iterations: int, seed: int = 0,
                     tolerance: float = 1e-6) -> dict[str, dict]:
    """95 % percentile intervals of coefficients by refitting: ``resamples`` times draw
    ``len(pool)`` indices from ``pool`` with replacement, refit ``params`` with L-BFGS on
    ``loss_on(indices)`` warm-started at their current values, read ``values()``, and put
    ``params`` back.  Returns ``{name: {"value", "low", "high"}}`` (``value`` what
    ``values()`` gave before the refits); ``params``' ``requires_grad`` is left as found."""
    point = values()
    fitted = {name: p.detach().clone() for name, p in params.items()}
    grad = {name: p.requires_grad for name, p in params.items()}
    draws: dict[str, list[float]] = {name: [] for name in point}
    generator = np.random.default_rng(seed)
    for _ in range(resamples):
        sample = pool[generator.integers(0, len(pool), len(pool))]
        for p in params.values():
            p.requires_grad_(True)
        lbfgs_to_convergence(list(params.values()), loss_on(sample),
                             max_iterations=max_iterations, tolerance=tolerance)
        for name, value in values().items():
            draws[name].append(value)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(fitted[name])
    for name, p in params.items():
        p.requires_grad_(grad[name])
    return {name: {"value": point[name],
                   **dict(zip(("low", "high"), percentile_interval(samples)))}
            for name, samples in draws.items() if samples}
