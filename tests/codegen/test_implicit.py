"""Implicit and exponential time stepping in the generated code (``time.implicit``).

An implicit term is linear with constant coefficients, ``L u = c₀ u + Σ_i c_i S_i u``
(``S_i``: the term's stencils).  The generated ``ImplicitLinear`` block applies

* ``flow``  exp(τL) x  — the exact flow of the term (its sub-step in ``lie`` / ``strang``);
* ``solve`` (I − τL)⁻¹ x — an implicit stage (``imex_euler``, ``imex_ars222``);

by the FFT of the boundary's symmetric extension (periodic, neumann, dirichlet, copy) or, for
odd derivatives on a non-periodic grid, a dense matrix.  What is checked here:

1. ``specs/heat1d_implicit.yaml`` at Δt = 50× the explicit bound: the error against the exact
   solution e^{−Dk²t} is the spatial error alone (≤ 1e-5; the time error of the exact flow is
   roundoff), strang gives the same result; without ``implicit`` the same Δt is unstable
   (``check`` exits 1) and the run blows up.
2. Every boundary × 1-D / 2-D × accuracy 2 / 4, even and odd derivatives: the generated flow
   and solve equal the NumPy oracle's dense expm / inverse (float64, ~1e-10), extra (CLS)
   tokens are only scaled by f(c₀), and a padded sequence / image equals itself run alone.
3. Independently of the reference: the dense matrix of L assembled from the generated explicit
   operator ``f_<term>`` on unit vectors (also with padding), through scipy's expm / a solve.
4. Gradients through a flow, a solve and a whole IMEX run match finite differences.
5. The generated IMEX steppers converge at orders 1 and 2 to an independent fine explicit RK4
   run of the stiff Allen–Cahn spec at Δt ≫ the explicit bound; a padded batch through a whole
   IMEX / splitting stepper equals each sequence run alone.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from pdelang.cli.main import main as cli_main
from pdelang.errors import SpecError
from pdelang.lab.testing.harness import compile_any, reference_for, stepper_for
from pdelang.lab.testing.properties import relative_error

REPO = Path(__file__).resolve().parents[2]
HEAT = REPO / "specs" / "heat1d_implicit.yaml"
ALLEN_CAHN = REPO / "specs" / "allen_cahn_imex.yaml"
BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")
KIND_SCHEME = {"flow": "lie", "solve": "imex_euler"}  # the scheme whose layer has the method
TAU = 0.37  # the scale of the flows and solves called directly
EXACT_RTOL = 1e-10


def dense_cache(block) -> dict:
    """The dense matrices an ``ImplicitLinear`` block has cached; the periodic variant has no
    dense path (every word is circulant: the FFT), so it holds none."""
    return getattr(block, "matrices", {})


def module_of(stepper):
    return sys.modules[type(stepper).__module__]


def run(stepper, u, mask=None) -> np.ndarray:
    x = torch.as_tensor(np.asarray(u), dtype=torch.float64)
    m = None if mask is None else torch.as_tensor(mask)
    with torch.no_grad():
        return stepper(x, m).numpy()


# --------------------------------------------------------------------------- 1. heat1d
HEAT_N = 100
HEAT_H = 2 * math.pi / HEAT_N
HEAT_T = 0.74
HEAT_MODES = ((1, 1.0, np.sin), (3, 0.5, np.cos))  # u0 = sin x + ½ cos 3x
# the accuracy-4 Laplacian of the spec, exactly: offsets −2…2
HEAT_WEIGHTS = {-2: -1 / 12, -1: 4 / 3, 0: -5 / 2, 1: 4 / 3, 2: -1 / 12}


def heat_initial() -> np.ndarray:
    x = np.arange(HEAT_N) * HEAT_H
    return sum(a * f(k * x) for k, a, f in HEAT_MODES)


def heat_exact(t: float, semi_discrete: bool = False) -> np.ndarray:
    """e^{−Dk²t} per Fourier mode (D = 1), or with the stencil's symbol σ_h(k) in place of
    −k² (the exact solution of the semi-discrete system, which the exact flow reproduces)."""
    x = np.arange(HEAT_N) * HEAT_H
    total = np.zeros(HEAT_N)
    for k, a, f in HEAT_MODES:
        rate = (sum(w * math.cos(j * k * HEAT_H) for j, w in HEAT_WEIGHTS.items()) / HEAT_H**2
                if semi_discrete else -k * k)
        total += a * math.exp(rate * t) * f(k * x)
    return total


@functools.cache
def heat_run(overrides: tuple[str, ...]) -> tuple[np.ndarray, object]:
    compilation = compile_any(HEAT, overrides)
    stepper = stepper_for(compilation, seed=None)
    out = run(stepper, heat_initial()[None, :, None])[0, :, 0]
    return out, compilation


@pytest.mark.parametrize("scheme", ["lie", "strang"])
def test_heat1d_implicit_error_is_the_spatial_error_alone(scheme):
    out, compilation = heat_run((f"time.scheme={scheme}",))
    facts = compilation.analysis.stability
    explicit_bound = 3 * HEAT_H**2 / 8  # explicit Euler, accuracy-4 Laplacian, D = 1
    assert compilation.discrete.dt == pytest.approx(0.074)
    assert compilation.discrete.dt / explicit_bound == pytest.approx(50, rel=1e-3)
    assert facts.verdict == "stable" and facts.max_stable_dt is None
    assert compilation.discrete.program.implicit == ("diffusion",)
    error = np.max(np.abs(out - heat_exact(HEAT_T)))
    assert error <= 1e-5, error
    # the exact flow has no time error at all: only the stencil's (spatial) error is left
    assert np.max(np.abs(out - heat_exact(HEAT_T, semi_discrete=True))) <= 1e-12


def test_heat1d_strang_equals_lie_with_a_single_implicit_term():
    lie, _ = heat_run(("time.scheme=lie",))
    strang, _ = heat_run(("time.scheme=strang",))
    np.testing.assert_allclose(strang, lie, rtol=0, atol=1e-13)


def test_heat1d_without_implicit_is_unstable_at_that_dt_and_blows_up(capsys):
    overrides = ["--set", "time.implicit=[]"]
    assert cli_main(["check", str(HEAT), *overrides]) == 1
    text = capsys.readouterr().out
    assert "UNSTABLE" in text
    assert cli_main(["check", "--json", str(HEAT), *overrides]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["stability"]["verdict"] == "unstable"
    assert data["stability"]["max_stable_dt"] == pytest.approx(3 * HEAT_H**2 / 8, rel=1e-9)
    out, compilation = heat_run(("time.implicit=[]",))
    assert compilation.discrete.program.implicit == ()
    u0 = heat_initial()
    assert not np.all(np.isfinite(out)) or np.max(np.abs(out)) > 1e3 * np.max(np.abs(u0))


# ------------------------------------------------------------- 2./3. exactness of transforms
TEMPLATE = """pdelang: 1
name: implicit_{tag}
grid:
  axes: {axes}
{shape}  spacing: 0.5
  boundary: {boundary}
  extra_tokens: 1
