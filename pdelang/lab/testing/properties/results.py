"""Property results: :class:`PropertyResult` (truthy when the property holds, the measured
numbers in ``details``), :class:`PropertyFailure`, and the shared error measures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from collections.abc import Callable

import numpy as np



ORDER_TOLERANCE = 0.15

Operator = Callable[[np.ndarray], np.ndarray]




# ----------------------------------------------------------------------------- results
class PropertyFailure(AssertionError):
    """A property does not hold; the message says which numbers broke it."""


@dataclass
class PropertyResult:
    name: str
    passed: bool
    message: str = ""
    details: dict = field(default_factory=dict)
    applicable: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def assert_passed(self) -> PropertyResult:
        if not self.passed:
            raise PropertyFailure(f"{self.name}: {self.message}")
        return self

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "applicable": self.applicable,
                "message": self.message, "details": jsonable(self.details)}


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Fraction):
        return str(value)
    return value


def make_result(name: str, passed: bool, message: str, **details) -> PropertyResult:
    return PropertyResult(name, bool(passed), message, details)


def not_applicable(name: str, why: str) -> PropertyResult:
    return PropertyResult(name, True, f"not applicable: {why}", {}, applicable=False)


def relative_error(a, b, scale: float | None = None) -> float:
    """max |a − b| / max(max |b|, ``scale``) over the finite entries of ``b``; ∞ if the two
    disagree on which entries are non-finite (identical infinities count as equal)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if not a.size:
        return 0.0
    finite = np.isfinite(b)
    same_special = (np.isnan(a) & np.isnan(b)) | (np.isinf(b) & (a == b))
    if np.any(~finite & ~same_special) or np.any(~np.isfinite(a) & finite):
        return math.inf
    if not finite.any():
        return 0.0
    diff = float(np.max(np.abs(a[finite] - b[finite])))
    reference = max(float(np.max(np.abs(b[finite]))), scale or 0.0)
    return diff / reference if reference > 0 else diff


def check_arrays_close(name: str, actual, expected, rtol: float) -> PropertyResult:
    """``relative_error(actual, expected) ≤ rtol``."""
    error = relative_error(actual, expected)
    return make_result(name, error <= rtol, f"relative error {error:.3g} (tolerance {rtol:g})",
                   relative_error=error, tolerance=rtol)
