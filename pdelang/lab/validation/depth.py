"""``validate --mode depth``: the continuous-depth limit of a Transformer.

A real Transformer is one time step of Δt = 1 per layer (``substeps: 1``).  Keep layer ℓ's
weights on its time interval ``[t_ℓ, t_ℓ₊₁)`` and refine the step: ``substeps`` = 1, 2, 4, …,
64 steps per layer of the spec's scheme.  For a consistent scheme the refinements converge to
the solution of the ODE

    du/dt = f(t, u),   f(t, u) = F_ℓ(u) = Σ_terms f_term([P_term] u)   for t ∈ [t_ℓ, t_ℓ₊₁),

the generated module's ``Stepper.rate(t, u)`` (pre-norms inside the field, the final norm
after it).  That limit is solved independently of the scheme by an adaptive Dormand–Prince
5(4) integrator (``torchdiffeq.odeint(method="dopri5")``), one layer at a time (the field
jumps at layer boundaries: each solve pins its layer's weights on the closed interval).

Reported per layer boundary t_ℓ and refinement k (relative Frobenius distances over the real
tokens, :func:`pdelang.lab.metrics.relative_error`):

* ``to_limit``  ‖u_k(t_ℓ) − u_ode(t_ℓ)‖ / ‖u_ode(t_ℓ)‖;
* ``to_finest`` ‖u_k(t_ℓ) − u_K(t_ℓ)‖ / ‖u_K(t_ℓ)‖, K the finest refinement;
* ``order``     the observed convergence order log₂(e_k / e_2k) of ``to_limit`` between
  successive refinements (a first-order splitting gives ≈ 1);
* the reference Transformer's own states against the limit (``reference_to_limit``): how far
  the real network (one step per layer) is from its own continuous limit.

Everything runs in float64 (the reference's states stay float32, as the network computes
them), so the distances are discretization errors, not round-off.  Only defined where the
limit is an ODE: with the residual on and the norms inside the vector field (``pre``) or no
norm; otherwise a :class:`~pdelang.errors.PdelangError` says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
from pathlib import Path

from pdelang.errors import PdelangError
from pdelang.lab.metrics import relative_error
from pdelang.interpreters.builder import build_module
from pdelang.lab.validation.weights import load_reference_weights
from pdelang.compiler.driver import compile_spec
from pdelang.io import save_figure

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_RTOL = 1e-10
DEFAULT_ATOL = 1e-10


@dataclass
class DepthResult:
    """The depth table: ``rows[i]`` is refinement ``levels[i]``; per layer boundary 1 … L."""

    spec: str
    reference: str
    samples: int
    scheme: str
    claimed_order: int
    levels: list[int]
    to_limit: list[list[float]]  # [level][layer]
    to_finest: list[list[float]]  # [level][layer]
    orders: list[list[float | None]]  # [level][layer]: log2(e_k / e_2k); None for the last
    reference_to_limit: list[float]  # [layer]
    reference_to_substeps1: list[float]  # [layer]: the stepper at k = 1 vs the real network
    solver: dict = field(default_factory=dict)  # method, rtol, atol, function evaluations
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    passed = None  # no pass/fail: the table is a measurement

    @property
    def layers(self) -> int:
        return len(self.reference_to_limit)

    def to_json(self) -> dict:
        def clean(value):
            if isinstance(value, list):
                return [clean(v) for v in value]
            return None if isinstance(value, float) and not math.isfinite(value) else value
        return {"spec": self.spec, "reference": self.reference, "mode": "depth",
                "samples": self.samples, "scheme": self.scheme,
                "claimed_order": self.claimed_order, "levels": self.levels,
                "to_limit": clean(self.to_limit), "to_finest": clean(self.to_finest),
                "observed_order": clean(self.orders),
                "reference_to_limit": clean(self.reference_to_limit),
                "reference_to_substeps1": clean(self.reference_to_substeps1),
                "solver": self.solver, "seconds": self.seconds, "warnings": self.warnings,
                "passed": None}


def parse_levels(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2,4"`` → (1, 2, 4): increasing positive integers, at least two."""
    if isinstance(text, str):
        try:
            levels = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise PdelangError(f"--levels {text}: expected comma-separated integers",
                               suggestion="e.g. --levels 1,2,4,8,16,32,64") from None
    else:
        levels = tuple(int(v) for v in text)
    if len(levels) < 2 or any(k < 1 for k in levels) or list(levels) != sorted(set(levels)):
        raise PdelangError(f"--levels {','.join(map(str, levels))}: need at least two "
                           "increasing positive substep counts",
                           suggestion="e.g. --levels 1,2,4,8,16,32,64")
    return levels


