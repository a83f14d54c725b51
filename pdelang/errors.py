"""User-facing errors.

Every error a user can cause with a spec or a command line is a :class:`PdelangError`.
It carries the place in the source (``file:line:col``), renders the offending line with a
caret under the column, and adds a suggestion where one exists.  The CLI prints
``str(error)`` and exits with code 2 — no traceback ever reaches a user for a bad spec.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from collections.abc import Iterable


_LONG_LINE = 1000  # a longer source line is shown as a window of 2 × _WINDOW characters
_WINDOW = 100


@dataclass(frozen=True)
class SourceLocation:
    """A position in a source: 1-based line and column, plus the text of that line."""

    file: str
    line: int
    col: int
    source_line: str | None = None
    length: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, columns: int, length: int = 1) -> SourceLocation:
        """The location ``columns`` characters to the right on the same line."""
        return SourceLocation(self.file, self.line, self.col + columns, self.source_line, length)

    def caret(self) -> str:
        """The source line and a caret line under the column (``^~~~`` for a span)."""
        if self.source_line is None:
            return ""
        # one character per column: control characters (a newline inside an override, a
        # NUL) would break the picture, so they are shown as '?'
        text = "".join(ch if ch >= " " or ch == "\t" else "?"
                       for ch in self.source_line.rstrip("\r\n"))
        col = self.col
        if len(text) > _LONG_LINE:  # a very long line: show a window around the column
            start = max(0, min(col - 1 - _WINDOW // 2, len(text) - 2 * _WINDOW))
            end = start + 2 * _WINDOW
            text = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
            col = col - start + (1 if start else 0)
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: max(col - 1, 0)])
        marks = "^" + "~" * max(min(self.length, len(text) - col + 1) - 1, 0)
        gutter = f"{self.line:>5} | "
        return f"{gutter}{text}\n{' ' * (len(gutter) - 2)}| {pad}{marks}"


UNKNOWN_LOCATION = SourceLocation("<unknown>", 0, 0)


class PdelangError(Exception):
    """Base of every error that is the user's to fix (exit code 2 in the CLI)."""

    kind = "error"

    def __init__(
        self,
        message: str,
        location: SourceLocation | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.suggestion = suggestion

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location and self.location.line else ""
        parts = [f"{where}{self.kind}: {self.message}"]
        if self.location is not None:
            caret = self.location.caret()
            if caret:
                parts.append(caret)
        if self.suggestion:
            parts.append(f"hint: {self.suggestion}")
        return "\n".join(parts)

    def to_json(self) -> dict:
        loc = self.location
        return {
            "kind": self.kind,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "suggestion": self.suggestion,
        }


class SpecSyntaxError(PdelangError):
    """The file is not well-formed YAML."""

    kind = "yaml error"


class SpecError(PdelangError):
    """The YAML is well-formed but does not describe a valid spec (keys, types, ranges)."""

    kind = "spec error"


class OverrideError(SpecError):
    """A ``--set KEY=VALUE`` override is malformed or invalid."""

    kind = "override error"


class ExpressionSyntaxError(PdelangError):
    """A term or the equation does not parse in the term grammar."""

    kind = "syntax error"


class NameResolutionError(PdelangError):
    """An expression names something that is not declared."""

    kind = "name error"


class CycleError(PdelangError):
    """Named terms refer to each other in a cycle."""

    kind = "cycle error"


class OperatorError(PdelangError):
    """An operator call is unknown, has the wrong arity or a bad option."""

    kind = "operator error"


class AnalysisError(PdelangError):
    """The spec is well-formed but its equation cannot be analysed or discretized."""

    kind = "analysis error"


class RuntimeCheckError(PdelangError):
    """A run produced NaN/Inf or another condition the user must look at."""

    kind = "runtime error"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean …?' suggestion for a misspelt ``name`` or ``None``."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
