"""The checks can fail: perturb (1) a stencil weight, (2) a time-scheme coefficient and
(3) a boundary rule — each built through the library's own data (the discrete IR, the step
program, the ghost rule, the generated source) — and show that the corresponding
properties catch it.  Every perturbation is paired with its unperturbed control, so a
failure is the perturbation's doing."""

from __future__ import annotations

import dataclasses
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
    SPECS,
    examples,
    generated_operator_factory,
)

from pdelang.lab.testing.spec_builder import spec_text
from pdelang.compiler.codegen.printer import print_module
from pdelang.compiler.discrete import ir as D
from pdelang.compiler.schemes import SCHEMES
from pdelang.compiler.schemes import runge_kutta as RK
from pdelang.compiler.schemes import splitting as SP
from pdelang.compiler.discrete import ghosts as G
from pdelang.lab.testing import properties as P
from pdelang.lab.testing import strategies as S
from pdelang.lab.testing.harness import (
    compile_any,
    reference_stencil_operator,
    stepper_for,
    torch_stencil_operator,
)
from pdelang.lab.testing.properties import PropertyFailure
from pdelang.lab.testing.stepper_checks import check_generated_matches_reference


def _with_model(compilation, model: D.DiscreteModel, *, reprint: bool = True):
    """The compilation with a changed discrete model; its Python printed from that model
    (``reprint``: the code honours the change) or kept (the code does not)."""
    python = print_module(model) if reprint else compilation.python
    return dataclasses.replace(compilation, discrete=model, python=python)


def _with_stencil(compilation, key: str, **changes):
    model = compilation.discrete
    stencils = dict(model.stencils)
    stencils[key] = dataclasses.replace(stencils[key], **changes)
    return dataclasses.replace(model, stencils=stencils)


def _spec_1d(boundary: str, accuracy: int, n: int = 24) -> str:
    return spec_text({"diffusion": "D * laplace(u)"}, name="lap", shape=[n], spacing=0.5,
                     boundary=boundary, channels=1, parameters={"D": 0.5}, span=(0, 0.01),
                     layers=None, scheme="euler",
                     discretization={"laplace": {"accuracy": accuracy}})


def _study(factory, model, stencil, boundary=None):
    return P.convergence_study(
        factory, boundary=boundary or model.boundary, derivative=stencil.derivative,
        axes=stencil.axes, dims=len(model.axes), h=stencil.spacing,
        claimed_order=stencil.order, extra_tokens=model.extra_tokens)


# ============================================================================ (1) stencil weight
@examples(8)
@given(S.derivative_spec_texts(), st.data())
def test_1_any_single_weight_change_breaks_polynomial_exactness(text, data):
    """(a) catches a change of any one weight by any amount (it breaks Σ w_j = 0 at least)."""
    compilation = compile_any(text)
    (stencil,) = compilation.discrete.stencils.values()
    P.check_polynomial_exactness(stencil).assert_passed()  # control
    j = data.draw(st.integers(0, len(stencil.weights) - 1), "index")
    delta = data.draw(st.fractions(Fraction(-1, 10), Fraction(1, 10), max_denominator=10**6)
                      .filter(lambda f: f != 0), "delta")
    weights = list(stencil.weights)
    weights[j] += delta * max(abs(w) for w in weights)
    perturbed = dataclasses.replace(stencil, weights=tuple(weights))
    result = P.check_polynomial_exactness(perturbed)
    assert not result
    with pytest.raises(PropertyFailure, match="polynomial_exactness"):
        result.assert_passed()


# the fourth difference annihilates cubics: adding it keeps the stencil consistent and exact
# on polynomials of degree ≤ 3, but drops an accuracy-4 Laplacian to order 2
FOURTH_DIFFERENCE = (1, -4, 6, -4, 1)


