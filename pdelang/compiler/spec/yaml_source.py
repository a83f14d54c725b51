"""YAML text → a located tree (stage ``load``, first half).

PyYAML's *composer* (safe resolver) gives nodes with start marks; we turn them into
:class:`LocatedNode` values that keep ``file:line:col`` for every mapping key and value.
Scalars are constructed with PyYAML's ``SafeConstructor`` only — never an unsafe loader.
Duplicate keys are an error (PyYAML silently keeps the last one).

Resource limits (:mod:`pdelang.compiler.spec.limits`) are checked on PyYAML's event stream, as the
composer consumes it and before it recurses: the nesting depth of collections, and the
number of values once every alias is expanded (an "alias bomb" — a few lines whose aliases
expand to billions of values — is refused at the alias that crosses the limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pdelang.errors import SourceLocation, SpecError, SpecSyntaxError
from pdelang.compiler.spec.limits import how_to_raise, limit


@dataclass(frozen=True)
class TextOrigin:
    """Where each character of a string scalar sits in the source file.

    ``segments`` pairs an offset in the scalar's *value* with the source location of that
    character: one segment per source line of the scalar (YAML folds plain, quoted and ``>``
    scalars, so value lines and source lines differ).  ``line_starts[i]`` (the location of
    the first character of the i-th line of the value) is the fallback when there are no
    segments.  Used to point *inside* an expression string.
    """

    line_starts: tuple[SourceLocation, ...]
    segments: tuple[tuple[int, SourceLocation], ...] = ()

    def locate(self, offset: int, text: str, length: int = 1) -> SourceLocation:
        if self.segments:
            start, base = self.segments[0]
            for seg_offset, seg_loc in self.segments[1:]:
                if seg_offset > offset:
                    break
                start, base = seg_offset, seg_loc
            return base.shifted(max(offset - start, 0), length)
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

    def preview(self, items: int = 5, depth: int = 3) -> Any:
        """:meth:`plain` of the first few items of each collection, a few levels deep (for
        messages: an aliased value may stand for thousands)."""
        if depth <= 0 and (self.is_mapping or self.is_sequence):
            return [] if self.is_sequence else {}
        if isinstance(self.value, dict):
            return {k: v.preview(items, depth - 1)
                    for k, v in list(self.value.items())[:items]}
        if isinstance(self.value, list):
            return [v.preview(items, depth - 1) for v in self.value[:items]]
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


def _scalar_pieces(node: yaml.ScalarNode, source: SourceText) -> list[tuple[int, int, str]]:
    """(line0, col0, text) of the scalar's content on each of its source lines."""
    mark, end = node.start_mark, node.end_mark
    pieces = []
    if node.style in ("|", ">"):
        indent = None
        for line0 in range(mark.line + 1, min(end.line, len(source.lines) - 1) + 1):
            if line0 == end.line and end.column == 0:
                break  # the scalar ends before the next key's line
            text = source.lines[line0]
            if not text.strip():
                continue
            here = len(text) - len(text.lstrip(" "))
            if indent is None:
                indent = here
            if here < indent:
                break
            pieces.append((line0, indent, text[indent:].rstrip()))
        return pieces
    quote = 1 if node.style in ("'", '"') else 0
    for line0 in range(mark.line, min(end.line, len(source.lines) - 1) + 1):
        text = source.lines[line0]
        lo = mark.column + quote if line0 == mark.line else 0
        hi = end.column - quote if line0 == end.line else len(text)
        piece = text[lo:hi]
        if line0 != mark.line:
            stripped = piece.lstrip(" \t")
            lo += len(piece) - len(stripped)
            piece = stripped
        piece = piece.rstrip()
        if piece:
            pieces.append((line0, lo, piece))
    return pieces


_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


def _literal_runs(piece: str, col0: int, escapes: bool) -> list[tuple[int, str]]:
    """(col0, text) of the parts of a source line that appear verbatim in the value
    (in a double-quoted scalar, the text between escape sequences such as ``\\t``)."""
    if not escapes or "\\" not in piece:
        return [(col0, piece)]
    runs, start, i = [], 0, 0
    while i < len(piece):
        if piece[i] == "\\":
            if i > start:
                runs.append((col0 + start, piece[start:i]))
            i += _ESCAPE_LENGTH.get(piece[i + 1: i + 2], 2)
            start = i
        else:
            i += 1
    if start < len(piece):
        runs.append((col0 + start, piece[start:]))
    return runs


