"""YAML text → a located tree (stage ``load``, first half).

PyYAML's *composer* (safe resolver) gives nodes with start marks; we turn them into
:class:`LocatedNode` values that keep ``file:line:col`` for every mapping key and value.
Scalars are constructed with PyYAML's ``SafeConstructor`` only — never an unsafe loader.
Duplicate keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from pdelang.errors import SourceLocation, SpecSyntaxError


@dataclass(frozen=True)
class TextOrigin:
    """Where each character of a string scalar sits in the source file.

    ``line_starts[i]`` is the location of the first character of the i-th line of the
    scalar's value.  Used to point *inside* an expression string.
    """

    line_starts: tuple[SourceLocation, ...]

    def locate(self, offset: int, text: str, length: int = 1) -> SourceLocation:
        line_index = text.count("\n", 0, offset)
        line_begin = text.rfind("\n", 0, offset) + 1
        starts = self.line_starts
        base = starts[min(line_index, len(starts) - 1)]
        return base.shifted(offset - line_begin, length)


@dataclass(frozen=True)
class LocatedNode:
    """A YAML value with its location; mappings keep the locations of their keys too."""

    value: Any  # dict[str, LocatedNode] | list[LocatedNode] | scalar
    location: SourceLocation
    key_locations: dict[str, SourceLocation] = field(default_factory=dict)
    origin: TextOrigin | None = None  # for string scalars

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)

    def plain(self) -> Any:
        """The value without locations (for error messages and JSON)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class SourceText:
    """A source file's text, split into lines for caret rendering."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.text = text
        self.lines = text.splitlines()

    def location(self, line0: int, col0: int, length: int = 1) -> SourceLocation:
        """Location from PyYAML's 0-based line and column."""
        source_line = self.lines[line0] if 0 <= line0 < len(self.lines) else ""
        return SourceLocation(self.filename, line0 + 1, col0 + 1, source_line, length)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar_origin(node: yaml.ScalarNode, source: SourceText) -> TextOrigin:
    mark = node.start_mark
    style = node.style
    if style in ("|", ">"):
        # Block scalar: content starts on the following lines, at their indentation.
        starts = []
        for line0 in range(mark.line + 1, node.end_mark.line + 1):
            text = source.lines[line0] if line0 < len(source.lines) else ""
            if not text.strip():
                continue
            indent = len(text) - len(text.lstrip(" "))
            starts.append(source.location(line0, indent))
        return TextOrigin(tuple(starts) or (source.location(mark.line, mark.column),))
    quote = 1 if style in ("'", '"') else 0
    starts = [source.location(mark.line, mark.column + quote)]
    for line0 in range(mark.line + 1, node.end_mark.line + 1):
        text = source.lines[line0] if line0 < len(source.lines) else ""
        indent = len(text) - len(text.lstrip(" "))
        starts.append(source.location(line0, indent))
    return TextOrigin(tuple(starts))


def _convert(node: yaml.Node, source: SourceText) -> LocatedNode:
    loc = source.location(node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.MappingNode):
        values: dict[str, LocatedNode] = {}
        keys: dict[str, SourceLocation] = {}
        for key_node, value_node in node.value:
            key_loc = source.location(key_node.start_mark.line, key_node.start_mark.column)
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecSyntaxError("mapping keys must be plain names", key_loc)
            key = _CONSTRUCTOR.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)
            key_loc = SourceLocation(key_loc.file, key_loc.line, key_loc.col,
                                     key_loc.source_line, len(key))
            if key in values:
                raise SpecSyntaxError(
                    f"duplicate key '{key}' (first given at line {keys[key].line})",
                    key_loc,
                    "remove one of the two entries",
                )
            keys[key] = key_loc
            values[key] = _convert(value_node, source)
        return LocatedNode(values, loc, keys)
    if isinstance(node, yaml.SequenceNode):
        return LocatedNode([_convert(item, source) for item in node.value], loc)
    value = _CONSTRUCTOR.construct_object(node)
    origin = _scalar_origin(node, source) if isinstance(value, str) else None
    return LocatedNode(value, loc, origin=origin)


def parse_yaml(text: str, filename: str) -> LocatedNode:
    """Parse YAML text into a located tree; malformed YAML is a :class:`SpecSyntaxError`."""
    source = SourceText(filename, text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = source.location(mark.line, mark.column) if mark else None
        problem = exc.problem or exc.context or "malformed YAML"
        hint = None
        if "\t" in text and "tab" in str(problem).lower() + str(exc).lower():
            hint = "YAML indentation must use spaces, not tabs"
        elif "mapping values are not allowed" in str(problem):
            hint = "quote the value if it contains ': ' (e.g. \"a: b\")"
        raise SpecSyntaxError(f"malformed YAML: {problem}", loc, hint) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        raise SpecSyntaxError(f"malformed YAML: {exc}", SourceLocation(filename, 1, 1)) from None
    if root is None:
        raise SpecSyntaxError("the spec file is empty", SourceLocation(filename, 1, 1),
                              "start from specs/master.yaml")
    return _convert(root, source)