@pytest.mark.parametrize("boundary", S.BOUNDARIES)
def test_1_order_dropping_weight_change_is_caught_by_exactness_and_convergence(boundary):
    compilation = compile_any(_spec_1d(boundary, accuracy=4))
    model = compilation.discrete
    stencil = model.stencils["laplace"]
    assert stencil.offsets == (-2, -1, 0, 1, 2)
    weights = tuple(w + Fraction(1, 12) * d for w, d in zip(stencil.weights,
                                                             FOURTH_DIFFERENCE))
    perturbed = _with_model(compilation, _with_stencil(compilation, "laplace",
                                                        weights=weights))
    new = perturbed.discrete.stencils["laplace"]
    # control: the compiled stencil has the claimed order on every count
    P.check_polynomial_exactness(stencil).assert_passed()
    P.check_convergence(_study(generated_operator_factory(compilation, "laplace"), model,
                               stencil)).assert_passed()
    # (a): still exact on cubics — it is a consistent second-derivative stencil — but not
    # on the quartic and quintic that accuracy 4 promises
    assert P.check_polynomial_exactness(new, degree=3)
    failed = P.check_polynomial_exactness(new)
    assert not failed and failed.details["degree"] == 4
    # (b): the code printed from the perturbed IR converges at order 2, not the claimed 4
    study = _study(generated_operator_factory(perturbed, "laplace"), model, new)
    result = P.check_convergence(study)
    assert not result
    assert abs(study.observed_order - 2) < 0.3
    with pytest.raises(PropertyFailure, match="claimed 4"):
        result.assert_passed()


def test_1_centre_weight_change_is_caught_by_the_matrix_properties():
    """(c): with the centre weight raised, the Laplacian no longer annihilates constants and
    has a positive eigenvalue."""
    for boundary in ("periodic", "neumann"):
        compilation = compile_any(_spec_1d(boundary, accuracy=2, n=12))
        stencil = compilation.discrete.stencils["laplace"]
        weights = list(stencil.weights)
        weights[1] += Fraction(1, 1000)
        perturbed = _with_model(compilation, _with_stencil(compilation, "laplace",
                                                            weights=tuple(weights)))
        w = P.inner_product_weights(boundary, (12,))
        for comp, ok in ((compilation, True), (perturbed, False)):
            L = P.operator_matrix(torch_stencil_operator(comp, "laplace"), 12)
            assert bool(P.check_annihilates_constants(L)) is ok
            assert bool(P.check_symmetric_nsd(L, w)) is ok


def test_1_stencil_in_the_ir_but_not_in_the_code_is_caught_by_the_reference():
    """(h): an IR whose stencil weight differs from what the code was printed from."""
    compilation = compile_any(SPECS / "heat1d.yaml")
    check_generated_matches_reference(compilation).assert_passed()  # control
    stencil = compilation.discrete.stencils["laplace"]
    weights = (stencil.weights[0] * Fraction(1001, 1000),) + tuple(stencil.weights[1:])
    model = _with_stencil(compilation, "laplace", weights=weights)
    result = check_generated_matches_reference(_with_model(compilation, model, reprint=False))
    assert not result
    assert "stencil laplace" in result.message


# ============================================================================ (2) time scheme
def _perturbed_tableau(tableau: RK.Tableau, *, a=None, b=None) -> RK.Tableau:
    rows = [[c.rational for c in row] for row in tableau.a]
    if a is not None:
        (i, j), value = a
        rows[i][j] = value
    weights = [c.rational for c in tableau.b] if b is None else list(b)
    return RK.Tableau.of(rows, weights)


def _rk(scheme: str, tableau: RK.Tableau, terms=("rhs",)):
    """The step program the scheme's generator makes from a (perturbed) tableau."""
    return RK.rk_program(scheme, SCHEMES[scheme].order, tableau, None, terms, (), True, ())


def _split(scheme: str, fractions, terms=("a", "b")):
    return SP.splitting_program(scheme, SCHEMES[scheme].order, list(fractions), terms, (),
                                True, ())


