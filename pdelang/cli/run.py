"""``pdelang run SPEC [--device cpu|cuda] [--init COND] [--seed N] [--strict]``.

Integrates the spec from an initial state, layer by layer with a progress bar, reports
per-layer state norms, and stops with an error naming the layer, sub-step and term if a
NaN or Inf appears — with a hint that names the likely cause: Δt past the stability bound
``pdelang check`` derives, or (Δt within it) an initial state outside the equation's natural
range.

Initial conditions (``--init``, else the spec's ``init:``, else ``random``): ``random[:S]``
(i.i.d. N(0, S²), S = 0.1 unless given), ``uniform:A,B``, ``bump[:H]`` (a smooth bump of
height H on the middle half of the grid, zero near the ends, so it respects every boundary
rule) or ``FILE.pt`` (a saved ``(B, N, C)`` tensor, e.g. from ``--save``).  Past the
stability bound ``run`` warns; ``--strict`` refuses to run there (exit 1, like ``check``'s
unstable verdict).

Per layer boundary ``run`` reports the mean token norm and max |u| and the particle
diagnostics of :mod:`pdelang.interpreters.particles`: the mean pairwise token cosine, the
effective rank exp(H(σ/Σσ)) of the uncentred token matrix and the rank-collapse residual
‖X − 1x̄ᵀ‖_F/‖X‖_F (each per sequence, averaged over the batch).  ``--trajectory FILE``
keeps the states at every layer boundary (``--every substep``: after every time step) with
their times (``.pt``; ``.nc``/``.zarr`` with xarray, see
:mod:`pdelang.interpreters.trajectory`); ``--plot FILE.png`` draws the diagnostics.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from pdelang.errors import PdelangError, RuntimeCheckError
from pdelang.compiler.spec.initial import option_location, parse_init
from pdelang.cli.main import add_common
from pdelang.compiler.spec.limits import how_to_raise, limit
from pdelang.interpreters.builder import build_module, structure_of
from pdelang.interpreters.trajectory import (
    check_plot,
    check_trajectory_size,
    trajectory_format,
    save_trajectory,
    plot_diagnostics,
)
from pdelang.interpreters.accelerate import (
    check_dtype,
    compile_stepper,
    is_compiled,
    module_dtype,
    precision,
)
from pdelang.interpreters.diagnose import blame
from pdelang.interpreters.particles import particle_metrics
from pdelang.io import save_tensor
from pdelang.compiler.spec.load import canonical_hash

INIT_CHOICES = "random[:S] | uniform:A,B | bump[:H] | FILE.pt"


def configure(parser) -> None:
    add_common(parser)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--init", default=None, metavar="COND",
                        help=f"initial condition, {INIT_CHOICES} (default: the spec's init:, "
                             "else random): random = N(0, S²) with "
                             "S = 0.1 unless given; uniform = i.i.d. in [A, B]; "
                             "bump = a smooth bump of height H (default 1) on the middle half "
                             "of the grid, zero near the ends (every boundary rule holds), the "
                             "same in each channel; FILE.pt = a saved (B, N, C) tensor")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and the state")
    parser.add_argument("--batch", type=int, default=2, help="batch size of a generated state")
    parser.add_argument("--tokens", type=int, default=None,
                        help="tokens of a generated state, extra tokens included (default: "
                             "the grid's shape, or 128 grid tokens)")
    parser.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"],
                        default="float32",
                        help="float32 (default) or float64: the module and the state in that "
                             "dtype (float64 exact, never autocast); bfloat16 or float16: "
                             "autocast — matrix products in that dtype, the state, residual "
                             "updates, stencils and norms in float32 (a warning where the "
                             "device computes it emulated, e.g. a CPU without AVX512-BF16)")
    parser.add_argument("--compile", action="store_true",
                        help="compile each layer with torch.compile (inductor; the first "
                             "step compiles: tens of seconds on a CPU the first time, seconds "
                             "from inductor's disk cache after); where torch.compile cannot "
                             "be used, one warning and the run continues uncompiled")
    parser.add_argument("--save", default=None, help="save the final state to a .pt file")
    parser.add_argument("--strict", action="store_true",
                        help="refuse (exit 1) to run when Δt exceeds the stability bound "
                             "`pdelang check` derives")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--trajectory", default=None, metavar="FILE",
                        help="save the states with their times: .pt (a dict: states "
                             "(T, B, N, C), times, layers, steps, spec_hash …), or .nc/.zarr "
                             "through xarray (pip install 'pdelang[xarray]'; dims time, "
                             "batch, token, channel; the spec hash as an attribute)")
    parser.add_argument("--every", choices=["layer", "substep"], default="layer",
                        help="with --trajectory: keep the state at every layer boundary "
                             "(default) or after every time step (time.substeps per layer)")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="plot the per-layer diagnostics (norm, mean pairwise cosine, "
                             "effective rank, rank-collapse residual) against t (matplotlib)")


def initial_state(args, spec, structure, model, torch, shape_1d=None):
    """The initial state as a float64 tensor (B, N, C): ``--init``, else the spec's
    ``init:``, else ``random`` (N(0, 0.1²))."""
    from pdelang.interpreters.initial_state import initial_state as make_state  # lazy: numpy

    if args.init is not None:
        init = parse_init(args.init)
    else:
        init = spec.init or parse_init("random")
    if init.kind == "file":
        state = make_state(model, init)
        _check_tokens(state.shape[1], structure, "the initial state's token count",
                      init.where)
        return torch.from_numpy(state), init
    if args.batch < 1:
        raise PdelangError(f"--batch {args.batch}: the batch needs at least one sequence",
                           option_location("--batch", str(args.batch)), "e.g. --batch 2")
    tokens = args.tokens or _default_tokens(structure, shape_1d)
    _check_tokens(tokens, structure, f"--tokens {tokens}",
                  option_location("--tokens", str(tokens)) if args.tokens else None)
    _check_state_size(args.batch, tokens, model.channels)
    length = None if structure["grid_shape"] else tokens - structure["extra_tokens"]
    state = make_state(model, init, batch=args.batch, length=length, seed=args.seed)
    return torch.from_numpy(state), init


def _default_tokens(structure, shape_1d) -> int:
    grid = structure["grid_shape"]
    if grid:
        return grid[0] * grid[1] + structure["extra_tokens"]
    return (shape_1d[0] if shape_1d else 128) + structure["extra_tokens"]


def _check_state_size(batch: int, tokens: int, channels: int) -> None:
    """Refuse a generated state larger than the ``state_values`` limit before allocating it
    (``--batch 10**9`` would otherwise ask the machine for terabytes)."""
    values = batch * tokens * channels
    if values > limit("state_values"):
        raise PdelangError(f"a state of {batch:,} × {tokens:,} tokens × {channels:,} channels "
                           f"has {values:,} values, too many to allocate",
                           option_location("--batch", str(batch)),
                           "use a smaller --batch or --tokens; " + how_to_raise("state_values"))


def _check_tokens(tokens: int, structure, what: str, where=None) -> None:
    """A state the grid can take: a 2-D grid's exact size; in 1-D, more grid tokens than the
    stencils' radius (the generated module would refuse it with a traceback otherwise)."""
    grid, extra = structure["grid_shape"], structure["extra_tokens"]
    if grid:
        if tokens != grid[0] * grid[1] + extra:
            raise PdelangError(f"{what}: the {grid[0]}×{grid[1]} grid with {extra} extra "
                               f"token(s) needs {grid[0] * grid[1] + extra} tokens", where,
                               "leave --tokens out to use the grid's size")
        return
    radius = structure.get("stencil_radius", 0)
    if tokens - extra < max(1, radius + 1):
        raise PdelangError(f"{what}: {tokens - extra} grid token(s) are too few"
                           + (f"; the stencils need more than {radius}" if radius else ""),
                           where, f"use at least {extra + max(1, radius + 1)} tokens")


