"""The spec format's single source of truth.

:data:`SPEC_SCHEMA` describes every key of a spec file: its type, default, range and
documentation.  From it we derive both the validator (:func:`validate`, which turns a
located YAML tree into plain values plus a table of locations) and the JSON Schema shipped
with the package for editors (:func:`json_schema`, written to ``spec.schema.json``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from pdelang.compiler import schemes as _schemes
from pdelang.errors import SourceLocation, SpecError, did_you_mean
from pdelang.compiler.operators import OPERATORS as _OPERATORS
from pdelang.compiler.spec.yaml_source import LocatedNode

# Bounds that keep a spec buildable: the stencil's SymPy derivation grows fast with the
# accuracy (accuracy 40 takes ~2 s, 100 takes ~47 s), and every layer is a module.
MAX_ACCURACY = 32
MAX_STEPS = 100_000
MAX_TOTAL_STEPS = 1_000_000  # layers × substeps (a trajectory keeps one state per step)
MAX_CHANNELS = 1 << 20
MAX_TOKENS = 1 << 20  # tokens per grid axis, and extra tokens
MAX_BASIS = 16  # basis functions of a depth-dependent parameter
BASIS_KINDS = ("legendre",)

# The pattern of a name (JSON Schema keeps it; in Python, match with ``fullmatch``: ``$``
# also matches before a trailing newline, and a name ending in "\n" would reach the
# generated code).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_identifier(text: str) -> bool:
    return IDENTIFIER.fullmatch(text) is not None


def shown(value: Any, width: int = 60) -> str:
    """A short repr of a user value for a message (long strings, huge numbers and big
    collections are abbreviated; never a ValueError from int → str)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 160:
            digits = int(value.bit_length() * 0.30103) + 1
            return f"{'-' if value < 0 else ''}<an integer of about {digits:,} digits>"
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= width else text[: width - 4] + "…" + text[-1]
    if isinstance(value, list):
        items = [shown(v, 20) for v in value[:4]]
        return "[" + ", ".join(items + (["…"] if len(value) > 4 else [])) + "]"
    if isinstance(value, dict):
        items = [f"{shown(k, 20)}: {shown(v, 20)}" for k, v in list(value.items())[:4]]
        return "{" + ", ".join(items + (["…"] if len(value) > 4 else [])) + "}"
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- schema DSL
@dataclass(frozen=True)
class Scalar:
    """A scalar: ``kind`` is int, float, bool, str or identifier."""

    kind: str
    doc: str = ""
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    even: bool = False
    maximum: float | None = None


@dataclass(frozen=True)
class Sequence:
    item: Any
    doc: str = ""
    min_items: int = 0
    max_items: int | None = None


@dataclass(frozen=True)
class Field:
    schema: Any
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Record:
    """A mapping with a closed set of keys."""

    fields: Mapping[str, Field]
    doc: str = ""


@dataclass(frozen=True)
class MapOf:
    """A mapping from user-chosen identifiers to values of one schema."""

    value: Any
    doc: str = ""
    keys: tuple[str, ...] | None = None  # a closed set of allowed keys, if any


@dataclass(frozen=True)
class Either:
    """A value that may take either of two shapes (first match wins)."""

    options: tuple[Any, ...]
    doc: str = ""


def _f(schema: Any, default: Any = None, doc: str = "", required: bool = False) -> Field:
    return Field(schema, required=required, default=default, doc=doc)


BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")
SCHEMES = tuple(_schemes.SCHEMES)  # the scheme registry (pdelang.compiler.schemes)
# the normalization stabilizer's kinds: the norm operators of the registry, or none
NORM_KINDS = tuple(op.name for op in _OPERATORS.values() if op.category == "norm") + ("none",)
PLACEMENTS = ("pre", "post")
# operators with a ``discretization.<name>.accuracy`` setting (the operator registry)
DISCRETIZED_OPERATORS = tuple(op.name for op in _OPERATORS.values() if op.discretized)