def check_ode(spec_value, program) -> None:
    """A located error when the spec's refinements have no ODE limit."""
    if program.ode_obstacle is None:
        return
    path = "stabilizers.residual" if not program.residual else "stabilizers.norm.placement"
    raise PdelangError(
        f"--mode depth: {spec_value.file} has no continuous-depth limit to compare with: "
        f"{program.ode_obstacle}", spec_value.where(path),
        suggestion="the limit is an ODE with stabilizers.residual: true and the norm inside "
                   "the vector field (stabilizers.norm.placement=pre) or no norm; a post-LN "
                   "reference (BERT, MiniLM) has no such limit")


def _refined(spec_value, substeps: int):
    """The spec with ``substeps`` steps per layer (the same time per layer)."""
    raw = {key: dict(value) if key == "time" else value for key, value in spec_value.raw.items()}
    raw["time"]["substeps"] = substeps  # the canonical hash (the build cache's key) follows
    return replace(spec_value, time=replace(spec_value.time, substeps=substeps), raw=raw)


def _stepper(spec_value, reference):
    stepper = build_module(spec_value).Stepper().eval()
    load_reference_weights(stepper, reference, spec_value)
    return stepper.double()


def _limit(stepper, u0: torch.Tensor, mask, layers: int, layer_time: float, t0: float,
           rtol: float, atol: float) -> tuple[list[torch.Tensor], int]:
    """The ODE's states at the layer boundaries (dopri5, one layer at a time) and the number
    of vector-field evaluations."""
    from torchdiffeq import odeint  # lazy: torchdiffeq

    states, u, evaluations = [u0], u0, 0
    for layer in range(layers):
        def field(t, x, layer=layer):
            nonlocal evaluations
            evaluations += 1
            return stepper.rate(t, x, mask, layer=layer)

        span = torch.tensor([t0 + layer * layer_time, t0 + (layer + 1) * layer_time],
                            dtype=torch.float64)
        u = odeint(field, u, span, method="dopri5", rtol=rtol, atol=atol)[-1]
        states.append(u)
    return states, evaluations


def continuous_limit(spec_value, reference, inputs, *, reference_name: str,
                     levels: Iterable[int] = DEFAULT_LEVELS, rtol: float = DEFAULT_RTOL,
                     atol: float = DEFAULT_ATOL, progress=None) -> DepthResult:
    """The depth table of ``spec_value`` with ``reference``'s weights on ``inputs``."""
    started = time.perf_counter()
    levels = list(parse_levels(list(levels)))
    program = compile_spec(spec_value, until="discrete").discrete.program
    check_ode(spec_value, program)
    run = reference.run(inputs)
    mask = run.bool_mask
    u0 = run.embeddings.detach().double()
    t0, t1 = spec_value.time.span
    layers = spec_value.time.layers
    layer_time = (t1 - t0) / layers
    trajectories = []
    with torch.no_grad():
        for k in levels:
            stepper = _stepper(_refined(spec_value, k), reference)
            out = stepper(u0, run.mask, return_trajectory=True)
            trajectories.append(out.states)
            if progress is not None:
                progress(f"substeps {k}")
        limit, evaluations = _limit(stepper, u0, run.mask, layers, layer_time, t0, rtol, atol)
        if progress is not None:
            progress("dopri5")

    def distances(states, target):
        return [relative_error(target[i + 1], states[i + 1], mask) for i in range(layers)]

    to_limit = [distances(states, limit) for states in trajectories]
    to_finest = [distances(states, trajectories[-1]) for states in trajectories]
    orders: list[list[float | None]] = []
    for i in range(len(levels)):
        row: list[float | None] = []
        for layer in range(layers):
            if i + 1 == len(levels):
                row.append(None)
                continue
            coarse, fine = to_limit[i][layer], to_limit[i + 1][layer]
            ratio = levels[i + 1] / levels[i]
            row.append(math.log(coarse / fine) / math.log(ratio)
                       if coarse > 0 and fine > 0 else None)
        orders.append(row)
    reference_states = [s.double() for s in run.hidden_states]
    reference_to_limit = distances(reference_states, limit)
    first = trajectories[levels.index(1)] if 1 in levels else None
    reference_to_substeps1 = distances(first, reference_states) if first else []
    return DepthResult(
        spec=str(spec_value.file), reference=reference_name,
        samples=int(u0.shape[0]), scheme=program.scheme, claimed_order=program.order,
        levels=levels, to_limit=to_limit, to_finest=to_finest, orders=orders,
        reference_to_limit=reference_to_limit, reference_to_substeps1=reference_to_substeps1,
        solver={"method": "dopri5 (torchdiffeq)", "rtol": rtol, "atol": atol,
                "evaluations": evaluations, "dtype": "float64"},
        seconds=time.perf_counter() - started)


