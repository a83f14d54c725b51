"""Property checks that run a generated stepper (torch, float64).

* :func:`check_generated_matches_reference` — (h) the generated code equals the NumPy
  reference of the discrete IR: every stencil (≤ 1e-10 relative), every term's vector field,
  and the whole stepper — final state, the states at layer boundaries, the attention maps
  (≤ 1e-8 relative) — with and without a padding mask;
* :func:`check_stepper_attention` — (f) every attention map the stepper records is a
  row-stochastic matrix; causal maps give the future no weight; Sinkhorn maps are doubly
  stochastic;
* :func:`check_spec_time_order` — (e) the spec's own step program, with its own terms (and
  random weights), converges in Δt at the order the program claims;
* :func:`check_stepper_normalization` — (g) every normalization the stepper applies (pre:
  the argument of a vector field; post: the state after a normalized sub-step or
  Runge–Kutta step; the final norm; norm operators inside terms) lands on the normalization
  manifold.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import numpy as np

from pdelang.interpreters.builder import structure_of
from pdelang.compiler.driver import Compilation
from pdelang.compiler.schemes import program as Program
from pdelang.lab.testing.harness import random_state, reference_for, stepper_for
from pdelang.lab.testing.properties import (
    PropertyResult,
    make_result,
    check_attention_maps,
    check_norm_manifold,
    not_applicable,
    relative_error,
    least_squares_order,
)
from pdelang.lab.testing.fields import smooth_field

__all__ = [
    "check_generated_matches_reference",
    "check_spec_time_order",
    "check_stepper_attention",
    "check_stepper_normalization",
    "padding_mask",
]

LINEAR_RTOL = 1e-10
STEPPER_RTOL = 1e-8


def padding_mask(model, batch: int, tokens: int, seed: int = 0) -> np.ndarray | None:
    """A padding mask ``(B, N)``: right padding in 1-D, a smaller image in the top-left corner
    in 2-D (whole trailing rows and columns padded).  Each sequence keeps at least the
    stencils' radius (fixed or learned) + 2 grid tokens along every axis; the first stays
    whole.  None for a spec that refuses padding (``grid.padding: false``)."""
    if not model.padding:
        return None
    rng = np.random.default_rng(seed)
    radius = model.stencil_radius  # fixed stencils and learned ones (conv)
    mask = np.ones((batch, tokens), dtype=bool)
    if len(model.axes) == 2:
        rows, cols = model.shape
        for b in range(1, batch):
            r = int(rng.integers(min(rows, radius + 2), rows + 1))
            c = int(rng.integers(min(cols, radius + 2), cols + 1))
            image = np.zeros((rows, cols), dtype=bool)
            image[:r, :c] = True
            mask[b, model.extra_tokens:] = image.ravel()
        return mask
    grid = tokens - model.extra_tokens
    low = min(grid, radius + 2)
    for b in range(1, batch):  # the first sequence stays full length
        n = int(rng.integers(low, grid + 1))
        mask[b, model.extra_tokens + n:] = False
    return mask


def _module(stepper):
    return sys.modules[type(stepper).__module__]


def _size(x: np.ndarray) -> float:
    finite = np.asarray(x)[np.isfinite(x)]
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def _run_torch(stepper, u: np.ndarray, mask, record: bool, window=None):
    """(final state, states, attention maps) of the generated stepper: its ``forward``
    (states at layer boundaries), or — for a ``window`` (k0, k1) of global step indices —
    the steps k0 … k1 − 1 one by one (states after each step; the final norm only when
    the window ends at the end of the span)."""
    import torch  # lazy: torch

    x = torch.as_tensor(u, dtype=torch.float64)
    m = None if mask is None else torch.as_tensor(mask)
    with torch.no_grad():
        if window is None:
            out = stepper(x, m, return_trajectory=True, return_attention=record)
            return (out.state.numpy(), [s.numpy() for s in out.states],
                    [a.numpy() for a in out.attentions])
        ctx = _module(stepper).Context(x, m, record=record)
        states = [x]
        substeps = structure_of(stepper)["substeps"]
        for k in range(*window):
            ctx.layer = k // substeps
            x = stepper.layers[ctx.layer](x, ctx, stepper.shared)
            states.append(x)
        if window[1] == _steps(stepper) and hasattr(stepper, "final_norm"):
            x = stepper.final_norm(x)
        return x.numpy(), [s.numpy() for s in states], [a.numpy() for a in ctx.attentions]


def _steps(stepper) -> int:
    structure = structure_of(stepper)
    return structure["layers"] * structure["substeps"]


def _run_reference(reference, u: np.ndarray, mask, record: bool, window=None):
    """The NumPy oracle's (final state, states, attention maps), like :func:`_run_torch`
    (overflow is not an error here: it is detected and reported by the caller)."""
    model = reference.model
    with np.errstate(all="ignore"):
        if window is None:
            out = reference.forward(u, mask, return_trajectory=True, return_attention=record)
            return out.state, out.states, out.attentions
        ctx = reference.context(u, mask, record)
        states = [u]
        for k in range(*window):
            u = reference.layer_step(u, k // model.substeps, ctx)
            states.append(u)
        if window[1] == model.layers * model.substeps:
            u = reference.final_norm(u)
        return u, states, ctx.attentions


OVERFLOW = 1e150  # |u| beyond this (or NaN/Inf) has left any range a spec means


def overflows(x: np.ndarray) -> bool:
    """Whether a state is non-finite or beyond :data:`OVERFLOW`."""
    x = np.asarray(x)
    return not bool(np.isfinite(x).all()) or (x.size > 0 and float(np.max(np.abs(x))) > OVERFLOW)


def _first_overflow(states) -> int | None:
    return next((i for i, s in enumerate(states) if overflows(s)), None)


def check_generated_matches_reference(compilation: Compilation, *, seed: int = 0,
                                      batch: int = 2, length: int | None = None,
                                      masked: bool | None = None, stepper: Any = None,
                                      rtol: float = STEPPER_RTOL,
                                      linear_rtol: float = LINEAR_RTOL,
                                      state: np.ndarray | None = None,
                                      window: tuple[int, int] | None = None,
                                      state_label: str | None = None) -> PropertyResult:
    """(h) Generated code == NumPy oracle of the discrete IR (random weights, float64).

    ``masked`` (default: yes) also compares a run with padding (:func:`padding_mask`).
    ``state``: the test state (default: :func:`random_state`, N(0, 0.5²)); ``window``: the
    global steps (k0, k1) to integrate (default: the whole span through ``forward``).  A
    trajectory that leaves any finite range (:func:`overflows`) is not compared: the check
    fails and says where it overflowed (``details["overflow"]``)."""
    import torch  # lazy: torch

    model = compilation.discrete
    stepper = stepper if stepper is not None else stepper_for(compilation, seed=seed)
    reference = reference_for(compilation, stepper)
    u = state if state is not None else random_state(model, batch, length, seed=seed + 1)
    batch = u.shape[0]
    label = state_label or "N(0, 0.5²)"
    worst: dict[str, float] = {}
    problems = []
    overflow = None
    module = _module(stepper)
    layer0 = stepper.layers[0]

    def record(what: str, error: float, tol: float) -> None:
        worst[what] = max(worst.get(what, 0.0), error)
        if not error <= tol:
            problems.append(f"{what}: relative error {error:.3g} > {tol:g}")

    x = torch.as_tensor(u, dtype=torch.float64)
    ctx = module.Context(x, None, record=False)
    ref_ctx = reference.context(u)
    with torch.no_grad():
        for key, stencil in model.stencils.items():
            got = getattr(layer0, stencil.attribute)(x, ctx).numpy()
            want = reference.stencil(key, u, ref_ctx)
            record(f"stencil {key}", relative_error(got, want), linear_rtol)
        for term in model.terms:
            arg = x
            norm = model.program.pre_norms.get(term.name)
            if norm is not None:
                arg = getattr(layer0, norm)(x)
            got = getattr(layer0, f"f_{term.name}")(arg, ctx, stepper.shared)
            got = np.broadcast_to(torch.as_tensor(got).numpy(), u.shape)
            want = reference.term(term.name, u, 0, ref_ctx)
            record(f"term {term.name}", relative_error(got, want), rtol)
    masks = [None]
    if masked is None:
        masked = True
    if masked:
        mask = padding_mask(model, batch, u.shape[1], seed)
        if mask is not None:
            masks.append(mask)
    with_attention = bool(model.attention_modules)
    first = window[0] if window is not None else 0
    per = 1 if window is not None else model.substeps  # steps between recorded states

    def at(index: int) -> str:
        return f"state at step {first + index}" if window is not None else \
            f"state after layer {index}"
    for mask in masks:
        padded = "padded " if mask is not None else ""
        for recorded in ((False, True) if with_attention else (False,)):
            state, states, maps = _run_torch(stepper, u, mask, recorded, window)
            ref_state, ref_states, ref_maps = _run_reference(reference, u, mask, recorded,
                                                             window)
            where = [i for i in (_first_overflow(ref_states + [ref_state]),
                                 _first_overflow(states + [state])) if i is not None]
            if where:
                index = min(min(where), len(ref_states) - 1)
                step = first + index * per
                t = compilation.spec.time.span[0] + step * model.dt
                overflow = {"step": step, "t": t, "state": at(index),
                            "in": "the reference" if _first_overflow(ref_states + [ref_state])
                            is not None else "the generated code"}
                problems.append(
                    f"overflow: from the test state ({label}) the {padded}trajectory leaves "
                    f"any finite range (|u| > {OVERFLOW:g} or NaN/Inf) by step {step} "
                    f"(t = {t:.6g}) — the equation leaves its natural range from this "
                    "state; not compared: choose a state inside the range (--init, e.g. "
                    "uniform:0,1 or bump) or a shorter window (--span T0,T1)")
                break
            # A state is compared relative to the larger of its own size and the size of
            # the state the layer started from: a layer may legitimately cancel (e.g. the
            # Laplacian of a nearly constant state without the residual).
            record(f"{padded}final state",
                   relative_error(state, ref_state, _size(ref_states[-1])), rtol)
            for i, (a, b) in enumerate(zip(states, ref_states)):
                record(f"{padded}{at(i)}",
                       relative_error(a, b, _size(ref_states[max(i - 1, 0)])), rtol)
            if recorded:
                if len(maps) != len(ref_maps):
                    problems.append(f"{len(maps)} attention maps, the reference has "
                                    f"{len(ref_maps)}")
                for a, b in zip(maps, ref_maps):
                    record(f"{padded}attention maps", relative_error(a, b), rtol)
        if overflow is not None:
            break
    message = "; ".join(problems[:5]) or (
        f"generated code == reference (largest relative error "
        f"{max(worst.values(), default=0.0):.2g})")
    return make_result("generated_equals_reference", not problems, message, errors=worst,
                   overflow=overflow, test_state=label, window=window)


def check_stepper_attention(compilation: Compilation, *, seed: int = 0, batch: int = 2,
                            length: int | None = None, stepper: Any = None,
                            sinkhorn_tol: float = 1e-4, state: np.ndarray | None = None,
                            window: tuple[int, int] | None = None) -> PropertyResult:
    """(f) Run the stepper with ``return_attention`` (and padding, :func:`padding_mask`);
    check each attention module's maps with :func:`check_attention_maps` for its options.
    ``state`` and ``window`` as in :func:`check_generated_matches_reference`."""
    model = compilation.discrete
    attention = {m.name: m for m in model.attention_modules}
    if not attention:
        return not_applicable("attention_maps", "no attention operator")
    stepper = stepper if stepper is not None else stepper_for(compilation, seed=seed)
    u = state if state is not None else random_state(model, batch, length, seed=seed + 1)
    batch = u.shape[0]
    mask = padding_mask(model, batch, u.shape[1], seed)
    captured: list[tuple[str, np.ndarray]] = []
    hooks = []
    for layer in stepper.layers:
        for name in attention:
            def hook(module, args, output, name=name):
                captured.append((name, args[1].attentions[-1].detach().numpy().copy()))
            hooks.append(getattr(layer, name).register_forward_hook(hook))
    try:
        _run_torch(stepper, u, mask, True, window)
    finally:
        for h in hooks:
            h.remove()
    results = []
    for name, options in attention.items():
        maps = [p for n, p in captured if n == name]
        results.append(check_attention_maps(
            maps, causal=bool(options.options.get("causal")),
            kernel=str(options.options.get("kernel", "softmax")), mask=mask,
            sinkhorn_tol=sinkhorn_tol, name=f"attention_maps[{name}]"))
    failed = [r for r in results if not r.passed]
    return make_result("attention_maps", not failed,
                   "; ".join(f"{r.name}: {r.message}" for r in (failed or results)),
                   modules={r.name: r.message for r in results})


def _norm_modules(model) -> dict[str, tuple[str, float, bool]]:
    """Attribute name (on a layer, or ``final_norm`` on the stepper) → (kind, eps, affine):
    the step program's norm modules and the norm operators of the terms."""
    n = model.norm
    out = {norm.name: (n.kind, n.eps, n.affine) for norm in model.program.norms}
    for m in model.norm_modules:
        out[m.name] = (m.op, float(m.options["eps"]), bool(m.options["affine"]))
    return out


