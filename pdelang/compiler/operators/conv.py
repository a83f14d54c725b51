"""``conv(u, kernel=K, bias=false)``: a learned depthwise convolution along the grid axes —
a learned stencil.

    (conv u)_i = Σ_{|j| ≤ r} w_j ⊙ u_{i + j}   (+ b),   r = (K − 1)/2,

with one K-point (1-D) or K×K (2-D) kernel per channel (``w_j ⊙`` acts channel-wise), ghost
values from the grid's boundary rule, and the rate zero where ``laplace``'s is: on extra
tokens (a CLS token), on padding tokens (each padded sequence or image is its own domain),
and on the held border of the copy boundary.  Linear in u without a bias; its weights are
learned, so the stability analysis leaves it out (it says so).
"""

from __future__ import annotations

from pdelang.compiler.operators.base import Option, Operator, drawn_bool
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.errors import OperatorError

MAX_KERNEL = 33


class Conv(OperatorCall):
    """A learned depthwise convolution (args: operand, instance)."""

    op_name = "conv"
    linear = True

    def _latex_body(self, printer):
        return r"\mathcal{K} * \left(" + printer._print(self.args[0]) + r"\right)"


class AffineConv(OperatorCall):
    """``conv(u, bias=true)``: affine, not linear."""

    op_name = "conv"


class ConvOperator(Operator):
    name = "conv"
    category = "learned"
    meaning = ("(K * u)_i = Σ_{|j| ≤ (K−1)/2} w_j ⊙ u_{i+j} (+ b): a learned depthwise "
               "convolution along the grid axes (ghosts from the boundary rule)")
    options = (Option("kernel", "int", 3, minimum=1, maximum=MAX_KERNEL,
                      doc="kernel size K along each grid axis (odd)"),
               Option("bias", "bool", False, doc="a learned bias per channel"))
    linear = True
    learned = True
    sympy_class = Conv
    affine_class = AffineConv
    runtime_blocks = (("conv", "Conv"),)

    def is_linear(self, options) -> bool:
        return not options.get("bias")

    def check_call(self, options, site):
        if options["kernel"] % 2 == 0:
            k = options["kernel"]
            raise OperatorError(f"conv kernel={k} must be odd (a centred stencil)",
                                site.where("kernel"), f"use kernel={k - 1} or kernel={k + 1}")
        return options

    def stencil_radius(self, options, accuracy) -> int:
        return int(options["kernel"]) // 2

    def torch_expr(self, node, operand: str, model) -> str:
        return f"self.{node.module}({operand}, ctx)"

    def parameter_shapes(self, channels, options, dims):
        """One K-point (1-D) or K×K (2-D) kernel per channel, and a bias per channel."""
        shapes = {"weight": (channels, *(int(options["kernel"]),) * dims)}
        return shapes | ({"bias": (channels,)} if options["bias"] else {})

    def torch_module(self, module) -> str:
        return f"Conv(CHANNELS, {module.options['kernel']}, bias={module.options['bias']!r})"

    def numpy_eval(self, node, x, oracle, layer, ctx):
        import numpy as np  # lazy: numpy

        from pdelang.compiler.discrete.ghosts import extend_with_ghosts  # lazy: numpy

        model = oracle.model
        options = oracle.module_options(node.module)
        prefix = f"layers.{layer}.{node.module}"
        weight = oracle.weight(prefix + ".weight")  # (C, K) or (C, K, K)
        bias = oracle.weight(prefix + ".bias") if options["bias"] else None
        k = int(options["kernel"])
        r = k // 2
        batch, _tokens, channels = x.shape
        grid = x[:, model.extra_tokens:]
        rate = np.zeros_like(grid)
        shape = tuple(model.shape) if len(model.axes) == 2 else (grid.shape[1],)
        for b in range(batch):
            extent = shape if ctx.lengths is None else tuple(
                int(n) for n in np.atleast_1d(ctx.lengths[b]))
            if min(extent) == 0:
                continue
            g = grid[b].reshape(*shape, channels)[tuple(slice(0, n) for n in extent)]
            ext = g
            for axis in range(len(extent)):
                ext = extend_with_ghosts(ext, axis, r, model.boundary)
            out = np.zeros_like(g)
            if len(extent) == 1:
                for j in range(k):
                    out += weight[:, j] * ext[j:j + extent[0]]
            else:
                for i in range(k):
                    for j in range(k):
                        out += weight[:, i, j] * ext[i:i + extent[0], j:j + extent[1]]
            if bias is not None:
                out = out + bias
            if model.boundary == "copy":
                held = np.ones(extent, dtype=bool)
                held[tuple(slice(1, n - 1) for n in extent)] = False
                out[held] = 0.0
            full = np.zeros((*shape, channels))
            full[tuple(slice(0, n) for n in extent)] = out
            rate[b] = full.reshape(-1, channels)
        return np.concatenate([np.zeros((batch, model.extra_tokens, channels)), rate], axis=1)

    def draw_call(self, draw, ctx, operand: str) -> str:
        from hypothesis import strategies as st  # lazy: hypothesis

        k = draw(st.sampled_from([1, 3, 5]))
        ctx.note_radius(k // 2)
        opts = [f"kernel={k}"] if k != 3 or draw(st.booleans()) else []
        if draw(st.booleans()):
            opts.append(f"bias={drawn_bool(draw)}")
        return f"conv({', '.join([operand, *opts])})"


OPERATOR = ConvOperator()