# ----------------------------------------------------------------------------- stability
def past_bound(facts) -> bool:
    """Whether the spec's Δt exceeds the largest stable Δt of the analysis (and is not in
    a window where the step is stable again)."""
    bound = facts.max_stable_dt
    return bound is not None and facts.dt > bound * (1 + 1e-12) and facts.verdict != "stable"


def _bound_text(facts) -> str:
    formula = f" = {facts.formula}" if facts.formula else ""
    return f"{facts.max_stable_dt:.6g}{formula}"


def _substeps_needed(facts, structure) -> int:
    """Substeps per layer that bring Δt within the bound (the span and layers kept)."""
    per_layer = facts.dt * structure["substeps"]
    return max(structure["substeps"] + 1, math.ceil(per_layer / facts.max_stable_dt - 1e-9))


def no_stable_dt_text(facts, structure) -> str:
    """A bound of 0: no number of substeps helps."""
    implicit = "" if structure.get("implicit") else \
        " or treat the stiff terms implicitly (time.implicit)"
    return (f"no Δt is stable for scheme '{facts.scheme}' (`pdelang check`): the step grows "
            "some mode faster than the equation does at every step size, so more substeps "
            "cannot help; use a scheme whose stability region covers the spectrum (rk4 for "
            f"advection){implicit}")


