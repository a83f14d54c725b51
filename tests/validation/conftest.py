"""pytest configuration of the validation tests."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest


@pytest.fixture()
def cli():
    """``cli(*argv)`` → (exit code, stdout, stderr) of ``pdelang ARGV``, in this process: the
    same main() as ``python -m pdelang``, without a new interpreter importing torch and
    transformers again (the command line's cold, end-to-end time is checked by
    test_validate_modes.py::test_minilm_exact_64_sentences_under_60_seconds). An exception
    other than a user error (a traceback in the shell) raises in the test."""
    from pdelang.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()

    return run
