"""User text in generated code: only ever inside a comment or a string literal, escaped.

A spec's description, its file name, the equation's text and the spec values in
``STRUCTURE`` are user input.  In the generated module they appear in ``#`` comments, in
docstrings, or as Python literals (``repr``), never as code.  A comment ends at a line break —
which for Python's tokenizer is ``\\n``, ``\\r`` or ``\\r\\n``, and for editors and other tools
also ``\\u2028``, ``\\u2029``, ``\\x85``, ``\\x0b``, ``\\x0c`` — so every character that is not
printable (line breaks, other controls, NUL, lone surrogates, …) is written as its escape
sequence; in a docstring also backslashes and double quotes, so that no ``\\N{…}`` or
``\"\"\"`` can end or break it.
"""

from __future__ import annotations

import re

# PEP 263: a comment on line 1 or 2 matching this declares the file's encoding
_ENCODING_COOKIE = re.compile(r"(coding)([:=])")


def _escaped(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def comment_text(text: str) -> str:
    """``text`` safe on one line of a ``#`` comment (non-printable characters escaped)."""
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in str(text))


def docstring_text(text: str) -> str:
    """``text`` safe inside a ``\"\"\"…\"\"\"`` docstring on one line."""
    return comment_text(str(text).replace("\\", "\\\\")).replace('"', '\\"')


def first_lines_text(text: str) -> str:
    """``text`` for a comment on line 1 or 2 of a module: also no encoding declaration
    (``coding: utf-16`` in a spec's file name would make the module undecodable)."""
    return _ENCODING_COOKIE.sub(lambda m: m.group(1) + _hex(m.group(2)), comment_text(text))


def _hex(ch: str) -> str:
    return f"\\x{ord(ch):02x}"