def _scalar_origin(node: yaml.ScalarNode, value: str, source: SourceText) -> TextOrigin:
    mark = node.start_mark
    style = node.style
    # Segments: find each source line's content in the (folded) value, in order.
    segments = []
    pos = 0
    for line0, col0, piece in _scalar_pieces(node, source):
        for run_col, run in _literal_runs(piece, col0, style == '"'):
            found = value.find(run, pos)
            if found < 0:
                continue
            segments.append((found, source.location(line0, run_col)))
            pos = found + len(run)
    if style in ("|", ">"):
        # Block scalar: content starts on the following lines, at their indentation.
        starts = []
        for line0 in range(mark.line + 1, node.end_mark.line + 1):
            text = source.lines[line0] if line0 < len(source.lines) else ""
            if not text.strip():
                continue
            indent = len(text) - len(text.lstrip(" "))
            starts.append(source.location(line0, indent))
        return TextOrigin(tuple(starts) or (source.location(mark.line, mark.column),),
                          tuple(segments))
    quote = 1 if style in ("'", '"') else 0
    starts = [source.location(mark.line, mark.column + quote)]
    for line0 in range(mark.line + 1, node.end_mark.line + 1):
        text = source.lines[line0] if line0 < len(source.lines) else ""
        indent = len(text) - len(text.lstrip(" "))
        starts.append(source.location(line0, indent))
    return TextOrigin(tuple(starts), tuple(segments))


def _tag_name(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


def _check_tag(node: yaml.Node, loc: SourceLocation) -> None:
    """Only the tags of plain YAML values (no ``!!python/…``, no custom ``!tag``)."""
    if node.tag not in _CONSTRUCTOR.yaml_constructors:
        raise SpecSyntaxError(f"unsupported YAML tag '{_tag_name(node.tag)}'", loc,
                              "write a plain value, without a '!' tag")


def _construct(node: yaml.ScalarNode, loc: SourceLocation):
    _check_tag(node, loc)
    try:
        return _CONSTRUCTOR.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError):  # e.g. `!!float abc`
        raise SpecSyntaxError(f"cannot read {node.value!r} as {_tag_name(node.tag)}", loc,
                              "remove the tag or fix the value") from None


def _convert(node: yaml.Node, source: SourceText, done: dict | None = None) -> LocatedNode:
    """The located tree of a composed node; an aliased node is converted once and shared
    (the located tree is immutable)."""
    done = {} if done is None else done
    if id(node) in done:
        return done[id(node)]
    converted = _convert_node(node, source, done)
    done[id(node)] = converted
    return converted


def _convert_node(node: yaml.Node, source: SourceText, done: dict) -> LocatedNode:
    loc = source.location(node.start_mark.line, node.start_mark.column)
    _check_tag(node, loc)
    if isinstance(node, yaml.MappingNode):
        values: dict[str, LocatedNode] = {}
        keys: dict[str, SourceLocation] = {}
        for key_node, value_node in node.value:
            key_loc = source.location(key_node.start_mark.line, key_node.start_mark.column)
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecSyntaxError("mapping keys must be plain names", key_loc)
            key = _construct(key_node, key_loc)
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
            values[key] = _convert(value_node, source, done)
        return LocatedNode(values, loc, keys)
    if isinstance(node, yaml.SequenceNode):
        return LocatedNode([_convert(item, source, done) for item in node.value], loc)
    value = _construct(node, loc)
    origin = _scalar_origin(node, value, source) if isinstance(value, str) else None
    return LocatedNode(value, loc, origin=origin)


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting what the composer takes from the event stream:
    collections deeper than the depth limit and more values than the value limit (aliases
    expanded) are refused at the event that crosses the limit, before the composer (which
    recurses once per level) goes any deeper."""

    def __init__(self, text: str, source: SourceText, depth_limit: int, value_limit: int):
        super().__init__(text)
        self._source = source
        self._depth_limit = depth_limit
        self._value_limit = value_limit
        self._frames: list[list] = []  # [anchor, values] of each open collection
        self._sizes: dict[str, int] = {}  # anchor → values of its node, aliases expanded
        self._values = 0

    def _count(self, event, values: int) -> None:
        self._values += values
        if self._frames:
            self._frames[-1][1] += values
        if self._values > self._value_limit:
            alias = isinstance(event, yaml.AliasEvent)
            mark = event.start_mark
            raise SpecError(
                "the YAML has too many values" + (
                    f" once its aliases are expanded (the alias *{event.anchor} repeats "
                    f"{values:,} values; an alias bomb?)" if alias else ""),
                self._source.location(mark.line, mark.column),
                how_to_raise("yaml_values"))

    def get_event(self):
        event = super().get_event()
        if isinstance(event, yaml.AliasEvent) and any(f[0] == event.anchor
                                                      for f in self._frames):
            mark = event.start_mark
            raise SpecError(f"the alias *{event.anchor} refers to the collection that contains "
                            "it (a value that contains itself)",
                            self._source.location(mark.line, mark.column),
                            "a spec value cannot contain itself; write the value out")
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            size = self._sizes.get(event.anchor, 1) if isinstance(event, yaml.AliasEvent) else 1
            self._count(event, size)
            if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
                self._sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self._frames) >= self._depth_limit:
                mark = event.start_mark
                raise SpecError("the YAML nests lists and mappings too deeply",
                                self._source.location(mark.line, mark.column),
                                how_to_raise("yaml_depth"))
            self._count(event, 1)
            self._frames.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent) and self._frames:
            anchor, values = self._frames.pop()
            if anchor is not None:
                self._sizes[anchor] = values
        return event


def compose_checked(text: str, source: SourceText) -> yaml.Node | None:
    """``yaml.compose`` with the safe loader and the depth and value limits."""
    loader = _GuardedLoader(text, source, limit("yaml_depth"), limit("yaml_values"))
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def check_size(text: str, filename: str) -> None:
    """Refuse a spec text larger than the ``spec_bytes`` limit before parsing it."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit("spec_bytes"):
        first = text[:200].split("\n", 1)[0]
        raise SpecError(f"the spec is {size:,} bytes long, too large for a spec file",
                        SourceLocation(filename, 1, 1, first), how_to_raise("spec_bytes"))