RK_PERTURBATIONS = [
    # (scheme, which coefficient, perturbation) — each keeps Σ b = 1 (still consistent)
    ("rk4", "b", dict(b=(Fraction(1, 6), Fraction(1, 3), Fraction(1, 4), Fraction(1, 4)))),
    ("rk4", "a32", dict(a=((2, 1), Fraction(3, 5)))),
    ("rk4", "a21", dict(a=((1, 0), Fraction(2, 5)))),
    ("rk2", "a21", dict(a=((1, 0), Fraction(1, 2)))),
    ("rk2", "b", dict(b=(Fraction(1, 4), Fraction(3, 4)))),
]
TABLEAUS = {"rk2": RK.HEUN, "rk4": RK.RK4}


@pytest.mark.parametrize(("scheme", "coefficient", "change"), RK_PERTURBATIONS,
                         ids=[f"{s}-{c}" for s, c, _ in RK_PERTURBATIONS])
def test_2_butcher_coefficient_is_caught_by_the_time_order(scheme, coefficient, change):
    P.check_time_order(_rk(scheme, TABLEAUS[scheme])).assert_passed()  # control
    tableau = _perturbed_tableau(TABLEAUS[scheme], **change)
    assert sum(c.rational for c in tableau.b) == 1
    assert P.tableau_order(tableau) < SCHEMES[scheme].order
    result = P.check_time_order(_rk(scheme, tableau))
    assert not result
    with pytest.raises(PropertyFailure, match=f"time_order\\[{scheme}\\]"):
        result.assert_passed()


SPLIT_PERTURBATIONS = [
    # strang: asymmetric halves (still one full step of each term): order 1, not 2
    ("strang", (("a", Fraction(2, 5)), ("b", Fraction(1)), ("a", Fraction(3, 5)))),
    # lie: a sub-step of 0.9 Δt: inconsistent
    ("lie", (("a", Fraction(9, 10)), ("b", Fraction(1)))),
]


@pytest.mark.parametrize(("scheme", "steps"), SPLIT_PERTURBATIONS,
                         ids=[s for s, _ in SPLIT_PERTURBATIONS])
def test_2_splitting_fraction_is_caught_by_the_time_order(scheme, steps):
    good = {"strang": SP.strang_fractions(["a", "b"]), "lie": SP.lie_fractions(["a", "b"])}
    P.check_time_order(_split(scheme, good[scheme])).assert_passed()  # control
    assert not P.check_time_order(_split(scheme, steps))


def test_2_the_verifier_catches_an_inconsistent_program():
    """The stage verifier refuses a program that advances a term by 0.9 Δt per step."""
    from pdelang.compiler.invariants import InvariantError, check_program

    check_program(_split("lie", SP.lie_fractions(["a", "b"])))  # control
    with pytest.raises(InvariantError, match=r"term a.*0\.9"):
        check_program(_split("lie", (("a", Fraction(9, 10)), ("b", Fraction(1)))))


def _generated_time_order(scheme: str, perturb=None):
    """The time order of the *generated* stepper on u' = (A + B)u with nilpotent A, B (see
    test_properties), for the program as compiled or as changed by ``perturb``."""
    compilation = compile_any(NILPOTENT.format(n=1, scheme=scheme))
    A, B, u0 = NILPOTENT_A, NILPOTENT_B, NILPOTENT_U0
    exact = u0 @ P.expm(A + B).T

    def run(n: int) -> np.ndarray:
        model = dataclasses.replace(compilation.discrete, dt=1.0 / n, substeps=n)
        if perturb is not None:
            model = dataclasses.replace(model, program=perturb(model.program))
        stepper = stepper_for(_with_model(compilation, model), seed=None)
        with torch.no_grad():
            stepper.layers[0].a_linear.weight.copy_(torch.from_numpy(A))
            stepper.layers[0].b_linear.weight.copy_(torch.from_numpy(B))
            return stepper(torch.from_numpy(u0)).numpy()

    return P.check_convergence_in_time(run, exact, steps=(20, 40, 80, 160), span=1.0,
                                       claimed_order=SCHEMES[scheme].order)


