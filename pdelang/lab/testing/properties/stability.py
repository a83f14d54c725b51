"""(d) Stability: stepping the linear differential part at 0.95× the derived bound stays
bounded, at 1.05× it grows; unconditional stability of implicit programs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pdelang.lab.testing.properties.laplacian import inner_product_weights
from pdelang.lab.testing.properties.linear import LinearStepper
from pdelang.lab.testing.properties.results import PropertyResult, make_result
from pdelang.compiler.analysis.stability import GROWTH_SLACK


def grows(stepper: LinearStepper, dts: Sequence[float], *, steps: int, seed: int = 0,
          threshold: float = 1e2) -> np.ndarray:
    """For each Δt, whether ``steps`` steps of the linear ``stepper`` from a random initial
    state (the same for every Δt) make its max norm grow by more than ``threshold`` (or
    overflow).  Every Δt is stepped at once, one per row; a row that has grown is dropped."""
    rng = np.random.default_rng(seed)
    u0 = rng.standard_normal(stepper.n)
    dts = np.asarray(dts, dtype=np.float64)
    start = np.max(np.abs(u0))
    grown = np.zeros(len(dts), dtype=bool)
    active = np.arange(len(dts))
    u = stepper.state(np.repeat(u0[None, :], len(dts), axis=0))
    dt = stepper.dts(dts)
    with np.errstate(over="ignore", invalid="ignore"), stepper.quiet_threads():
        for i in range(steps):
            u = stepper.step(u, dt)
            if i % 25 == 24 or i == steps - 1:
                size = stepper.sizes(u)
                bad = ~np.isfinite(size) | (size > threshold * start)
                if bad.any():
                    grown[active[bad]] = True
                    active = active[~bad]
                    if not len(active):
                        break
                    u = stepper.select(u, ~bad)
                    dt = stepper.dts(dts[active])
    return grown


def empirical_max_dt(stepper: LinearStepper, predicted: float, *, steps: int = 2000,
                     candidates: int = 15, rounds: int = 3, seed: int = 0) -> float:
    """(d) The largest Δt at which the linear ``stepper`` stays bounded, by multisection:
    ``candidates`` Δt values per round, stepped at once, from [0.5, 2]·predicted (widened if
    it does not bracket the threshold).  At (1 + δ)× the threshold a step grows the worst
    mode by ≈ 1 + cδ (c ≈ 2–4), so ``steps`` = 2000 steps detect δ ≳ 0.1 %; the coarser
    early rounds (bracket widths ≈ 10 % and ≈ 0.8 %) use a quarter and a half of them."""
    lo, hi = 0.5 * predicted, 2.0 * predicted
    done = 0
    schedule = [max(steps >> (rounds - 1 - r), 50) for r in range(rounds)]
    for _ in range(8):  # the first round must bracket the threshold
        dts = np.linspace(lo, hi, candidates)
        g = grows(stepper, dts, steps=schedule[0], seed=seed)
        if g[0]:
            lo, hi = lo / 4, lo
        elif not g.any():  # (not just the last: split steps can be stable again above)
            lo, hi = hi, hi * 4
        else:
            break
    for r in range(rounds):
        if r > done:
            dts = np.linspace(lo, hi, candidates)
            g = grows(stepper, dts, steps=schedule[r], seed=seed)
        first = int(np.argmax(g)) if g.any() else len(dts) - 1
        lo, hi = dts[max(first - 1, 0)], dts[first]
    return float(lo)


def _eigenbasis(stepper: LinearStepper):
    """(μ, V, V⁻¹) of the whole linear operator L = Σ_t L_t on the stepped grid (cached)."""
    cached = getattr(stepper, "_eigenbasis", None)
    if cached is not None:
        return cached
    total = sum((m for m in stepper.matrices.values() if m is not None),
                np.zeros((stepper.n, stepper.n)))
    model = stepper.model
    shape = (stepper.n,) if len(model.axes) == 1 else tuple(model.shape)
    if model.boundary != "copy" and not model.extra_tokens:
        # self-adjoint in the boundary's inner product W (symmetric stencils): W^½ L W^-½
        # is symmetric, and eigh is ~10× faster than eig (and exact in its eigenvectors)
        root = np.sqrt(inner_product_weights(model.boundary, shape))
        symmetric = root[:, None] * total / root[None, :]
        if np.allclose(symmetric, symmetric.T, rtol=0, atol=1e-12 * np.abs(total).max()):
            mu, q = np.linalg.eigh((symmetric + symmetric.T) / 2)
            cached = (mu.astype(complex), q / root[:, None], q.T * root[None, :])
    if cached is None:
        mu, vectors = np.linalg.eig(total)
        cached = (mu, vectors, np.linalg.inv(vectors))
    stepper._eigenbasis = cached
    return cached


def mode_amplification(stepper: LinearStepper, dt: float):
    """(g_k, μ_k, residual): the amplification of one step on each eigenvector v_k of the
    whole linear operator L (eigenvalues μ_k), g = diag(V⁻¹ S V) with S V stepped column by
    column, and ‖S V − V diag(g)‖/‖S V‖ (0 when the step is a function of L, as for terms
    that commute)."""
    mu, vectors, inverse = _eigenbasis(stepper)
    n = stepper.n
    both = stepper.advance(np.concatenate([vectors.real.T, vectors.imag.T]), dt, 1)
    stepped = both[:n].T + 1j * both[n:].T  # S V (real and imaginary parts in one pass)
    g = np.einsum("ij,ji->i", inverse, stepped)
    scale = max(float(np.linalg.norm(stepped)), 1e-300)
    return g, mu, float(np.linalg.norm(stepped - vectors * g[None, :]) / scale)


def relative_excess(stepper: LinearStepper, dt: float) -> float:
    """max_k |g_k| / max(1, |e^{μ_k Δt}|)^GROWTH_SLACK − 1: how far one step grows an
    eigenmode beyond the allowance of the analysis (≤ 0: within it)."""
    with np.errstate(all="ignore"):
        g, mu, _ = mode_amplification(stepper, dt)
        allowed = np.exp(GROWTH_SLACK * np.maximum(np.real(mu) * dt, 0.0))
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(allowed))):
        return math.nan  # the equation's growth over Δt is beyond float64: no judgement
    # roundoff of diag(V⁻¹ S V) is relative to the largest |g| (e^{150} next to e^{-10⁵}
    # at 1000 Δt): a mode is judged only beyond 1e-10 of it
    noise = 1e-10 * float(np.max(np.abs(g)))
    return float(np.max((np.abs(g) - noise) / allowed) - 1)


def empirical_max_dt_relative(stepper: LinearStepper, predicted: float, *,
                              rounds: int = 16) -> float:
    """(d) For an equation that grows in its own right: the largest Δt at which no
    eigenmode of the stepped linear part exceeds the allowance: the first crossing on a scan
    of [0.5, 2]·predicted (widened until it brackets one), then 16 halvings."""
    def bad(dt):
        return relative_excess(stepper, dt) > 1e-9

    lo, hi = 0.5 * predicted, 2.0 * predicted
    for _ in range(20):  # the first crossing: a scan (split steps can be stable again above)
        dts = np.linspace(lo, hi, 9)
        flags = [bad(dt) for dt in dts]
        if flags[0]:
            lo, hi = lo / 4, lo
        elif not any(flags):
            lo, hi = hi, hi * 4
        else:
            first = flags.index(True)
            lo, hi = dts[first - 1], dts[first]
            break
    for _ in range(rounds):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if bad(mid) else (mid, hi)
    return float(lo)


def check_unconditional_relative(stepper: LinearStepper, dt: float, *,
                                 factors: Sequence[float] = (1, 10, 100, 1000),
                                 name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) An equation that grows, stepped by a program the analysis finds stable at every
    Δt: at 1, 10, 100 and 1000 × ``dt`` no eigenmode exceeds its allowance (a factor at
    which the equation's own growth overflows float64 is not judged: excess nan)."""
    excess = [relative_excess(stepper, f * dt) for f in factors]
    return make_result(name, all(e <= 1e-9 for e in excess if not math.isnan(e)),
                   "no step size is too large (relative to the equation's growth): " + ", ".join(
                       f"{f:g}×Δt {'within' if e <= 1e-9 else 'beyond'} (excess {e:.2e})"
                       for f, e in zip(factors, excess)),
                   dts=[f * dt for f in factors], excess=excess)


