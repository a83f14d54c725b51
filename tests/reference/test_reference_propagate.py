"""``Reference.propagate``: the layer stack as a differentiable function of u(0)."""

from __future__ import annotations

import pytest
import torch

from pdelang.lab.reference.registry import load_reference


@pytest.mark.parametrize("name", ["hf-config:vit", "hf-config:bert", "hf-config:gpt2",
                                  "torch:pre", "torch"])
def test_propagate_reproduces_the_run_and_is_differentiable(name):
    reference = load_reference(name)
    inputs = reference.sample_inputs(2)
    run = reference.run(inputs)
    u0 = run.embeddings.clone().requires_grad_(True)
    last = reference.propagate(inputs, u0)
    mask = run.bool_mask
    torch.testing.assert_close(last[mask], run.hidden_states[-1][mask], rtol=1e-5, atol=1e-5)
    # a fixed random projection of token 1's output, not its plain channel sum: through a
    # final LayerNorm with unit weight (post-LN) the channel sum is a constant, so its exact
    # gradient is 0 and only roundoff (~1e-8 in float32) would make it "non-zero"
    projection = torch.randn(last[:, 1].shape, dtype=last.dtype,
                             generator=torch.Generator().manual_seed(0))
    gradient, = torch.autograd.grad((last[:, 1] * projection).sum(), u0)
    # the exact gradient is O(1) here; 1e-3 is far above float32 roundoff and far below it
    assert gradient[:, 1].abs().max() > 1e-3
    # a different u(0) gives a different output: the embeddings were really replaced
    shifted = reference.propagate(inputs, run.embeddings + 0.1)
    assert not torch.allclose(shifted[mask], run.hidden_states[-1][mask])
    if reference.architecture.causal:  # a later token never reaches an earlier one
        assert gradient[:, 2:].abs().max() == 0