def test_2_generated_code_of_a_perturbed_program_misses_its_order():
    """The perturbation reaches the printed code: the stepper printed from an IR whose Strang
    fractions are 2/5 and 3/5 (or whose rk4 weights are changed) runs at order 1."""
    _generated_time_order("strang").assert_passed()  # control

    def strang(program):
        return _split("strang", (("a", Fraction(2, 5)), ("b", Fraction(1)),
                                 ("a", Fraction(3, 5))))

    result = _generated_time_order("strang", strang)
    assert not result and abs(result.details["observed_order"] - 1) < 0.15

    def rk4(program):
        return _rk("rk4", _perturbed_tableau(RK.RK4, b=(Fraction(1, 6), Fraction(1, 3),
                                                        Fraction(1, 4), Fraction(1, 4))),
                   program.terms)

    assert not _generated_time_order("rk4", rk4)


def test_2_wrong_coefficient_moves_the_stability_threshold():
    """(d) catches it too: an Euler step of 1.1 Δt (b = 1.1) is unstable at 0.95× the
    derived bound."""
    compilation = compile_any(SPECS / "heat1d.yaml")
    model = compilation.discrete
    predicted = compilation.analysis.stability.max_stable_dt
    stepper = P.LinearStepper(P.linear_reference(model))
    P.check_stability_sharpness(stepper, predicted, steps=2000).assert_passed()  # control
    wrong = dataclasses.replace(model, program=_rk(
        "euler", RK.Tableau.of(((),), (Fraction(11, 10),)), model.program.terms))
    perturbed = P.LinearStepper(P.linear_reference(wrong))
    result = P.check_stability_sharpness(perturbed, predicted, steps=2000)
    assert not result and not result.details["bounded_below"]


def test_2_program_in_the_ir_but_not_in_the_code_is_caught_by_the_reference():
    compilation = compile_any(NILPOTENT.format(n=1, scheme="rk4"))
    check_generated_matches_reference(compilation).assert_passed()  # control
    model = compilation.discrete
    wrong = dataclasses.replace(model, program=_rk(
        "rk4", _perturbed_tableau(RK.RK4, a=((1, 0), Fraction(2, 5))), model.program.terms))
    result = check_generated_matches_reference(_with_model(compilation, wrong, reprint=False))
    assert not result and "state" in result.message


# ============================================================================ (3) boundary rule
def _half_sample_ghost_table(n: int, r: int, boundary: str):
    """A plausible wrong neumann rule: mirror about the cell face half a spacing beyond the
    end token (u_{−j} = u_{j−1}) instead of about the end token itself (u_{−j} = u_j)."""
    index, sign, first, last = _TRUE_GHOST_TABLE(n, r, boundary)
    if boundary != "neumann":
        return index, sign, first, last
    index = index.copy()
    for slot, p in enumerate(range(-r, n + r)):
        if p < 0:
            index[slot] = -p - 1
        elif p >= n:
            index[slot] = 2 * n - 1 - p
    return index, sign, first, last


_TRUE_GHOST_TABLE = G.ghost_table


def test_3_wrong_ghost_rule_in_the_reference(monkeypatch):
    """Patch the ghost rule of the NumPy oracle: (b) sees the O(1) boundary error, and the
    differential test (h) sees that the reference and the generated code disagree."""
    compilation = compile_any(_spec_1d("neumann", accuracy=2))
    model = compilation.discrete
    stencil = model.stencils["laplace"]
    reference = reference_stencil_operator(compilation, "laplace")
    P.check_convergence(_study(lambda shape: reference, model, stencil)).assert_passed()
    check_generated_matches_reference(compilation).assert_passed()

    # the oracle's ghost rules live in the compiler's discrete layer (ghosts.py)
    monkeypatch.setattr(G, "ghost_table", _half_sample_ghost_table)
    study = _study(lambda shape: reference, model, stencil)
    assert not P.check_convergence(study)
    assert study.observed_order < 0.5  # the error at the end tokens does not shrink
    result = check_generated_matches_reference(compilation)
    assert not result and "stencil laplace" in result.message


