"""Stage ``load``: a spec file (plus ``--set`` overrides) → a typed, immutable :class:`Spec`."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from collections.abc import Iterable

from pdelang.errors import PdelangError, SourceLocation, SpecError, did_you_mean
from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.spec.model import (
    FieldDecl,
    Grid,
    NormSpec,
    ParameterDecl,
    SourceString,
    Spec,
    Stabilizers,
    TimeSpec,
    frozen_mapping,
)
from pdelang.compiler.spec.initial import Init, parse_init
from pdelang.compiler.spec.limits import how_to_raise, limit
from pdelang.compiler.spec.overrides import apply_overrides
from pdelang.compiler.spec.schema import MAX_TOTAL_STEPS, validate
from pdelang.compiler.spec.yaml_source import LocatedNode, parse_yaml

RESERVED = {"dt", "pi", "t"}

def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """Read, validate and type a spec file.  Raises :class:`PdelangError` subclasses."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit("spec_bytes"):  # refused before reading it
            with path.open("rb") as handle:
                first = handle.read(200).split(b"\n", 1)[0].decode("utf-8", "replace")
            raise SpecError(f"the spec file is {size:,} bytes long, too large for a spec file",
                            SourceLocation(str(path), 1, 1, first), how_to_raise("spec_bytes"))
        data = path.read_bytes()
    except FileNotFoundError:
        raise PdelangError(f"no such spec file: {path}", SourceLocation(str(path), 0, 0),
                           "check the path; the bundled examples live in specs/") from None
    except IsADirectoryError:
        raise PdelangError(f"{path} is a directory, not a spec file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the spec file is not UTF-8 text ({exc.reason})",
                        _byte_location(data, exc.start, str(path)),
                        "save the file as UTF-8") from None
    return load_spec_text(text, str(path), overrides)


def _byte_location(data: bytes, offset: int, filename: str) -> SourceLocation:
    """The line and column of a byte offset (columns count characters, bad bytes one each)."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    line = data[start: end if end >= 0 else len(data)].decode("utf-8", "replace")
    col = len(data[start:offset].decode("utf-8", "replace")) + 1
    return SourceLocation(filename, data.count(b"\n", 0, offset) + 1, col, line)


def load_spec_text(text: str, filename: str = "<spec>", overrides: Iterable[str] = ()) -> Spec:
    overrides = tuple(overrides)
    tree = apply_overrides(parse_yaml(text, filename), overrides)
    checked = validate(tree)
    raw = checked.value
    locs = checked.locations
    tree_strings = _strings(tree)
    _cross_check(raw, locs)

    (field_name, field_raw), = raw["fields"].items()
    grid_raw = raw["grid"]
    norm_raw = raw["stabilizers"]["norm"]
    time_raw = raw["time"]

    parameters = {}
    for name, p in raw["parameters"].items():
        p = p if isinstance(p, dict) else {"value": p, "learnable": False, "positive": False,
                                          "per_layer": False, "basis": None}
        basis = (p["basis"]["kind"], p["basis"]["size"]) if p.get("basis") else None
        parameters[name] = ParameterDecl(name, float(p["value"]), p["learnable"], p["positive"],
                                         p["per_layer"], basis)
    terms = {name: tree_strings[f"terms.{name}"] for name in raw["terms"]}
    digest_source = text.encode("utf-8") + "".join(f"\n--set {o}" for o in overrides).encode()
    return Spec(
        file=filename,
        sha256=hashlib.sha256(digest_source).hexdigest(),
        name=raw["name"],
        description=raw["description"],
        grid=Grid(tuple(grid_raw["axes"]), tuple(grid_raw["shape"]) if grid_raw["shape"] else None,
                  float(grid_raw["spacing"]), grid_raw["boundary"], grid_raw["extra_tokens"],
                  grid_raw["padding"]),
        field=FieldDecl(field_name, field_raw["channels"]),
        parameters=frozen_mapping(parameters),
        terms=frozen_mapping(terms),
        equation=tree_strings["equation"],
        stabilizers=Stabilizers(
            raw["stabilizers"]["residual"],
            NormSpec(norm_raw["kind"], norm_raw["placement"], float(norm_raw["eps"]),
                     norm_raw["final"], norm_raw["affine"],
                     tuple(norm_raw["terms"]) if norm_raw["terms"] is not None else None),
        ),
        time=TimeSpec((float(time_raw["span"][0]), float(time_raw["span"][1])),
                      time_raw["layers"], time_raw["substeps"], time_raw["scheme"],
                      tuple(time_raw["split_order"]) if time_raw["split_order"] else None,
                      tuple(time_raw["implicit"]), time_raw["tied"]),
        accuracy=frozen_mapping({op: cfg["accuracy"]
                                 for op, cfg in raw["discretization"].items()}),
        init=_initial_condition(raw["init"], locs, filename),
        locations=frozen_mapping(locs),
        raw=raw,
    )


def _initial_condition(text: str | None, locs: dict, filename: str) -> Init | None:
    """The spec's ``init:``, parsed now so that a typo fails as early as any other; a file
    name is relative to the spec's folder."""
    if text is None:
        return None
    folder = Path(filename).parent if not filename.startswith("<") else None
    return parse_init(text, "init:", where=locs.get("init"), relative_to=folder)


