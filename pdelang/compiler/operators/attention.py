"""``attention(u, heads=1, causal=false, kernel=softmax|sinkhorn, iterations=20, bias=true,
rank=0, kv_heads=0, rope_theta=0)``: multi-head self-attention, the non-local interaction of
the master PDE,

    A[u](x) = W_O concat_h Σ_y P_h(x, y) W_V^{g(h)} u(y),
    P_h(x, ·) = softmax_y(<R_x W_Q^h u(x), R_y W_K^{g(h)} u(y)> / √d_h)   (kernel=softmax)

with ``kv_heads`` = G key/value heads shared by groups of H/G query heads (grouped-query
attention, Ainslie et al. 2023: query head h reads key/value head g(h) = ⌊h G / H⌋; G = H is
ordinary multi-head attention) and, with ``rope_theta`` = θ > 0, rotary position embeddings
(Su et al., "RoFormer"): R_x rotates the pairs (i, i + r/2) of a head's r query/key channels
by the angle x · θ^(−2i/r) at token x (the "rotate-half" layout of Llama), so the score
depends on the offset x − y only.  ``rope_theta=0`` (the default) has no rotation.

or the Sinkhorn-normalized, doubly stochastic kernel of Sander et al. ("Sinkformers"):
alternate column and row normalization in the log domain, rows last (kernel=sinkhorn), or,
for symmetric scores (W_Q = W_K, b_Q = b_K), one potential f with the averaged symmetric
update f ← (f − LSE_y(S + f(y)))/2, P = exp(S + f(x) + f(y)) and a final row normalization
(kernel=sinkhorn_symmetric; the symmetric Sinkhorn of Knight 2008 and Feydy et al. 2019).
Alternating normalization needs a number of iterations that grows with the scale of the
scores (e^{±1/ε} scalings at temperature ε); near the solution the symmetric update
contracts the error by (I − P)/2, at most 1/2 for a positive semi-definite exp(S) such as
a Gaussian kernel, whatever the scale (examples/sinkhorn_diffusion).  With non-symmetric
scores it is row-stochastic only.
Padding keys (and, for Sinkhorn, padding queries) are outside the domain; ``causal`` gives
no weight to later tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.errors import OperatorError

if TYPE_CHECKING:  # numpy only for the oracle's kernels, imported where they run
    import numpy as np


class Attention(OperatorCall):
    op_name = "attention"

    def _latex_body(self, printer):
        return r"\mathcal{A}\left[" + printer._print(self.args[0]) + r"\right]"


class AttentionOperator(Operator):
    name = "attention"
    category = "interaction"
    meaning = "A[u](x) = W_O Σ_y softmax_y(<W_Q u(x), W_K u(y)>/√d_h) W_V u(y), per head " \
        "(rank=r: W_Q, W_K of r rows per head)"
    options = (Option("heads", "int", 1, minimum=1, doc="number of heads (divides channels)"),
               Option("causal", "bool", False, doc="no attention to later tokens"),
               Option("kernel", "choice", "softmax", ("softmax", "sinkhorn", "sinkhorn_symmetric"),
                      doc="row-softmax, or Sinkhorn (doubly stochastic, Sander et al.); "
                          "sinkhorn_symmetric: the symmetric averaged Sinkhorn update, for "
                          "symmetric scores (W_Q = W_K), fast at low temperature"),
               Option("iterations", "int", 20, minimum=1,
                      doc="Sinkhorn iterations (kernel=sinkhorn)"),
               Option("bias", "bool", True, doc="biases on the Q, K, V, O projections"),
               Option("rank", "int", 0, minimum=0,
                      doc="query/key width per head (a low-rank kernel); 0: channels/heads"),
               Option("kv_heads", "int", 0, minimum=0,
                      doc="key/value heads, each shared by heads/kv_heads query heads "
                          "(grouped-query attention); 0: heads"),
               Option("rope_theta", "float", 0.0, minimum=0.0,
                      doc="rotary position embeddings with base θ (Llama: 10000); 0: none"))
    local = False
    learned = True
    sympy_class = Attention
    runtime_blocks = (("attention", "Attention"),)
    # helpers the Attention block calls only on some paths: emitted when the block, folded
    # to the spec's calls (print_flags), still reads them
    helper_blocks = (("finite_logsumexp", "finite_logsumexp"), ("rotary", "rotary"))

    def check_call(self, options, site):
        channels, heads = site.channels, options["heads"]
        if channels % heads:
            small = [d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0]
            divisors = sorted(set(small) | {channels // d for d in small})
            near = sorted(divisors, key=lambda d: abs(d - heads))[:3]
            raise OperatorError(
                f"attention heads={heads} does not divide the {channels} channels of "
                f"'{site.field}'",
                site.where("heads"), f"use heads={' or '.join(map(str, sorted(near)))}")
        kv_heads = options["kv_heads"] or heads
        if heads % kv_heads:
            divisors = [d for d in range(1, heads + 1) if heads % d == 0]
            near = sorted(divisors, key=lambda d: abs(d - kv_heads))[:2]
            raise OperatorError(
                f"attention kv_heads={kv_heads} does not divide heads={heads}: each key/value "
                f"head serves a whole group of query heads",
                site.where("kv_heads"), f"use kv_heads={' or '.join(map(str, sorted(near)))}")
        if options["rope_theta"]:
            if len(site.axes) != 1:
                raise OperatorError(
                    f"rope_theta needs a 1-D token axis; the grid has axes "
                    f"{', '.join(site.axes)}",
                    site.where("rope_theta"), "drop rope_theta on a 2-D grid")
            width = options["rank"] or channels // heads
            if width % 2:
                raise OperatorError(
                    f"rotary embeddings rotate channel pairs, but a head's query/key width "
                    f"is {width} (odd)",
                    site.where("rope_theta"),
                    "choose heads (or rank) so that the query/key width per head is even")
        return options

    def warnings(self, options) -> list[str]:
        if options["causal"] and options["kernel"] != "softmax":
            return ["causal=true with kernel=sinkhorn: the only doubly stochastic "
                    "lower-triangular matrix is the identity, so the Sinkhorn iterations "
                    "converge to each token attending only to itself"]
        return []

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.{node.module}({operand}, ctx)"

    records_attention = True

    def print_flags(self, modules) -> dict[str, bool]:
        """What the spec's calls use, for folding the Attention block at print time."""
        options = [m.options for m in modules]
        return {"SOFTMAX": any(o["kernel"] == "softmax" for o in options),
                "SINKHORN": any(o["kernel"] != "softmax" for o in options),
                "ROTARY": any(o.get("rope_theta") for o in options),
                "GROUPED_QUERIES": any((o.get("kv_heads") or o["heads"]) != o["heads"]
                                       for o in options)}
    reference_part = "attention"

    def effective_options(self, options, channels: int) -> dict:
        heads = int(options["heads"])
        return {**options, "rank": int(options.get("rank") or 0) or channels // heads,
                "kv_heads": int(options.get("kv_heads") or 0) or heads,
                "rope_theta": float(options.get("rope_theta") or 0.0)}

    def is_causal(self, options) -> bool:
        return bool(options.get("causal"))

    def attention_heads(self, options) -> int | None:
        return int(options["heads"])

    def parameter_shapes(self, channels, options, dims):
        """Q: C → H·r (r = ``rank``, default d = C/H); K: C → G·r and V: C → G·d with G the
        key/value heads (``kv_heads``, default H); O: C → C; their biases."""
        heads = int(options["heads"])
        kv_heads = int(options.get("kv_heads") or 0) or heads
        width = int(options.get("rank") or 0) or channels // heads
        kv_values = kv_heads * (channels // heads)
        shapes = {"q.weight": (heads * width, channels), "k.weight": (kv_heads * width, channels),
                  "v.weight": (kv_values, channels), "o.weight": (channels, channels)}
        if options["bias"]:
            shapes |= {"q.bias": (heads * width,), "k.bias": (kv_heads * width,),
                       "v.bias": (kv_values,), "o.bias": (channels,)}
        return shapes

    def torch_module(self, module) -> str:
        o = module.options
        extra = "".join(f", {key}={o[key]!r}" for key in ("rank", "kv_heads", "rope_theta")
                        if o.get(key))
        return (f"Attention(CHANNELS, {o['heads']}, causal={o['causal']!r}, "
                f"kernel={o['kernel']!r}, iterations={o['iterations']}, bias={o['bias']!r}"
                f"{extra})")

    def numpy_eval(self, node, x, oracle, layer, ctx):
        import numpy as np  # lazy: numpy


        options = oracle.module_options(node.module)
        prefix = f"layers.{layer}.{node.module}"
        heads = int(options["heads"])
        bias = bool(options["bias"])
        batch, tokens, channels = x.shape
        d = channels // heads
        r = int(options.get("rank") or 0) or d  # query/key width per head
        kv_heads = int(options.get("kv_heads") or 0) or heads

        def split(y, count, width):  # (B, N, count·width) → (B, count, N, width)
            return y.reshape(batch, tokens, count, width).transpose(0, 2, 1, 3)

        q = split(oracle.linear(x, prefix + ".q", bias), heads, r)
        k = split(oracle.linear(x, prefix + ".k", bias), kv_heads, r)
        v = split(oracle.linear(x, prefix + ".v", bias), kv_heads, d)
        if options.get("rope_theta"):
            q, k = numpy_rotary(q, float(options["rope_theta"])), \
                numpy_rotary(k, float(options["rope_theta"]))
        group = heads // kv_heads  # query head h reads key/value head h // group
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(r)  # (B, H, N, N)
        allowed = np.ones((batch, 1, tokens, tokens), dtype=bool)
        if ctx.key_mask is not None:
            allowed &= ctx.key_mask[:, None, None, :]
        if options.get("causal"):
            allowed &= np.tril(np.ones((tokens, tokens), dtype=bool))[None, None]
        if options.get("kernel", "softmax") == "softmax":
            p = numpy_softmax(np.where(allowed, scores, -np.inf), axis=-1)
        else:
            if ctx.key_mask is not None:  # padding queries are outside the domain too
                allowed &= ctx.key_mask[:, None, :, None]
            s = np.where(allowed, scores, -np.inf)
            if options["kernel"] == "sinkhorn_symmetric":
                f = np.zeros(s.shape[:-1] + (1,))  # (B, H, N, 1): one potential
                for _ in range(int(options["iterations"])):
                    f = 0.5 * (f - numpy_logsumexp(s + np.swapaxes(f, -2, -1), axis=-1))
                s = s + f + np.swapaxes(f, -2, -1)
                s = s - numpy_logsumexp(s, axis=-1)  # rows (last, so rows sum to one)
            else:
                for _ in range(int(options["iterations"])):
                    s = s - numpy_logsumexp(s, axis=-2)  # columns
                    s = s - numpy_logsumexp(s, axis=-1)  # rows (last, so rows sum to one)
            p = np.exp(s)
        if ctx.record:
            ctx.attentions.append(p)
        y = (p @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, channels)
        return oracle.linear(y, prefix + ".o", bias)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        opts = []
        divisors = [d for d in range(1, ctx.channels + 1) if ctx.channels % d == 0]
        if draw(st.booleans()):
            opts.append(f"heads={draw(st.sampled_from(divisors))}")
        if draw(st.booleans()):
            opts.append(f"causal={drawn_bool(draw)}")
        if draw(st.booleans()):
            kernels = ['softmax', 'sinkhorn', 'sinkhorn_symmetric']
            opts.append(f"kernel={draw(st.sampled_from(kernels))}")
        if draw(st.booleans()):
            opts.append(f"iterations={draw(st.integers(1, 30))}")
        if draw(st.booleans()):
            opts.append(f"bias={drawn_bool(draw)}")
        rank = 0
        if draw(st.integers(0, 3)) == 0:
            rank = draw(st.integers(1, 4))
            opts.append(f"rank={rank}")
        heads = next((int(o[6:]) for o in opts if o.startswith("heads=")), 1)
        if draw(st.integers(0, 2)) == 0:
            groups = [g for g in range(1, heads + 1) if heads % g == 0]
            opts.append(f"kv_heads={draw(st.sampled_from(groups))}")
        if len(ctx.axes) == 1 and (rank or ctx.channels // heads) % 2 == 0 \
                and draw(st.integers(0, 2)) == 0:
            opts.append(f"rope_theta={draw(st.sampled_from(['10000', '500000.0', '7.5']))}")
        return f"attention({', '.join([operand, *opts])})"


OPERATOR = AttentionOperator()


# NumPy kernels of the oracle's attention (numpy imported lazily: `check` never needs it)
def numpy_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp over ``axis`` (keepdims); 0 where every entry is −∞."""
    import numpy as np  # lazy: numpy

    m = np.max(x, axis=axis, keepdims=True)
    finite = np.isfinite(m)
    shift = np.where(finite, m, 0.0)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    return np.where(finite, s, 0.0)


def numpy_rotary(x: np.ndarray, theta: float) -> np.ndarray:
    """Rotary embedding of ``x`` (B, H, N, r) at tokens 0 … N−1: channel pairs (i, i + r/2)
    turned by the angle n · θ^(−2i/r) (float64, from the definition)."""
    import numpy as np  # lazy: numpy

    tokens, width = x.shape[-2], x.shape[-1]
    frequencies = theta ** (-np.arange(0, width, 2, dtype=np.float64) / width)  # (r/2,)
    angles = np.arange(tokens, dtype=np.float64)[:, None] * frequencies[None]  # (N, r/2)
    cos, sin = np.cos(angles), np.sin(angles)
    first, second = x[..., : width // 2], x[..., width // 2:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def numpy_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax over ``axis`` (float64, for the NumPy oracle)."""
    import numpy as np  # lazy: numpy

    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)