# the same off-by-one, made in the generated code: in 1-D's with_ghosts, in 2-D's
# fill_ghosts (both axes' ghosts in one tensor)
NEUMANN_LEFT = {1: "left = g.narrow(dim, 1, r).flip(dim)",
                2: "extended.narrow(dim, 0, r).copy_(extended.narrow(dim, r + 1, r).flip(dim))"}
HALF_SAMPLE_LEFT = {1: "left = g.narrow(dim, 0, r).flip(dim)",
                    2: "extended.narrow(dim, 0, r).copy_(extended.narrow(dim, r, r).flip(dim))"}


@pytest.mark.parametrize("dims", [1, 2])
def test_3_wrong_ghost_rule_in_the_generated_code(dims):
    text = _spec_1d("neumann", accuracy=4)
    if dims == 2:
        text = text.replace("axes: [x]", "axes: [x, y]").replace("shape: [24]",
                                                                 "shape: [10, 10]")
    compilation = compile_any(text)
    assert compilation.python.count(NEUMANN_LEFT[dims]) == 1
    broken = dataclasses.replace(compilation, python=compilation.python.replace(
        NEUMANN_LEFT[dims], HALF_SAMPLE_LEFT[dims]))
    model = compilation.discrete
    stencil = model.stencils["laplace"]
    grid = tuple(model.shape)
    weights = P.inner_product_weights("neumann", grid)
    for comp, ok in ((compilation, True), (broken, False)):
        op = torch_stencil_operator(comp, "laplace")
        # (b), in 1-D (where the operator works at any length, so the patched source is the
        # one refined; a 2-D stepper would be re-printed, undoing the patch)
        if dims == 1:
            study = _study(lambda shape, op=op: op, model, stencil)
            assert bool(P.check_convergence(study)) is ok
        # (c): no longer self-adjoint in the trapezoid inner product
        L = P.operator_matrix(op, int(np.prod(grid)))
        assert bool(P.check_symmetric_nsd(L, weights)) is ok
        # (h): no longer the reference
        assert bool(check_generated_matches_reference(comp)) is ok


@pytest.mark.parametrize(("claimed", "printed"), [("neumann", "periodic"),
                                                  ("dirichlet", "neumann"),
                                                  ("copy", "dirichlet")])
def test_3_code_printed_for_another_boundary(claimed, printed):
    """The IR says one boundary, the stepper was printed for another: (b) on fields of the
    claimed boundary and (h) against the reference of the claimed one both catch it."""
    compilation = compile_any(_spec_1d(claimed, accuracy=4))
    model = compilation.discrete
    stencil = model.stencils["laplace"]
    wrong = dataclasses.replace(compilation, python=print_module(
        dataclasses.replace(model, boundary=printed)))
    for comp, ok in ((compilation, True), (wrong, False)):
        op = torch_stencil_operator(comp, "laplace")
        assert bool(P.check_convergence(_study(lambda shape, op=op: op, model, stencil,
                                               claimed))) is ok
        assert bool(check_generated_matches_reference(comp)) is ok


def test_3_zero_padding_instead_of_odd_reflection_is_caught_at_accuracy_4(monkeypatch):
    """Dirichlet by plain zero padding agrees with the odd-reflection rule for a radius-1
    stencil — and is caught for a wider one, by convergence on the dirichlet field."""

    def zero_padding(n, r, boundary):
        index, sign, first, last = _TRUE_GHOST_TABLE(n, r, boundary)
        if boundary == "dirichlet":
            sign = sign.copy()
            sign[:r] = 0.0
            sign[n + r:] = 0.0
        return index, sign, first, last

    monkeypatch.setattr(G, "ghost_table", zero_padding)
    for accuracy, ok in ((2, True), (4, False)):
        compilation = compile_any(_spec_1d("dirichlet", accuracy=accuracy))
        model = compilation.discrete
        reference = reference_stencil_operator(compilation, "laplace")
        study = _study(lambda shape, op=reference: op, model, model.stencils["laplace"])
        assert bool(P.check_convergence(study)) is ok
