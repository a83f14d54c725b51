"""Finite-difference stencils derived with sympy.finite_diff_weights, their truncation error
and order."""

from __future__ import annotations

import mpmath
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from pdelang.compiler.analysis.stencils import centred_stencil, stencil_from_weights, taylor_error
from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text

R = sympy.Rational

LAPLACE = {
    2: [R(1), R(-2), R(1)],
    4: [R(-1, 12), R(4, 3), R(-5, 2), R(4, 3), R(-1, 12)],
    6: [R(1, 90), R(-3, 20), R(3, 2), R(-49, 18), R(3, 2), R(-3, 20), R(1, 90)],
    8: [R(-1, 560), R(8, 315), R(-1, 5), R(8, 5), R(-205, 72), R(8, 5), R(-1, 5), R(8, 315),
        R(-1, 560)],
}

FIRST = {
    2: [R(-1, 2), R(0), R(1, 2)],
    4: [R(1, 12), R(-2, 3), R(0), R(2, 3), R(-1, 12)],
    6: [R(-1, 60), R(3, 20), R(-3, 4), R(0), R(3, 4), R(-3, 20), R(1, 60)],
    8: [R(1, 280), R(-4, 105), R(1, 5), R(-4, 5), R(0), R(4, 5), R(-1, 5), R(4, 105),
        R(-1, 280)],
}


@pytest.mark.parametrize("accuracy", [2, 4, 6, 8])
def test_laplace_weights_are_the_textbook_ones(accuracy):
    s = centred_stencil(2, accuracy)
    assert list(s.weights) == LAPLACE[accuracy]
    assert all(isinstance(w, sympy.Rational) for w in s.weights)
    m = accuracy // 2
    assert s.offsets == tuple(range(-m, m + 1))
    assert s.order == accuracy
    assert s.derivative == 2 and s.accuracy == accuracy


@pytest.mark.parametrize("accuracy", [2, 4, 6, 8])
def test_first_derivative_weights(accuracy):
    s = centred_stencil(1, accuracy)
    assert list(s.weights) == FIRST[accuracy]
    assert all(isinstance(w, sympy.Rational) for w in s.weights)
    assert s.order == accuracy
    # antisymmetric: w_{-j} = -w_j
    assert all(a == -b for a, b in zip(s.weights, reversed(s.weights)))


def test_leading_error_of_the_three_point_laplacian():
    s = centred_stencil(2, 2)
    h = sympy.Symbol("h", positive=True)
    x = sympy.Symbol("x", real=True)
    u = sympy.Function("u")(x)
    assert s.error_coefficient == R(1, 12) and s.error_derivative == 4 and s.order == 2
    assert sympy.simplify(s.leading_error(h, x) - h**2 / 12 * sympy.Derivative(u, (x, 4))) == 0


def test_other_leading_errors():
    assert (centred_stencil(1, 2).error_coefficient, centred_stencil(1, 2).error_derivative) \
        == (R(1, 6), 3)
    assert (centred_stencil(2, 4).error_coefficient, centred_stencil(2, 4).error_derivative) \
        == (R(-1, 90), 6)
    assert centred_stencil(4, 2).weights == (1, -4, 6, -4, 1)


@pytest.mark.parametrize("derivative,accuracy", [(1, 2), (2, 2), (2, 4), (2, 8), (3, 2), (4, 4)])
def test_leading_error_matches_a_numerical_experiment(derivative, accuracy):
    """Independent of the Taylor bookkeeping: apply the stencil to sin at x = 0.3 in 60-digit
    arithmetic; (stencil − exact) / h^p tends to c_n sin^(n)(x)."""
    s = centred_stencil(derivative, accuracy)
    with mpmath.workdps(60):
        x = mpmath.mpf("0.3")
        h = mpmath.mpf("1e-4")
        approx = sum(mpmath.mpf(w.p) / w.q * mpmath.sin(x + j * h)
                     for j, w in zip(s.offsets, s.weights)) / h**derivative
        exact = mpmath.sin(x + derivative * mpmath.pi / 2)
        ratio = (approx - exact) / h**s.order
        predicted = (mpmath.mpf(s.error_coefficient.p) / s.error_coefficient.q
                     * mpmath.sin(x + s.error_derivative * mpmath.pi / 2))
        assert abs(ratio / predicted - 1) < 1e-6


