"""``verify``: run every applicable property on a user's spec (the engine of ``pdelang verify``).

For each derivative operator of the spec: the claimed order (derived by the analysis) against
the order observed under grid refinement of the *generated* stencil on a smooth field with
the boundary's symmetry, with the error at each grid size; exactness on polynomials; the
matrix properties of the boundary rule.  For the linear differential part (the part the von
Neumann analysis looks at — nonlinear and non-differential terms are left out): the derived
stability bound against the empirical threshold found by multisection on Δt, stepping the
part with the spec's own step program; sharpness at 0.95× / 1.05× the bound.  The time
scheme's order on a linear test problem.  And, on random weights, that the generated code
equals the NumPy oracle of the discrete IR, that attention maps are stochastic and that
normalized states lie on the normalization manifold.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from math import gcd

from pdelang.compiler.driver import Compilation
from pdelang.lab.testing import properties as P
from pdelang.lab.testing.harness import (
    compile_any,
    stepper_for,
    torch_stencil_operator,
    stepper_for as build,
)
from pdelang.interpreters.builder import structure_of
from pdelang.compiler.codegen.printer import print_module
from pdelang.compiler.analysis.analyse import excess_on_waves
from pdelang.compiler.analysis.stability import SAMPLES
from pdelang.errors import PdelangError
from pdelang.compiler.spec.initial import option_location, Init, parse_init
from pdelang.lab.testing.stepper_checks import (
    _module,
    overflows,
    AMPLITUDES,
    padding_mask,
    check_generated_matches_reference,
    check_spec_time_order,
    check_stepper_attention,
    check_stepper_normalization,
)
from pdelang.interpreters.initial_state import initial_state

__all__ = ["OperatorReport", "VerifyReport", "verify"]


@dataclass
class OperatorReport:
    name: str  # stencil key: laplace | diff[x,1]
    operator: str
    derivative: int
    axes: list
    accuracy: int
    claimed_order: int
    observed_order: float
    sizes: list
    thetas: list
    errors: list

    def to_json(self) -> dict:
        return P.jsonable(dataclasses.asdict(self))


@dataclass
class VerifyReport:
    spec: str
    name: str
    boundary: str
    scheme: str
    operators: list[OperatorReport] = field(default_factory=list)
    stability: dict = field(default_factory=dict)
    results: dict[str, P.PropertyResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    test_state: dict = field(default_factory=dict)  # the trajectory checks' state and window
    warnings: list[str] = field(default_factory=list)  # the analysis' (as check prints them)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results.values())

    @property
    def properties(self) -> dict[str, bool]:
        return {name: r.passed for name, r in self.results.items() if r.applicable}

    def add(self, key: str, result: P.PropertyResult) -> P.PropertyResult:
        self.results[key] = result
        return result

    def to_json(self) -> dict:
        return {
            "spec": self.spec,
            "name": self.name,
            "boundary": self.boundary,
            "scheme": self.scheme,
            "passed": self.passed,
            "operators": [o.to_json() for o in self.operators],
            "stability": P.jsonable(self.stability),
            "properties": self.properties,
            "not_applicable": {k: r.message for k, r in self.results.items()
                               if not r.applicable},
            "details": {k: r.to_json() for k, r in self.results.items() if r.applicable},
            "test_state": P.jsonable(self.test_state) if self.test_state else None,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def format_text(self) -> str:
        lines = [f"{self.spec}: {self.name}  (boundary {self.boundary}, scheme {self.scheme})"]
        if self.operators:
            lines.append("derivative operators (generated stencils, grid refinement on a smooth "
                         "field with the boundary's symmetry):")
            lines.append(f"  {'operator':<12} {'claimed':>7} {'observed':>9}   "
                         "errors (grid size: max relative error)")
            for op in self.operators:
                errors = "  ".join(f"{'×'.join(map(str, s))}: {e:.2e}"
                                   for s, e in zip(op.sizes, op.errors))
                lines.append(f"  {op.name:<12} {op.claimed_order:>7} "
                             f"{op.observed_order:>9.3f}   {errors}")
        st = self.stability
        if st:
            lines.append("stability of the linear differential part:")
            if st.get("predicted_max_dt") is None:
                lines.append(f"  {st.get('note', 'no bound')}")
            else:
                emp = st.get("empirical_max_dt")
                emp_text = "n/a" if emp is None else f"{emp:.6g}"
                ratio = "" if emp is None else f"  (ratio {emp / st['predicted_max_dt']:.4f})"
                lines.append(f"  predicted max Δt {st['predicted_max_dt']:.6g}   empirical "
                             f"{emp_text}{ratio}   spec Δt {st['dt']:.6g}")
                if st.get("note"):
                    lines.append(f"  note: {st['note']}")
        ts = self.test_state
        if ts:
            w = ts["window"]
            lines.append(f"test state: {ts['init']} ({ts['batch']} × {ts['tokens']} tokens), "
                         f"steps {w['steps'][0]}–{w['steps'][1]} (t = {w['t0']:g} … "
                         f"{w['t1']:g})" + (f"; OVERFLOWS at step {ts['overflow']['step']} "
                                           f"(t = {ts['overflow']['t']:.6g})"
                                           if ts["overflow"] else ""))
        lines.append("properties:")
        width = max((len(k) for k in self.results), default=10)
        for key, result in self.results.items():
            verdict = ("n/a " if not result.applicable else "pass" if result.passed
                       else "FAIL")
            lines.append(f"  {verdict}  {key:<{width}}  {result.message}")
        for note in self.notes:
            lines.append(f"note: {note}")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        failed = [k for k, r in self.results.items() if not r.passed]
        lines.append("result: " + ("all properties hold" if not failed else
                                   f"{len(failed)} propert{'y' if len(failed) == 1 else 'ies'} "
                                   f"failed: {', '.join(failed)}"))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- operators
def _operator_factory(compilation: Compilation, key: str, stepper: Any):
    """shape → generated operator for that grid (2-D: the same discrete model printed with
    the new shape; 1-D: the spec's stepper works at any length)."""
    model = compilation.discrete
    if len(model.axes) == 1:
        op = torch_stencil_operator(compilation, key, stepper)
        return lambda shape: op
    cache = {}

    def factory(shape):
        if shape not in cache:
            resized = dataclasses.replace(model, shape=tuple(shape))
            comp = dataclasses.replace(compilation, discrete=resized,
                                       python=print_module(resized))
            cache[shape] = torch_stencil_operator(comp, key, build(comp, seed=None))
        return cache[shape]
    return factory


def _matrix_grid(model) -> tuple[int, ...]:
    if len(model.axes) == 2:
        return tuple(model.shape)
    return (model.shape[0] if model.shape else 64,)


def _check_operators(report: VerifyReport, compilation: Compilation, stepper: Any) -> None:
    model = compilation.discrete
    for key, stencil in model.stencils.items():
        claimed = stencil.order
        report.add(f"polynomial_exactness[{key}]", P.check_polynomial_exactness(stencil))
        factory = _operator_factory(compilation, key, stepper)
        if len(model.axes) == 1:
            report.add(f"polynomial_exactness_generated[{key}]",
                       P.check_polynomial_exactness_numeric(
                           factory((24,)), derivative=stencil.derivative,
                           accuracy=stencil.accuracy, radius=stencil.radius,
                           h=stencil.spacing, n=24 + 2 * stencil.radius,
                           extra_tokens=model.extra_tokens))
        study = P.convergence_study(
            factory, boundary=model.boundary, derivative=stencil.derivative,
            axes=stencil.axes, dims=len(model.axes), h=stencil.spacing, claimed_order=claimed,
            extra_tokens=model.extra_tokens)
        report.add(f"convergence[{key}]", P.check_convergence(study, name=f"convergence[{key}]"))
        report.operators.append(OperatorReport(
            key, "laplace" if key == "laplace" else "diff", stencil.derivative,
            [model.axes[a] for a in stencil.axes], stencil.accuracy, claimed,
            study.observed_order, study.sizes, study.thetas, study.errors))
        grid = _matrix_grid(model)
        matrix = P.operator_matrix(factory(grid), int(np.prod(grid)), model.extra_tokens)
        if model.boundary != "dirichlet":
            report.add(f"annihilates_constants[{key}]",
                       P.check_annihilates_constants(matrix, name=f"annihilates_constants[{key}]"))
        name = f"symmetric_nsd[{key}]"
        if stencil.derivative % 2:
            report.add(name, P.not_applicable(name, "an odd derivative is skew, not symmetric"))
        elif stencil.derivative % 4 == 0:
            report.add(name, P.not_applicable(name, "an even derivative of order 4k is "
                                              "positive (not negative) semi-definite"))
        elif model.boundary == "copy":
            interior = _interior(grid)
            block = matrix[np.ix_(interior, interior)]
            report.add(name, P.check_symmetric_nsd(block, np.ones(len(interior)), name=name))
        else:
            report.add(name, P.check_symmetric_nsd(
                matrix, P.inner_product_weights(model.boundary, grid), name=name))


def _interior(grid: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(grid, dtype=bool)
    if len(grid) == 1:
        mask[1:-1] = True
    else:
        mask[1:-1, 1:-1] = True
    return np.flatnonzero(mask.ravel())


# ----------------------------------------------------------------------------- stability
STABILITY_MIN_TOKENS = 16  # per axis: dirichlet/copy grids' top mode is then ≤ 2 % off


MAX_STEPPED_TOKENS = {True: 256, False: 4096}  # implicit (dense) / explicit (sparse)
MAX_EIGEN_TOKENS = 1024  # an equation that grows: compared on the eigenvectors (dense eig)


def _stability_grid(model, facts=None):
    """(model, 1-D length) to step for the stability threshold: the spec's own grid, or one
    with at least STABILITY_MIN_TOKENS tokens per axis (on 5 tokens a copy grid has 3 moving
    nodes, whose highest mode sits 13 % below the von Neumann bound) — and, where a sampled
    bound is set by one wave θ*, a grid that has that wave (see :func:`_grid_with_wave`)."""
    if len(model.axes) == 1:
        shape = (max(model.shape[0] if model.shape else 64, STABILITY_MIN_TOKENS),)
    else:
        shape = tuple(max(n, STABILITY_MIN_TOKENS) for n in model.shape)
    if facts is not None and facts.limiting_theta is not None:
        shape = tuple(_grid_with_wave(n, t, model.boundary, len(model.axes))
                      for n, t in zip(shape, facts.limiting_theta))
    if len(model.axes) == 1:
        return model, shape[0]
    if shape == tuple(model.shape):
        return model, None
    return dataclasses.replace(model, shape=shape), None


def _grid_waves(boundary: str, shape) -> np.ndarray:
    """The wave numbers θ of a grid's modes (K, dims): periodic 2πk/n; neumann πk/(n − 1),
    k = 0 … n − 1; dirichlet πk/(n + 1), k = 1 … n; copy (interior) πk/(n − 1),
    k = 1 … n − 2."""
    per_axis = []
    for n in shape:
        if boundary == "periodic":
            per_axis.append(2 * np.pi * np.arange(n) / n)
        elif boundary == "neumann":
            per_axis.append(np.pi * np.arange(n) / (n - 1))
        elif boundary == "dirichlet":
            per_axis.append(np.pi * np.arange(1, n + 1) / (n + 1))
        else:
            per_axis.append(np.pi * np.arange(1, n - 1) / (n - 1))
    grids = np.meshgrid(*per_axis, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def _excess_on_grid_modes(compilation: Compilation, grid_model, stepper) -> float | None:
    shape = (stepper.n,) if len(grid_model.axes) == 1 else tuple(grid_model.shape)
    return excess_on_waves(compilation.symbolic, compilation.program,
                           compilation.analysis.stencils,
                           _grid_waves(grid_model.boundary, shape), compilation.spec.time.dt)


STABILITY_PROPERTIES = ("stability_threshold", "stability_bound_sharp", "stable_at_spec_dt")
NO_THRESHOLD = "no Δt is stable: there is no threshold to find"


def _not_applicable(report: VerifyReport, why: str,
                    names: tuple[str, ...] = STABILITY_PROPERTIES) -> None:
    for name in names:
        report.add(name, P.not_applicable(name, why))


def _reduced_grid(model, largest: int):
    """The spec's grid cut down to at most ``largest`` tokens (same boundary)."""
    if len(model.axes) == 1:
        return model, largest
    side = math.isqrt(largest)
    return dataclasses.replace(model, shape=(min(model.shape[0], side),
                                             min(model.shape[1], side))), None


def _check_relative(report: VerifyReport, facts, stepper: P.LinearStepper,
                    predicted: float | None) -> None:
    """(d) An equation that grows in its own right (max Re λ > 0): stepping cannot tell
    the scheme's growth from the equation's, so the step matrix S(Δt) is compared mode by
    mode with the allowance max(1, |e^{μΔt}|)^GROWTH_SLACK on the eigenvectors of the
    linear operator (μ its eigenvalues) — the analysis' criterion on the real grid."""
    _, _, off = P.mode_amplification(stepper, facts.dt)  # (the residual of S V = V diag g)
    report.stability["relative"] = True
    report.stability["off_diagonal"] = off
    if off > 1e-6:
        why = (f"the step does not share the linear operator's eigenvectors (residual "
               f"{off:.2e}): no mode-by-mode comparison with the equation's growth")
        report.stability["note"] += "; " + why
        _not_applicable(report, why)
        return
    excess_at_spec = P.relative_excess(stepper, facts.dt)
    if math.isnan(excess_at_spec):
        why = ("the equation grows by more than float64 can hold over one step (max Re λ · Δt "
               f"= {facts.growth_rate * facts.dt:.3g}): no comparison")
        report.stability["note"] += "; " + why
        _not_applicable(report, why)
        return
    within = excess_at_spec <= 1e-9
    if predicted == 0:
        _not_applicable(report, NO_THRESHOLD, STABILITY_PROPERTIES[:2])
    elif predicted is None:
        _not_applicable(report, "no step size is too large (relative to the equation)",
                        STABILITY_PROPERTIES[:1])
        report.add("stability_bound_sharp", P.check_unconditional_relative(stepper, facts.dt))
    else:
        empirical = P.empirical_max_dt_relative(stepper, predicted)
        report.stability["empirical_max_dt"] = empirical
        report.stability["ratio"] = empirical / predicted
        report.add("stability_threshold", P.check_stability_threshold(empirical, predicted))
        below = P.relative_excess(stepper, 0.95 * predicted)
        above = P.relative_excess(stepper, 1.05 * predicted)
        report.add("stability_bound_sharp", P.make_result(
            "stability_bound_sharp", below <= 1e-9 and above > 1e-9,
            f"0.95× bound: excess {below:.2e}; 1.05× bound: excess {above:.2e} (largest "
            "|g_k| over its allowance − 1, on the eigenmodes)",
            predicted_max_dt=predicted, excess_below=below, excess_above=above))
    linear_stable = predicted is None or (predicted > 0 and
                                          facts.dt <= predicted * (1 + 1e-12)) or \
        facts.verdict == "stable"  # (or stable again above the first crossing)
    agrees = linear_stable == within
    report.add("stable_at_spec_dt", P.make_result(
        "stable_at_spec_dt", agrees and facts.verdict not in ("unstable", "no_stable_dt"),
        f"check says {facts.verdict} at Δt = {facts.dt:.6g} (the equation grows at max Re λ "
        f"= {facts.growth_rate:.6g}); the stepped linear part's largest excess over the "
        f"allowance there is {excess_at_spec:.2e}",
        verdict=facts.verdict, excess=excess_at_spec, grows=not within, agrees=agrees))


def _grid_with_wave(n: int, theta: float, boundary: str, dims: int) -> int:
    """The smallest grid size ≥ n whose Fourier modes include θ: the sampled θ are
    2π m / S (S = the analysis' samples − 1); a periodic grid of n tokens has 2π k / n, a
    neumann or copy grid π k / (n − 1), a dirichlet grid π k / (n + 1)."""
    period = SAMPLES[dims] - 1
    m = abs(round(theta * period / (2 * math.pi)))
    if m == 0:
        return n
    if boundary == "periodic":
        step, shift = period // gcd(m, period), 0
    else:  # π k / (n ∓ 1) = 2π m / S  ⇔  (n ∓ 1) a multiple of S / gcd(2m, S)
        step = period // gcd(2 * m, period)
        shift = -1 if boundary in ("neumann", "copy") else 1
    size = n + shift
    size = step * -(-size // step)  # round up to a multiple of step
    return size - shift


def _check_stability(report: VerifyReport, compilation: Compilation, steps: int,
                     seed: int) -> None:
    """(d) The analysis' bound (the same step program, run symbolically on u' = λu) against
    the same program stepped on the matrices of the linear differential part."""
    model = compilation.discrete
    facts = compilation.analysis.stability
    predicted = facts.max_stable_dt
    linear = P.linear_differential_model(model)
    report.stability = {"scheme": facts.scheme, "dt": facts.dt, "predicted_max_dt": predicted,
                        "formula": facts.formula, "method": facts.method,
                        "verdict": facts.verdict, "exact": facts.exact,
                        "caveats": list(facts.caveats), "empirical_max_dt": None}
    why = None
    if linear is None or facts.method.startswith("none"):
        why = facts.method[6:] if facts.method.startswith("none") else \
            "no linear differential part"
    elif any("odd derivatives with a non-periodic" in c for c in facts.caveats):
        why = ("odd derivatives with a non-periodic ghost rule: the von Neumann symbol does "
               "not give the spectrum of the bounded operator")
    if why:
        report.stability["note"] = why
        _not_applicable(report, why)
        return
    note = "the check steps the linear differential part with the spec's step program"
    if facts.caveats:
        note += f" ({'; '.join(facts.caveats)})"
    report.stability["note"] = note
    implicit = bool(model.program.implicit)
    grid_model, length = _stability_grid(model, facts)
    stepped = (length,) if length else tuple(grid_model.shape)
    largest = MAX_STEPPED_TOKENS[implicit]
    if facts.grows:
        largest = min(largest, MAX_EIGEN_TOKENS)
    if math.prod(stepped) > largest:
        if facts.limiting_theta is not None and predicted:
            wave = ", ".join(f"{t:.3g}" for t in facts.limiting_theta)
            why = (f"the bound is set by the wave θ = ({wave}), which only a grid "
                   f"of {'×'.join(map(str, stepped))} tokens has (more than {largest} to "
                   "step" + (" with dense matrices)" if implicit else
                             ", or to diagonalize for an equation that grows)"))
            report.stability["note"] = note + "; " + why
            _not_applicable(report, why)
            return
        # no wave to reach (no bound, or a bound of 0): the modes of a smaller grid are a
        # subset of θ ∈ [−π, π], on which the same verdict must hold
        grid_model, length = _reduced_grid(model, largest)
        stepped = (length,) if length else tuple(grid_model.shape)
    if model.shape and stepped != tuple(model.shape):
        report.stability["note"] = note + (
            f"; on a grid of {'×'.join(map(str, stepped))} tokens instead of the spec's "
            f"{'×'.join(map(str, model.shape))} (dense matrices of the linear part"
            f"{', implicit stages solved densely' if implicit else ''}): the bound is a sup "
            "over θ, which the few modes of a small grid may not reach")
    stepper = P.LinearStepper(P.linear_reference(grid_model), length=length)
    report.stability["grid"] = ([stepper.n] if len(model.axes) == 1
                                else list(grid_model.shape))
    if facts.grows:
        _check_relative(report, facts, stepper, predicted)
        _check_diffusion(report, grid_model, stepper, predicted, seed)
        return
    grows_at_spec = bool(P.grows(stepper, [facts.dt], steps=min(steps, 2000), seed=seed)[0])
    if predicted == 0:
        _not_applicable(report, NO_THRESHOLD, STABILITY_PROPERTIES[:2])
        report.add("stable_at_spec_dt", P.make_result(
            "stable_at_spec_dt", False,
            f"check says no Δt is stable for scheme '{facts.scheme}'; stepping the linear "
            f"part at Δt = {facts.dt:.6g} {'grows' if grows_at_spec else 'stays bounded'}",
            verdict=facts.verdict, grows=grows_at_spec, agrees=grows_at_spec))
        return
    if predicted is None:
        report.add("stability_threshold", P.not_applicable(
            "stability_threshold", "no step size is too large (implicit / exact flows)"))
        report.add("stability_bound_sharp", P.check_unconditional_stability(
            stepper, facts.dt, steps=min(steps, 2000), seed=seed))
    else:
        empirical = P.empirical_max_dt(stepper, predicted, seed=seed)
        report.stability["empirical_max_dt"] = empirical
        report.stability["ratio"] = empirical / predicted
        report.add("stability_threshold", P.check_stability_threshold(empirical, predicted))
        report.add("stability_bound_sharp",
                   P.check_stability_sharpness(stepper, predicted, steps=steps, seed=seed))
    linear_stable = predicted is None or facts.dt <= predicted * (1 + 1e-12) or \
        facts.verdict == "stable"  # (or stable again above the first crossing)
    agrees = linear_stable == (not grows_at_spec)
    verdict = facts.verdict if facts.verdict != "unknown" else \
        "unknown (the linear part alone is unstable there)"
    if not agrees and not linear_stable and not grows_at_spec:
        # unstable at Δt for some θ, bounded on this grid: the same criterion on the
        # grid's own modes tells whether only waves the grid lacks grow (split steps far
        # above the bound are stable again for some θ and not for others)
        excess = _excess_on_grid_modes(compilation, grid_model, stepper)
        if excess is not None and excess <= 1e-9:
            agrees = True
            verdict += (f" for waves this grid of {stepper.n} tokens lacks (on its own "
                        f"modes the largest excess over the allowance is {excess:.2e})")
    report.add("stable_at_spec_dt", P.make_result(
        "stable_at_spec_dt", agrees and facts.verdict != "unstable",
        f"check says {verdict} at Δt = {facts.dt:.6g}; stepping the linear part there "
        f"{'grows' if grows_at_spec else 'stays bounded'}",
        verdict=facts.verdict, grows=grows_at_spec, agrees=agrees))
    _check_diffusion(report, grid_model, stepper, predicted, seed)


def _check_diffusion(report: VerifyReport, model, stepper: P.LinearStepper, predicted: float,
                     seed: int) -> None:
    """(c) on the linear part: W-mean conservation and the maximum principle."""
    stencils = list(model.stencils.values())
    if not stencils or any(s.derivative != 2 or s.key != "laplace" for s in stencils) \
            or not model.residual:
        return
    total = sum((m for m in stepper.matrices.values() if m is not None), 0.0)
    if np.max(np.abs(total @ np.ones(stepper.n))) > 1e-12 * np.max(np.abs(total)):
        why = ("the linear part has a zero-order term (growth or decay, L·1 ≠ 0): it neither "
               "conserves the mean nor obeys the maximum principle")
        _not_applicable(report, why, ("conserves_mean", "max_norm_nonincreasing"))
        return
    grid = tuple(model.shape) if len(model.axes) == 2 else (stepper.n,)  # the stepped grid
    rng = np.random.default_rng(seed)
    u0 = rng.standard_normal((1, stepper.n))
    dt = 0.9 * predicted if predicted is not None else model.dt

    def step(u):
        return stepper.advance(u[:, :, 0], dt)[:, :, None]

    if model.boundary in ("periodic", "neumann"):
        report.add("conserves_mean", P.check_conserves_weighted_mean(
            step, u0[:, :, None], P.inner_product_weights(model.boundary, grid), steps=50,
            rtol=1e-11))
    name = "max_norm_nonincreasing"
    if P.is_monotone(stencils[0], model.program):
        largest = predicted if predicted is not None else 10 * model.dt
        report.add(name, P.check_max_norm_nonincreasing(
            lambda u: stepper.advance(u[:, :, 0], largest)[:, :, None], u0[:, :, None],
            steps=50))
    else:
        report.add(name, P.not_applicable(
            name, "the stencil has negative weights or the scheme is not SSP, so the maximum "
            "principle is not claimed"))


# ----------------------------------------------------------------------------- test state
def steps_window(compilation: Compilation, span: tuple[float, float] | str | None
                 ) -> tuple[int, int]:
    """The global steps (k0, k1) of a time window ``T0,T1`` of the spec's span (the whole
    span for None); a :class:`PdelangError` unless T0 < T1 lie in the span on step
    boundaries."""
    model = compilation.discrete
    t_start, t_end = compilation.spec.time.span
    total = model.layers * model.substeps
    if span is None:
        return 0, total
    where = option_location("--span", span if isinstance(span, str)
                            else f"{span[0]:g},{span[1]:g}")
    if isinstance(span, str):
        parts = [p.strip() for p in span.replace("[", "").replace("]", "").split(",")]
        if len(parts) != 2:
            raise PdelangError(f"--span {span}: give two times T0,T1", where,
                               f"e.g. --span {t_start:g},{t_end:g}")
        try:
            span = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise PdelangError(f"--span {span}: '{parts[0]}' or '{parts[1]}' is not a number",
                               where, f"e.g. --span {t_start:g},{t_end:g}") from None
    t0, t1 = span
    text = f"--span {t0:g},{t1:g}"
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
        raise PdelangError(f"{text}: need finite times T0 < T1", where,
                           f"e.g. --span {t_start:g},{t_end:g}")
    tolerance = 1e-9 * max(1.0, abs(t_start), abs(t_end))
    if t0 < t_start - tolerance or t1 > t_end + tolerance:
        raise PdelangError(f"{text}: the window must lie within the spec's span "
                           f"[{t_start:g}, {t_end:g}]", where,
                           f"e.g. --span {t_start:g},{t_end:g}")
    window = []
    for t in (t0, t1):
        k = (t - t_start) / model.dt
        if abs(k - round(k)) > 1e-6:
            low = t_start + math.floor(k) * model.dt
            raise PdelangError(f"{text}: t = {t:g} is not a step boundary (Δt = {model.dt:g} "
                               f"from t = {t_start:g})", where,
                               f"use {low:g} or {low + model.dt:g}")
        window.append(min(max(round(k), 0), total))
    return window[0], window[1]


def _probe(stepper, u: np.ndarray, window: tuple[int, int], masks) -> int | None:
    """The first step of ``window`` after which the generated stepper's state (from ``u``,
    float64, with each of ``masks``: a padded sequence is its own, smaller domain) has left
    any finite range, or None."""
    import torch  # lazy: torch

    substeps = structure_of(stepper)["substeps"]
    first = None
    for mask in masks:
        x = torch.as_tensor(u, dtype=torch.float64)
        m = None if mask is None else torch.as_tensor(mask)
        ctx = _module(stepper).Context(x, m, record=False)
        with torch.no_grad():
            for k in range(window[0], window[1] if first is None else min(first, window[1])):
                ctx.layer = k // substeps
                x = stepper.layers[ctx.layer](x, ctx, stepper.shared)
                if overflows(x.numpy()):
                    first = k + 1
                    break
    return first


def choose_test_state(compilation: Compilation, stepper, init, *, seed: int,
                      length: int | None, window: tuple[int, int]) -> dict:
    """The state of the trajectory checks.  ``init`` None: N(0, 0.5²) (seeded as the checks'
    own default), and — where the spec's trajectory leaves any finite range from it (a
    reaction u(1 − u) blows up from negative values) — 10× smaller amplitudes, down to
    5e-8, until it does not (said in a note).  An explicit ``init`` (``--init``, or else the
    spec's ``init:``) is used as given; an overflow is then reported by the checks."""
    model = compilation.discrete
    if init is None:
        init = compilation.spec.init
    if init is None:
        candidates = [Init("random", f"random:{a:g}", sigma=a) for a in AMPLITUDES]
    else:
        candidates = [parse_init(init) if isinstance(init, str) else init]
    first_overflow = None
    for candidate in candidates:
        u = initial_state(model, candidate, batch=2, length=length, seed=seed + 1)
        masks = (None, padding_mask(model, u.shape[0], u.shape[1], seed))  # as the checks
        overflow = _probe(stepper, u, window, masks)
        if overflow is None:
            break
        first_overflow = first_overflow or (candidate, overflow)
    t_start = compilation.spec.time.span[0]
    state = {
        "init": candidate.describe(), "amplitude": _amplitude(candidate),
        "batch": int(u.shape[0]), "tokens": int(u.shape[1]),
        "window": {"t0": t_start + window[0] * model.dt, "t1": t_start + window[1] * model.dt,
                   "steps": list(window)},
        "overflow": None if overflow is None else
        {"step": overflow, "t": t_start + overflow * model.dt},
        "note": None, "array": u,
    }
    if first_overflow is not None and overflow is None:
        bad, step = first_overflow
        state["note"] = (
            f"the test state {bad.describe()} leaves any finite range (overflow) by step "
            f"{step} (t = {t_start + step * model.dt:.6g}) — the equation leaves its natural "
            f"range from it; the trajectory checks use {candidate.describe()} instead "
            f"(amplitude {_amplitude(candidate):g}); choose a state inside the range with "
            "--init (e.g. uniform:0,1 or bump) or a window with --span")
    elif overflow is not None and init is None:
        state["note"] = (f"every test amplitude down to {_amplitude(candidate):g} leaves any "
                         "finite range (overflow): choose --init or --span")
    return state


def _applies(model, name: str) -> bool:
    """Whether the stepper check ``name`` has anything to look at in ``model``."""
    if name == "attention_maps":
        return bool(model.attention_modules)
    return bool(model.program.norms) or bool(model.norm_modules) \
        or (model.norm.final and model.norm.kind != "none")


def _amplitude(init) -> float:
    return {"random": init.sigma, "uniform": max(abs(init.low), abs(init.high)),
            "bump": abs(init.height)}.get(init.kind, math.nan)


# ----------------------------------------------------------------------------- driver
def verify_stability(spec: Compilation | str | Path, overrides: Iterable[str] = (), *,
                     seed: int = 0, steps: int = 2000) -> VerifyReport:
    """Only the stability properties (d) of :func:`verify`: the analysis' bound and verdict
    against the spec's step program stepped on the matrices of the linear part."""
    compilation = compile_any(spec, overrides)
    model = compilation.discrete
    report = VerifyReport(compilation.spec.file, model.name, model.boundary, model.program.scheme)
    _check_stability(report, compilation, steps, seed)
    return report


def verify(spec: Compilation | str | Path, overrides: Iterable[str] = (), *, seed: int = 0,
           steps: int = 10_000, equivalence: bool = True, init=None,
           span: tuple[float, float] | str | None = None) -> VerifyReport:
    """Run every applicable property on a spec (path, YAML text, Spec or Compilation).

    ``init`` (an :class:`~pdelang.lab.testing.harness.Init` or its text, e.g. ``"uniform:0,1"``)
    and ``span`` (``(T0, T1)`` or ``"T0,T1"``) choose the state and time window of the
    trajectory checks (generated code vs reference, attention maps, normalization); by
    default N(0, 0.5²) — smaller where that overflows — over the whole span."""
    compilation = compile_any(spec, overrides)
    model = compilation.discrete
    report = VerifyReport(compilation.spec.file, model.name, model.boundary, model.program.scheme)
    report.warnings = list(compilation.analysis.warnings)
    window = steps_window(compilation, span)  # a bad --span is an error even without the checks
    stepper = stepper_for(compilation, seed=seed)
    _check_operators(report, compilation, stepper)
    _check_stability(report, compilation, steps, seed)
    report.add(f"time_order[{model.program.scheme}]", P.check_time_order(model.program))
    if model.program.is_splitting and not model.program.implicit:
        report.notes.append("splitting schemes are checked as compositions of exact sub-flows "
                            "(nilpotent test maps); with general terms each explicit Euler "
                            "sub-step adds its own first-order error")
    if equivalence:
        length = 8 if len(model.axes) == 1 else None
        total = model.layers * model.substeps
        state = choose_test_state(compilation, stepper, init, seed=seed, length=length,
                                  window=window)
        u = state.pop("array")
        report.test_state = state
        if state["note"]:
            report.notes.append(state["note"])
        run = {"state": u, "window": None if window == (0, total) else window}
        report.add("generated_equals_reference", check_generated_matches_reference(
            compilation, seed=seed, stepper=stepper, state_label=state["init"], **run))
        report.add(f"time_order_spec[{model.program.scheme}]", check_spec_time_order(
            compilation, seed=seed, stepper=stepper))  # on the spec's grid (or 32 tokens)
        checks = (("attention_maps", check_stepper_attention),
                  ("normalization_manifold", check_stepper_normalization))
        for name, check in checks:
            if state["overflow"] is not None and _applies(model, name):
                # said by generated_equals_reference; maps of NaN states would only confuse
                report.add(name, P.not_applicable(name, "the test state overflows"))
            else:
                report.add(name, check(compilation, seed=seed, stepper=stepper, **run))
    return report
