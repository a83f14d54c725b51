"""``pdelang phase``: where training explodes — a phase diagram of training stability over
depth × learning rate × normalization × residual, several seeds each.

The grid is an ablation sweep (:func:`pdelang.lab.ablation.ablate.run_sweep`): every cell
(depth L, learning rate η, norm kind, residual on/off) is a variant of the spec, trained
from the same initialization and data for every seed, with no drift measurement.  It runs
on either executor (``local`` or ``ray``), writes a file per variant as it finishes and
resumes like ``pdelang ablate``.

**Depth.**  ``depth_scaling="step"`` (default) adds layers of the spec's own step
Δt = (t₁ − t₀)/layers: ``time.layers = L`` and ``time.span = [t₀, t₀ + L·Δt]`` — for the
master spec (Δt = 1) a standard Transformer L layers deep.  ``"time"`` keeps the span and
takes L smaller steps, Δt = (t₁ − t₀)/L: the same ODE resolved more finely (the depth limit
of the residual network).

**Per run** (one seed of one cell; :func:`run_metrics`), from the per-step record of
:func:`pdelang.lab.ablation.train.train`:

* divergence step k*: the first step whose loss or gradient norm is NaN/Inf or whose loss
  exceeds 10 × the first step's (training stops there);
* final loss: the mean training loss over the last tenth of the steps of a run that did not
  diverge (one batch's loss is noisy), and the held-out loss and accuracy after training;
* gradient-norm growth: G = max_k ‖g_k‖₂ / ‖g_0‖₂ over the steps run (the diverging step
  included when its norm is finite), and G_end = median(‖g_k‖₂ over the last tenth of the
  steps) / ‖g_0‖₂;
* progress: 1 − final loss / first loss.

**Per cell** (:func:`cell_summary`): the seeds that diverged and their steps (median), the
mean ± std final loss of the seeds that did not, the median G over seeds, and a regime:
``diverged`` (every seed), ``partly diverged`` (some), ``stalled`` (none diverged and the
median progress is within ±5 %: the network does not learn, e.g. a residual-free stack
whose state collapsed), ``loss rose`` (none diverged, but the loss ended more than 5 % above
where it started: unstable below the divergence threshold), ``trains`` otherwise.

**The claim** "without normalization training explodes" holds in a (residual, depth, η)
cell when most seeds of the norm-free variant diverge and no normalized variant's seeds
mostly do (:func:`claim_table`).
"""

from __future__ import annotations
from collections.abc import Iterable
from pdelang.lab.ablation.phase_grid import (
    LAYERS_KEY,
    LR_KEY,
    NORM_KEY,
    PhaseGrid,
    QUICK_EVAL_EXAMPLES,
    QUICK_GRID,
    RESIDUAL_KEY,
    check_grid,
    grid_number,
    phase_variants,
)
from pdelang.lab.ablation.phase_report import write_phase_report
from pdelang.lab.ablation.ablate import run_sweep, sweep_options
from pdelang.compiler.spec.load import load_spec

__all__ = ["phase"]


def phase(spec: str, grid: PhaseGrid | None = None, *, overrides: Iterable[str] = (),
          norms_text: str | None = None, train: str = "digits", steps: int = 500,
          seeds: int = 3, batch_size: int | None = None, quick: bool = False,
          out: str | None = None, progress: bool = True, threads: int | None = None,
          compile: bool = False, dtype: str = "float32", executor: str = "local",
          address: str | None = None, resume: bool = False, device: str = "cpu",
          ray_cpus: int | None = None) -> dict:
    """Train every cell of ``grid`` (default: the full 4 × 5 × 3 × 2 grid; with ``quick``,
    :data:`QUICK_GRID`) for ``seeds`` seeds of ``steps`` steps and return the sweep's results
    (``grid``, ``time_step`` and the variants; ``phase_cells(results)`` reads them); with
    ``out``, also the report (:func:`write_phase_report`) and a file per cell (``--resume``).
    ``quick``: 1 seed, at most 8 steps of batch 8 (unless given), the held-out loss on
    :data:`QUICK_EVAL_EXAMPLES` digits."""
    grid = grid or (QUICK_GRID if quick else PhaseGrid())
    options, runner, seed_count = sweep_options(
        reference=None, train=train, steps=steps, seeds=seeds, lr=grid.lrs[0],
        batch_size=batch_size, drift_samples=0, quick=quick, out=out, threads=threads,
        compile=compile, dtype=dtype, metrics=(), sigma=None, info_every=None,
        executor=executor, address=address, resume=resume, device=device,
        ray_cpus=ray_cpus, drift=False)
    if quick and train == "digits":  # small data: the held-out loss on fewer digits
        options["eval_examples"] = QUICK_EVAL_EXAMPLES
    base = list(overrides)
    loaded = load_spec(spec, base)  # the base spec's own errors first
    check_grid(spec, grid, base, norms_text)
    variants = phase_variants(loaded, grid)
    t0, t1 = loaded.time.span
    extra = {"grid": {"depths": list(grid.depths), "lrs": list(grid.lrs),
                      "norms": list(grid.norms), "residuals": list(grid.residuals),
                      "depth_scaling": grid.depth_scaling},
             "time_step": (t1 - t0) / loaded.time.layers}
    swaps = {LAYERS_KEY: [str(d) for d in grid.depths], LR_KEY: [grid_number(v) for v in grid.lrs],
             NORM_KEY: list(grid.norms),
             RESIDUAL_KEY: ["true" if r else "false" for r in grid.residuals]}
    return run_sweep(spec, variants, base, seed_count, options, runner, quick=quick, out=out,
                     progress=progress, swaps=swaps, report=write_phase_report, extra=extra)
