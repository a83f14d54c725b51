"""Property-test a discretization: ``pdelang.lab.testing``, the public testing API.

Three layers, usable from any pytest suite (see ``examples/test_my_spec.py``):

* **strategies** (hypothesis) — :func:`specs`, :func:`spec_texts`, :func:`compilations`
  draw valid specs from the grammar (every operator and option, boundary condition, scheme,
  accuracy 2–8, 1-D and 2-D grids, extra tokens, stabilizer placements);
  :func:`derivative_spec_texts`, :func:`diffusion_spec_texts`, :func:`learned_spec_texts`
  narrow that down; :func:`periodic_fields`, :func:`nonperiodic_fields`, :func:`smooth_fields`
  draw smooth test fields whose symmetry matches a boundary's ghost rule.
* **properties** — functions that return a :class:`PropertyResult` (truthy when the property
  holds, measured numbers in ``details``; ``.assert_passed()`` raises
  :class:`PropertyFailure`, an ``AssertionError``):

  - (a) :func:`check_polynomial_exactness` — a k-th derivative stencil of accuracy p is exact
    on polynomials of degree ≤ p + k − 1 (exact rationals);
  - (b) :func:`check_convergence` — observed order (least-squares slope of log error under
    grid refinement) within :data:`ORDER_TOLERANCE` of the derived order;
  - (c) :func:`check_symmetric_nsd`, :func:`check_annihilates_constants`,
    :func:`check_conserves_weighted_mean`, :func:`check_max_norm_nonincreasing`;
  - (d) :func:`check_stability_sharpness`, :func:`check_stability_threshold`;
  - (e) :func:`check_time_order` — a scheme's order on ``u' = λu``;
  - (f) :func:`check_attention_maps`, :func:`check_stepper_attention`;
  - (g) :func:`check_norm_manifold`, :func:`check_stepper_normalization`;
  - (h) :func:`check_generated_matches_reference` — the generated torch stepper equals the
    independent NumPy interpreter of the discrete IR (:class:`NumpyOracle`).
* **verify** — :func:`verify_spec` (``pdelang.lab.testing.verify.verify``) runs every applicable
  property on one spec and returns a :class:`VerifyReport` (the engine of ``pdelang verify``).

Attributes load on first use, so ``import pdelang.lab.testing`` stays cheap (torch and hypothesis
are imported only by the parts that need them).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name → submodule that defines it
_EXPORTS: dict[str, str] = {}
_SUBMODULES = {
    "strategies": (
        "ACCURACIES", "BOUNDARIES", "SCHEMES", "GridChoice", "compilations",
        "derivative_spec_texts", "diffusion_spec_texts", "expressions", "grids",
        "learned_spec_texts", "nonperiodic_fields", "periodic_fields", "smooth_fields",
        "spec_texts", "specs",
    ),
    "properties": (
        "ORDER_TOLERANCE", "ConvergenceStudy", "LinearStepper",
        "PropertyFailure", "PropertyResult", "check_annihilates_constants",
        "check_arrays_close", "check_attention_maps", "check_conserves_weighted_mean",
        "check_convergence", "check_convergence_in_time", "check_max_norm_nonincreasing",
        "check_norm_manifold", "check_polynomial_exactness",
        "check_polynomial_exactness_numeric", "check_stability_sharpness",
        "check_stability_threshold", "check_symmetric_nsd", "check_time_order", "claimed_order",
        "convergence_study", "empirical_max_dt", "least_squares_order",
        "linear_differential_model", "operator_matrix", "stencil_operator_1d",
    ),
    "stepper_checks": (
        "check_generated_matches_reference", "check_stepper_attention",
        "check_stepper_normalization",
    ),
    "harness": (
        "compile_any", "random_state", "randomize_weights", "stepper_for",
        "torch_stencil_operator",
    ),
    "fields": ("smooth_field",),
    "verify": ("VerifyReport",),
}
# the NumPy oracle is an interpreter of the step program, not a test helper: it lives in
# pdelang.interpreters and is re-exported here for property tests
_SUBMODULES["numpy_oracle"] = ("NumpyOracle",)
_PATHS = {"numpy_oracle": "pdelang.interpreters.numpy_oracle"}
for _module, _names in _SUBMODULES.items():
    for _name in _names:
        _EXPORTS[_name] = _module

# ``pdelang.lab.testing.verify`` is the submodule; its engine is exported as ``verify_spec`` so the
# two names never shadow each other.
_ALIASES = {"verify_spec": ("verify", "verify")}

__all__ = sorted([*_EXPORTS, *_ALIASES])


def __getattr__(name: str) -> Any:
    module, attribute = _ALIASES.get(name, (_EXPORTS.get(name), name))
    if module is None:
        raise AttributeError(f"module 'pdelang.lab.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PATHS.get(module, f"pdelang.lab.testing.{module}")),
                    attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
