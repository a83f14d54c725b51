"""pytest configuration of the ``pdelang.lab.testing`` tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """Run these small-tensor tests on one intra-op thread (as tests/codegen does): on a
    busy 2-core machine every parallel op's barrier can wait a scheduler tick, and the
    tensors here are far too small to gain from parallelism.  Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
