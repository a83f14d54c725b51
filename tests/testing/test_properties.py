"""``pdelang.lab.testing.properties`` on generated specs: the issue's properties (a)–(e).

(a) polynomial exactness of the stencils, (b) observed convergence order under grid
refinement, (c) the discrete Laplacian is self-adjoint and negative semi-definite in the
right inner product, annihilates constants, and diffusion conserves the weighted mean and
obeys the maximum principle, (d) the derived stability bound is sharp, (e) time schemes
reach their order.  Every case is drawn by the project's own strategies.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from testing_helpers import (
    NILPOTENT,
    NILPOTENT_A,
    NILPOTENT_B,
    NILPOTENT_U0,
    examples,
    generated_operator_factory,
)

from pdelang.compiler.analysis.stencils import centred_stencil
from pdelang.compiler.codegen.printer import print_module
from pdelang.compiler.discrete import ir as D
from pdelang.compiler.schemes import runge_kutta as RK
from pdelang.lab.testing import properties as P
from pdelang.lab.testing import strategies as S
from pdelang.lab.testing.harness import compile_any, stepper_for, torch_stencil_operator

# the orders the issue asks for, written out here rather than read from the library
EXPECTED_TIME_ORDER = {"euler": 1, "lie": 1, "strang": 2, "rk2": 2, "rk4": 4}


def _only_stencil(compilation) -> tuple[str, D.DiscreteStencil]:
    (key, stencil), = compilation.discrete.stencils.items()
    return key, stencil


# ----------------------------------------------------------------------------- (a)
@examples(12)
@given(S.derivative_spec_texts())
def test_a_stencils_are_exact_on_polynomials_of_degree_p_plus_k_minus_1(text):
    compilation = compile_any(text)
    key, stencil = _only_stencil(compilation)
    k, p = stencil.derivative, stencil.accuracy
    result = P.check_polynomial_exactness(stencil)
    result.assert_passed()
    assert result.details["max_degree"] == p + k - 1
    # …and no further: x^(p+k) is not differentiated exactly, so the order is exactly p
    assert not P.check_polynomial_exactness(stencil, degree=p + k)
    if len(compilation.discrete.axes) == 1:
        # the generated torch operator, on interior nodes of a grid (float64)
        P.check_polynomial_exactness_numeric(
            torch_stencil_operator(compilation, key), derivative=k, accuracy=p,
            radius=stencil.radius, h=stencil.spacing, n=24 + 2 * stencil.radius,
            extra_tokens=compilation.discrete.extra_tokens,
        ).assert_passed()


@examples(20)
@given(st.integers(1, 6), st.sampled_from(S.ACCURACIES))
def test_a_analysis_stencils_exact_and_derived_order_equals_accuracy(k, p):
    stencil = centred_stencil(k, p)
    assert stencil.order == p
    P.check_polynomial_exactness(stencil).assert_passed()
    assert not P.check_polynomial_exactness(stencil, degree=p + k)


# ----------------------------------------------------------------------------- (b)
def _check_convergence(compilation) -> P.ConvergenceStudy:
    key, stencil = _only_stencil(compilation)
    model = compilation.discrete
    assert stencil.order == stencil.accuracy  # the derived order of a centred stencil
    study = P.convergence_study(
        generated_operator_factory(compilation, key), boundary=model.boundary,
        derivative=stencil.derivative, axes=stencil.axes, dims=len(model.axes),
        h=stencil.spacing, claimed_order=stencil.order, extra_tokens=model.extra_tokens)
    P.check_convergence(study).assert_passed()
    assert abs(study.observed_order - stencil.order) <= 0.15
    assert len(study.errors) == 4
    assert all(b < a for a, b in zip(study.errors, study.errors[1:]))
    return study


def test_b_observed_order_matches_derived_order():
    """The generated stencil, refined on a smooth field with the boundary's symmetry: the
    least-squares slope of log error is the derived order within 0.15.  Every boundary
    condition has a defined order — the test fields are smooth across each ghost rule
    (:mod:`pdelang.lab.testing.fields`), so the full order holds up to the boundary.  The drawn
    sample must span 1-D and 2-D, every boundary and accuracies 2–8 (derivatives 1–4 and
    the Laplacian are drawn too; ``pytest -m slow`` runs every combination)."""
    seen = set()

    @examples(24)
    @given(S.derivative_spec_texts())
    def check(text):
        compilation = compile_any(text)
        model = compilation.discrete
        _check_convergence(compilation)
        seen.add((len(model.axes), model.boundary, _only_stencil(compilation)[1].accuracy))

    check()
    assert {d for d, _, _ in seen} == {1, 2}
    assert {b for _, b, _ in seen} == set(S.BOUNDARIES)
    assert {p for _, _, p in seen} == set(S.ACCURACIES)


SWEEP_SPEC = """\
pdelang: 1
name: sweep
grid:
  axes: {axes}
  shape: {shape}
  spacing: 0.5
  boundary: {boundary}
