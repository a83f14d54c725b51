"""The ``pdelang`` command line: check, compile, run, verify, validate, ablate, phase,
reference, study, schema.

Exit codes: 0 success, 1 a check failed, 2 a user error (a spec or option the user must
fix: printed as ``file:line:col`` with a caret line, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
import os
import json

from pdelang.version import __version__
from pdelang.errors import PdelangError
from pdelang.interpreters.accelerate import CompileFallbackWarning, PrecisionWarning

COMMANDS = {
    "check": ("pdelang.cli.check", "analyse a spec: terms, stencils, stability"),
    "compile": ("pdelang.cli.compile", "generate the PyTorch stepper of a spec"),
    "run": ("pdelang.cli.run", "integrate a spec from an initial state"),
    "verify": ("pdelang.cli.verify", "property-test a spec's discretization"),
    "validate": ("pdelang.cli.validate", "compare a spec with a reference Transformer"),
    "ablate": ("pdelang.cli.ablate", "sweep stabilizer swaps: drift and training dynamics"),
    "phase": ("pdelang.cli.phase", "phase diagram of training stability: depth × lr × "
                                   "norm × residual"),
    "reference": ("pdelang.cli.reference", "list the references; train vit-digits into the cache"),
    "study": ("pdelang.cli.study", "a claim study that can fail: paper1 (reduced PDE models, "
                                   "floors, seeds, intervals)"),
    "schema": ("pdelang.cli.schema", "print the JSON Schema of the spec format (for editors)"),
}


def add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    parser.add_argument("spec", help="spec file (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a spec value (repeatable)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--debug", action="store_true",
                        help="verify every compiler stage's output (and show tracebacks)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdelang", description="A modelling language for the master PDE of a Transformer.")
    parser.add_argument("--version", action="version", version=f"pdelang {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        # Each command module declares its own options; importing it must stay cheap.
        importlib.import_module(module_name).configure(command)
        command.set_defaults(module=module_name)
    return parser


def _show_warnings() -> None:
    """pdelang's own warnings (a torch.compile fallback, an emulated dtype) as one
    ``warning: …`` line on stderr, like the commands' other warnings."""
    original = warnings.showwarning
    if getattr(original, "pdelang", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (CompileFallbackWarning, PrecisionWarning)):
            print(f"warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    show.pdelang = True
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _show_warnings()
    args = parser.parse_args(argv)
    if getattr(args, "debug", False):
        os.environ["PDELANG_DEBUG"] = "1"  # the driver verifies each stage's output
    try:
        return int(importlib.import_module(args.module).execute(args) or 0)
    except PdelangError as error:
        if getattr(args, "json", False):
            print(json.dumps({"error": error.to_json()}, ensure_ascii=False))
        print(str(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