fields:
  u: {{channels: 2}}
parameters:
  D: {{value: 0.7, learnable: true, positive: true}}
  c: {{value: 0.3, learnable: true}}
terms:
  diffusion: {diffusion}
  reaction: tanh(u) - 0.5 * u
equation: dt(u) = diffusion + reaction
time:
  span: [0, 2]
  layers: 2
  substeps: 2
  scheme: {scheme}
  implicit: [diffusion]
discretization:
  laplace: {{accuracy: {accuracy}}}
  diff: {{accuracy: 2}}
"""
EVEN = "D * laplace(u) - c * u"
ODD = "D * laplace(u) - c * u + 0.4 * diff(u, x)"
SHAPE_2D = (6, 7)


@functools.cache
def compiled(boundary: str, dims: int, accuracy: int, odd: bool, scheme: str,
             shape: tuple[int, int] = SHAPE_2D):
    """(compilation, float64 stepper with random weights, seed 0) of the template."""
    axes = "[x]" if dims == 1 else "[x, y]"
    grid_shape = "" if dims == 1 else f"  shape: [{shape[0]}, {shape[1]}]\n"
    tag = f"{boundary}_{dims}d_{accuracy}_{'odd' if odd else 'even'}_{scheme}"
    text = TEMPLATE.format(tag=tag, axes=axes, shape=grid_shape, boundary=boundary,
                           diffusion=ODD if odd else EVEN, scheme=scheme, accuracy=accuracy)
    compilation = compile_any(text)
    return compilation, stepper_for(compilation, seed=0)


def transform(stepper, kind: str, x: torch.Tensor, mask=None, tau: float = TAU):
    """The generated flow_diffusion / solve_diffusion of layer 0 on x."""
    layer = stepper.layers[0]
    ctx = module_of(stepper).Context(x, None if mask is None else torch.as_tensor(mask),
                                     record=False)
    return getattr(layer, f"{kind}_diffusion")(x, tau, ctx, stepper.shared)


def scalar_f(kind: str, c0: float, tau: float = TAU) -> float:
    return math.exp(tau * c0) if kind == "flow" else 1 / (1 - tau * c0)


def zero_order(stepper) -> float:
    return -float(stepper.shared.c.detach())


def padded_mask(dims: int, accuracy: int, tokens: int) -> tuple[np.ndarray, list]:
    """(mask (3, N), extents): right padding in 1-D (lengths 9, 6 and the least a stencil
    allows, radius + 1); top-left images in 2-D (6×7, 4×5 and (radius + 1)×6)."""
    radius = accuracy // 2
    mask = np.ones((3, tokens), dtype=bool)
    if dims == 1:
        extents = [(9,), (6,), (radius + 1,)]
        for b, (n,) in enumerate(extents):
            mask[b, 1 + n:] = False
        return mask, extents
    extents = [SHAPE_2D, (4, 5), (radius + 1, 6)]
    for b, (r, c) in enumerate(extents):
        image = np.zeros(SHAPE_2D, dtype=bool)
        image[:r, :c] = True
        mask[b, 1:] = image.ravel()
    return mask, extents


CONFIGS = [(b, dims, acc, False) for b in BOUNDARIES for dims in (1, 2) for acc in (2, 4)]
CONFIGS += [("periodic", 1, 4, True), ("periodic", 2, 2, True),  # complex FFT
            ("neumann", 1, 4, True), ("dirichlet", 1, 2, True), ("copy", 1, 4, True),
            ("dirichlet", 2, 2, True)]  # dense matrices


def config_id(config) -> str:
    boundary, dims, accuracy, odd = config
    return f"{boundary}-{dims}d-acc{accuracy}-{'odd' if odd else 'even'}"


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_transform_equals_reference_dense_computation(config, kind):
    """flow / solve == the NumPy oracle's scipy expm / inverse of the dense L, without and
    with padding; extra and padding tokens are scaled by f(c₀) only."""
    boundary, dims, accuracy, odd = config
    compilation, stepper = compiled(boundary, dims, accuracy, odd, KIND_SCHEME[kind])
    assert compilation.discrete.program.implicit == ("diffusion",)
    reference = reference_for(compilation, stepper)
    tokens = 1 + (9 if dims == 1 else SHAPE_2D[0] * SHAPE_2D[1])
    rng = np.random.default_rng(7)
    u = rng.standard_normal((3, tokens, 2))
    x = torch.as_tensor(u)
    factor = scalar_f(kind, zero_order(stepper))
    mask, _ = padded_mask(dims, accuracy, tokens)
    for m in (None, mask):
        with torch.no_grad():
            got = transform(stepper, kind, x, m).numpy()
        want = reference.implicit_apply(kind, ("diffusion",), TAU, u, 0, reference.context(u, m))
        error = relative_error(got, want)
        assert error <= EXACT_RTOL, (m is not None, error)
        # the CLS token sees only c₀
        np.testing.assert_allclose(got[:, 0], factor * u[:, 0], rtol=1e-13, atol=0)
        if m is not None:  # so do the padding tokens
            np.testing.assert_allclose(got[~m], factor * u[~m], rtol=1e-13, atol=0)
    # the transform is not the identity or a mere scaling: the stencils take part
    assert relative_error(got[:, 1:], factor * u[:, 1:]) > 1e-3


# 2-D images run alone compile a grid per image size: accuracy 2 covers 2-D
PADDED = [c for c in CONFIGS if not (c[1] == 2 and c[2] == 4)]


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", PADDED, ids=[config_id(c) for c in PADDED])
def test_padded_domain_equals_itself_run_alone(config, kind):
    """Each padded sequence (1-D, right padding) or image (2-D, top-left corner) is its own
    domain: its tokens equal the transform of the unpadded sequence / image alone."""
    boundary, dims, accuracy, odd = config
    _, stepper = compiled(boundary, dims, accuracy, odd, KIND_SCHEME[kind])
    tokens = 1 + (9 if dims == 1 else SHAPE_2D[0] * SHAPE_2D[1])
    mask, extents = padded_mask(dims, accuracy, tokens)
    u = np.random.default_rng(11).standard_normal((3, tokens, 2))
    with torch.no_grad():
        padded = transform(stepper, kind, torch.as_tensor(u), mask).numpy()
    for b, extent in enumerate(extents):
        if dims == 1:
            alone_stepper = stepper
            alone_u = u[b:b + 1, :1 + extent[0]]
            picked = padded[b:b + 1, :1 + extent[0]]
        else:
            if extent == SHAPE_2D:
                alone_stepper = stepper
            else:
                _, alone_stepper = compiled(boundary, dims, accuracy, odd, KIND_SCHEME[kind],
                                            shape=extent)
                alone_stepper.load_state_dict(stepper.state_dict())
            image = mask[b, 1:].reshape(SHAPE_2D)
            alone_u = np.concatenate([u[b:b + 1, :1], u[b:b + 1, 1:][:, image.ravel()]], 1)
            picked = np.concatenate([padded[b:b + 1, :1], padded[b:b + 1, 1:][:, image.ravel()]],
                                    1)
        with torch.no_grad():
            alone = transform(alone_stepper, kind, torch.as_tensor(alone_u)).numpy()
        assert relative_error(picked, alone) <= EXACT_RTOL, (b, extent)


def operator_matrix(stepper, tokens: int, mask_row=None) -> np.ndarray:
    """The (N, N) matrix of the implicit term from the generated *explicit* operator
    ``f_diffusion`` applied to the unit vectors (channel 0; both channels carry them)."""
    unit = torch.eye(tokens, dtype=torch.float64)[:, :, None].repeat(1, 1, 2)  # (N, N, 2)
    mask = None if mask_row is None else torch.as_tensor(mask_row)[None].expand(tokens, -1)
    ctx = module_of(stepper).Context(unit, mask, record=False)
    with torch.no_grad():
        columns = stepper.layers[0].f_diffusion(unit, ctx, stepper.shared)
    assert torch.equal(columns[..., 0], columns[..., 1])  # channel-wise
    return columns[..., 0].numpy().T  # column j: L e_j


INDEPENDENT = [(b, 1, 4, odd) for b in BOUNDARIES for odd in (False, True)]
INDEPENDENT += [(b, 2, 2, False) for b in ("neumann", "copy")] + [("periodic", 2, 2, True)]


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", INDEPENDENT, ids=[config_id(c) for c in INDEPENDENT])
def test_transform_equals_expm_of_the_generated_operator_matrix(config, kind):
    """Independent of the NumPy oracle: flow == scipy.linalg.expm(τL) x and solve ==
    numpy.linalg.solve(I − τL, x), L assembled from the generated f_diffusion (with the
    sequence's own padding mask for padded rows)."""
    boundary, dims, accuracy, odd = config
    _, stepper = compiled(boundary, dims, accuracy, odd, KIND_SCHEME[kind])
    tokens = 1 + (7 if dims == 1 else SHAPE_2D[0] * SHAPE_2D[1])
    mask = np.ones((3, tokens), dtype=bool)
    if dims == 1:
        mask[1, 1 + 5:] = False
        mask[2, 1 + accuracy // 2 + 1:] = False
    else:
        for b, (r, c) in ((1, (4, 5)), (2, (3, 7))):
            image = np.zeros(SHAPE_2D, dtype=bool)
            image[:r, :c] = True
            mask[b, 1:] = image.ravel()
    u = np.random.default_rng(3).standard_normal((3, tokens, 2))
    for m in (None, mask):
        with torch.no_grad():
            got = transform(stepper, kind, torch.as_tensor(u), m).numpy()
        for b in range(3):
            matrix = operator_matrix(stepper, tokens, None if m is None else m[b])
            if kind == "flow":
                want = scipy.linalg.expm(TAU * matrix) @ u[b]
            else:
                want = np.linalg.solve(np.eye(tokens) - TAU * matrix, u[b])
            assert relative_error(got[b], want) <= EXACT_RTOL, (m is not None, b)


def test_dense_path_is_used_for_odd_derivatives_off_periodic_and_cached():
    """An odd derivative on a non-periodic grid has no symmetric-extension basis: the block
    caches one dense matrix per stencil and extent (and reuses it)."""
    _, stepper = compiled("neumann", 1, 4, True, "lie")
    block = stepper.layers[0].implicit
    dense_cache(block).clear()
    u = torch.as_tensor(np.random.default_rng(0).standard_normal((2, 10, 2)))
    mask = np.ones((2, 10), dtype=bool)
    mask[1, 6:] = False
    for _ in range(2):
        with torch.no_grad():
            transform(stepper, "flow", u, mask)
    extents = sorted({key[1] for key in dense_cache(block)})
    assert extents == [(5,), (9,)]
    assert len(dense_cache(block)) == 4  # two stencils (laplace, d/dx) × two extents
    _, periodic = compiled("periodic", 1, 4, True, "lie")
    dense_cache(periodic.layers[0].implicit).clear()
    with torch.no_grad():
        transform(periodic, "flow", u, mask)
    assert dense_cache(periodic.layers[0].implicit) == {}  # the FFT path


# ------------------------------------------------------------------------- 4. gradients
def central_difference(loss, parameter: torch.Tensor, eps: float = 1e-6) -> float:
    with torch.no_grad():
        parameter += eps
        plus = float(loss())
        parameter -= 2 * eps
        minus = float(loss())
        parameter += eps
    return (plus - minus) / (2 * eps)


GRADIENT_CASES = [(b, False) for b in BOUNDARIES] + [("periodic", True), ("dirichlet", True)]


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("boundary,odd", GRADIENT_CASES)
def test_gradients_through_flow_and_solve_match_finite_differences(boundary, odd, kind):
    _, stepper = compiled(boundary, 1, 4, odd, KIND_SCHEME[kind])
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.standard_normal((2, 10, 2)))
    weights = torch.as_tensor(rng.standard_normal((2, 10, 2)))
    mask = np.ones((2, 10), dtype=bool)
    mask[1, 7:] = False

    def loss():
        return (transform(stepper, kind, x, mask, tau=0.8) * weights).sum()

    stepper.zero_grad()
    loss().backward()
    theta = stepper.shared.parametrizations.D.original  # D = softplus(θ)
    for parameter in (theta, stepper.shared.c):
        grad = parameter.grad
        assert grad is not None and torch.isfinite(grad).all()
        fd = central_difference(loss, parameter)
        assert abs(float(grad) - fd) <= 1e-7 * max(1.0, abs(fd)), (float(grad), fd)
        assert abs(fd) > 1e-3  # D and c do matter


@pytest.mark.parametrize("scheme", ["imex_ars222", "strang"])
def test_gradient_of_a_whole_padded_run_matches_finite_differences(scheme):
    _, stepper = compiled("copy", 1, 2, False, scheme)
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.standard_normal((2, 9, 2)))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    theta = stepper.shared.parametrizations.D.original

    def loss():
        return (stepper(x, mask) ** 2).sum()

    stepper.zero_grad()
    loss().backward()
    fd = central_difference(loss, theta)
    assert torch.isfinite(theta.grad).all()
    assert abs(float(theta.grad) - fd) <= 1e-7 * max(1.0, abs(fd)), (float(theta.grad), fd)


