"""pytest configuration of the ablation tests: every module runs its tiny models on one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models run fastest, and immune to CPU contention, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_spec(tmp_path):
    """The tiny spec of ablation_helpers in a file (span [0, 2] in 2 layers: Δt = 1)."""
    from ablation_helpers import TINY_SPEC

    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return str(path)
