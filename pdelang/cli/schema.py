"""``pdelang schema [--path]``: the JSON Schema of the spec format, for editors and validators.

Prints ``spec.schema.json``, the file shipped inside the package.  It is generated from the
spec format's single source of truth, :data:`pdelang.compiler.spec.schema.SPEC_SCHEMA`
(the validator of ``pdelang check`` is derived from the same table), and a test keeps the
shipped file equal to the generated text.  ``--path`` prints the file's location instead,
for an editor's schema mapping or a ``# yaml-language-server: $schema=…`` modeline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pdelang.compiler.spec as spec_package


def schema_path() -> Path:
    """The JSON Schema file shipped with the package."""
    return Path(spec_package.__file__).with_name("spec.schema.json")


def configure(parser) -> None:
    parser.add_argument("--path", action="store_true",
                        help="print the path of the shipped schema file instead of its text")


def execute(args) -> int:
    path = schema_path()
    if args.path:
        print(path)
    else:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0
