"""pytest configuration of the code-generation tests (helpers live in codegen_helpers.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """Run these small-tensor tests on one intra-op thread.

    On a 2-core machine that is busy with other work, every parallel op's OpenMP barrier
    can wait a scheduler tick for the other thread (≈15 ms per op, ~100× slower); the tensors
    here are too small to gain from parallelism anyway.  The previous setting is restored.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter):
    """The injection corpus's results (tests/codegen/test_injection.py) in the test output:
    how many payloads, cases, clean located errors and modules checked safe."""
    import sys

    injection = next((module for name, module in sorted(sys.modules.items())
                      if name.rsplit(".", 1)[-1] == "test_injection"
                      and hasattr(module, "RESULTS")), None)
    if injection is None or not injection.RESULTS["cases"]:
        return
    results = injection.RESULTS
    failed = results["cases"] - results["clean errors"] - results["safe modules"]
    terminalreporter.write_sep(
        "=", f"pdelang injection corpus: {results['payloads']} payloads, "
             f"{results['cases']} cases")
    terminalreporter.write_line(
        f"  {results['clean errors']} clean located errors, {results['safe modules']} "
        f"modules whose code tokens are unchanged and which import and run without the "
        f"payload's side effect; {failed} failed")