def check_stepper_normalization(compilation: Compilation, *, seed: int = 0, batch: int = 2,
                                length: int | None = None, stepper: Any = None,
                                rtol: float = 1e-9, state: np.ndarray | None = None,
                                window: tuple[int, int] | None = None) -> PropertyResult:
    """(g) Every norm output lies on the normalization manifold
    (:func:`check_norm_manifold`, given the norm's own input), and with ``post`` placement
    the state after each normalized sub-step (each Runge–Kutta step) *is* a norm output.
    ``state`` and ``window`` as in :func:`check_generated_matches_reference`."""
    import torch  # lazy: torch

    model = compilation.discrete
    norms = _norm_modules(model)
    final = model.norm.final and model.norm.kind != "none"
    if not norms and not final:
        return not_applicable("normalization_manifold", "no normalization")
    stepper = stepper if stepper is not None else stepper_for(compilation, seed=seed)
    module = _module(stepper)
    u = state if state is not None else random_state(model, batch, length, seed=seed + 1)
    steps = model.layers * model.substeps
    window = window if window is not None else (0, steps)
    final = final and window[1] == steps
    calls: list[tuple[str, np.ndarray, np.ndarray, Any]] = []
    hooks = []

    def hook_for(label, norm_module):
        def hook(mod, args, output):
            calls.append((label, args[0].detach().numpy().copy(),
                          output.detach().numpy().copy(), mod))
        return norm_module.register_forward_hook(hook)

    for index, layer in enumerate(stepper.layers):
        for name in norms:
            hooks.append(hook_for((index, name), getattr(layer, name)))
    if final:
        hooks.append(hook_for((None, "final_norm"), stepper.final_norm))
    post_checks: list[str] = []
    watched = []

    def watch(layer, substep, term, state):
        watched.append((layer, substep, term, state.detach().numpy().copy(), len(calls)))

    try:
        x = torch.as_tensor(u, dtype=torch.float64)
        ctx = module.Context(x, None, record=False, watch=watch)
        with torch.no_grad():
            state = x
            for k in range(*window):
                ctx.layer = k // model.substeps
                state = stepper.layers[ctx.layer](state, ctx, stepper.shared)
            if final:
                stepper.final_norm(state)
    finally:
        for h in hooks:
            h.remove()
    problems = []
    for (layer, name), x_in, y_out, mod in calls:
        kind, eps, affine = (norms.get(name) if name in norms else
                             (model.norm.kind, model.norm.eps, model.norm.affine))
        weight = mod.weight.detach().numpy() if affine and getattr(mod, "weight", None) \
            is not None else None
        bias = mod.bias.detach().numpy() if affine and getattr(mod, "bias", None) is not None \
            else None
        r = check_norm_manifold(x_in, y_out, kind=kind, eps=eps, weight=weight, bias=bias,
                                rtol=rtol)
        if not r.passed:
            problems.append(f"{name} (layer {layer}): {r.message}")
    # with post placement, the state after each projection *is* that norm's output: the
    # step program says which sub-step (label) each projection follows
    projected: dict[str, str] = {}
    pending = None
    for ins in model.program.instructions:
        if isinstance(ins, Program.Project):
            pending = ins.norm
        elif isinstance(ins, Program.Observe) and pending is not None:
            projected[ins.label] = pending
            pending = None
    for layer, substep, term, state, count in watched:
        if term not in projected:
            continue
        expected = projected[term]
        last = next((c for c in reversed(calls[:count]) if c[0] == (layer, expected)), None)
        if last is None or not np.array_equal(last[2], state):
            problems.append(f"layer {layer} sub-step {substep} ({term}): the state is not "
                            f"the output of {expected}")
        else:
            post_checks.append(term)
    message = "; ".join(problems[:5]) or (
        f"{len(calls)} norm outputs on the manifold"
        + (f"; {len(post_checks)} post-normalized states are norm outputs" if post_checks
           else ""))
    return make_result("normalization_manifold", not problems, message, norm_calls=len(calls),
                   post_states=len(post_checks))


