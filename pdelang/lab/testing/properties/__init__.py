"""Property checks of a discretization, callable from any pytest suite (a package: one
module per property).

Every check returns a :class:`PropertyResult` — truthy when the property holds, with the
measured numbers in ``details`` — and ``result.assert_passed()`` raises
:class:`PropertyFailure` (an ``AssertionError``) with a readable message otherwise::

    from pdelang.lab.testing import check_polynomial_exactness
    check_polynomial_exactness(compilation.discrete.stencils["laplace"]).assert_passed()

Operators are passed as plain callables ``apply(u) -> rate`` on float64 NumPy states of shape
``(B, N, C)``, so the same check runs on the generated torch code
(:func:`pdelang.lab.testing.harness.torch_stencil_operator`), on the NumPy oracle
(:func:`pdelang.lab.testing.harness.reference_stencil_operator`) or on a hand-written operator.

The properties (the numbering follows the test suite):

(a) :func:`check_polynomial_exactness` — a k-th derivative stencil of accuracy p is exact on
    polynomials of degree ≤ p + k − 1 (exact rational arithmetic), and
    :func:`check_polynomial_exactness_numeric` on an operator's interior nodes;
(b) :func:`check_convergence` — the observed order under grid refinement (least-squares slope
    of log error against log resolution) matches the claimed order within 0.15, on fields with
    the boundary's symmetry (:mod:`pdelang.lab.testing.fields`);
(c) :func:`check_symmetric_nsd`, :func:`check_annihilates_constants`,
    :func:`check_conserves_weighted_mean`, :func:`check_max_norm_nonincreasing` — the discrete
    Laplacian is self-adjoint and negative semi-definite in the inner product
    ⟨u, v⟩_W = Σ W_i u_i v_i (:func:`inner_product_weights`: W = 1 for periodic; for the
    even-mirror neumann rule W = ½ on the end tokens, the trapezoid weights — ``L`` itself is
    not symmetric there), annihilates constants, and diffusion conserves the W-mean;
(d) :func:`check_stability_sharpness`, :func:`empirical_max_dt` — stepping the linear
    differential part at 0.95× the derived bound stays bounded, at 1.05× it grows;
(e) :func:`check_time_order`, :func:`check_convergence_in_time` — schemes reach their order
    on a linear test problem;
(f) :func:`check_attention_maps` — rows are probability distributions, causal attention gives
    the future no weight, Sinkhorn attention is doubly stochastic;
(g) :func:`check_norm_manifold` — normalized states lie on the normalization manifold;
(h) :func:`check_generated_matches_reference` (in :mod:`pdelang.lab.testing.harness` terms) — the
    generated code equals the NumPy oracle of the discrete IR.
"""


from __future__ import annotations

from pdelang.lab.testing.properties.attention import (
    check_attention_maps,
)
from pdelang.lab.testing.properties.convergence import (
    ConvergenceStudy,
    check_convergence,
    convergence_study,
    least_squares_order,
)
from pdelang.lab.testing.properties.laplacian import (
    check_annihilates_constants,
    check_conserves_weighted_mean,
    check_max_norm_nonincreasing,
    check_symmetric_nsd,
    inner_product_weights,
    is_monotone,
    operator_matrix,
)
from pdelang.lab.testing.properties.linear import (  # noqa: F401
    LinearStepper,
    MatrixMachine,
    ir_parameter_weights,
    linear_differential_model,
    linear_reference,
)
from pdelang.lab.testing.properties.norms import (
    check_norm_manifold,
    stencil_operator_1d,
)
from pdelang.lab.testing.properties.polynomials import (
    check_polynomial_exactness,
    check_polynomial_exactness_numeric,
)
from pdelang.lab.testing.properties.results import (  # noqa: F401
    ORDER_TOLERANCE,
    Operator,
    PropertyFailure,
    PropertyResult,
    check_arrays_close,
    jsonable,
    make_result,
    not_applicable,
    relative_error,
)
from pdelang.lab.testing.properties.stability import (  # noqa: F401
    check_stability_sharpness,
    check_stability_threshold,
    check_unconditional_relative,
    check_unconditional_stability,
    empirical_max_dt,
    empirical_max_dt_relative,
    grows,
    mode_amplification,
    relative_excess,
)
from pdelang.lab.testing.properties.time_order import (  # noqa: F401
    VectorMachine,
    check_convergence_in_time,
    check_time_order,
    claimed_order,
    expm,
    linear_test_problem,
    tableau_order,
)

__all__ = [
    "ORDER_TOLERANCE",
    "ConvergenceStudy",
    "LinearStepper",
    "PropertyFailure",
    "PropertyResult",
    "check_annihilates_constants",
    "check_arrays_close",
    "check_attention_maps",
    "check_conserves_weighted_mean",
    "check_convergence",
    "check_convergence_in_time",
    "check_max_norm_nonincreasing",
    "check_norm_manifold",
    "check_polynomial_exactness",
    "check_polynomial_exactness_numeric",
    "check_stability_sharpness",
    "check_stability_threshold",
    "check_symmetric_nsd",
    "check_time_order",
    "check_unconditional_stability",
    "claimed_order",
    "convergence_study",
    "empirical_max_dt",
    "expm",
    "grows",
    "inner_product_weights",
    "ir_parameter_weights",
    "is_monotone",
    "least_squares_order",
    "linear_differential_model",
    "linear_reference",
    "linear_test_problem",
    "not_applicable",
    "operator_matrix",
    "relative_error",
    "stencil_operator_1d",
    "tableau_order",
]