def canonical_hash(spec: Spec) -> str:
    """sha256 of the validated values: the same model, whatever its formatting or comments."""
    blob = json.dumps({"raw": spec.raw}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _strings(tree: LocatedNode) -> dict[str, SourceString]:
    out: dict[str, SourceString] = {}
    equation = tree.value.get("equation")
    if equation is not None:
        out["equation"] = SourceString(equation.value, equation.location, equation.origin)
    terms = tree.value.get("terms")
    if terms is not None and terms.is_mapping:
        for name, node in terms.value.items():
            out[f"terms.{name}"] = SourceString(node.value, node.location, node.origin)
    return out


def _check_dt(span: list, steps: int, where) -> None:
    """Δt = (t1 − t0) / (layers × substeps) is printed into the generated module as ``DT``:
    it must be a finite, non-zero float64 (each bound is finite already, but their
    difference can overflow — ``[-1.0e+308, 1.7e+308]`` — or the quotient underflow)."""
    t0, t1 = float(span[0]), float(span[1])
    length = t1 - t0
    dt = length / steps
    if not math.isfinite(dt):
        raise SpecError(f"Δt = (t1 − t0) / (layers × substeps) = ({t1!r} − ({t0!r})) / "
                        f"{steps:,} overflows float64 (t1 − t0 is larger than 1.8e308)", where,
                        f"shift or shorten 'time.span' so that t1 − t0 is finite, e.g. "
                        f"[0, {min(t1, 1.0e300)!r}]")
    if dt == 0:
        raise SpecError(f"Δt = (t1 − t0) / (layers × substeps) = {length!r} / {steps:,} "
                        "underflows float64 to 0", where,
                        "lengthen 'time.span' or use fewer layers or substeps")


def _cross_check(raw: dict, locs: dict) -> None:
    """Constraints that involve more than one key."""
    fields = raw["fields"]
    if len(fields) != 1:
        where = locs.get("fields")
        names = ", ".join(fields) or "none"
        raise SpecError(f"pdelang 1 integrates exactly one field; this spec declares {names}",
                        where, "use one field with more channels")
    grid = raw["grid"]
    axes = grid["axes"]
    if len(set(axes)) != len(axes):
        raise SpecError("'grid.axes' names an axis twice", locs.get("grid.axes"))
    if len(axes) == 2 and grid["shape"] is None:
        raise SpecError("a 2-D grid needs 'grid.shape: [rows, cols]'", locs.get("grid.axes"),
                        "add e.g. 'shape: [4, 4]' under grid")
    if grid["shape"] is not None and len(grid["shape"]) != len(axes):
        raise SpecError(f"'grid.shape' has {len(grid['shape'])} entries for {len(axes)} axes",
                        locs.get("grid.shape"))
    steps = raw["time"]["layers"] * raw["time"]["substeps"]
    if steps > MAX_TOTAL_STEPS:
        raise SpecError(f"time.layers × time.substeps = {steps:,} steps; at most "
                        f"{MAX_TOTAL_STEPS:,}", locs.get("time.substeps", locs.get("time.layers")),
                        "use fewer layers or substeps")
    span = raw["time"]["span"]
    if not span[1] > span[0]:
        raise SpecError(f"'time.span' must increase, got [{span[0]}, {span[1]}]",
                        locs.get("time.span"), "write [t0, t1] with t1 > t0")
    _check_dt(span, steps, locs.get("time.span"))

    if not raw["name"][:1].isalpha():
        raise SpecError(f"the spec name '{raw['name']}' must start with a letter (it names the "
                        "generated class)", locs.get("name"), f"e.g. 'm{raw['name']}'")
    for name, p in raw["parameters"].items():
        loc = locs.get(f"parameters.{name}#key")
        if isinstance(p, dict) and p["positive"] and not p["value"] > 0:
            raise SpecError(f"parameter '{name}' is positive but its value is {p['value']:g}",
                            locs.get(f"parameters.{name}.value", loc),
                            "give a value > 0 (the softplus parametrization cannot reach ≤ 0)")
        if isinstance(p, dict) and p.get("basis"):
            where = locs.get(f"parameters.{name}.basis", loc)
            if p["per_layer"]:
                raise SpecError(f"parameter '{name}' has both per_layer and a basis: a basis "
                                "already makes it a function of depth", where,
                                "drop per_layer: true (or the basis)")
            if p["positive"]:
                raise SpecError(f"parameter '{name}' is positive and has a basis: a sum of "
                                "basis functions is not kept positive", where,
                                "drop positive: true, or keep the parameter constant")
            if not p["learnable"]:
                raise SpecError(f"parameter '{name}' has a basis but is not learnable: its "
                                "coefficients would stay (value, 0, …), a constant", where,
                                "add learnable: true, or drop the basis")
        if isinstance(p, dict) and p["per_layer"] and raw["time"]["tied"]:
            raise SpecError(f"parameter '{name}' is per_layer, but time.tied shares one weight "
                            "set among all layers", locs.get(f"parameters.{name}.per_layer", loc),
                            "give it a basis instead (a smooth function of depth): "
                            "basis: {kind: legendre, size: 3}")

    field_name = next(iter(fields))
    taken: dict[str, str] = {field_name: "field"}
    for kind, names in (("parameter", raw["parameters"]), ("term", raw["terms"])):
        for name in names:
            loc = locs.get(f"{kind}s.{name}#key")
            if name in RESERVED:
                raise SpecError(f"'{name}' is reserved and cannot name a {kind}", loc,
                                f"rename it, e.g. '{name}_'")
            if name in OPERATORS:
                raise SpecError(f"{kind} '{name}' shadows the operator '{name}'", loc,
                                f"rename it, e.g. '{name}_term'")
            if name in axes:
                raise SpecError(f"{kind} '{name}' has the name of a grid axis", loc)
            if name in taken:
                raise SpecError(f"{kind} '{name}' is already declared as a {taken[name]}", loc,
                                "every name must be unique")
            taken[name] = kind

    terms = raw["terms"]
    split = raw["time"]["split_order"] or []
    for i, name in enumerate(split):
        if name not in terms:
            raise SpecError(f"'time.split_order' names '{name}', which is not a term",
                            locs.get(f"time.split_order[{i}]"), did_you_mean(name, terms))
    if len(set(split)) != len(split):
        raise SpecError("'time.split_order' lists a term twice", locs.get("time.split_order"))
    for i, name in enumerate(raw["time"]["implicit"]):
        if name not in terms:
            raise SpecError(f"'time.implicit' names '{name}', which is not a term",
                            locs.get(f"time.implicit[{i}]"), did_you_mean(name, terms))
    norm_terms = raw["stabilizers"]["norm"]["terms"] or []
    for i, name in enumerate(norm_terms):
        if name not in terms:
            raise SpecError(f"'stabilizers.norm.terms' names '{name}', which is not a term",
                            locs.get(f"stabilizers.norm.terms[{i}]"), did_you_mean(name, terms))
