"""Shared helper of the CLI tests: run ``pdelang`` in-process and capture its output."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from pdelang.cli.main import main


def run(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``pdelang ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