def bound_warning(facts, structure) -> str:
    """What ``run`` says before it runs past the bound (and ``--strict`` refuses with)."""
    if facts.max_stable_dt == 0:
        return no_stable_dt_text(facts, structure)
    unknown = (" (the analysis is not exact: a projection may stop the growth, so "
               "stability is unknown)" if facts.verdict == "unknown" else "")
    return (f"Δt = {facts.dt:g} exceeds the largest stable Δt {_bound_text(facts)} that "
            f"`pdelang check` derives for the linear part{unknown}; raise time.substeps to at "
            f"least {_substeps_needed(facts, structure)} to stay within it")


def blowup_hint(facts, structure, init, low: float, high: float) -> str:
    """The likely cause of a NaN/Inf: Δt past the bound, or — Δt within it — what the bound
    leaves out (nonlinear and zero-order parts, learned operators) growing from an initial
    state outside the equation's natural range."""
    if facts.max_stable_dt == 0:
        return no_stable_dt_text(facts, structure)
    if past_bound(facts):
        implicit = "" if structure.get("implicit") else \
            " (or treat the stiff terms implicitly, time.implicit)"
        return (f"Δt = {facts.dt:g} exceeds the largest stable Δt {_bound_text(facts)} that "
                f"`pdelang check` derives for the linear part: raise time.substeps to at least "
                f"{_substeps_needed(facts, structure)}{implicit}")
    if facts.max_stable_dt is not None:
        where = (f"Δt = {facts.dt:g} is within the stability bound "
                 f"{_bound_text(facts)} from `pdelang check`")
    elif facts.method.startswith("none"):
        where = f"`pdelang check` derives no Δt bound ({facts.method[6:]})"
    else:
        where = "no step size is too large for the linear part (`pdelang check`)"
    left_out = "; ".join(facts.caveats)
    growth = (f"the growth comes from what the bound leaves out ({left_out})" if left_out
              else "the growth is not the linear part's")
    return (f"{where}, so a smaller Δt is unlikely to help: {growth}.  The initial state "
            f"({init.describe()}, values in [{low:.3g}, {high:.3g}]) may lie outside the "
            "equation's natural range: start inside it (e.g. --init uniform:0,1 or --init "
            "bump when the reaction's fixed points are 0 and 1, as for u(1 − u)), with a "
            "smaller amplitude (--init random:0.01), or add a norm stabilizer")


