"""One way to write a spec from Python: :func:`spec_text`, the YAML of a spec from keyword
arguments (for tests, property drawers and examples that need a spec variant without a file).

The text is YAML in the shipped specs' layout (keys in the order of ``specs/*.yaml``, nested
collections in flow style) and round-trips through the spec loader (``load_spec_text``);
term expressions are emitted as YAML scalars (quoted by the YAML emitter wherever YAML would
otherwise read them as something else), so any expression text is safe to pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml


def spec_text(terms: Mapping[str, str] | str, *, equation: str | None = None,
              name: str = "spec", description: str | None = None,
              axes: Sequence[str] = ("x",), shape: Sequence[int] | None = None,
              spacing: float | None = None, boundary: str | None = None,
              extra_tokens: int | None = None, field: str = "u", channels: int = 4,
              init: Mapping[str, Any] | None = None,
              parameters: Mapping[str, Any] | None = None,
              span: Sequence[float] = (0, 1), layers: int | None = 1,
              substeps: int | None = None, scheme: str | None = None,
              split_order: Sequence[str] | None = None,
              implicit: Sequence[str] | None = None, tied: bool | None = None,
              stabilizers: Mapping[str, Any] | None = None,
              discretization: Mapping[str, Any] | None = None) -> str:
    """The YAML text of a spec.

    ``terms``: name → expression, or one expression (the term ``f``); ``equation`` defaults to
    ``dt(<field>) = <the terms' sum>``.  Every other argument is the spec key of the same name
    (``None``: the key is left out, so the spec's default applies); ``accuracy`` and other
    per-operator settings go in ``discretization`` (``{"laplace": {"accuracy": 4}}``).
    """
    if isinstance(terms, str):
        terms = {"f": terms}
    grid: dict[str, Any] = {"axes": list(axes)}
    for key, value in (("shape", shape), ("spacing", spacing), ("boundary", boundary),
                       ("extra_tokens", extra_tokens)):
        if value is not None:
            grid[key] = list(value) if key == "shape" else value
    field_entry: dict[str, Any] = {"channels": channels}
    if init is not None:
        field_entry["init"] = dict(init)
    time: dict[str, Any] = {"span": list(span)}
    for key, value in (("layers", layers), ("substeps", substeps), ("scheme", scheme),
                       ("split_order", split_order), ("implicit", implicit), ("tied", tied)):
        if value is not None:
            time[key] = list(value) if key in ("split_order", "implicit") else value
    document: dict[str, Any] = {"pdelang": 1, "name": name}
    if description is not None:
        document["description"] = description
    document |= {"grid": grid, "fields": {field: field_entry}}
    if parameters:
        document["parameters"] = dict(parameters)
    document["terms"] = dict(terms)
    document["equation"] = equation or f"dt({field}) = " + " + ".join(terms)
    if stabilizers is not None:
        document["stabilizers"] = dict(stabilizers)
    document["time"] = time
    if discretization is not None:
        document["discretization"] = dict(discretization)
    return _dump(document)


def _dump(document: dict) -> str:
    """Block style at the top two levels, flow style below (the shipped specs' layout)."""
    lines = []
    for key, value in document.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            for inner, item in value.items():
                lines.append(f"  {inner}: {_flow(item)}")
        else:
            lines.append(f"{key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6,
                          allow_unicode=True)
    return text.removesuffix("\n...\n").rstrip("\n")
