"""Block ``ImplicitLinear`` of the periodic boundary: (I − aL)⁻¹ x and exp(aL) x of a
linear, constant-coefficient term on the periodic token grid (``time.implicit``).  The other
boundaries use ``implicit.py``."""

from __future__ import annotations

import torch
from torch import nn

from .constants import EXTRA_TOKENS, GRID_MASKS, GRID_SHAPE
from .context import Context


# pdelang: begin ImplicitLinear
class ImplicitLinear(nn.Module):
    """f(L) x for L u = c₀ u + Σ_w c_w S_{w_1} ⋯ S_{w_k} u (each word w a sequence of the
    layer's stencils, applied outer first; c scalars), with

        f(λ) = 1 / (1 − aλ)   (solve: an implicit stage, (I − aL)⁻¹ x)
        f(λ) = exp(aλ)        (flow: the exact flow over a, exp(aL) x).

    Off the grid (extra tokens, padding) L = c₀.  On the periodic grid (and on each padded
    sequence or image, periodic with its own extent) the stencils are circulant: the Fourier
    transform diagonalizes them with the symbol σ(θ) = Σ_j w_j e^{ijθ} (summed over the axes
    a stencil acts on), and L has the eigenvalues c₀ + μ, μ = Σ_w c_w Π_{S ∈ w} σ_S.  A word
    is a tuple of stencils; a lone stencil is the word of one."""

    def solve(self, x: torch.Tensor, scale: float, parts, zero_order, ctx: Context):
        """(I − scale·L)⁻¹ x; x: (B, N, C)."""
        return self.apply(x, parts, zero_order, ctx, lambda lam: 1 / (1 - scale * lam))

    def flow(self, x: torch.Tensor, scale: float, parts, zero_order, ctx: Context):
        """exp(scale·L) x; x: (B, N, C)."""
        return self.apply(x, parts, zero_order, ctx, lambda lam: torch.exp(scale * lam))

    def apply(self, x, parts, zero_order, ctx, f):
        parts = tuple((c, word if isinstance(word, tuple) else (word,)) for c, word in parts)
        c0 = torch.as_tensor(zero_order, dtype=x.dtype, device=x.device)
        grid = x[:, EXTRA_TOKENS:]  # (B, L, C)
        batch, length, channels = grid.shape
        if GRID_SHAPE is None:
            view = grid  # (B, L, C)
        else:
            view = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        if not GRID_MASKS or ctx.lengths is None:
            result = self.domain(view, parts, c0, f)
        else:
            result = f(c0) * view  # padding: L = c₀
            extents = ctx.lengths.reshape(batch, -1)  # (B, 1) or (B, 2)
            for extent in torch.unique(extents, dim=0):
                size = tuple(int(n) for n in extent)
                if min(size) == 0:
                    continue
                rows = (extents == extent).all(dim=1).nonzero().flatten()  # (b,)
                corner = tuple(slice(0, n) for n in size)
                inner = self.domain(view[(rows, *corner)], parts, c0, f)
                index = torch.meshgrid(rows, *(torch.arange(n, device=x.device) for n in size),
                                       indexing="ij")
                result = result.index_put(index, inner)
        result = result.reshape(batch, length, channels)
        if EXTRA_TOKENS:  # the extra tokens: L = c₀
            result = torch.cat([f(c0) * x[:, :EXTRA_TOKENS], result], dim=1)
        return result

    def domain(self, g, parts, c0, f):
        """f(L) g on one periodic domain g: (b, *extent, C)."""
        dims = tuple(range(1, g.ndim - 1))
        periods = [g.shape[d] for d in dims]
        modes = torch.fft.rfftn(g, dim=dims)  # (b, *modes, C)
        mu = self.eigenvalues(modes.shape[1:-1], parts, dims, periods, g, modes.dtype)
        return torch.fft.irfftn(modes * f(c0 + mu)[None, ..., None], s=periods, dim=dims)

    @staticmethod
    def eigenvalues(shape, parts, dims, periods, g, dtype):
        """μ(θ) = Σ_w c_w Π_{S ∈ w} σ_S(θ), σ_S = Σ_{dims of S} σ(θ_dim), on the transform's
        frequencies."""
        symbols = {}  # id(stencil) → σ_S on the frequency grid

        def symbol_of(stencil):
            if id(stencil) not in symbols:
                total = torch.zeros(tuple(shape), dtype=dtype, device=g.device)
                for dim in stencil.dims:
                    axis = dims.index(dim)
                    count = shape[axis]
                    theta = 2 * torch.pi * torch.arange(count, device=g.device, dtype=g.dtype)
                    theta = theta / periods[axis]
                    symbol = sum(w * torch.exp(1j * o * theta)
                                 for o, w in zip(stencil.offsets, stencil.weights,
                                                 strict=True))
                    view = [1] * len(dims)
                    view[axis] = count
                    total = total + symbol.reshape(view)
                symbols[id(stencil)] = total
            return symbols[id(stencil)]

        mu = torch.zeros(tuple(shape), dtype=dtype, device=g.device)
        for coefficient, word in parts:
            product = symbol_of(word[0])
            for stencil in word[1:]:
                product = product * symbol_of(stencil)
            mu = mu + coefficient * product
        return mu
# pdelang: end ImplicitLinear
