"""Benchmark: one Euler step of 2-D periodic Fisher–KPP, u_t = D Δu + u − u² (D = 1), the
generated stepper with the ``Stencil`` block of this tree ("new") against the per-offset
block it replaced ("old"), a depthwise ``conv2d`` variant ("conv"), and py-pde's numba
stepper when py-pde is installed (a benchmark-only dependency: ``pip install py-pde``).

"new" is ``pdelang.build`` of the spec below.  "old" is the same generated module with the
``Stencil`` class replaced by the pre-issue-12 block (kept verbatim in :data:`OLD_STENCIL`:
ghosts by ``cat`` per axis, one shifted copy per offset accumulated from ``zeros_like``, the
axes summed) and ``D`` multiplied afterwards, as the generated code printed it.  "conv" is
the same module with a ``Stencil`` that pads once (``F.pad(mode="circular")``) and applies
one depthwise ``conv2d`` with the cross-shaped kernel (centre weights summed, D folded in)
— the alternative the issue suggested, measured here instead of assumed.

Each round times ``STEPS`` Euler steps of every variant, in rotating order, after a warm-up;
the medians per step are compared.  One thread (``torch.set_num_threads(1)``, numba's too).

    python benchmarks/bench_stencil.py [--size 256] [--rounds 21] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPEC = """\
pdelang: 1
name: fisher_kpp2d
description: 2-D Fisher–KPP, periodic
grid:
  axes: [x, y]
  shape: [{n}, {n}]
  spacing: {h!r}
  boundary: periodic
fields:
  u: {{channels: 1}}
parameters:
  D: 1.0
terms:
  diffusion: D * laplace(u)
  reaction: u - u^2
equation: dt(u) = diffusion + reaction
time:
  span: [0, {span!r}]
  layers: 1
  substeps: 1
  scheme: euler
discretization:
  laplace: {{accuracy: 2}}
