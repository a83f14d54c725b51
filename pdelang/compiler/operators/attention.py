"""``attention(u, heads=1, causal=false, kernel=softmax|sinkhorn, iterations=20, bias=true)``:
multi-head self-attention, the non-local interaction of the master PDE,

    A[u](x) = W_O concat_h Σ_y P_h(x, y) W_V^h u(y),
    P_h(x, ·) = softmax_y(<W_Q^h u(x), W_K^h u(y)> / √d_h)             (kernel=softmax)

or the Sinkhorn-normalized, doubly stochastic kernel of Sander et al. ("Sinkformers"):
alternate column and row normalization in the log domain, rows last (kernel=sinkhorn).
Padding keys (and, for Sinkhorn, padding queries) are outside the domain; ``causal`` gives
no weight to later tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall

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
               Option("kernel", "choice", "softmax", ("softmax", "sinkhorn"),
                      doc="row-softmax, or Sinkhorn (doubly stochastic, Sander et al.)"),
               Option("iterations", "int", 20, minimum=1,
                      doc="Sinkhorn iterations (kernel=sinkhorn)"),
               Option("bias", "bool", True, doc="biases on the Q, K, V, O projections"),
               Option("rank", "int", 0, minimum=0,
                      doc="query/key width per head (a low-rank kernel); 0: channels/heads"))
    local = False
    learned = True
    sympy_class = Attention
    runtime_blocks = (("finite_logsumexp", "finite_logsumexp"), ("attention", "Attention"))

    def check_call(self, options, site):
        from pdelang.errors import OperatorError

        channels, heads = site.channels, options["heads"]
        if channels % heads:
            small = [d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0]
            divisors = sorted(set(small) | {channels // d for d in small})
            near = sorted(divisors, key=lambda d: abs(d - heads))[:3]
            raise OperatorError(
                f"attention heads={heads} does not divide the {channels} channels of "
                f"'{site.field}'",
                site.where("heads"), f"use heads={' or '.join(map(str, sorted(near)))}")
        return options

    def warnings(self, options) -> list[str]:
        if options["causal"] and options["kernel"] == "sinkhorn":
            return ["causal=true with kernel=sinkhorn: the only doubly stochastic "
                    "lower-triangular matrix is the identity, so the Sinkhorn iterations "
                    "converge to each token attending only to itself"]
        return []

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.{node.module}({operand}, ctx)"

    records_attention = True

    def is_causal(self, options) -> bool:
        return bool(options.get("causal"))

    def attention_heads(self, options) -> int | None:
        return int(options["heads"])

    def parameter_shapes(self, channels, options, dims):
        """Q and K: C → H·r (r = ``rank``, default C/H); V and O: C → C; their biases."""
        heads = int(options["heads"])
        qk = heads * (int(options.get("rank") or 0) or channels // heads)
        shapes = {"q.weight": (qk, channels), "k.weight": (qk, channels),
                  "v.weight": (channels, channels), "o.weight": (channels, channels)}
        if options["bias"]:
            shapes |= {"q.bias": (qk,), "k.bias": (qk,), "v.bias": (channels,),
                       "o.bias": (channels,)}
        return shapes

    def torch_module(self, module) -> str:
        o = module.options
        rank = f", rank={o['rank']}" if o.get("rank") else ""
        return (f"Attention(CHANNELS, {o['heads']}, causal={o['causal']!r}, "
                f"kernel={o['kernel']!r}, iterations={o['iterations']}, bias={o['bias']!r}"
                f"{rank})")

    def numpy_eval(self, node, x, reference, layer, ctx):
        import numpy as np


        options = reference.module_options(node.module)
        prefix = f"layers.{layer}.{node.module}"
        heads = int(options["heads"])
        bias = bool(options["bias"])
        batch, tokens, channels = x.shape
        d = channels // heads
        r = int(options.get("rank") or 0) or d  # query/key width per head

        def split(y, width):  # (B, N, H·width) → (B, H, N, width)
            return y.reshape(batch, tokens, heads, width).transpose(0, 2, 1, 3)

        q = split(reference.linear(x, prefix + ".q", bias), r)
        k = split(reference.linear(x, prefix + ".k", bias), r)
        v = split(reference.linear(x, prefix + ".v", bias), d)
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
            for _ in range(int(options["iterations"])):
                s = s - numpy_logsumexp(s, axis=-2)  # columns
                s = s - numpy_logsumexp(s, axis=-1)  # rows (last, so rows sum to one)
            p = np.exp(s)
        if ctx.record:
            ctx.attentions.append(p)
        y = (p @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, channels)
        return reference.linear(y, prefix + ".o", bias)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st

        opts = []
        divisors = [d for d in range(1, ctx.channels + 1) if ctx.channels % d == 0]
        if draw(st.booleans()):
            opts.append(f"heads={draw(st.sampled_from(divisors))}")
        if draw(st.booleans()):
            opts.append(f"causal={drawn_bool(draw)}")
        if draw(st.booleans()):
            opts.append(f"kernel={draw(st.sampled_from(['softmax', 'sinkhorn']))}")
        if draw(st.booleans()):
            opts.append(f"iterations={draw(st.integers(1, 30))}")
        if draw(st.booleans()):
            opts.append(f"bias={drawn_bool(draw)}")
        if draw(st.integers(0, 3)) == 0:
            opts.append(f"rank={draw(st.integers(1, 4))}")
        return f"attention({', '.join([operand, *opts])})"


OPERATOR = AttentionOperator()


# NumPy kernels of the oracle's attention (numpy imported lazily: `check` never needs it)
def numpy_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp over ``axis`` (keepdims); 0 where every entry is −∞."""
    import numpy as np

    m = np.max(x, axis=axis, keepdims=True)
    finite = np.isfinite(m)
    shift = np.where(finite, m, 0.0)
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    return np.where(finite, s, 0.0)


def numpy_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """softmax over ``axis`` (float64, for the NumPy oracle)."""
    import numpy as np

    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=axis, keepdims=True)
