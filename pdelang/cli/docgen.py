"""The generated pages of the documentation site (``mkdocs.yml``, ``docs/gen_pages.py``).

Each page is built from the code it documents when the site is built, so it cannot drift:

* :func:`spec_reference` — every key of a spec file, from the schema that also drives the
  validator (:data:`pdelang.compiler.spec.schema.SPEC_SCHEMA`), every operator of the term
  language with its options, from the operator registry
  (:data:`pdelang.compiler.operators.OPERATORS`), the time-stepping schemes
  (:data:`pdelang.compiler.schemes.SCHEMES`) and the term grammar (``grammar.lark``);
* :func:`command_reference` — every command and option, from the argparse parser of the
  ``pdelang`` command line (:func:`pdelang.cli.main.build_parser`);
* :func:`gallery_pages` — one page per ``examples/<name>/README.md`` (the example folder's
  other files copied next to it, so that its figures show) and an index of them.

:func:`pages` returns all of them as ``(path inside docs/, text or bytes)`` pairs.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pdelang.compiler.spec import schema as S
from pdelang.compiler import schemes
from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.spec.schema import SPEC_SCHEMA
from pdelang.cli.main import build_parser

# --------------------------------------------------------------------------- helpers


def _cell(text: Any) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: Any) -> str:
    """Prose (docs, meanings with math such as ``A[u](x)``) for a table cell: brackets and
    angle brackets escaped so that Markdown reads no link or tag into them."""
    return (_cell(text).replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
            .replace("*", "\\*"))


def _code(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return f"`{_cell(text)}`" if text != "" else '`""`'


# --------------------------------------------------------------------------- the spec


def _num(value: float) -> str:
    """A bound as written: integers in full (1048576, not 1.04858e+06)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _describe_type(schema) -> str:
    """A short type description of a schema node of :mod:`pdelang.compiler.spec.schema`."""
    if isinstance(schema, S.Scalar):
        base = {"int": "integer", "float": "number", "bool": "boolean", "str": "string",
                "identifier": "name"}[schema.kind]
        parts = []
        if schema.enum is not None:
            return "one of " + ", ".join(_code(v) for v in schema.enum)
        if schema.minimum is not None:
            parts.append(f"≥ {_num(schema.minimum)}")
        if schema.exclusive_minimum is not None:
            parts.append(f"> {_num(schema.exclusive_minimum)}")
        if schema.maximum is not None:
            parts.append(f"≤ {_num(schema.maximum)}")
        if schema.even:
            parts.append("even")
        return base + (f" ({', '.join(parts)})" if parts else "")
    if isinstance(schema, S.Sequence):
        count = ""
        if schema.min_items and schema.max_items == schema.min_items:
            count = f" of {schema.min_items}"
        elif schema.min_items or schema.max_items:
            high = schema.max_items if schema.max_items is not None else "…"
            count = f" of {schema.min_items}–{high}"
        return f"list{count} × {_describe_type(schema.item)}"
    if isinstance(schema, S.Record):
        return "mapping"
    if isinstance(schema, S.MapOf):
        keys = f" (keys: {', '.join(_code(k) for k in schema.keys)})" if schema.keys else ""
        return f"mapping name → {_describe_type(schema.value)}{keys}"
    if isinstance(schema, S.Either):
        return " or ".join(_describe_type(option) for option in schema.options)
    return type(schema).__name__


