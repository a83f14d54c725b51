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