SPEC_SCHEMA = Record(
    doc="A pdelang spec: the master PDE of a Transformer, or any PDE on a token grid.",
    fields={
        "pdelang": _f(Scalar("int", enum=(1,)), required=True, doc="Spec format version."),
        "name": _f(Scalar("identifier"), required=True,
                   doc="Identifier; the generated class is <Name>Stepper."),
        "description": _f(Scalar("str"), default="", doc="Free text."),
        "grid": _f(Record({
            "axes": _f(Sequence(Scalar("identifier"), min_items=1, max_items=2),
                       default=["seq"], doc="[seq] for text, [rows, cols] for image patches."),
            "shape": _f(Sequence(Scalar("int", minimum=1, maximum=MAX_TOKENS), min_items=1,
                                 max_items=2),
                        default=None,
                        doc="Grid size per axis; required for 2-D grids, optional in 1-D."),
            "spacing": _f(Scalar("float", exclusive_minimum=0.0), default=1.0,
                          doc="Grid spacing h (the same on every axis)."),
            "boundary": _f(Scalar("str", enum=BOUNDARIES), default="periodic",
                           doc="Boundary condition at the ends of every axis."),
            "extra_tokens": _f(Scalar("int", minimum=0, maximum=MAX_TOKENS), default=0,
                               doc="Tokens before the grid (e.g. a CLS token): attention only."),
            "padding": _f(Scalar("bool"), default=True,
                          doc="Whether a batch may hold sequences (or images) of different "
                              "lengths, the padding marked by a mask: true keeps the "
                              "padded-batch path in the generated module; false leaves it "
                              "out, and the stepper refuses a mask with padding tokens."),
        }), required=True),
        "fields": _f(MapOf(Record({
            "channels": _f(Scalar("int", minimum=1, maximum=MAX_CHANNELS), required=True,
                           doc="Embedding width C."),
        })), required=True, doc="The state field(s); pdelang 1 integrates exactly one."),
        "parameters": _f(MapOf(Either((
            Scalar("float"),
            Record({
                "value": _f(Scalar("float"), required=True, doc="Initial value."),
                "learnable": _f(Scalar("bool"), default=False, doc="nn.Parameter if true."),
                "positive": _f(Scalar("bool"), default=False,
                               doc="Kept positive by a softplus parametrization."),
                "per_layer": _f(Scalar("bool"), default=False,
                                doc="One value per layer instead of one shared value."),
                "basis": _f(Record({
                    "kind": _f(Scalar("str", enum=BASIS_KINDS), default="legendre",
                               doc="legendre: P_k(s), s = 2(t − t0)/(t1 − t0) − 1."),
                    "size": _f(Scalar("int", minimum=1, maximum=MAX_BASIS), required=True,
                               doc="Number of basis functions K; the coefficients c_0 … "
                                   "c_{K−1} start at (value, 0, …, 0)."),
                }), default=None,
                    doc="A smooth function of depth t instead of a constant: "
                        "value(t) = Σ_k c_k P_k(s), shared by every layer."),
            }),
        ))), default={}, doc="Named scalar coefficients."),
        "terms": _f(MapOf(Scalar("str")), default={},
                    doc="Named term expressions in the term grammar."),
        "equation": _f(Scalar("str"), required=True, doc="dt(u) = <sum of terms>"),
        "stabilizers": _f(Record({
            "residual": _f(Scalar("bool"), default=True,
                           doc="u ← u + Δt f(u) if true; u ← Δt f(u) if false."),
            "norm": _f(Record({
                "kind": _f(Scalar("str", enum=NORM_KINDS), default="none"),
                "placement": _f(Scalar("str", enum=PLACEMENTS), default="pre",
                                doc="pre: inside the vector field; post: after each sub-step."),
                "eps": _f(Scalar("float", exclusive_minimum=0.0), default=1e-5),
                "final": _f(Scalar("bool"), default=False, doc="A norm after the last step."),
                "affine": _f(Scalar("bool"), default=True, doc="Learned scale (and shift)."),
                "terms": _f(Sequence(Scalar("identifier")), default=None,
                            doc="Terms the norm stabilizes; default: terms with learned "
                                "operators (attention, mlp, linear)."),
            }), default={}),
        }), default={}),
        "time": _f(Record({
            "span": _f(Sequence(Scalar("float"), min_items=2, max_items=2), default=[0.0, 1.0],
                       doc="[t0, t1]: depth interval."),
            "layers": _f(Scalar("int", minimum=1, maximum=MAX_STEPS), default=1,
                         doc="Distinct weight sets along depth."),
            "substeps": _f(Scalar("int", minimum=1, maximum=MAX_STEPS), default=1,
                           doc="Time steps per layer."),
            "scheme": _f(Scalar("str", enum=SCHEMES), default="euler"),
            "split_order": _f(Sequence(Scalar("identifier")), default=None,
                              doc="Order of the sub-steps in splitting schemes."),
            "tied": _f(Scalar("bool"), default=False,
                       doc="One weight set for every layer (weight-tied continuous depth): "
                           "the operators' weights are shared along depth."),
            "implicit": _f(Sequence(Scalar("identifier")), default=[],
                           doc="Linear, constant-coefficient terms the scheme treats "
                               "implicitly: exact flows in lie/strang, implicit stages in "
                               "imex_euler/imex_ars222."),
        }), default={}),
        "init": _f(Scalar("str"), default=None,
                   doc="Initial condition of `run` and `verify` (unless --init is given): "
                       "random[:S] | uniform:A,B | bump[:H] | FILE.pt (relative to the "
                       "spec file)."),
        "discretization": _f(MapOf(Record({
            "accuracy": _f(Scalar("int", minimum=2, even=True, maximum=MAX_ACCURACY), default=2,
                           doc="Order of accuracy of the centred stencil (even, 2 to 32)."),
        }), keys=DISCRETIZED_OPERATORS), default={}),
    },
)