fields:
  u: {{channels: 1}}
terms:
  op: "{body}"
equation: dt(u) = op
time:
  span: [0, 0.001]
discretization:
  {op}: {{accuracy: {accuracy}}}
"""


@pytest.mark.parametrize("body", ["laplace(u)", "diff(u, x, 1)", "diff(u, x, 2)",
                                  "diff(u, x, 3)", "diff(u, x, 4)"])
@pytest.mark.parametrize("accuracy", S.ACCURACIES)
@pytest.mark.parametrize("boundary", S.BOUNDARIES)
@pytest.mark.parametrize("dims", [1, 2])
def test_b_every_combination(dims, boundary, accuracy, body):
    """(b) exhaustively: 1-D and 2-D × every boundary × accuracies 2–8 × every operator
    (160 cases, about 20 s: cheap enough for the default run)."""
    op = "laplace" if body.startswith("laplace") else "diff"
    _check_convergence(compile_any(SWEEP_SPEC.format(
        axes="[x]" if dims == 1 else "[x, y]", shape="[24]" if dims == 1 else "[12, 12]",
        boundary=boundary, body=body, op=op, accuracy=accuracy)))


def test_b_least_squares_order_is_the_slope():
    h = np.array([0.4, 0.2, 0.1, 0.05])
    assert P.least_squares_order(h, 3.0 * h**2) == pytest.approx(2.0, abs=1e-12)
    assert math.isnan(P.least_squares_order(h, [1.0, 0.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------- (c)
def _laplacian_matrix(compilation) -> tuple[np.ndarray, tuple[int, ...]]:
    model = compilation.discrete
    grid = tuple(model.shape)
    op = torch_stencil_operator(compilation, "laplace")
    return P.operator_matrix(op, int(np.prod(grid)), model.extra_tokens), grid


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
@examples(4)
@given(data=st.data())
def test_c_laplacian_is_self_adjoint_nsd_and_annihilates_constants(boundary, data):
    """The generated Laplacian's matrix, 1-D and 2-D, accuracies 2–8: W L symmetric and
    L ≤ 0 in ⟨u, v⟩_W (W = 1 periodic; trapezoid weights for the even-mirror neumann rule),
    and L 1 = 0."""
    compilation = compile_any(data.draw(S.diffusion_spec_texts(boundaries=(boundary,)),
                                        "spec"))
    L, grid = _laplacian_matrix(compilation)
    weights = P.inner_product_weights(boundary, grid)
    P.check_symmetric_nsd(L, weights).assert_passed()
    P.check_annihilates_constants(L).assert_passed()
    if boundary == "neumann":
        # the inner product matters: L itself is not symmetric with the even-mirror rule
        assert not P.check_symmetric_nsd(L, np.ones(len(weights)))


@examples(6)
@given(S.diffusion_spec_texts(boundaries=("dirichlet", "copy")))
def test_c_laplacian_with_dirichlet_or_copy(text):
    """Dirichlet: symmetric NSD in the plain inner product (and it does not annihilate
    constants: the boundary pulls toward zero).  Copy: the end tokens are held fixed (zero
    rate), and the block acting on the interior is symmetric NSD."""
    compilation = compile_any(text)
    model = compilation.discrete
    L, grid = _laplacian_matrix(compilation)
    if model.boundary == "dirichlet":
        P.check_symmetric_nsd(L, P.inner_product_weights("dirichlet", grid)).assert_passed()
        assert not P.check_annihilates_constants(L)
        return
    P.check_annihilates_constants(L).assert_passed()
    border = np.ones(grid, dtype=bool)
    border[tuple(slice(1, -1) for _ in grid)] = False
    assert np.all(L[border.ravel()] == 0.0)
    inner = np.flatnonzero(~border.ravel())
    P.check_symmetric_nsd(L[np.ix_(inner, inner)], np.ones(len(inner))).assert_passed()


def _generated_diffusion_step(text: str, fraction: float):
    """The *generated* stepper of a diffusion spec with Δt = ``fraction`` × the derived
    bound (the discrete model with that Δt, printed — printing is a pure function of the
    discrete IR); returns (step on grid states (B, n, 1), compilation, bound)."""
    compilation = compile_any(text)
    bound = compilation.analysis.stability.max_stable_dt
    model = dataclasses.replace(compilation.discrete, dt=fraction * bound)
    assert model.layers * model.substeps == 1
    compilation = dataclasses.replace(compilation, discrete=model, python=print_module(model))
    stepper = stepper_for(compilation, seed=None)
    extra = model.extra_tokens

    def step(u: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.concatenate([np.zeros((len(u), extra, 1)), u], axis=1))
        with torch.no_grad():
            return stepper(x).numpy()[:, extra:]

    return step, compilation, bound


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
@examples(4)
@given(data=st.data(), fraction=st.floats(0.05, 1.0), seed=st.integers(0, 2**16))
def test_c_diffusion_conserves_weighted_mean_within_the_bound(boundary, data, fraction, seed):
    """Every scheme, Δt anywhere in (0, bound]: the W-mean is conserved by the generated
    stepper, and the W-norm never grows."""
    text = data.draw(S.diffusion_spec_texts(boundaries=(boundary,)), "spec")
    step, compilation, _ = _generated_diffusion_step(text, fraction)
    model = compilation.discrete
    grid = tuple(model.shape)
    u0 = np.random.default_rng(seed).standard_normal((2, int(np.prod(grid)), 1))
    weights = P.inner_product_weights(model.boundary, grid)
    P.check_conserves_weighted_mean(step, u0, weights, steps=30, rtol=1e-11).assert_passed()
    # the W-norm (energy) never grows either: W^½ L W^−½ is symmetric NSD and each
    # (sub-)step's amplification is at most 1 on its spectrum within the bound
    w = weights[None, :, None]
    u = u0
    for _ in range(30):
        new = step(u)
        assert np.all(np.sum(w * new**2, axis=(1, 2)) <= np.sum(w * u**2, axis=(1, 2))
                      * (1 + 1e-12))
        u = new


@examples(8)
@given(S.diffusion_spec_texts(accuracies=(2,), schemes=("euler", "lie", "strang", "rk2")),
       st.floats(0.05, 1.0), st.integers(0, 2**16))
def test_c_diffusion_never_increases_the_max_norm_within_the_bound(text, fraction, seed):
    """The maximum principle, for every boundary: the 3-point Laplacian has non-negative
    off-centre weights, and these schemes are convex combinations of Euler steps of at most
    the bound (``is_monotone``).  Wider stencils have negative weights; for them (and for
    rk4, not SSP) the maximum principle is not claimed — see the next test."""
    step, compilation, _ = _generated_diffusion_step(text, fraction)
    model = compilation.discrete
    assert P.is_monotone(model.stencils["laplace"], model.program.scheme)
    u0 = np.random.default_rng(seed).standard_normal((2, int(np.prod(model.shape)), 1))
    P.check_max_norm_nonincreasing(step, u0, steps=30).assert_passed()


def test_c_wide_stencils_do_not_obey_the_maximum_principle():
    """Why the maximum principle is claimed for monotone stencils only: the accuracy-4
    Laplacian overshoots at the edge of a step for any Δt > 0 (weights −1/12, 4/3, −5/2,
    4/3, −1/12: next to the edge the rate is +1/12 on a plateau at the maximum)."""
    spec = "\n".join([
        "pdelang: 1", "name: wide", "grid:", "  axes: [x]", "  shape: [16]",
        "  boundary: periodic", "fields:", "  u: {channels: 1}", "parameters:", "  D: 1.0",
        "terms:", '  diffusion: "D * laplace(u)"', "equation: dt(u) = diffusion", "time:",
        "  span: [0, 0.01]", "  scheme: euler", "discretization:", "  laplace: {accuracy: 4}",
    ]) + "\n"
    step, compilation, _ = _generated_diffusion_step(spec, 0.5)
    assert not P.is_monotone(compilation.discrete.stencils["laplace"], "euler")
    u0 = np.zeros((1, 16, 1))
    u0[0, :8, 0] = 1.0
    assert not P.check_max_norm_nonincreasing(step, u0, steps=1)


# ----------------------------------------------------------------------------- (d)
def _sharpness(text: str, threshold: bool = False) -> None:
    compilation = compile_any(text)
    predicted = compilation.analysis.stability.max_stable_dt
    stepper = P.LinearStepper(P.linear_reference(compilation.discrete))
    result = P.check_stability_sharpness(stepper, predicted, steps=10_000)
    result.assert_passed()
    assert result.details["bounded_below"] and result.details["grows_above"]
    if threshold:
        empirical = P.empirical_max_dt(stepper, predicted)
        P.check_stability_threshold(empirical, predicted).assert_passed()


NON_STRANG = ("euler", "lie", "rk2", "rk4")


@pytest.mark.parametrize("boundary", S.BOUNDARIES)
@examples(2)
@given(data=st.data())
def test_d_stability_bound_is_sharp_1d(boundary, data):
    """0.95× the derived bound: bounded for 10⁴ steps; 1.05×: grows — and the empirical
    threshold (multisection) is within 5 % of the bound.  Every boundary, accuracy 2–8.

    The von Neumann bound is a sup over θ ∈ [0, π]; a finite grid's spectrum reaches the
    extreme only approximately (exactly when it holds the θ = π mode: periodic with even n,
    neumann), so the grids here have n ≥ 16 (on 8 tokens a dirichlet or copy grid's top mode
    sits 5–9 % below the bound and 1.05× would not grow)."""
    text = data.draw(S.diffusion_spec_texts(dims=(1,), boundaries=(boundary,), sizes=(16, 32),
                                            schemes=NON_STRANG), "spec")
    _sharpness(text, threshold=True)


@examples(3)
@given(S.diffusion_spec_texts(dims=(2,), boundaries=("periodic", "neumann"), sizes=(8, 8),
                              schemes=NON_STRANG))
def test_d_stability_bound_is_sharp_2d(text):
    """2-D, on 8×8 grids that hold the θ = (π, π) mode (periodic with even n, neumann), so
    the bound is attained exactly; larger dirichlet/copy grids cost seconds per example
    (the 1-D test covers those rules)."""
    _sharpness(text)


@st.composite
def strang_one_diffusion_texts(draw):
    """Strang splitting where one split term carries the diffusion and the other is a
    plain reaction (the Macaron layout: diffusion either in the two half steps or in the
    full middle step)."""
    text = draw(S.diffusion_spec_texts(dims=(1,), sizes=(16, 32), schemes=("strang",)))
    old = '  other: "D * laplace(u) / 2"'
    assert old in text
    text = text.replace(old, '  other: "-0.1 * u"')
    order = draw(st.permutations(["half", "other"]))
    split = f"  scheme: strang\n  split_order: [{', '.join(order)}]"
    return text.replace("  scheme: strang", split)


@examples(4)
@given(strang_one_diffusion_texts())
def test_d_stability_bound_is_sharp_strang_with_one_diffusion_term(text):
    _sharpness(text)


STRANG_TWO_DIFFUSION_TERMS = """\
pdelang: 1
name: strang_split_diffusion
grid:
  axes: [x]
  shape: [16]
  boundary: periodic