def _spec_rows(schema, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, Field, schema) for every key under ``schema``, depth first."""
    if isinstance(schema, S.Record):
        for name, field in schema.fields.items():
            path = f"{prefix}.{name}" if prefix else name
            yield path, field, field.schema
            yield from _spec_rows(field.schema, path)
    elif isinstance(schema, S.MapOf):
        yield from _spec_rows(schema.value, f"{prefix}.<name>")
    elif isinstance(schema, S.Either):
        for option in schema.options:
            if isinstance(option, (S.Record, S.MapOf)):
                yield from _spec_rows(option, prefix)


def _field_doc(field, schema) -> str:
    docs = [field.doc, getattr(schema, "doc", "")]
    return " ".join(d for d in docs if d)


def spec_reference() -> str:
    """The spec language reference page (Markdown)."""
    lines = [
        "# Spec language reference",
        "",
        "!!! note \"Generated\"",
        "    This page is generated when the site is built, from the schema that also drives "
        "the validator of `pdelang check` (`pdelang.compiler.spec.schema.SPEC_SCHEMA`), "
        "the operator registry (`pdelang.compiler.operators.OPERATORS`), the scheme registry "
        "and the term grammar. It cannot drift from the code.",
        "",
        SPEC_SCHEMA.doc,
        "A spec is one YAML file. The same schema, as JSON Schema, is printed by "
        "`pdelang schema` (see [Editor support](../editors.md)).",
        "",
        "## Keys",
        "",
        "`<name>` stands for a name of your choice (a field, a parameter, a term). "
        "**Required** keys must be given; every other key has the default shown.",
        "",
    ]
    sections: dict[str, list[tuple[str, Any, Any]]] = {}
    for path, field, schema in _spec_rows(SPEC_SCHEMA, ""):
        sections.setdefault(path.split(".")[0], []).append((path, field, schema))
    scalars = [rows[0] for rows in sections.values() if len(rows) == 1]
    grouped = {"top-level values": scalars} if scalars else {}
    grouped.update((top, rows) for top, rows in sections.items() if len(rows) > 1)
    for top, rows in grouped.items():
        heading = top if " " in top else f"`{top}`"
        lines += [f"### {heading}", "", "| key | type | default | description |",
                  "|---|---|---|---|"]
        for path, field, schema in rows:
            default = "**required**" if field.required else _code(field.default)
            lines.append(f"| `{path}` | {_cell(_describe_type(schema))} | {default} | "
                         f"{_text(_field_doc(field, schema))} |")
        lines.append("")
    lines += _operator_section(OPERATORS)
    lines += ["## Time-stepping schemes (`time.scheme`)", "",
              "| scheme | kind | order | implicit | description |", "|---|---|---|---|---|"]
    for name, scheme in schemes.SCHEMES.items():
        lines.append(f"| `{name}` | {_cell(scheme.kind)} | {scheme.order} | "
                     f"{'yes' if scheme.implicit else 'no'} | {_text(scheme.description)} |")
    grammar = (Path(schemes.__file__).parent.parent / "language" / "grammar.lark")
    lines += ["", "## Term grammar", "",
              "Terms (`terms.<name>`) and the equation are expressions in this grammar "
              "(Lark syntax, from `pdelang/compiler/language/grammar.lark`):", "",
              "```text", grammar.read_text(encoding="utf-8").rstrip(), "```", ""]
    return "\n".join(lines)


def _operator_section(operators) -> list[str]:
    lines = ["## Operators", "",
             "Operators are called in term expressions, e.g. `attention(u, heads=12)`. "
             "Options are given by keyword (some also by position, as the signature shows).",
             "", "| operator | category | meaning |", "|---|---|---|"]
    for name, op in operators.items():
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {op.category} | {_text(op.meaning)} |")
    lines.append("")
    for name, op in operators.items():
        facts = [f"category: {op.category}"]
        for flag, text in (("linear", "linear"), ("learned", "learned (owns weights)"),
                           ("discretized", f"accuracy set by `discretization.{name}`")):
            if getattr(op, flag, False):
                facts.append(text)
        if not op.local:
            facts.append("non-local")
        lines += [f"### `{name}` {{#{_anchor(name)}}}", "", f"`{op.signature}`", "",
                  _text(op.meaning), "", "*" + "; ".join(facts) + "*", ""]
        if op.options:
            lines += ["| option | type | default | description |", "|---|---|---|---|"]
            for option in op.options:
                kind = option.kind
                if option.kind == "choice":
                    kind = "one of " + ", ".join(f"`{c}`" for c in option.choices)
                bounds = []
                if option.minimum is not None:
                    bounds.append(f"≥ {_num(option.minimum)}")
                if option.maximum is not None:
                    bounds.append(f"≤ {_num(option.maximum)}")
                if bounds:
                    kind += f" ({', '.join(bounds)})"
                default = "**required**" if option.required else _code(option.default)
                lines.append(f"| `{option.name}` | {_cell(kind)} | {default} | "
                             f"{_text(option.doc) or '—'} |")
            lines.append("")
    return lines


def _anchor(name: str) -> str:
    return f"op-{name}"


# --------------------------------------------------------------------------- commands


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (
                    "{" + ",".join(map(str, action.choices)) + "}" if action.choices
                    else action.dest.upper())
                names += f" {metavar}"
        else:
            names = action.metavar or action.dest
        default = action.default
        if action.nargs == 0 or default in (None, [], argparse.SUPPRESS):
            shown = "—"
        else:
            shown = _code(default)
        text = (action.help or "").replace("%(default)s", str(default))
        if action.choices and action.metavar and action.option_strings and action.nargs != 0:
            text += f" (choices: {', '.join(map(str, action.choices))})"
        if action.required:
            text = "**required.** " + text
        rows.append(f"| `{_cell(names)}` | {shown} | {_text(text)} |")
    return rows


def command_reference() -> str:
    """The command reference page (Markdown), from the argparse definitions."""
    parser = build_parser()
    commands = _subparsers(parser)
    lines = [
        "# Command reference",
        "",
        "!!! note \"Generated\"",
        "    This page is generated when the site is built, from the argparse parser of the "
        "`pdelang` command line (`pdelang.cli.main.build_parser`); `pdelang COMMAND --help` "
        "prints the same.",
        "",
        (parser.description or ""),
        "",
        "Exit codes: 0 success, 1 a check failed, 2 a user error (a `file:line:col` message "
        "with a caret line and a hint, never a traceback).",
        "",
        "| command | what it does |", "|---|---|",
    ]
    for name, sub in commands.items():
        lines.append(f"| [`pdelang {name}`](#{name}) | {_text(sub.description or '')} |")
    lines.append("")
    for name, sub in commands.items():
        usage = " ".join(sub.format_usage().split())
        usage = usage.removeprefix("usage: ")
        lines += [f"## `pdelang {name}` {{#{name}}}", "", _text(sub.description or ""), "",
                  "```text", _wrap_usage(usage), "```", ""]
        nested = _subparsers(sub)
        lines += _option_rows(sub) + [""]
        for child, child_parser in nested.items():
            child_usage = " ".join(child_parser.format_usage().split()).removeprefix("usage: ")
            lines += [f"### `pdelang {name} {child}`", "", "```text", _wrap_usage(child_usage),
                      "```", ""] + _option_rows(child_parser) + [""]
    return "\n".join(lines)


def _wrap_usage(usage: str, width: int = 88) -> str:
    """A usage line wrapped at option boundaries (``[--x X]`` groups kept whole)."""
    tokens = re.findall(r"\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]|\S+", usage)
    lines, line = [], ""
    for token in tokens:
        if line and len(line) + 1 + len(token) > width:
            lines.append(line)
            line = "    " + token
        else:
            line = f"{line} {token}" if line else token
    lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- gallery

_SKIP = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


def gallery_pages(examples: Path) -> list[tuple[str, str | bytes]]:
    """``gallery/index.md`` and, for every ``examples/<name>/README.md``,
    ``gallery/<name>/index.md`` with the folder's other files beside it."""
    entries = sorted(p.parent for p in examples.glob("*/README.md")) if examples.is_dir() \
        else []
    files: list[tuple[str, str | bytes]] = []
    lines = ["# Gallery", "",
             "Executable reproductions of published predictions: each entry of `examples/` "
             "is a folder with its spec(s), one script or command sequence, a figure, a "
             "`results.json` of measured against predicted and a test that checks the "
             "prediction. This page lists one page per `examples/<name>/README.md`.", ""]
    if not entries:
        lines += ["!!! info \"No entries yet\"",
                  "    The gallery is being built; its entries will appear here, one page per "
                  "`examples/<name>/README.md`.", ""]
    for folder in entries:
        text = (folder / "README.md").read_text(encoding="utf-8")
        title = _title(folder)
        summary = _first_paragraph(text)
        lines.append(f"- [{title}]({folder.name}/index.md)" + (f": {summary}" if summary else ""))
        files.append((f"gallery/{folder.name}/index.md", text))
        for item in sorted(folder.rglob("*")):
            relative = item.relative_to(folder)
            if (item.is_dir() or item.name == "README.md" or _SKIP & set(relative.parts)
                    or item.suffix == ".pyc"):
                continue
            files.append((f"gallery/{folder.name}/{relative.as_posix()}", item.read_bytes()))
    return [("gallery/index.md", "\n".join(lines) + "\n"), *files]


