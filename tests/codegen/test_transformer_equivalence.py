"""The generated post-LN and pre-LN steppers reproduce ``nn.TransformerEncoder``.

DESIGN.md: a post-LN layer (BERT: ``u = LN(u + A u); u = LN(u + R u)``) is one Lie–Trotter
splitting step with Δt = 1 and the projection after each sub-step; a pre-LN layer
(``u += A(LN u); u += R(LN u)``) is the same splitting with the norm inside the vector field.
Weights are copied from a randomly initialised torch stack (std 0.05, LayerNorm scales
1 + N(0, 0.05²)), and the outputs must agree to 1e-5 relative to the output scale in
float32 (and to 1e-10 in float64, which would expose e.g. a wrong LayerNorm eps).
"""

from __future__ import annotations

import pytest
import torch

from codegen_helpers import build, copy_encoder_weights, rel_error, torch_encoder

BATCH, TOKENS, CHANNELS = 2, 32, 384
TOL = 1e-5


def _inputs(dtype=torch.float32):
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(BATCH, TOKENS, CHANNELS, generator=generator).to(dtype)
    mask = torch.ones(BATCH, TOKENS, dtype=torch.bool)
    mask[1, 21:] = False  # sequence 1 has 21 real tokens, then right padding
    return u, mask


@pytest.fixture(scope="module")
def post_ln():
    stepper = build("bert_postln")().eval()
    encoder = torch_encoder(norm_first=False, eps=1e-12)
    copy_encoder_weights(stepper, encoder)
    return stepper, encoder


@pytest.fixture(scope="module")
def pre_ln():
    stepper = build("pre_ln")().eval()
    encoder = torch_encoder(norm_first=True, eps=1e-5, seed=3)
    copy_encoder_weights(stepper, encoder)
    return stepper, encoder


def test_post_ln_matches_torch_encoder(post_ln):
    stepper, encoder = post_ln
    u, _ = _inputs()
    with torch.no_grad():
        ours, theirs = stepper(u), encoder(u)
    assert ours.shape == theirs.shape == (BATCH, TOKENS, CHANNELS)
    assert theirs.abs().max() > 0.5  # non-trivial output
    assert rel_error(ours, theirs) <= TOL


def test_post_ln_matches_torch_encoder_with_grad_enabled(post_ln):
    stepper, encoder = post_ln  # torch's slow path (no fast path while autograd records)
    u, _ = _inputs()
    ours, theirs = stepper(u).detach(), encoder(u).detach()
    assert rel_error(ours, theirs) <= TOL


def test_post_ln_with_right_padding_matches_on_real_tokens(post_ln):
    stepper, encoder = post_ln
    u, mask = _inputs()
    with torch.no_grad():
        ours = stepper(u, mask)
        theirs = encoder(u, src_key_padding_mask=~mask)
        unmasked = stepper(u)
    assert rel_error(ours[mask], theirs[mask]) <= TOL
    # the mask matters: sequence 1 differs from the unmasked run on its real tokens
    assert rel_error(unmasked[1, :21], ours[1, :21]) > 1e-3
    # and the unpadded sequence 0 is unaffected by sequence 1's padding
    assert rel_error(ours[0], unmasked[0]) <= TOL


@pytest.mark.parametrize("masked", [False, True])
def test_explicit_softmax_path_agrees_with_sdpa(post_ln, masked):
    stepper, _ = post_ln
    u, mask = _inputs()
    mask = mask if masked else None
    with torch.no_grad():
        fast = stepper(u, mask)
        out = stepper(u, mask, return_attention=True)
    assert len(out.attentions) == 6
    for weights in out.attentions:
        assert weights.shape == (BATCH, 12, TOKENS, TOKENS)
        torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, 12, TOKENS))
    select = mask if masked else slice(None)
    assert rel_error(out.state[select], fast[select]) <= TOL
    if masked:  # padding keys get zero weight
        assert float(out.attentions[0][1, :, :, 21:].abs().max()) == 0.0


def test_pre_ln_matches_torch_encoder_before_final_norm(pre_ln):
    stepper, encoder = pre_ln
    u, mask = _inputs()
    with torch.no_grad():
        out = stepper(u, return_trajectory=True)
        theirs = encoder(u)
        assert len(out.states) == 7
        assert theirs.abs().max() > 1.0
        assert rel_error(out.states[-1], theirs) <= TOL
        # the returned state is the final LayerNorm of the last state
        torch.testing.assert_close(out.state, stepper.final_norm(out.states[-1]))
        # with right padding, on the real tokens
        masked = stepper(u, mask, return_trajectory=True).states[-1]
        theirs = encoder(u, src_key_padding_mask=~mask)
        assert rel_error(masked[mask], theirs[mask]) <= TOL


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_float64_agreement_is_exact(norm_first):
    """In float64 the agreement is ~1e-14; 1e-10 would expose a wrong LayerNorm eps or a
    mis-ordered sub-step that float32 round-off could hide (two layers keep it cheap)."""
    name, eps = ("pre_ln", 1e-5) if norm_first else ("bert_postln", 1e-12)
    stepper = build(name, ["time.layers=2", "time.span=[0, 2]"])().double().eval()
    encoder = torch_encoder(norm_first=norm_first, eps=eps, layers=2, seed=5).double()
    copy_encoder_weights(stepper, encoder)
    u, mask = _inputs(torch.float64)
    with torch.no_grad():
        ours = stepper(u, mask, return_trajectory=True).states[-1]
        theirs = encoder(u, src_key_padding_mask=~mask)
        assert rel_error(ours[mask], theirs[mask]) <= 1e-10
        ours = stepper(u, return_trajectory=True).states[-1]
        assert rel_error(ours, encoder(u)) <= 1e-10
