"""The two paths of the ``Attention`` runtime block (pdelang/compiler/codegen/runtime/attention.py).

The explicit (map) path must give exactly the maps softmax(Q Kᵀ/√d + M) with the −inf mask
M of padding keys and the future, with 1/√d folded into the queries; the fused path
(``scaled_dot_product_attention``) must agree with it and allocate no (N, N) tensor unless
the attention is both causal and padded; neither may change the module's parameters.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

RUNTIME = "pdelang.compiler.codegen.runtime"


def blocks():
    attention = importlib.import_module(f"{RUNTIME}.attention")
    context = importlib.import_module(f"{RUNTIME}.context")
    return attention.Attention, context.Context


def make(channels=8, heads=2, *, causal=False, kernel="softmax", seed=0, dtype=torch.float64):
    Attention, _ = blocks()
    torch.manual_seed(seed)
    att = Attention(channels, heads, causal=causal, kernel=kernel, iterations=5, bias=True)
    with torch.no_grad():
        for p in att.parameters():
            p.normal_(0.0, 0.6)  # large enough that the maps are far from uniform
    return att.to(dtype)


def padding(lengths, tokens):
    return torch.arange(tokens)[None, :] < torch.tensor(lengths)[:, None]  # (B, N)


def explicit_maps(att, u, mask, causal):
    """softmax(Q Kᵀ/√d + M), written out: (B, H, N, N)."""
    batch, tokens, channels = u.shape
    d = channels // att.heads

    def split(x):
        return x.view(batch, tokens, att.heads, d).transpose(1, 2)

    q = split(F.linear(u, att.q.weight, att.q.bias))
    k = split(F.linear(u, att.k.weight, att.k.bias))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    additive = torch.zeros(batch, 1, tokens, tokens, dtype=u.dtype)
    if mask is not None:
        additive = additive.masked_fill(~mask[:, None, None, :], float("-inf"))
    if causal:
        future = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)
        additive = additive.masked_fill(future, float("-inf"))
    return (scores + additive).softmax(dim=-1)


CASES = [(False, None), (False, [7, 4, 2]), (True, None), (True, [7, 4, 2])]


@pytest.mark.parametrize(("causal", "lengths"), CASES)
def test_maps_are_the_explicit_masked_softmax_in_float64(causal, lengths):
    _, Context = blocks()
    att = make(causal=causal)
    before = {name: p.detach().clone() for name, p in att.state_dict().items()}
    u = torch.randn(3, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mask = None if lengths is None else padding(lengths, 7)
    with torch.no_grad():
        recorded = Context(u, mask, record=True)
        explicit = att(u, recorded)
        fused = att(u, Context(u, mask, record=False))
    (maps,) = recorded.attentions
    expected = explicit_maps(att, u, mask, causal)
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-12)
    if mask is not None:
        assert not maps[~padding(lengths, 7)[:, None, None, :].expand_as(maps)].any()
    # the fused path agrees on every real query (padded queries: computed, never compared)
    keep = slice(None) if mask is None else mask
    torch.testing.assert_close(fused[keep], explicit[keep], rtol=0, atol=1e-12)
    # the parameters are the user's (un-scaled) weights, untouched by either path
    for name, value in att.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize(("causal", "lengths"), CASES)
def test_map_path_gradients_match_the_explicit_formula(causal, lengths):
    """With autograd the softmax is out of place; the gradients are those of the formula."""
    _, Context = blocks()
    att = make(causal=causal, seed=2)
    mask = None if lengths is None else padding(lengths, 7)
    u = torch.randn(3, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    u.requires_grad_(True)
    ctx = Context(u, mask, record=True)
    y = att(u, ctx)
    loss = (y**2).sum() + (ctx.attentions[0] ** 3).sum()
    ours = torch.autograd.grad(loss, [u, att.q.weight, att.q.bias, att.k.weight])
    maps = explicit_maps(att, u, mask, causal)
    d = 8 // att.heads
    v = F.linear(u, att.v.weight, att.v.bias).view(3, 7, att.heads, d).transpose(1, 2)
    by_hand = F.linear((maps @ v).transpose(1, 2).reshape(3, 7, 8), att.o.weight, att.o.bias)
    theirs = torch.autograd.grad((by_hand**2).sum() + (maps**3).sum(),
                                 [u, att.q.weight, att.q.bias, att.k.weight])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_in_place_softmax_is_the_softmax():
    """The map path's ``torch.softmax(scores, -1, out=scores)`` (input and output aliased)
    equals the out-of-place softmax bit for bit, on row lengths around the vector widths."""
    generator = torch.Generator().manual_seed(4)
    for dtype in (torch.float32, torch.float64):
        for n in (1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 129):
            x = torch.randn(2, 3, 5, n, dtype=dtype, generator=generator) * 4
            x[..., 0, : n // 2] = float("-inf")
            expected = x.softmax(dim=-1)
            assert torch.equal(torch.softmax(x, dim=-1, out=x), expected), (dtype, n)


def allocations(fn) -> list[int]:
    """Bytes each operator allocated itself while ``fn`` ran (torch.profiler)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return [e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0]


@pytest.mark.parametrize(("causal", "lengths"), [(False, None), (False, [1, 3]), (True, None)])
def test_fused_path_memory_is_linear_in_the_sequence_length(causal, lengths):
    """Without maps no operator allocates an (N, N) tensor: from N = 1024 to 4096 the largest
    allocation and the total grow at most 4× (an N² tensor would grow 16×).  The exception,
    not tested here: a causal attention with padding passes a (B, 1, N, N) mask."""
    _, Context = blocks()
    att = make(causal=causal)
    largest, total = [], []
    for tokens in (1024, 4096):
        u = torch.randn(2, tokens, 8, dtype=torch.float64)
        mask = None if lengths is None else padding([tokens * n // 3 for n in lengths], tokens)
        with torch.no_grad():
            sizes = allocations(lambda: att(u, Context(u, mask, record=False)))  # noqa: B023
        largest.append(max(sizes))
        total.append(sum(sizes))
    assert largest[1] < 4096 * 4096  # not even a bool (N, N) mask (the kernel's blocks: ~1 MB)
    assert largest[1] <= 4 * largest[0] and total[1] <= 4.5 * total[0], (largest, total)


@pytest.mark.parametrize(("causal", "lengths"), CASES)
def test_map_path_allocates_one_score_tensor(causal, lengths):
    """The scores are the only (B, H, N, N) allocation: 1/√d is in the queries, the mask
    and (without autograd) the softmax are applied in place, the maps are not cloned."""
    _, Context = blocks()
    tokens = 128
    att = make(causal=causal)
    u = torch.randn(2, tokens, 8, dtype=torch.float64)
    mask = None if lengths is None else padding([tokens, tokens // 3], tokens)
    with torch.no_grad():
        sizes = allocations(lambda: att(u, Context(u, mask, record=True)))
    scores = 2 * att.heads * tokens * tokens * 8
    assert sum(size >= scores for size in sizes) == 1, sorted(sizes)[-4:]


def test_masks_are_built_once_per_call():
    """Every layer's attention shares the call's masks (``ctx.masks``), built on first use."""
    _, Context = blocks()
    att = make(causal=True)
    u = torch.randn(2, 6, 8, dtype=torch.float64)
    ctx = Context(u, padding([6, 3], 6), record=True)
    with torch.no_grad():
        att(u, ctx)
        first = dict(ctx.masks)
        att(u, ctx)
    assert first and all(ctx.masks[key] is value for key, value in first.items())
    assert Context(u, None, record=False).masks == {}