def _title(folder: Path) -> str:
    text = (folder / "README.md").read_text(encoding="utf-8")
    return next((line.lstrip("# ").strip() for line in text.splitlines()
                 if line.startswith("# ")), folder.name)


def gallery_nav(examples: Path) -> list[dict[str, str]]:
    """The gallery's entries for the site's navigation (``docs/hooks.py`` adds them under
    "Gallery"): ``{title: "gallery/<name>/index.md"}`` per ``examples/<name>/README.md``."""
    if not examples.is_dir():
        return []
    return [{_title(p.parent): f"gallery/{p.parent.name}/index.md"}
            for p in sorted(examples.glob("*/README.md"))]


def _first_paragraph(text: str) -> str:
    body = []
    for line in text.splitlines():
        if line.startswith("#") or line.startswith("```"):
            if body:
                break
            continue
        if not line.strip():
            if body:
                break
            continue
        body.append(line.strip())
    summary = " ".join(body)
    return summary if len(summary) <= 200 else summary[:197] + "…"


# --------------------------------------------------------------------------- all


def pages(examples: Path | None = None) -> list[tuple[str, str | bytes]]:
    """Every generated page: (path inside the docs folder, content)."""
    root = Path(__file__).resolve().parents[2]
    return [("reference/spec.md", spec_reference()),
            ("reference/commands.md", command_reference()),
            *gallery_pages(examples if examples is not None else root / "examples")]
