"""``pdelang run SPEC [--device cpu|cuda] [--init random|FILE.pt] [--seed N]``.

Integrates the spec from an initial state, layer by layer with a progress bar, reports
per-layer state norms, and stops with an error naming the layer, sub-step and term if a
NaN or Inf appears.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pdelang.errors import PdelangError, RuntimeCheckError


def configure(parser) -> None:
    from pdelang.cli.main import add_common
    add_common(parser)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--init", default="random",
                        help="'random' (seeded normal) or a .pt file holding a (B, N, C) tensor")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and the state")
    parser.add_argument("--batch", type=int, default=2, help="batch size of a random state")
    parser.add_argument("--tokens", type=int, default=None,
                        help="tokens of a random state, extra tokens included (default: the "
                             "grid's shape, or 128 grid tokens)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--save", default=None, help="save the final state to a .pt file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def initial_state(args, structure, torch, shape_1d=None):
    if args.init != "random":
        try:
            state = torch.load(args.init, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise PdelangError(f"no such initial-state file: {args.init}") from None
        except Exception as exc:  # torch raises many kinds for a bad file
            raise PdelangError(f"cannot read the initial state {args.init}: {exc}") from None
        if isinstance(state, dict):
            state = state.get("u", next(iter(state.values()), None))
        if not isinstance(state, torch.Tensor) or state.dim() != 3 \
                or state.shape[-1] != structure["channels"]:
            shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise PdelangError(f"the initial state must be a (B, N, {structure['channels']}) "
                               f"tensor, got {shape}")
        _check_tokens(state.shape[1], structure, "the initial state's token count")
        if state.shape[0] < 1:
            raise PdelangError("the initial state has an empty batch")
        return state
    if args.batch < 1:
        raise PdelangError(f"--batch {args.batch}: the batch needs at least one sequence")
    tokens = args.tokens or _default_tokens(structure, shape_1d)
    _check_tokens(tokens, structure, f"--tokens {tokens}")
    generator = torch.Generator().manual_seed(args.seed)
    return torch.randn(args.batch, tokens, structure["channels"], generator=generator)


def _default_tokens(structure, shape_1d) -> int:
    grid = structure["grid_shape"]
    if grid:
        return grid[0] * grid[1] + structure["extra_tokens"]
    return (shape_1d[0] if shape_1d else 128) + structure["extra_tokens"]


def _check_tokens(tokens: int, structure, what: str) -> None:
    """A state the grid can take: a 2-D grid's exact size; in 1-D, more grid tokens than the
    stencils' radius (the generated module would refuse it with a traceback otherwise)."""
    grid, extra = structure["grid_shape"], structure["extra_tokens"]
    if grid:
        if tokens != grid[0] * grid[1] + extra:
            raise PdelangError(f"{what}: the {grid[0]}×{grid[1]} grid with {extra} extra "
                               f"token(s) needs {grid[0] * grid[1] + extra} tokens",
                               suggestion="leave --tokens out to use the grid's size")
        return
    radius = structure.get("stencil_radius", 0)
    if tokens - extra < max(1, radius + 1):
        raise PdelangError(f"{what}: {tokens - extra} grid token(s) are too few"
                           + (f"; the stencils need more than {radius}" if radius else ""),
                           suggestion=f"use at least {extra + max(1, radius + 1)} tokens")


def execute(args) -> int:
    import torch

    from pdelang.builder import build_module

    module = build_module(args.spec, args.overrides)
    structure = {**module.Stepper.STRUCTURE, "stencil_radius": module.STENCIL_RADIUS}
    spec = module.COMPILATION.spec
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        raise PdelangError(f"--device {args.device}: pdelang runs on cpu or cuda[:N]",
                           suggestion="use --device cpu or --device cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PdelangError(f"--device {args.device}: CUDA is not available on this machine",
                           suggestion="use --device cpu")
    if args.device.startswith("cuda:") and int(args.device[5:]) >= torch.cuda.device_count():
        raise PdelangError(f"--device {args.device}: this machine has "
                           f"{torch.cuda.device_count()} CUDA device(s)")
    if args.save and not Path(args.save).resolve().parent.is_dir():
        raise PdelangError(f"--save {args.save}: the directory does not exist")
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    stepper = module.Stepper().to(device=device, dtype=dtype).eval()
    shape_1d = spec.grid.shape if len(spec.grid.axes) == 1 else None
    u = initial_state(args, structure, torch, shape_1d).to(device=device, dtype=dtype)

    def watch(layer, substep, term, state):
        if not bool(torch.isfinite(state).all()):
            bad = "NaN" if bool(torch.isnan(state).any()) else "Inf"
            raise RuntimeCheckError(
                f"{bad} in the state after layer {layer}, sub-step {substep} (term '{term}')",
                suggestion="lower Δt (raise time.substeps) or add a norm stabilizer")

    ctx = module.Context(u, None, record=False, watch=watch)
    norms = [{"layer": 0, "norm": float(u.norm(dim=-1).mean()), "max_abs": float(u.abs().max())}]
    steps = structure["layers"] * structure["substeps"]
    progress = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm
        progress = tqdm(total=steps, desc=structure["name"], unit="step", file=sys.stderr)
    with torch.no_grad():
        if not bool(torch.isfinite(u).all()):
            raise RuntimeCheckError("the initial state contains NaN or Inf")
        for index, layer in enumerate(stepper.layers):
            ctx.layer = index
            for _ in range(structure["substeps"]):
                u = layer(u, ctx, stepper.shared)
                if progress:
                    progress.update(1)
            norms.append({"layer": index + 1, "norm": float(u.norm(dim=-1).mean()),
                          "max_abs": float(u.abs().max())})
        if hasattr(stepper, "final_norm"):
            u = stepper.final_norm(u)
    if progress:
        progress.close()
    if args.save:
        from pdelang.io import save_tensor
        save_tensor(u.cpu(), args.save)
    result = {"spec": args.spec, "device": str(device), "shape": list(u.shape),
              "dt": structure["dt"], "steps": steps, "layers": norms,
              "final_norm": float(u.norm(dim=-1).mean())}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{structure['name']}: {steps} steps of Δt = {structure['dt']:g} on {device}, "
              f"state {tuple(u.shape)}")
        print("layer  mean token norm   max |u|")
        for row in norms:
            print(f"{row['layer']:>5}  {row['norm']:>15.6g}  {row['max_abs']:>8.4g}")
    return 0