fields:
  u: {channels: 1}
parameters:
  D: 0.5
terms:
  half: "0.5 * D * laplace(u)"
  other: "D * laplace(u) / 2"
equation: dt(u) = half + other
time:
  span: [0, 0.01]
  scheme: strang
"""


def test_d_stability_bound_is_sharp_strang_with_diffusion_in_two_split_terms():
    """With diffusion in two split terms the bound is the composite one, not the smallest
    sub-step's (regression: it was 2.0, the full Euler sub-step of ``other`` alone)."""
    _sharpness(STRANG_TWO_DIFFUSION_TERMS)


def test_d_strang_two_diffusion_terms_true_threshold():
    """The composite threshold of the spec above, from the amplification factor: where
    (1 + z/2)²(1 + z) = −1, z = −Δt·ρ with ρ = (D/2)·4/h² = 1 the spectral radius of each
    term (θ = π).  The analysis derives it, and stepping finds it."""
    compilation = compile_any(STRANG_TWO_DIFFUSION_TERMS)
    stability = compilation.analysis.stability
    predicted = stability.max_stable_dt
    assert stability.exact and stability.method == "exact"  # one symbol shape: (1+z/4)²(1+z/2)
    z = np.polynomial.Polynomial([1, 0.5]) ** 2 * np.polynomial.Polynomial([1, 1]) + 1
    root = max(r.real for r in z.roots() if abs(r.imag) < 1e-12 and r.real < -2)
    assert predicted == pytest.approx(-root, rel=1e-9)
    stepper = P.LinearStepper(P.linear_reference(compilation.discrete))
    empirical = P.empirical_max_dt(stepper, predicted)
    assert empirical == pytest.approx(-root, rel=2e-3)
    assert predicted / 2.0 > 1.6  # the smallest sub-step bound alone would be 2.0