# --------------------------------------------------------------------------- validation
@dataclass
class Validated:
    """Plain values with defaults filled in, and the location of every given value."""

    value: Any
    locations: dict[str, SourceLocation] = field(default_factory=dict)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


def _check_scalar(schema: Scalar, node: LocatedNode, path: str) -> Any:
    value = node.value
    loc = node.location
    want = {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string", "identifier": "a name"}[schema.kind]

    def fail(msg: str, hint: str | None = None) -> SpecError:
        return SpecError(f"'{path}' {msg}", loc, hint)

    if schema.kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"must be {want}, got {_type_name(value)} {shown(node.preview())}")
    elif schema.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            hint = None
            if isinstance(value, float) and value.is_integer():
                hint = f"write {int(value)}"
            raise fail(f"must be {want}, got {_type_name(value)} {shown(node.preview())}", hint)
    elif schema.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = None
            if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", value):
                hint = "YAML 1.1 reads '1e-3' as a string; write 1.0e-3"
            raise fail(f"must be {want}, got {_type_name(value)} {shown(node.preview())}", hint)
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float64
            raise fail(f"must be a finite number, got {shown(value)}",
                       "numbers must fit in a float (about 1.8e308)") from None
        if not math.isfinite(value):
            raise fail(f"must be finite, got {value!r}")
    elif schema.kind in ("str", "identifier"):
        if not isinstance(value, str):
            raise fail(f"must be {want}, got {_type_name(value)} {shown(node.preview())}")
        if schema.kind == "identifier" and not is_identifier(value):
            raise fail(f"must be a name (letters, digits, _; not starting with a digit), "
                       f"got {shown(value)}")
    if schema.enum is not None and value not in schema.enum:
        hint = did_you_mean(str(value)[:100], [str(e) for e in schema.enum])
        raise fail(f"must be one of {', '.join(map(str, schema.enum))}; got {shown(value)}",
                   hint)
    if schema.minimum is not None and value < schema.minimum:
        raise fail(f"must be ≥ {schema.minimum}, got {shown(value)}")
    if schema.exclusive_minimum is not None and value <= schema.exclusive_minimum:
        raise fail(f"must be > {schema.exclusive_minimum}, got {shown(value)}")
    if schema.maximum is not None and value > schema.maximum:
        raise fail(f"must be ≤ {schema.maximum}, got {shown(value)}")
    if schema.even and value % 2:
        raise fail(f"must be even, got {shown(value)}", f"use {value + 1}")
    return value


def _validate(schema: Any, node: LocatedNode, path: str, out: dict) -> Any:
    out[path] = node.location
    if isinstance(schema, Scalar):
        return _check_scalar(schema, node, path)
    if isinstance(schema, Either):
        errors = []
        for option in schema.options:
            try:
                return _validate(option, node, path, out)
            except SpecError as exc:
                errors.append(exc)
        # The most specific shape is the one the user tried to write.
        shaped = [e for o, e in zip(schema.options, errors)
                  if isinstance(o, Record) == node.is_mapping]
        raise (shaped or errors)[-1]
    if isinstance(schema, Sequence):
        if not node.is_sequence:
            raise SpecError(f"'{path}' must be a list, got {_type_name(node.value)} "
                            f"{shown(node.preview())}", node.location,
                            "write a YAML list, e.g. [a, b]")
        items = node.value
        if len(items) < schema.min_items or (schema.max_items and len(items) > schema.max_items):
            count = (f"{schema.min_items}" if schema.min_items == schema.max_items
                     else f"{schema.min_items} to {schema.max_items or 'any number of'}")
            raise SpecError(f"'{path}' must have {count} items, got {len(items)}", node.location)
        return [_validate(schema.item, item, f"{path}[{i}]", out) for i, item in enumerate(items)]
    if isinstance(schema, (Record, MapOf)):
        if not node.is_mapping:
            raise SpecError(f"'{path or 'the spec'}' must be a mapping, got "
                            f"{_type_name(node.value)} {shown(node.preview())}", node.location)
        result: dict[str, Any] = {}
        prefix = f"{path}." if path else ""
        if isinstance(schema, MapOf):
            for key, child in node.value.items():
                key_loc = node.key_locations[key]
                if schema.keys is not None and key not in schema.keys:
                    raise SpecError(f"unknown key '{prefix}{shown(key)[1:-1]}'", key_loc,
                                    did_you_mean(key[:100], schema.keys))
                if schema.keys is None and not is_identifier(key):
                    raise SpecError(f"{shown(prefix + key)} is not a valid name", key_loc,
                                    "names use letters, digits and _")
                out[f"{prefix}{key}#key"] = key_loc
                result[key] = _validate(schema.value, child, f"{prefix}{key}", out)
            return result
        for key in node.value:
            if key not in schema.fields:
                raise SpecError(f"unknown key '{prefix}{shown(key)[1:-1]}'",
                                node.key_locations[key], did_you_mean(key[:100], schema.fields))
        for key, fld in schema.fields.items():
            if key in node.value:
                out[f"{prefix}{key}#key"] = node.key_locations[key]
                result[key] = _validate(fld.schema, node.value[key], f"{prefix}{key}", out)
            elif fld.required:
                raise SpecError(f"missing key '{prefix}{key}'", node.location,
                                f"add '{key}:' ({fld.doc})" if fld.doc else f"add '{key}:'")
            else:
                result[key] = _fill_defaults(fld.schema, fld.default)
        return result
    raise TypeError(f"unknown schema node {schema!r}")  # pragma: no cover