def _offset_location(text: str, offset: int, filename: str) -> SourceLocation:
    """The location of a character offset in a text."""
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    source_line = text[line_start: line_end if line_end >= 0 else len(text)]
    return SourceLocation(filename, text.count("\n", 0, offset) + 1, offset - line_start + 1,
                          source_line)


_ENTRY = re.compile(r"( *)(?:- +)?([^\s:#][^:#]*?) *: +[^\s#]")  # `key: value` on one line


def _continued_value(source: SourceText, line0: int) -> SpecSyntaxError | None:
    """The error for a key indented deeper than the ``key: value`` line above it: YAML reads
    that line as the continuation of the value above, and then stumbles on its ':'."""
    text = source.lines[line0] if line0 < len(source.lines) else ""
    indent = len(text) - len(text.lstrip(" "))
    above = line0 - 1
    while above >= 0 and (not source.lines[above].strip()
                          or source.lines[above].lstrip().startswith("#")):
        above -= 1
    if above < 0 or not text.strip():
        return None
    entry = _ENTRY.match(source.lines[above])
    if entry is None or len(entry.group(1)) >= indent:
        return None
    sibling, column = entry.group(2), len(entry.group(1)) + 1
    key = text.strip().split(":", 1)[0]
    return SpecSyntaxError(
        f"malformed YAML: '{key}' is indented more than '{sibling}' on the line above, so it "
        f"continues that value", source.location(line0, indent, max(len(key), 1)),
        f"indent '{key}' like '{sibling}' (column {column}), or fix the indentation of the "
        "line above")


def parse_yaml(text: str, filename: str) -> LocatedNode:
    """Parse YAML text into a located tree; malformed YAML is a :class:`SpecSyntaxError`."""
    check_size(text, filename)
    source = SourceText(filename, text)
    try:
        root = compose_checked(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = source.location(mark.line, mark.column) if mark else None
        problem = exc.problem or exc.context or "malformed YAML"
        if exc.problem and exc.context and exc.context_mark and exc.problem_mark \
                and exc.context_mark.line != exc.problem_mark.line:
            # e.g. an unclosed '[': say where the construct that is left open started.
            problem = (f"{problem} ({exc.context.removeprefix('while parsing ')} started at "
                       f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})")
        hint = None
        # PyYAML spells a tab as the two characters backslash and t ("found character '\t'").
        if "\t" in text and ("\\t" in str(problem) or "tab" in str(problem).lower()):
            hint = "YAML indentation must use spaces, not tabs"
        elif "expected <block end>" in str(problem):
            hint = "check the indentation: the keys of one mapping start in the same column"
        elif "mapping values are not allowed" in str(problem):
            hint = "quote the value if it contains ': ' (e.g. \"a: b\")"
            if mark is not None:
                continued = _continued_value(source, mark.line)
                if continued is not None:
                    raise continued from None
        raise SpecSyntaxError(f"malformed YAML: {problem}", loc, hint) from None
    except yaml.reader.ReaderError as exc:  # a control character, a lone surrogate …
        raise SpecSyntaxError(f"malformed YAML: {exc.reason} (character #x{exc.character:04x})"
                              if isinstance(exc.character, int) else f"malformed YAML: {exc}",
                              _offset_location(text, exc.position, filename),
                              "remove the character, or write it as an escape in a "
                              "double-quoted string") from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        raise SpecSyntaxError(f"malformed YAML: {exc}", SourceLocation(filename, 1, 1)) from None
    if root is None:
        raise SpecSyntaxError("the spec file is empty", source.location(0, 0),
                              "start from specs/master.yaml")
    return _convert(root, source)