@st.composite
def strang_two_diffusion_texts(draw):
    """Diffusion in two split terms along different axes, strang or lie, drawn coefficients."""
    d1 = draw(st.sampled_from(["0.1", "0.25", "0.5"]))
    d2 = draw(st.sampled_from(["0.1", "0.3", "1.0"]))
    scheme = draw(st.sampled_from(["strang", "lie"]))
    order = draw(st.permutations(["a", "b"]))
    return f"""\
pdelang: 1
name: composite
grid:
  axes: [x, y]
  shape: [8, 8]
  boundary: periodic
fields:
  u: {{channels: 1}}
terms:
  a: "{d1} * diff(u, x, 2) + {d2} * laplace(u)"
  b: "{d2} * diff(u, y, 2)"
equation: dt(u) = a + b
time:
  span: [0, 0.01]
  scheme: {scheme}
  split_order: [{', '.join(order)}]
"""


@examples(3)
@given(strang_two_diffusion_texts())
def test_d_composite_splitting_bound_is_sharp(text):
    _sharpness(text)


# ----------------------------------------------------------------------------- (e)
@pytest.mark.parametrize("scheme", S.SCHEMES)
def test_e_time_schemes_reach_their_order(scheme):
    """The step program of generated specs (splittings with every drawn split order, or the
    Butcher tableau) reaches the issue's order on a linear test problem."""

    @examples(3)
    @given(S.spec_texts(schemes=(scheme,), learned=False, max_terms=3))
    def check(text):
        program = compile_any(text).discrete.program
        assert program.scheme == scheme
        result = P.check_time_order(program)
        if not result.applicable:  # one Euler step, or no residual (no time integrator)
            assert not program.residual or (
                program.is_splitting and len({t for t, _ in program.sub_steps}) == 1)
            return
        result.assert_passed()
        assert result.details["claimed_order"] == EXPECTED_TIME_ORDER[scheme]
        assert abs(result.details["observed_order"] - EXPECTED_TIME_ORDER[scheme]) <= 0.15

    check()