def smooth_state(model, batch: int = 1, length: int | None = None, seed: int = 0,
                 scale: float = 0.5) -> np.ndarray:
    """A state smooth along the grid — ``a_c + b_c f_c(x)`` per channel c, f_c a smooth
    field with the boundary's symmetry (:mod:`pdelang.lab.testing.fields`), a_c (not for
    dirichlet, whose fields vanish beyond the ends) and b_c ~ N(0, scale²) — what a
    time-order study needs: random grid values put most of their energy in the stiffest
    modes, and random channel coefficients keep a normalization well conditioned."""
    rng = np.random.default_rng(seed)
    u = random_state(model, batch, length, seed=seed, scale=scale)
    shape = tuple(model.shape) if len(model.axes) == 2 else (u.shape[1] - model.extra_tokens,)
    for b in range(batch):
        for c in range(model.channels):
            sample = smooth_field(model.boundary, shape, 0, tuple(range(len(shape))),
                                  model.spacing, (1 + (c % 2),) * len(shape),
                                  seed + 97 * b + c)
            values = sample.values.reshape(-1)
            values = values / max(np.max(np.abs(values)), 1e-12)
            offset = 0.0 if model.boundary == "dirichlet" else scale * rng.standard_normal()
            u[b, model.extra_tokens:, c] = offset + scale * rng.standard_normal() * values
    return u