# ------------------------------------------------------------ 5. IMEX orders, padded runs
@functools.cache
def allen_cahn_run(overrides: tuple[str, ...]) -> np.ndarray:
    compilation = compile_any(ALLEN_CAHN, overrides)
    x = np.arange(100) * (2 * math.pi / 100)
    u0 = 0.6 * np.sin(x) + 0.3 * np.cos(2 * x) + 0.1
    return run(stepper_for(compilation, seed=None), u0[None, :, None])[0, :, 0]


@pytest.mark.parametrize("scheme,order", [("imex_euler", 1), ("imex_ars222", 2)])
def test_generated_imex_converges_to_an_independent_explicit_solution(scheme, order):
    """Stiff Allen–Cahn (u_t = Δu + u − u³, accuracy-4 Laplacian, h = 2π/100) to t = 1 with
    10…80 steps (Δt = 0.1 … 0.0125, 8×–67× the explicit Euler bound 3h²/8 ≈ 0.0015),
    against the generated explicit RK4 at Δt = 0.001 (no implicit machinery at all)."""
    reference = allen_cahn_run(("time.scheme=rk4", "time.implicit=[]", "time.substeps=1000"))
    substeps = (10, 20, 40, 80)
    bound = 3 * (2 * math.pi / 100) ** 2 / 8
    assert 1 / substeps[-1] > 8 * bound
    errors = [np.max(np.abs(allen_cahn_run((f"time.scheme={scheme}", f"time.substeps={n}"))
                            - reference)) for n in substeps]
    slope = np.polyfit(np.log([1 / n for n in substeps]), np.log(errors), 1)[0]
    assert abs(slope - order) <= 0.2, (slope, errors)
    assert errors[0] < 0.05  # and accurate, not merely convergent, at Δt = 0.1


