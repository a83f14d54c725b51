"""Comma-separated option values (``--depths 4,8,16``) each with its location, for the
located errors of ``pdelang phase`` (legacy and study grids alike)."""

from __future__ import annotations

from pdelang.errors import OverrideError, SourceLocation

__all__ = ["option_items"]


def option_items(option: str, text: str) -> list[tuple[str, SourceLocation]]:
    """The comma-separated values of ``--option TEXT``, each with its location."""
    line = f"{option} {text}"
    items, start = [], 0
    for piece in text.split(","):
        stripped = piece.strip()
        column = len(option) + 2 + start + (len(piece) - len(piece.lstrip()))
        if stripped:
            items.append((stripped, SourceLocation(f"<{option}>", 1, column, line,
                                                   len(stripped))))
        start += len(piece) + 1
    if not items:
        raise OverrideError(f"{option} lists no values",
                            SourceLocation(f"<{option}>", 1, 1, line, len(line)))
    return items
