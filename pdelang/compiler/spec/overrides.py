"""Hydra-style ``--set KEY=VALUE`` overrides, applied to the located YAML tree.

The value is read as a YAML flow scalar or collection (``true``, ``0.5``, ``[0, 12]``,
``{kind: rmsnorm}``) and then validated like the file, so a bad override gets the same
precise message — located at the override itself (``<--set>:1:col``), which it names.
"""

from __future__ import annotations

import re
from dataclasses import replace

import yaml

from pdelang.errors import OverrideError, SourceLocation, SpecError, did_you_mean
from pdelang.compiler.spec import schema as S
from pdelang.compiler.spec.yaml_source import (LocatedNode, SourceText, TextOrigin, check_size,
                                       compose_checked)

# matched with fullmatch: "$" would accept a key that ends in a newline
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_KEY_PARTS = 16  # deeper than any key of the spec format


def _located(value, loc: SourceLocation) -> LocatedNode:
    if isinstance(value, dict):
        return LocatedNode({str(k): _located(v, loc) for k, v in value.items()}, loc,
                           {str(k): loc for k in value})
    if isinstance(value, list):
        return LocatedNode([_located(v, loc) for v in value], loc)
    origin = TextOrigin((loc,)) if isinstance(value, str) else None
    return LocatedNode(value, loc, origin=origin)


def parse_override(text: str) -> tuple[list[str], object, SourceLocation]:
    """Split ``KEY=VALUE`` into the key path, the YAML value and the value's location."""
    source_line = f"--set {text}"
    whole = SourceLocation("<--set>", 1, 7, source_line, len(text))
    if "=" not in text:
        raise OverrideError(f"override {S.shown(text)} has no '='", whole,
                            "write --set KEY=VALUE, e.g. --set stabilizers.residual=false")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not _KEY.fullmatch(key) or key.count(".") >= _MAX_KEY_PARTS:
        raise OverrideError(f"override key {S.shown(key)} is not a dotted name",
                            whole.shifted(0, len(key)),
                            "write --set section.key=value")
    value_loc = SourceLocation("<--set>", 1, 7 + len(text.split("=", 1)[0]) + 1, source_line,
                               max(len(raw), 1))
    try:
        if raw.strip():
            # the limits of a spec file (size, depth, aliases) hold for the value too
            check_size(raw, "<--set>")
            compose_checked(raw, SourceText("<--set>", raw))
            value = yaml.safe_load(raw)
        else:
            value = None
    except SpecError as exc:
        raise OverrideError(f"--set {S.shown(text)[1:-1]}: {exc.message}", value_loc,
                            exc.suggestion) from None
    except (yaml.YAMLError, ValueError, TypeError):  # ValueError: int('9' * 5000)
        raise OverrideError(f"--set {S.shown(text)[1:-1]}: the value {S.shown(raw)} is not "
                            "valid YAML", value_loc,
                            "quote strings that contain ':' or brackets") from None
    return key.split("."), value, value_loc


def _coerce(schema, value):
    """Command-line numbers like ``1e-3`` are YAML strings; read them as the schema wants."""
    if isinstance(schema, S.Either):
        schema = schema.options[0]
    if isinstance(schema, S.Scalar) and isinstance(value, str):
        if schema.kind == "float":
            try:
                return float(value)
            except ValueError:
                return value
    if isinstance(schema, S.Scalar) and schema.kind == "str" and isinstance(value, bool):
        # `--set stabilizers.norm.kind=none` is fine; but YAML reads `off`/`no` as booleans.
        return value
    return value


def apply_override(root: LocatedNode, text: str) -> LocatedNode:
    path, value, loc = parse_override(text)
    for depth in range(1, len(path) + 1):
        if S.schema_at(path[:depth]) is None:
            parent = path[: depth - 1]
            bad = path[depth - 1]
            key_col = len(".".join(path[: depth - 1])) + (1 if depth > 1 else 0)
            key_loc = SourceLocation("<--set>", 1, 7 + key_col, f"--set {text}", len(bad))
            prefix = ".".join(parent) + "." if parent else ""
            raise OverrideError(f"--set {S.shown(text)[1:-1]}: unknown key '{prefix}{bad}'",
                                key_loc,
                                did_you_mean(bad, S.field_names_at(parent)))
    if path[0] == "parameters" and len(path) > 1:
        _check_declared(root, path[1], text)
    value = _coerce(S.schema_at(path), value)
    return _set(root, path, _located(value, loc), loc)


def _check_declared(root: LocatedNode, name: str, text: str) -> None:
    """``--set parameters.X…`` sets a parameter the spec (or an earlier override) declares:
    an X that is not declared is a typo (``parameters.d`` for ``D``), not a new parameter —
    those are declared in the file, or with the whole mapping (``--set parameters={…}``)."""
    section = root.value.get("parameters") if root.is_mapping else None
    if section is None:
        declared: list[str] = []
    elif section.is_mapping:
        declared = [str(k) for k in section.value]
    else:
        return  # not a mapping: the schema reports it, located in the file
    if name in declared:
        return
    source_line = f"--set {text}"
    where = SourceLocation("<--set>", 1, 7 + len("parameters."), source_line, len(name))
    same_letters = [d for d in declared if d.lower() == name.lower()]  # 'd' for 'D'
    hint = f"did you mean '{same_letters[0]}'?" if same_letters else did_you_mean(name, declared)
    add = ("to add a new parameter, declare it in the spec under 'parameters:' or replace "
           "the whole mapping, --set 'parameters={…}'")
    listed = (f"the spec declares {', '.join(repr(d) for d in sorted(declared))}"
              if declared else "the spec declares no parameters")
    raise OverrideError(f"--set {S.shown(text)[1:-1]}: parameter '{name}' is not declared "
                        f"({listed})", where, f"{hint} ({add})" if hint else add)


def _set(node: LocatedNode, path: list[str], new: LocatedNode, loc: SourceLocation) -> LocatedNode:
    if not path:
        return new
    if not node.is_mapping:
        # e.g. `parameters.D.value=…` where the file says `D: 0.1` (the short form)
        node = LocatedNode({"value": node}, node.location, {"value": node.location})
    head, rest = path[0], path[1:]
    children = dict(node.value)
    keys = dict(node.key_locations)
    child = children.get(head, LocatedNode({}, loc))
    children[head] = _set(child, rest, new, loc)
    keys.setdefault(head, loc)
    return replace(node, value=children, key_locations=keys)


def apply_overrides(root: LocatedNode, overrides) -> LocatedNode:
    for text in overrides or ():
        root = apply_override(root, text)
    return root