@pytest.mark.parametrize("scheme", ["imex_euler", "imex_ars222", "lie", "strang"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_padded_batch_through_the_stepper_equals_each_sequence_alone(boundary, scheme):
    """A whole run (2 layers × 2 steps, explicit reaction + implicit diffusion, CLS token)."""
    _, stepper = compiled(boundary, 1, 4, False, scheme)
    u = np.random.default_rng(2).standard_normal((3, 10, 2))
    mask = np.ones((3, 10), dtype=bool)
    lengths = (9, 6, 3)
    for b, n in enumerate(lengths):
        mask[b, 1 + n:] = False
    padded = run(stepper, u, mask)
    for b, n in enumerate(lengths):
        alone = run(stepper, u[b:b + 1, :1 + n])
        assert relative_error(padded[b:b + 1, :1 + n], alone) <= 1e-10, (b, n)


COMMUTING = """pdelang: 1
name: advection_diffusion_flows
grid:
  axes: [x]
  shape: [32]
  spacing: 0.19634954084936207   # 2π / 32
  boundary: periodic
fields:
  u: {channels: 1}
parameters:
  D: 0.5
  a: 0.75   # binary fractions: exact also in float32 (0.7 below is not)
terms:
  diffusion: D * laplace(u)
  advection: a * diff(u, x)
equation: dt(u) = diffusion + advection
time:
  span: [0, 1]
  layers: 1
  substeps: 4
  scheme: lie
  implicit: [diffusion, advection]
discretization:
  laplace: {accuracy: 2}
  diff: {accuracy: 2}
"""


@pytest.mark.parametrize("scheme", ["lie", "strang"])
def test_commuting_implicit_terms_are_integrated_exactly(scheme, a=0.75):
    """Periodic diffusion and advection commute (both circulant): lie and strang with both
    terms as exact flows reproduce the semi-discrete solution e^{Dσ_L t} sin(kx + a s_k t),
    σ_L = (2 cos kh − 2)/h², s_k = sin(kh)/h, at any Δt (a flow fraction off shows here)."""
    compilation = compile_any(COMMUTING, [f"time.scheme={scheme}", f"parameters.a={a!r}"])
    assert compilation.discrete.program.order == (1 if scheme == "lie" else 2)
    n, h, D, t = 32, 2 * math.pi / 32, 0.5, 1.0
    x = np.arange(n) * h
    u0 = np.sin(x) + 0.5 * np.cos(3 * x)
    out = run(stepper_for(compilation, seed=None), u0[None, :, None])[0, :, 0]
    exact = np.zeros(n)
    for k, amplitude, f in ((1, 1.0, np.sin), (3, 0.5, np.cos)):
        decay = D * (2 * math.cos(k * h) - 2) / h**2
        exact += amplitude * math.exp(decay * t) * f(k * x + a * math.sin(k * h) / h * t)
    assert np.max(np.abs(out - exact)) <= 1e-12


def test_generated_imex_stepper_equals_reference_with_two_implicit_terms():
    """Two implicit terms share one solve (L = L₁ + L₂) in IMEX and get a flow each in lie."""
    from pdelang.lab.testing.stepper_checks import check_generated_matches_reference

    text = TEMPLATE.format(tag="two", axes="[x]", shape="", boundary="neumann", diffusion=EVEN,
                           scheme="imex_ars222", accuracy=2)
    text = text.replace("reaction: tanh(u) - 0.5 * u", "advection: 0.3 * diff(u, x)")
    text = text.replace("diffusion + reaction", "diffusion + advection")
    text = text.replace("implicit: [diffusion]", "implicit: [diffusion, advection]")
    for scheme in ("imex_ars222", "lie"):
        compilation = compile_any(text.replace("imex_ars222", scheme))
        assert compilation.discrete.program.implicit == ("diffusion", "advection")
        result = check_generated_matches_reference(compilation, length=9)
        assert result.passed, result.message


# ------------------------------------------------------------------ library bugs (xfail)
def test_empty_padded_sequence_with_an_explicit_periodic_stencil():
    text = TEMPLATE.format(tag="empty", axes="[x]", shape="", boundary="periodic",
                           diffusion=EVEN, scheme="imex_euler", accuracy=2)
    text = text.replace("tanh(u) - 0.5 * u", "0.3 * diff(u, x)")  # explicit stencil
    compilation = compile_any(text)
    stepper = stepper_for(compilation, seed=0)
    u = np.random.default_rng(0).standard_normal((2, 9, 2))
    mask = np.ones((2, 9), dtype=bool)
    mask[1, 1:] = False  # only the CLS token is real
    want = reference_for(compilation, stepper).forward(u, mask)
    assert relative_error(run(stepper, u, mask), want) <= 1e-10


def test_normalized_implicit_term_error_points_at_the_term(tmp_path):
    text = TEMPLATE.format(tag="norm", axes="[x]", shape="", boundary="periodic",
                           diffusion=EVEN, scheme="lie", accuracy=2)
    text = text.replace("tanh(u) - 0.5 * u", "mlp(u, hidden=4)")
    text = text.replace("equation:", "stabilizers:\n  norm: {kind: layernorm, terms: "
                        "[reaction, diffusion]}\nequation:")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        compile_any(path)
    line = text.splitlines()[info.value.location.line - 1]
    assert "cannot be normalized" in info.value.message
    assert line[info.value.location.col - 1:].startswith("diffusion]"), line


def test_float64_stepper_uses_the_spec_parameter_values_exactly():
    """A float64 stepper (``.to(torch.float64)``) runs with the spec's a = 0.7, not float32's
    0.699999988 (1.7e-8 relative): the exact flows then meet the exact solution to roundoff
    (was 7e-9 off while the scalars were built in float32 and only widened; issue 20)."""
    compilation = compile_any(COMMUTING, ["parameters.a=0.7"])
    assert float(stepper_for(compilation, seed=None).shared.a) == 0.7
    test_commuting_implicit_terms_are_integrated_exactly("lie", a=0.7)


DIRICHLET_HEAT = """pdelang: 1
name: heat_dirichlet_exact_flow
grid:
  axes: [x]
  shape: [{n}]
  spacing: {h!r}   # 1 / (N + 1): u = 0 at x = 0 and x = 1
  boundary: dirichlet
fields:
  u: {{channels: 1}}
parameters:
  D: 0.1   # not a float32 number
terms:
  diffusion: D * laplace(u)
equation: dt(u) = diffusion
time:
  span: [0, 0.3]
  layers: 1
  substeps: 10
  scheme: lie
  implicit: [diffusion]
discretization:
  laplace: {{accuracy: 6}}
"""
# the accuracy-6 Laplacian, offsets 0…3 (symmetric)
SIX = {1: 3 / 2, 2: -3 / 20, 3: 1 / 90}


@pytest.mark.parametrize("n", [63, 127, 255])
def test_float64_dirichlet_heat_exact_flow_reaches_roundoff(n):
    """Dirichlet heat, D = 0.1, accuracy 6, the exact flow of the diffusion: in float64 the
    error against the semi-discrete solution Σ a_k e^{Dσ_k t} sin(kπx) (σ_k the stencil's
    symbol at θ = kπh, DST-I modes) is roundoff, and against the PDE's e^{−Dk²π²t} sin(kπx)
    the spatial error alone, ≤ 5e-11 from N = 127.  With D = float32(0.1) both stalled at
    3.3e-9 for every N (issue 20)."""
    h, t = 1 / (n + 1), 0.3
    compilation = compile_any(DIRICHLET_HEAT.format(n=n, h=h))
    stepper = stepper_for(compilation, seed=None)
    assert torch.equal(stepper.shared.D, torch.tensor(0.1, dtype=torch.float64))
    x = (np.arange(n) + 1) * h
    modes = ((1, 1.0), (3, 0.5))  # u0 = sin πx + ½ sin 3πx
    out = run(stepper, sum(a * np.sin(k * math.pi * x) for k, a in modes)[None, :, None])
    out = out[0, :, 0]
    semi, pde = np.zeros(n), np.zeros(n)
    for k, a in modes:
        theta = k * math.pi * h
        sigma = -4 * sum(w * math.sin(j * theta / 2) ** 2 for j, w in SIX.items()) / h**2
        semi += a * math.exp(0.1 * sigma * t) * np.sin(k * math.pi * x)
        pde += a * math.exp(-0.1 * (k * math.pi) ** 2 * t) * np.sin(k * math.pi * x)
    roundoff = 1e-12 * max(1.0, ((n + 1) / 128) ** 2)  # the symbol's roundoff grows as 1/h²
    assert np.max(np.abs(out - semi)) <= roundoff, np.max(np.abs(out - semi))
    if n >= 127:  # at N = 63 the spatial error of the 3πx mode is 1.7e-9 itself
        assert np.max(np.abs(out - pde)) <= 5e-11, np.max(np.abs(out - pde))
