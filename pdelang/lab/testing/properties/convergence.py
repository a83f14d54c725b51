"""(b) The observed order under grid refinement (least-squares slope of log error against
log resolution) matches the claimed order."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from collections.abc import Callable, Sequence

import numpy as np

from pdelang.lab.testing.fields import resolution_sizes, smooth_field
from pdelang.lab.testing.properties.results import (
    ORDER_TOLERANCE,
    Operator,
    PropertyResult,
    jsonable,
    make_result,
)


# ----------------------------------------------------------------------------- (b) convergence
def least_squares_order(resolutions: Sequence[float], errors: Sequence[float]) -> float:
    """Slope of the least-squares line through (log resolution, log error)."""
    x = np.log(np.asarray(resolutions, dtype=np.float64))
    errors = np.asarray(errors, dtype=np.float64)
    if not np.all(np.isfinite(errors) & (errors > 0)):
        return math.nan  # an exact (zero) or non-finite error has no slope
    y = np.log(errors)
    return float(np.polyfit(x, y, 1)[0])


@dataclass
class ConvergenceStudy:
    """Errors of an operator on a smooth field under grid refinement."""

    sizes: list  # grid shapes
    thetas: list  # resolution ωh of the field at each size
    errors: list  # max relative error on the compared nodes
    observed_order: float
    claimed_order: int

    def to_json(self) -> dict:
        return jsonable(dataclasses.asdict(self))


def convergence_study(apply_for_shape: Callable[[tuple[int, ...]], Operator], *,
                      boundary: str, derivative: int, axes: Sequence[int], dims: int,
                      h: float, claimed_order: int, mode: int | None = None,
                      extra_tokens: int = 0, thetas=(0.42, 0.33, 0.26, 0.2),
                      seed: int = 0) -> ConvergenceStudy:
    """(b) Apply ``apply_for_shape(shape)`` (an operator on states of that grid) to the smooth
    field of ``boundary`` (:func:`pdelang.lab.testing.fields.smooth_field`) at grid sizes that
    resolve it with ``θ = ωh`` ≈ each of ``thetas``; error = max relative error against the
    exact derivative on the compared nodes; order = least-squares slope in log θ.

    ``extra_tokens`` zero tokens are put before the grid (and dropped from the rate)."""
    mode = mode or (2 if boundary == "periodic" else 4)
    sizes, resolutions, errors = [], [], []
    for n in resolution_sizes(boundary, mode, thetas):
        shape = (n,) * dims
        sample = smooth_field(boundary, shape, derivative, tuple(axes), h, (mode,), seed)
        apply = apply_for_shape(shape)
        rate = np.asarray(apply(sample.as_state(extra_tokens)))[0, extra_tokens:, 0]
        rate = rate.reshape(shape)
        exact = sample.exact[sample.compare]
        err = np.max(np.abs(rate[sample.compare] - exact)) / np.max(np.abs(exact))
        sizes.append(list(shape))
        resolutions.append(sample.theta)
        errors.append(float(err))
    order = least_squares_order(resolutions, errors)
    return ConvergenceStudy(sizes, resolutions, errors, order, int(claimed_order))


def check_convergence(study: ConvergenceStudy, tolerance: float = ORDER_TOLERANCE,
                      name: str = "convergence") -> PropertyResult:
    """(b) ``|observed − claimed| ≤ tolerance`` (0.15)."""
    ok = math.isfinite(study.observed_order) and \
        abs(study.observed_order - study.claimed_order) <= tolerance
    errors = ", ".join(f"{e:.2e}" for e in study.errors)
    return make_result(name, ok, f"observed order {study.observed_order:.3f}, claimed "
                   f"{study.claimed_order} (tolerance {tolerance}); errors {errors}",
                   **study.to_json())