def _fill_defaults(schema: Any, default: Any) -> Any:
    if isinstance(schema, Record) and isinstance(default, dict):
        return {k: (default[k] if k in default else _fill_defaults(f.schema, f.default))
                for k, f in schema.fields.items()}
    if isinstance(default, (list, dict)):
        return type(default)(default)
    return default


def validate(root: LocatedNode) -> Validated:
    """Check a located tree against :data:`SPEC_SCHEMA`; fill defaults; record locations."""
    locations: dict[str, SourceLocation] = {}
    value = _validate(SPEC_SCHEMA, root, "", locations)
    return Validated(value, locations)


def schema_at(path: list[str]) -> Any:
    """The schema node at a dotted path (for overrides); ``None`` if there is none."""
    node: Any = SPEC_SCHEMA
    for part in path:
        if isinstance(node, Field):
            node = node.schema
        if isinstance(node, Either):
            node = next((o for o in node.options if isinstance(o, Record)), None)
        if isinstance(node, Record):
            if part not in node.fields:
                return None
            node = node.fields[part].schema
        elif isinstance(node, MapOf):
            if node.keys is not None and part not in node.keys:
                return None
            node = node.value
        else:
            return None
    return node


def field_names_at(path: list[str]) -> list[str]:
    node = schema_at(path)
    if isinstance(node, Record):
        return list(node.fields)
    if isinstance(node, MapOf) and node.keys:
        return list(node.keys)
    return []


# --------------------------------------------------------------------------- JSON Schema
def _to_json_schema(schema: Any, default: Any = None, doc: str = "") -> dict:
    out: dict[str, Any] = {}
    if isinstance(schema, Scalar):
        out["type"] = {"int": "integer", "float": "number", "bool": "boolean",
                       "str": "string", "identifier": "string"}[schema.kind]
        if schema.kind == "identifier":
            out["pattern"] = IDENTIFIER.pattern
        if schema.enum is not None:
            out["enum"] = list(schema.enum)
        if schema.minimum is not None:
            out["minimum"] = schema.minimum
        if schema.exclusive_minimum is not None:
            out["exclusiveMinimum"] = schema.exclusive_minimum
        if schema.maximum is not None:
            out["maximum"] = schema.maximum
        if schema.even:
            out["multipleOf"] = 2
    elif isinstance(schema, Sequence):
        out["type"] = "array"
        out["items"] = _to_json_schema(schema.item)
        if schema.min_items:
            out["minItems"] = schema.min_items
        if schema.max_items is not None:
            out["maxItems"] = schema.max_items
    elif isinstance(schema, Either):
        out["anyOf"] = [_to_json_schema(o) for o in schema.options]
    elif isinstance(schema, Record):
        out["type"] = "object"
        out["additionalProperties"] = False
        out["properties"] = {k: _to_json_schema(f.schema, f.default, f.doc)
                             for k, f in schema.fields.items()}
        required = [k for k, f in schema.fields.items() if f.required]
        if required:
            out["required"] = required
    elif isinstance(schema, MapOf):
        out["type"] = "object"
        if schema.keys is not None:
            out["properties"] = {k: _to_json_schema(schema.value) for k in schema.keys}
            out["additionalProperties"] = False
        else:
            out["propertyNames"] = {"pattern": IDENTIFIER.pattern}
            out["additionalProperties"] = _to_json_schema(schema.value)
    description = doc or getattr(schema, "doc", "")
    if description:
        out["description"] = description
    if default is not None and not isinstance(default, dict):
        out["default"] = default
    return out


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of the spec format, derived from :data:`SPEC_SCHEMA`."""
    body = _to_json_schema(SPEC_SCHEMA)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pdelang.dev/spec.schema.json",
        "title": "pdelang spec",
        **body,
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