@pytest.mark.parametrize(("scheme", "order"), [("euler", 1), ("rk2", 2), ("rk4", 4)])
def test_e_butcher_tableaus_satisfy_their_order_conditions(scheme, order):
    assert P.tableau_order({"euler": RK.EULER, "rk2": RK.HEUN, "rk4": RK.RK4}[scheme]) == order


@pytest.mark.parametrize("scheme", S.SCHEMES)
def test_e_generated_steppers_reach_their_order(scheme):
    """The *generated* code, on u' = (A + B)u with A = a·e₁e₂ᵀ and B = −b·e₂e₁ᵀ (two linear
    terms with hand-set weights): nilpotent terms make each Euler sub-step of a splitting
    its exact flow, so what is measured is the scheme's own order."""
    A, B, u0 = NILPOTENT_A, NILPOTENT_B, NILPOTENT_U0
    exact = u0 @ P.expm(A + B).T

    def run(n: int) -> np.ndarray:
        stepper = stepper_for(compile_any(NILPOTENT.format(n=n, scheme=scheme)), seed=None)
        with torch.no_grad():
            stepper.layers[0].a_linear.weight.copy_(torch.from_numpy(A))
            stepper.layers[0].b_linear.weight.copy_(torch.from_numpy(B))
            return stepper(torch.from_numpy(u0)).numpy()

    result = P.check_convergence_in_time(run, exact, steps=(20, 40, 80, 160), span=1.0,
                                         claimed_order=EXPECTED_TIME_ORDER[scheme])
    result.assert_passed()


def test_e_fractions_of_the_strang_program():
    """Strang: half steps of every term but the last, a full step of the last."""
    text = STRANG_TWO_DIFFUSION_TERMS
    program = compile_any(text).discrete.program
    assert list(program.sub_steps) == [
        ("half", Fraction(1, 2)), ("other", Fraction(1)), ("half", Fraction(1, 2))]