@settings(max_examples=40, deadline=None)
@given(derivative=st.integers(min_value=1, max_value=4),
       accuracy=st.sampled_from([2, 4, 6, 8]))
def test_order_equals_accuracy_and_weights_sum_to_zero(derivative, accuracy):
    s = centred_stencil(derivative, accuracy)
    assert s.order == accuracy
    assert sum(s.weights) == 0
    assert len(s.offsets) == len(s.weights)
    assert s.offsets == tuple(range(-s.radius, s.radius + 1))
    # consistency: Σ w_j j^k / k! = 1
    assert sum(w * sympy.Integer(j) ** derivative for j, w in zip(s.offsets, s.weights)) \
        == sympy.factorial(derivative)
    # even derivatives: symmetric weights; odd: antisymmetric
    sign = 1 if derivative % 2 == 0 else -1
    assert all(a == sign * b for a, b in zip(s.weights, reversed(s.weights)))


def test_perturbed_stencil_order_is_re_derived():
    exact = centred_stencil(2, 4)
    perturbed = stencil_from_weights(2, exact.offsets, [R(-1, 12), R(4, 3), R(-5, 2), R(4, 3),
                                                        R(-1, 12)])
    assert perturbed.order == 4
    # the 5-point stencil with the 3-point weights only is second order
    second = stencil_from_weights(2, (-2, -1, 0, 1, 2), [0, 1, -2, 1, 0])
    assert second.order == 2
    with pytest.raises(ValueError, match="not consistent"):
        taylor_error((-1, 0, 1), (R(1), R(-2), R(2)), 2)


def test_invalid_requests():
    with pytest.raises(ValueError):
        centred_stencil(2, 3)
    with pytest.raises(ValueError):
        centred_stencil(2, 0)
    with pytest.raises(ValueError):
        centred_stencil(0, 2)


def test_spec_accuracy_selects_the_stencil():
    text = ("pdelang: 1\nname: s\ngrid: {axes: [x]}\nfields: {u: {channels: 1}}\n"
            "parameters: {D: 0.5}\n"
            "terms:\n  a: TERM\nequation: dt(u) = a\n"
            "discretization:\n  laplace: {accuracy: 6}\n  diff: {accuracy: 4}\n")
    analysis = compile_spec(
        load_spec_text(text.replace("TERM", "D * laplace(u)")), until="analysis").analysis
    lap = analysis.stencils["laplace"]
    assert list(lap.stencil.weights) == LAPLACE[6]
    assert lap.to_json()["weights"] == ["1/90", "-3/20", "3/2", "-49/18", "3/2", "-3/20", "1/90"]
    assert lap.leading_error == "h**6*Derivative(u(x), (x, 8))/560"
    analysis = compile_spec(
        load_spec_text(text.replace("TERM", "diff(u, x)")), until="analysis").analysis
    first = analysis.stencils["diff[x,1]"]
    assert list(first.stencil.weights) == FIRST[4]
    assert first.to_json()["accuracy"] == 4 and first.to_json()["order"] == 4
    assert first.leading_error == "-h**4*Derivative(u(x), (x, 5))/30"


@pytest.mark.parametrize("derivative", [1, 2, 4])
def test_high_accuracy_stencils_stay_exact_rationals(derivative):
    """Accuracy 30: the weights stay exact rationals (nsimplify once turned a large-denominator
    weight into a guessed radical and the consistency check failed) and the Taylor search
    reaches the order (it stopped at 24)."""
    stencil = centred_stencil(derivative, 30)
    assert all(isinstance(w, sympy.Rational) for w in stencil.weights)
    assert stencil.order == 30
    assert stencil.error_coefficient != 0