"""

# The Stencil block of pdelang/compiler/codegen/runtime/stencil_2d.py before issue 12, as printed
# for the periodic boundary.
OLD_STENCIL = '''class Stencil(nn.Module):
    """(old) per-offset stencil."""

    def __init__(self, offsets: tuple[int, ...], weights: tuple[float, ...],
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.offsets = offsets
        self.radius = max(abs(o) for o in offsets)
        self.dims = dims  # axes of the grid view (B, *grid, C) the stencil acts along
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float64),
                             persistent=False)

    def forward(self, u: torch.Tensor, ctx: Context) -> torch.Tensor:
        grid = u[:, EXTRA_TOKENS:]  # (B, L, C) grid tokens
        batch, _, channels = u.shape  # (B, N, C)
        g = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        if ctx.lengths is not None:  # (B, 2): each image's rows and cols
            rate = sum(self.ragged(g, dim, ctx.lengths[:, dim - 1])
                       for dim in self.dims)
            rate = rate * self.inside(g, ctx.lengths)
        else:
            rate = sum(self.along(g, dim) for dim in self.dims)
        rate = rate.reshape(batch, -1, channels)  # (B, L, C)
        if EXTRA_TOKENS:
            rate = F.pad(rate, (0, 0, EXTRA_TOKENS, 0))  # zero rate off the grid
        return rate

    def along(self, g: torch.Tensor, dim: int) -> torch.Tensor:
        size = g.shape[dim]
        padded = with_ghosts(g, dim, self.radius)
        rate = torch.zeros_like(g)
        for offset, weight in zip(self.offsets, self.weights, strict=True):
            rate = rate + weight * padded.narrow(dim, self.radius + offset, size)
        return rate
'''

# A depthwise conv2d stencil (periodic only): one circular pad, one conv with the cross kernel.
CONV_STENCIL = '''class Stencil(nn.Module):
    """(conv) depthwise conv2d with the cross-shaped kernel, circular padding."""

    def __init__(self, offsets: tuple[int, ...], weights: tuple[float, ...],
                 dims: tuple[int, ...]) -> None:
        super().__init__()
        self.radius = max(abs(o) for o in offsets)
        size = 2 * self.radius + 1
        kernel = torch.zeros(size, size, dtype=torch.float64)
        for offset, weight in zip(offsets, weights, strict=True):
            kernel[self.radius + offset, self.radius] += weight
            kernel[self.radius, self.radius + offset] += weight
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, u: torch.Tensor, ctx: Context, scale=None) -> torch.Tensor:
        batch, _, channels = u.shape  # (B, N, C)
        g = u.reshape(batch, *GRID_SHAPE, channels).movedim(-1, 1).contiguous()
        kernel = self.kernel.to(u.dtype).expand(channels, 1, -1, -1)
        if scale is not None:
            kernel = kernel * scale
        r = self.radius
        padded = F.pad(g, (r, r, r, r), mode="circular")
        rate = F.conv2d(padded, kernel, groups=channels)  # (B, C, rows, cols)
        return rate.movedim(1, -1).reshape(batch, -1, channels)
'''


def replace_stencil(source: str, stencil: str, folded: bool) -> str:
    start = source.index("class Stencil(nn.Module):")
    end = source.index("class SharedParameters(nn.Module):")
    source = source[:start] + stencil + "\n\n" + source[end:]
    if not folded:
        source = source.replace("self.laplace(u, ctx, scale=p.D)", "p.D * self.laplace(u, ctx)")
        assert "p.D * self.laplace(u, ctx)" in source
    return source


def load(source: str, name: str):
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # our own generated code
    return module


def pdelang_steppers(n: int, h: float, dt: float, dtype: torch.dtype, u0: torch.Tensor):
    """name → (step function advancing STEPS Euler steps, state reader) of each variant."""
    from pdelang.compiler.driver import compile_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fisher_kpp2d.yaml"
        path.write_text(SPEC.format(n=n, h=h, span=dt), encoding="utf-8")
        source = compile_spec(str(path)).python
    modules = {"new": load(source, "bench_stencil_new"),
               "old": load(replace_stencil(source, OLD_STENCIL, False), "bench_stencil_old"),
               "conv": load(replace_stencil(source, CONV_STENCIL, True), "bench_stencil_conv")}
    steppers = {}
    for name, module in modules.items():
        stepper = module.Stepper().to(dtype)
        assert module.DT == dt
        layer, shared = stepper.layers[0], stepper.shared
        u = u0.to(dtype).reshape(1, n * n, 1).clone()
        ctx = module.Context(u, None, record=False)
        state = {"u": u}

        def run(steps, layer=layer, shared=shared, ctx=ctx, state=state):
            u = state["u"]
            for _ in range(steps):
                u = layer(u, ctx, shared)
            state["u"] = u

        steppers[name] = (run, lambda state=state: state["u"].reshape(n, n).double())
    return steppers


def pypde_stepper(n: int, h: float, dt: float, u0: torch.Tensor):
    try:
        import pde
    except ImportError:
        return None
    grid = pde.CartesianGrid([(0, n * h), (0, n * h)], [n, n], periodic=True)
    state = pde.ScalarField(grid, u0.numpy().copy())
    eq = pde.PDE({"u": "laplace(u) + u - u**2"})
    solver = pde.EulerSolver(eq, backend="numba", adaptive=False)
    stepper = solver.make_stepper(state, dt=dt)
    clock = {"t": 0.0}

    def run(steps):
        clock["t"] = stepper(state, clock["t"], clock["t"] + steps * dt)  # fixed dt: steps

    return run, lambda: torch.from_numpy(state.data.copy())


def bench(size: int, rounds: int, steps: int, dtype: torch.dtype) -> dict[str, float]:
    n, h = size, 0.5
    dt = 0.1 * h * h  # stable: Δt ≤ h²/4 for the 5-point Laplacian
    generator = torch.Generator().manual_seed(0)
    u0 = 0.5 + 0.1 * torch.rand(n, n, generator=generator, dtype=torch.float64)
    variants = pdelang_steppers(n, h, dt, dtype, u0)
    peer = pypde_stepper(n, h, dt, u0) if dtype == torch.float64 else None
    if peer is not None:
        variants["py-pde"] = peer
    # the same trajectory: every variant agrees with "old" after the warm-up steps
    for run, _ in variants.values():
        run(steps)
    reference = variants["old"][1]()
    for name, (_, read) in variants.items():
        error = float((read() - reference).abs().max())
        limit = 1e-12 if dtype == torch.float64 else 1e-4
        assert error < limit, f"{name} differs from old by {error}"
    times = {name: [] for name in variants}
    names = list(variants)
    for k in range(rounds):
        for name in names[k % len(names):] + names[:k % len(names)]:  # rotating order
            start = time.perf_counter()
            variants[name][0](steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, threads {torch.get_num_threads()}; "
          f"{args.size}², {args.rounds} rounds × {args.steps} Euler steps, medians per step")
    for dtype in (torch.float64, torch.float32):
        result = bench(args.size, args.rounds, args.steps, dtype)
        line = ", ".join(f"{name} {seconds * 1e6:.0f} µs" for name, seconds in result.items())
        print(f"{str(dtype)[6:]}: {line}")
        ratios = [f"new/old {result['new'] / result['old']:.2f}",
                  f"conv/old {result['conv'] / result['old']:.2f}",
                  f"new/conv {result['new'] / result['conv']:.2f}"]
        if "py-pde" in result:
            ratios += [f"new/py-pde {result['new'] / result['py-pde']:.2f}",
                       f"old/py-pde {result['old'] / result['py-pde']:.2f}"]
        print("    " + ", ".join(ratios))


if __name__ == "__main__":
    main()