def check_stability_sharpness(stepper: LinearStepper, predicted: float, *,
                              below: float = 0.95, above: float = 1.05, steps: int = 10_000,
                              seed: int = 0,
                              name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) Stepping at ``below``× the derived bound stays bounded for ``steps`` steps and at
    ``above``× it grows."""
    g = grows(stepper, [below * predicted, above * predicted], steps=steps, seed=seed)
    ok = (not g[0]) and g[1]
    verdict = (f"{below}× bound: {'grows' if g[0] else 'bounded'}; {above}× bound: "
               f"{'grows' if g[1] else 'bounded'} ({steps} steps)")
    return make_result(name, ok, verdict, predicted_max_dt=predicted, bounded_below=not g[0],
                   grows_above=bool(g[1]), steps=steps)


def check_unconditional_stability(stepper: LinearStepper, dt: float, *,
                                  factors: Sequence[float] = (1, 10, 100, 1000),
                                  steps: int = 2000, seed: int = 0,
                                  name: str = "stability_bound_sharp") -> PropertyResult:
    """(d) For a program the analysis finds stable at every Δt (implicit stages, exact
    flows): stepping at 1, 10, 100 and 1000 × ``dt`` stays bounded."""
    dts = [f * dt for f in factors]
    g = grows(stepper, dts, steps=steps, seed=seed)
    return make_result(name, not g.any(), "no step size is too large: " + ", ".join(
        f"{f:g}×Δt {'grows' if x else 'bounded'}" for f, x in zip(factors, g))
        + f" ({steps} steps)", dts=dts, grows=[bool(x) for x in g])


def check_stability_threshold(empirical: float, predicted: float, *, tolerance: float = 0.05,
                              name: str = "stability_threshold") -> PropertyResult:
    """(d) The empirical threshold is within ``tolerance`` (relative) of the derived bound."""
    ratio = empirical / predicted
    return make_result(name, abs(ratio - 1) <= tolerance,
                   f"empirical max Δt {empirical:.6g} vs predicted {predicted:.6g} "
                   f"(ratio {ratio:.4f}, tolerance {tolerance:.0%})",
                   empirical_max_dt=empirical, predicted_max_dt=predicted, ratio=ratio)