# ----------------------------------------------------------------------------- the command
def execute(args) -> int:
    import torch  # lazy: torch

    module = build_module(args.spec, args.overrides)
    structure = {**structure_of(module.Stepper),
                 "stencil_radius": module.COMPILATION.discrete.stencil_radius}
    compilation = module.COMPILATION
    spec = compilation.spec
    facts = compilation.analysis.stability
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        raise PdelangError(f"--device {args.device}: pdelang runs on cpu or cuda[:N]",
                           option_location("--device", args.device),
                           "use --device cpu or --device cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PdelangError(f"--device {args.device}: CUDA is not available on this machine",
                           option_location("--device", args.device), "use --device cpu")
    if args.device.startswith("cuda:") and int(args.device[5:]) >= torch.cuda.device_count():
        raise PdelangError(f"--device {args.device}: this machine has "
                           f"{torch.cuda.device_count()} CUDA device(s)",
                           option_location("--device", args.device), "use --device cuda:0")
    if args.save and not Path(args.save).resolve().parent.is_dir():
        raise PdelangError(f"--save {args.save}: the directory does not exist",
                           option_location("--save", args.save),
                           "create the directory first, or save elsewhere")

    if args.trajectory:
        trajectory_format(args.trajectory)
    elif args.every != "layer":
        raise PdelangError("--every substep keeps states for --trajectory, which is not given",
                           option_location("--every", args.every),
                           "add --trajectory FILE.pt, or leave --every out")
    if args.plot:
        check_plot(args.plot)
    shape_1d = spec.grid.shape if len(spec.grid.axes) == 1 else None
    u0, init = initial_state(args, spec, structure, compilation.discrete, torch, shape_1d)
    per_step = args.every == "substep"
    if args.trajectory:
        kept = 1 + structure["layers"] * (structure["substeps"] if per_step else 1)
        check_trajectory_size(kept, *u0.shape, "--trajectory", args.trajectory)
    for warning in compilation.analysis.warnings:
        if not (past_bound(facts) and warning.startswith((f"Δt = {facts.dt:g} exceeds",
                                                          "no Δt is stable"))):
            print(f"warning: {warning}", file=sys.stderr)  # (the bound's: said below)
    if past_bound(facts):
        text = bound_warning(facts, structure)
        if args.strict:
            if args.json:
                print(json.dumps({"refused": True, "reason": text}, ensure_ascii=False))
            print(f"refused (--strict): {text}", file=sys.stderr)
            return 1
        print(f"warning: {text} (--strict refuses to run past the bound)", file=sys.stderr)

    device = torch.device(args.device)
    dtype = module_dtype(args.dtype)  # bfloat16/float16: float32 under autocast
    slow = check_dtype(args.dtype, device)
    if slow:
        print(f"warning: --dtype {args.dtype}: {slow}", file=sys.stderr)
    torch.manual_seed(args.seed)
    stepper = module.Stepper().to(device=device, dtype=dtype).eval()
    if args.compile:
        compile_stepper(stepper, device_type=device.type)  # each layer: run steps by layer
    u = u0.to(device=device, dtype=dtype)
    low, high = float(u0.min()), float(u0.max())

    program = module.COMPILATION.program
    before = {"state": u}  # the state at the start of the current step

    def watch(layer, substep, term, state):
        if not bool(torch.isfinite(state).all()):
            bad = "NaN" if bool(torch.isnan(state).any()) else "Inf"
            where = f"term '{term}'"
            if not program.is_splitting:
                # a Runge–Kutta/IMEX stage sums several terms: re-run the step term by term
                found = blame(program, stepper.layers[layer],
                              module.Context(before["state"], None, record=False),
                              stepper.shared, before["state"], structure["dt"])
                where = f"{term}" + (f", in the rate of term '{found.term}'"
                                     if found is not None and found.term else "")
            raise RuntimeCheckError(
                f"{bad} in the state after layer {layer}, sub-step {substep} ({where})",
                suggestion=blowup_hint(facts, structure, init, low, high))

    # Compiled layers run without the per-sub-step watch (its finiteness test would split
    # every compiled layer); the state is tested after every step instead, and a non-finite
    # step is run again uncompiled, watched, to name the sub-step and term.
    ctx = module.Context(u, None, record=False, watch=None if args.compile else watch)

    def locate(index, layer):
        ctx.watch = watch
        try:
            layer.forward(before["state"], ctx, stepper.shared)  # raises at the first NaN/Inf
        finally:
            ctx.watch = None
        raise RuntimeCheckError(
            f"NaN or Inf in the state after layer {index} (compiled; the same step "
            "uncompiled stays finite)", suggestion="run again without --compile")

    t0, dt = float(spec.time.span[0]), structure["dt"]
    substeps = structure["substeps"]
    norms = [{"layer": 0, "time": t0, **particle_metrics(u)}]
    trajectory = {"states": [u.detach().cpu().clone()], "times": [t0], "layers": [0],
                  "steps": [0]} if args.trajectory else None
    steps = structure["layers"] * structure["substeps"]
    progress = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm  # lazy: tqdm
        progress = tqdm(total=steps, desc=structure["name"], unit="step", file=sys.stderr)
    try:
        with torch.no_grad(), precision(args.dtype, device):
            if not bool(torch.isfinite(u).all()):
                raise RuntimeCheckError("the initial state contains NaN or Inf")
            for index, layer in enumerate(stepper.layers):
                ctx.layer = index
                for substep in range(substeps):
                    before["state"] = u
                    u = layer(u, ctx, stepper.shared)
                    if args.compile and not bool(torch.isfinite(u).all()):
                        locate(index, layer)
                    if progress:
                        progress.update(1)
                    step = index * substeps + substep + 1
                    if trajectory is not None and (per_step or substep == substeps - 1):
                        trajectory["states"].append(u.detach().cpu().clone())
                        trajectory["times"].append(t0 + step * dt)
                        trajectory["layers"].append(index + 1 if substep == substeps - 1
                                                    else index)
                        trajectory["steps"].append(step)
                norms.append({"layer": index + 1, "time": t0 + (index + 1) * substeps * dt,
                              **particle_metrics(u)})
            if hasattr(stepper, "final_norm"):
                u = stepper.final_norm(u)
    finally:
        if progress:
            progress.close()
    if args.save:
        save_tensor(u.cpu(), args.save)
    if trajectory is not None:
        save_trajectory(args.trajectory, trajectory["states"], trajectory["times"],
                        trajectory["layers"], trajectory["steps"], output=u,
                        spec_hash=canonical_hash(spec), spec=args.spec, name=structure["name"],
                        every=args.every, dt=dt)
    if args.plot:
        plot_diagnostics(norms, args.plot, f"{structure['name']}: {init.describe()}, "
                                           f"{steps} steps of Δt = {dt:g}")
    result = {"spec": args.spec, "device": str(device), "dtype": args.dtype,
              "compiled": bool(args.compile) and is_compiled(stepper),
              "shape": list(u.shape),
              "init": init.describe(), "seed": args.seed,
              "dt": structure["dt"], "steps": steps, "layers": norms,
              "final_norm": float(u.norm(dim=-1).mean())}
    if args.trajectory:
        result["trajectory"] = {"path": args.trajectory, "every": args.every,
                                "states": len(trajectory["states"])}
    if args.plot:
        result["plot"] = args.plot
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        how = f"{args.dtype}{', compiled' if result['compiled'] else ''}"
        print(f"{structure['name']}: {steps} steps of Δt = {structure['dt']:g} on {device} "
              f"({how}), state {tuple(u.shape)} from {init.describe()}")
        print("layer        t  mean token norm   max |u|  mean cos  eff. rank  residual")
        for row in norms:
            print(f"{row['layer']:>5}  {row['time']:>7.4g}  {row['norm']:>15.6g}  "
                  f"{row['max_abs']:>8.4g}  {row['mean_cosine']:>8.4f}  "
                  f"{row['effective_rank']:>9.4g}  {row['residual']:>8.3g}")
        print("mean cos: mean pairwise token cosine; eff. rank: exp(entropy of σ/Σσ) of the "
              "token matrix; residual: ‖X − 1x̄ᵀ‖_F/‖X‖_F (Dong et al.)")
        if args.trajectory:
            print(f"trajectory: {len(trajectory['states'])} states "
                  f"(every {args.every}) in {args.trajectory}")
        if args.plot:
            print(f"figure: {args.plot}")
    return 0