def format_depth_table(result: DepthResult) -> str:
    """One block per distance, rows = substeps, columns = layer boundaries."""
    layers = result.layers
    head = "substeps " + "".join(f"  layer {i + 1:<5}" for i in range(layers))
    lines = [f"{result.spec} vs {result.reference} (depth, {result.samples} samples, "
             f"scheme {result.scheme} of order {result.claimed_order}, {result.seconds:.1f} s)",
             "", "distance to the continuous limit (dopri5, rtol "
             f"{result.solver['rtol']:g}, atol {result.solver['atol']:g}, "
             f"{result.solver['evaluations']} evaluations), relative:", head]

    def row(k, values, fmt):
        return f"{k:>8} " + "".join(f"  {fmt(v):<11}" for v in values)

    def number(v):
        return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) \
            else f"{v:.3e}"

    def order(v):
        return "—" if v is None else f"{v:.3f}"

    for k, values in zip(result.levels, result.to_limit):
        lines.append(row(k, values, number))
    lines += ["", f"observed order log2(e_k / e_2k) (the scheme claims "
                  f"{result.claimed_order}):", head]
    for k, values in zip(result.levels[:-1], result.orders[:-1]):
        lines.append(row(k, values, order))
    lines += ["", f"distance to the finest refinement ({result.levels[-1]} substeps):", head]
    for k, values in zip(result.levels[:-1], result.to_finest[:-1]):
        lines.append(row(k, values, number))
    lines += ["", "the real network (one step per layer):", head,
              row("to limit", result.reference_to_limit, number)]
    if result.reference_to_substeps1:
        lines.append(row("to k = 1", result.reference_to_substeps1, number))
    return "\n".join(lines)


def write_depth_plots(result: DepthResult, out_dir) -> list:
    """``depth.png`` in ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_depth(result, out_dir / "depth.png")
    return [out_dir / "depth.png"]


def plot_depth(result: DepthResult, path) -> None:
    """Distance to the limit against substeps, one line per layer, log–log, with a slope
    of the claimed order for comparison."""
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    figure, axis = plt.subplots(figsize=(6, 4.2), layout="constrained")
    markers = "osd^v<>"
    for layer in range(result.layers):
        values = [row[layer] for row in result.to_limit]
        points = [(k, v) for k, v in zip(result.levels, values) if v and math.isfinite(v)]
        if points:
            axis.loglog(*zip(*points), marker=markers[layer % len(markers)],
                        label=f"layer {layer + 1}")
    first = next((row for row in result.to_limit if row and row[-1]), None)
    if first:
        k0, e0 = result.levels[0], first[-1]
        axis.loglog(result.levels, [e0 * (k0 / k) ** result.claimed_order
                                    for k in result.levels],
                    color="0.5", linestyle=":", label=f"slope −{result.claimed_order}")
    axis.set_xlabel("substeps per layer")
    axis.set_ylabel("relative distance to the dopri5 limit")
    axis.set_title(f"continuous-depth limit: {result.reference}")
    axis.legend(fontsize="small")
    save_figure(figure, path, dpi=120)
    plt.close(figure)
