"""2-D Fisher–KPP ``u_t = Δu + u − u²``, periodic, forward Euler: pdelang vs py-pde (numba).

pdelang's side is ``benchmarks/specs/fisher_kpp2d.yaml`` compiled by ``pdelang.build`` with
``grid.shape``, ``time.substeps`` and ``time.span`` overridden per case, so both sides take
the same number of steps of the same Δt on the same grid (spacing 1, second-order
five-point Laplacian).  py-pde (an optional, benchmark-only dependency: ``pip install
.[bench]``) runs ``PDE({"u": "laplace(u) + u - u**2"}, bc="periodic")`` with its
``EulerSolver(adaptive=False)`` on the numba backend, through the stepper of
``solver.make_stepper`` (numba compilation and a warm-up call excluded from the timing);
numba's threading is switched off in the single-thread runs (py-pde's
``backend.numba.multithreading = "never"`` and ``numba.set_num_threads``).  py-pde's
default ``fastmath`` is kept.  Before timing, both fields after all the steps from the same
initial field are compared (max |Δ|); without py-pde, pdelang's field is compared with a
NumPy ``np.roll`` Euler reference instead and the timing is skipped with a message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pdelang.interpreters.builder import structure_of

from benchmarks.report import Figure
from benchmarks.timing import interleaved

SPEC = Path(__file__).resolve().parent / "specs" / "fisher_kpp2d.yaml"
DT = 0.1  # the step both sides take: Δt·4/h² = 0.4 < 1/2, stable


def pypde_missing() -> str | None:
    """Why py-pde cannot be used, or None."""
    try:
        import numba  # noqa: F401
        import pde  # noqa: F401
    except ImportError as error:
        return (f"py-pde is not installed ({error.name}); `pip install py-pde` or "
                "`pip install .[bench]` to run this comparison")
    return None


def pdelang_stepper(n: int, steps: int, dtype: torch.dtype, device: str,
                    compile: bool = False):
    """The generated stepper; ``compile``: ``pdelang.build(..., compile=True)`` (torch.compile
    of each layer: inductor fuses the stencil, the reaction and the update into one loop)."""
    import pdelang

    overrides = [f"grid.shape=[{n}, {n}]", f"time.substeps={steps}",
                 f"time.span=[0, {steps * DT!r}]"]
    stepper_class = pdelang.build(SPEC, overrides, compile=True) if compile \
        else pdelang.build(SPEC, overrides)
    if abs(structure_of(stepper_class)["dt"] - DT) > 1e-12:
        raise RuntimeError(f"the spec's Δt is {structure_of(stepper_class)['dt']}, not {DT}")
    return stepper_class().to(device=device, dtype=dtype).eval()


def numpy_euler(u0: np.ndarray, steps: int) -> np.ndarray:
    """The same scheme in NumPy (periodic five-point Laplacian, spacing 1)."""
    u = u0.copy()
    for _ in range(steps):
        lap = (np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1)
               - 4 * u)
        u = u + DT * (lap + u - u * u)
    return u


def pypde_stepper(n: int, dtype: np.dtype, threads: int):
    """(stepper(state, t0, t1), a ScalarField factory); compiles on the first call."""
    import numba
    import pde

    if threads == 1:
        pde.config["backend.numba.multithreading"] = "never"
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    grid = pde.CartesianGrid([[0, n], [0, n]], [n, n], periodic=True)  # spacing 1
    equation = pde.PDE({"u": "laplace(u) + u - u**2"}, bc="periodic")
    solver = pde.EulerSolver(equation, backend="numba", adaptive=False)

    def field(data: np.ndarray):
        return pde.ScalarField(grid, data.astype(dtype), dtype=dtype)

    stepper = solver.make_stepper(field(np.zeros((n, n))), dt=DT)
    return stepper, field, solver


def run(cfg, cases: list[tuple[int, int]], dtypes=("float64", "float32")) -> list[Figure]:
    missing = pypde_missing() if cfg.pypde else "py-pde comparison switched off (--no-pypde)"
    out = []
    for dtype_name in dtypes:
        for n, steps in cases:
            size = f"{n}²×{steps}, {dtype_name}"
            figure_name = "Fisher–KPP 2-D periodic Euler vs py-pde numba"
            torch_dtype = getattr(torch, dtype_name)
            u0 = np.random.default_rng(0).random((n, n))
            stepper = pdelang_stepper(n, steps, torch_dtype, cfg.device)
            u = torch.tensor(u0, dtype=torch_dtype).reshape(1, n * n, 1).to(cfg.device)

            def ours(u=u, stepper=stepper):
                with torch.inference_mode():
                    return stepper(u)

            field = ours().reshape(n, n).double().cpu().numpy()
            if missing is not None:
                reference = numpy_euler(u0.astype(dtype_name), steps) if n * n * steps <= 2e7 \
                    else None
                check = ("vs NumPy Euler max |Δ| "
                         f"{np.abs(field - reference).max():.1e}" if reference is not None
                         else "")
                out.append(Figure("fisher_kpp", figure_name, size, target=1.0,
                                  check=check, skipped=missing + (f"; {check}" if check else "")))
                continue
            compiled = pdelang_stepper(n, steps, torch_dtype, cfg.device, compile=True)

            def ours_compiled(u=u, stepper=compiled):
                with torch.inference_mode():
                    return stepper(u)

            compiled_diff = float(np.abs(ours_compiled().reshape(n, n).double().cpu().numpy()
                                         - field).max())  # (compiles here, untimed)
            py_stepper, make_field, solver = pypde_stepper(n, np.dtype(dtype_name), cfg.threads)
            state = make_field(u0)
            py_stepper(state, 0.0, steps * DT)  # compiles here (untimed)
            # numba's set-up leaves torch on more intra-op threads (seen: 1 → 2, and pdelang
            # 10–40× slower on this loaded 2-core machine): restore the suite's setting
            torch.set_num_threads(cfg.threads)
            diff = float(np.abs(field - state.data.astype(np.float64)).max())
            done = solver.info["steps"]
            work = make_field(u0)

            def theirs(work=work, py_stepper=py_stepper, t1=steps * DT):
                return py_stepper(work, 0.0, t1)  # state advanced in place; cost only

            t = interleaved({"pdelang": ours, "pdelang compiled": ours_compiled,
                             "py-pde": theirs}, cfg.rounds_fisher, cfg.warmup, cfg.device)
            if torch.get_num_threads() != cfg.threads:
                raise RuntimeError(f"torch ran on {torch.get_num_threads()} threads, not "
                                   f"{cfg.threads}, during the Fisher–KPP timing")
            per_call = (solver.info["steps"] - done) // (cfg.rounds_fisher + cfg.warmup)
            if per_call != steps:
                raise RuntimeError(f"py-pde took {per_call} steps per call, not {steps}")
            out.append(Figure("fisher_kpp", figure_name, size, t.ratio("pdelang", "py-pde"), 1.0,
                              ours_ms=t.median("pdelang") * 1e3, peer_ms=t.median("py-pde") * 1e3,
                              rounds=t.rounds,
                              check=f"same field: max |Δ| {diff:.1e}; {steps} steps each"))
            out.append(Figure("fisher_kpp", figure_name + " (compile=True)", size,
                              t.ratio("pdelang compiled", "py-pde"), 1.0,
                              ours_ms=t.median("pdelang compiled") * 1e3,
                              peer_ms=t.median("py-pde") * 1e3, rounds=t.rounds,
                              check=f"compiled vs eager max |Δ| {compiled_diff:.1e}"))
    return out
