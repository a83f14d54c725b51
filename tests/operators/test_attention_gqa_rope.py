"""Grouped-query attention, rotary position embeddings and the gated feed-forward block, as
the runtime blocks compute them: each against its definition and against an independent
implementation (Hugging Face's Llama for the rotation)."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_text
from pdelang.errors import PdelangError
from pdelang.lab.testing.spec_builder import spec_text

RUNTIME = "pdelang.compiler.codegen.runtime"
Attention = importlib.import_module(f"{RUNTIME}.attention").Attention
Context = importlib.import_module(f"{RUNTIME}.context").Context
rotary = importlib.import_module(f"{RUNTIME}.rotary").rotary
GLU = importlib.import_module(f"{RUNTIME}.glu").GLU


def context(u: torch.Tensor, mask=None, record=False):
    return Context(u, mask, record)


# ------------------------------------------------------------------------------- rotary
@settings(max_examples=25, deadline=None)
@given(width=st.sampled_from([2, 4, 8, 16]), tokens=st.integers(2, 12),
       shift=st.integers(1, 20), theta=st.sampled_from([7.5, 10000.0, 500000.0]),
       seed=st.integers(0, 2**16))
def test_rotated_scores_depend_on_the_offset_only(width, tokens, shift, theta, seed):
    """<R_n q, R_m k> = <R_{n+s} q, R_{m+s} k> for any shift s, and |R_n x| = |x|."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1, 1, width, generator=generator, dtype=torch.float64)
    k = torch.randn(1, 1, 1, width, generator=generator, dtype=torch.float64)
    total = tokens + shift
    qs, ks = q.expand(1, 1, total, width), k.expand(1, 1, total, width)
    u = torch.zeros(1, total, 1, dtype=torch.float64)
    rq, rk = rotary(qs.clone(), ks.clone(), theta, context(u))
    scores = rq[0, 0] @ rk[0, 0].T  # (N + s, N + s)
    torch.testing.assert_close(scores[shift:, shift:], scores[:tokens, :tokens],
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(rq.norm(dim=-1), qs.norm(dim=-1), rtol=1e-12, atol=0)
    torch.testing.assert_close(rq[..., 0, :], qs[..., 0, :], rtol=0, atol=0)  # token 0


def test_the_rotation_is_hugging_face_llamas():
    """The same cos/sin and rotate-half layout as ``transformers``' Llama (float32)."""
    from transformers import LlamaConfig
    from transformers.models.llama import modeling_llama as hf

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=12345.0)
    rope = hf.LlamaRotaryEmbedding(config)
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, 9, 16), torch.randn(2, 2, 9, 16)
    cos, sin = rope(q, torch.arange(9)[None])
    expected_q, _ = hf.apply_rotary_pos_emb(q, q, cos, sin)
    expected_k, _ = hf.apply_rotary_pos_emb(k, k, cos, sin)
    got_q, got_k = rotary(q, k, 12345.0, context(torch.zeros(2, 9, 1)))
    torch.testing.assert_close(got_q, expected_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_k, expected_k, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------- grouped-query attention
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("record", [False, True])
@pytest.mark.parametrize("heads, groups", [(4, 2), (6, 3), (6, 1), (4, 4)])
def test_grouped_query_attention_is_multi_head_with_shared_key_value_heads(
        heads, groups, causal, record):
    """kv_heads = G equals ordinary attention whose key/value weights repeat each group's
    rows for the H/G query heads that read it (query head h reads group h // (H/G))."""
    d = 12  # head width
    channels = heads * d
    torch.manual_seed(heads * 10 + groups)
    options = dict(causal=causal, kernel="softmax", iterations=1, bias=True,
                   rope_theta=10000.0)
    grouped = Attention(channels, heads, kv_heads=groups, **options).double()
    full = Attention(channels, heads, **options).double()
    with torch.no_grad():
        for name in ("q", "o"):
            getattr(full, name).load_state_dict(getattr(grouped, name).state_dict())
        for name in ("k", "v"):
            source = getattr(grouped, name)
            weight = source.weight.view(groups, d, channels)
            bias = source.bias.view(groups, d)
            getattr(full, name).weight.copy_(
                weight.repeat_interleave(heads // groups, dim=0).reshape(heads * d, channels))
            getattr(full, name).bias.copy_(
                bias.repeat_interleave(heads // groups, dim=0).reshape(heads * d))
    assert grouped.k.weight.shape == (groups * d, channels)
    u = torch.randn(3, 7, channels, dtype=torch.float64)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    got = grouped(u, context(u, mask, record))
    expected = full(u, context(u, mask, record))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_glu_is_the_gated_product():
    torch.manual_seed(0)
    glu = GLU(8, 20, torch.nn.functional.silu, bias=False).double()
    u = torch.randn(2, 5, 8, dtype=torch.float64)
    gate, up = u @ glu.gate.weight.T, u @ glu.up.weight.T
    expected = (gate * torch.sigmoid(gate) * up) @ glu.down.weight.T
    torch.testing.assert_close(glu(u), expected, rtol=1e-12, atol=1e-12)
    assert glu.gate.bias is None and glu.down.bias is None


# ------------------------------------------------------------------------- located errors
@pytest.mark.parametrize("call, axes, channels, message, hint", [
    ("attention(u, heads=4, kv_heads=3)", "[seq]", 8, "kv_heads=3 does not divide heads=4",
     "kv_heads=2 or 4"),
    ("attention(u, heads=2, rope_theta=10000)", "[rows, cols]", 8, "needs a 1-D token axis",
     "2-D"),
    ("attention(u, heads=2, rope_theta=10000)", "[seq]", 6, "is 3 (odd)", "even"),
])
def test_impossible_options_are_located_errors(call, axes, channels, message, hint):
    two_d = "rows" in axes
    text = spec_text({"a": call}, name="t", axes=axes.strip("[]").split(", "),
                     shape=[4, 4] if two_d else None, boundary="neumann", channels=channels)
    with pytest.raises(PdelangError) as info:
        compile_text(text, "<t>")
    assert message in str(info.value) and hint in str(info.value)
    line = text.splitlines().index(f"  a: {call}") + 1  # the call's line
    assert f"<t>:{line}:" in str(info.value)