def check_spec_time_order(compilation: Compilation, *, seed: int = 0, length: int | None = None,
                          stepper: Any = None, steps=(8, 16, 32, 64, 128), periods: int = 4,
                          tolerance: float = 0.2) -> PropertyResult:
    """(e) The spec's step program, on its own terms: integrate ``periods`` spec steps'
    worth of time (layer 0's weights, random as in (h); the spec's parameter values) from a
    smooth state with ``n`` steps for each n of ``steps`` (doubling); the differences of
    successive runs, ``|u_n − u_2n| ≈ C Δt^p (1 − 2^−p)``, give the order p by least squares
    over the three finest halvings (the asymptotic regime), which must be the program's
    claimed order within ``tolerance``.  This is where IMEX
    orders show on a stiff spec, at step sizes far beyond the explicit bound.  Not
    applicable without the residual or with a post projection (neither discretizes
    dt(u) = F(u)), or at an unstable Δt."""
    model = compilation.discrete
    program = model.program
    name = f"time_order_spec[{program.scheme}]"
    if not program.residual:
        return not_applicable(name, "without the residual a step is not a time integrator")
    if program.post_norms:
        return not_applicable(name, "a post projection is not a discretization of "
                              "dt(u) = F(u)")
    if compilation.analysis.stability.verdict == "unstable":
        return not_applicable(name, "the spec's Δt is unstable")
    stepper = stepper if stepper is not None else stepper_for(compilation, seed=seed)
    reference = reference_for(compilation, stepper)
    if length is None and len(model.axes) == 1:
        # smooth fields need resolution where a stencil acts; token-wise terms do not
        length = (model.shape[0] if model.shape else 32) if model.stencil_radius else 8
    span = periods * model.dt

    def run(u0: np.ndarray, ctx, n: int) -> np.ndarray:
        u = u0
        with np.errstate(all="ignore"):
            for _ in range(n):
                u = reference.layer_step(u, 0, ctx, dt=span / n)
                if overflows(u):
                    break
        return u

    # the smooth state's amplitude, made smaller while the runs leave any finite range (a
    # reaction like u(1 − u) blows up from negative values): said in the message
    for amplitude in AMPLITUDES:
        u0 = smooth_state(model, 1, length, seed=seed + 3, scale=amplitude)
        ctx = reference.context(u0)
        runs = {n: run(u0, ctx, n) for n in steps}
        if not any(overflows(u) for u in runs.values()):
            break
    else:
        return make_result(name, False, f"overflow: from smooth states of amplitude down to "
                       f"{AMPLITUDES[-1]:g} the spec's own steps leave any finite range within "
                       f"t = {span:.3g}; no order to measure", overflow=True)
    scale = float(np.max(np.abs(u0)))  # errors relative to the initial state (a decaying
    # solution's own size would turn roundoff into a large relative error)
    smaller = "" if amplitude == AMPLITUDES[0] else (
        f" (smooth state of amplitude {amplitude:g}: larger ones overflow)")
    dts, differences = [], []
    for coarse, fine in itertools.pairwise(steps):
        dts.append(span / coarse)
        differences.append(relative_error(runs[coarse], runs[fine], scale))
    # the order of the asymptotic regime: the three finest halvings, without differences at
    # roundoff (a smooth solution, a high order), which carry no order
    measurable = [(d, e) for d, e in zip(dts, differences) if e > ROUNDOFF][-3:]
    if len(measurable) < 2:
        return not_applicable(name, f"differences at roundoff (≤ {ROUNDOFF:g}) for Δt ≥ "
                              f"{span / steps[-1]:.3g}: no order to measure")
    order = least_squares_order([d for d, _ in measurable], [e for _, e in measurable])
    ok = np.isfinite(order) and abs(order - program.order) <= tolerance
    return make_result(name, ok, f"observed order {order:.3f}, claimed {program.order}; "
                   "differences of successive halvings "
                   + ", ".join(f"{e:.2e}" for e in differences) + smaller,
                   dts=dts, differences=differences, observed_order=order,
                   claimed_order=program.order, amplitude=amplitude)


AMPLITUDES = (0.5, 0.05, 5e-3, 5e-4, 5e-5, 5e-6, 5e-7, 5e-8)  # tried, largest first


ROUNDOFF = 1e-11  # relative errors below this are float64 noise, not discretization error
