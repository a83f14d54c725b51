"""Formatting shared by the ablation and phase reports: JSON-safe values (NaN → null, ±Inf →
"Infinity"), numbers to 4 significant digits, overrides, markdown cells and tables."""

from __future__ import annotations
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MISSING",
    "as_float",
    "format_number",
    "format_overrides",
    "format_value",
    "json_safe",
    "markdown_cell",
    "markdown_table",
    "one_line",
]


MISSING = "—"


_STRING_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    NaN -> ``None`` (``null``); +Inf / -Inf -> the strings ``"Infinity"`` / ``"-Infinity"``;
    tensors, numpy arrays and scalars -> Python lists / numbers; tuples and lists -> lists;
    sets -> sorted lists; dataclasses -> dicts; mapping keys -> ``str``; other objects ->
    ``str(value)``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return [json_safe(item) for item in sorted(value, key=repr)]
    if hasattr(value, "tolist"):  # torch.Tensor, numpy array or numpy scalar
        return json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return str(value)


def as_float(value: Any) -> float | None:
    """A float from a number or a JSON-safe string (``"Infinity"``...); ``None`` stays."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return _STRING_FLOATS.get(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def format_number(value: Any) -> str:
    """4 significant digits (``%.4g``); ``—`` for missing, ``nan``, ``inf``, ``-inf``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = as_float(value)
    if number is None:
        return MISSING
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.4g}"


def format_value(value: Any) -> str:
    return json.dumps(json_safe(value), sort_keys=True)


def format_overrides(overrides: Mapping[str, Any] | None) -> str:
    """``key=value, ...`` sorted by key, values as JSON (``false``, ``"none"``...)."""
    if not overrides:
        return "(none)"
    return ", ".join(f"{key}={format_value(overrides[key])}" for key in sorted(overrides))


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` on one line (whitespace runs -> one space), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def markdown_cell(text: Any) -> str:
    """A markdown table cell: one line, ``|`` escaped."""
    return one_line(text).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return lines
