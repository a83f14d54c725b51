"""Block ``ImplicitLinear``: (I − aL)⁻¹ x and exp(aL) x of a linear, constant-coefficient
term on the token grid, exact for every boundary (used by ``time.implicit``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import BOUNDARY, EXTRA_TOKENS, GRID_MASKS, GRID_SHAPE
from .context import Context
from .ghosts_neumann import with_ghosts
from .weighted_sum import weighted_sum


# pdelang: begin ImplicitLinear
class ImplicitLinear(nn.Module):
    """f(L) x for L u = c₀ u + Σ_w c_w S_{w_1} ⋯ S_{w_k} u (each word w a sequence of the
    layer's stencils, applied outer first; c scalars), with

        f(λ) = 1 / (1 − aλ)   (solve: an implicit stage, (I − aL)⁻¹ x)
        f(λ) = exp(aλ)        (flow: the exact flow over a, exp(aL) x).

    Off the grid (extra tokens, padding) L = c₀.  Each domain (the grid, or one padded
    sequence or image) is diagonalized by the Fourier transform of its boundary's symmetric
    extension, on which the stencils are circulant with the symbol σ(θ) = Σ_j w_j e^{ijθ}
    (summed over the axes a stencil acts on) and L has the eigenvalues c₀ + μ,
    μ = Σ_w c_w Π_{S ∈ w} σ_S: periodic (period n), neumann (even about the end tokens,
    period 2(n − 1)), dirichlet (odd about the zeros one spacing beyond the ends, period
    2(n + 1)), copy (border held fixed: odd about the border on the interior, period
    2(n − 1), plus the border's coupling through the divided difference of f).  Odd
    derivatives on a non-periodic grid have no such basis: there a dense matrix of the
    domain (the stencils' matrices cached, multiplied in word order) is solved or
    exponentiated.  A word is a tuple of stencils; a lone stencil is the word of one."""

    def __init__(self) -> None:
        super().__init__()
        self.matrices: dict = {}  # (stencil, extent, dtype, device) → dense matrix

    def solve(self, x: torch.Tensor, scale: float, parts, zero_order, ctx: Context):
        """(I − scale·L)⁻¹ x; x: (B, N, C)."""
        return self.apply(x, parts, zero_order, ctx, "solve", scale)

    def flow(self, x: torch.Tensor, scale: float, parts, zero_order, ctx: Context):
        """exp(scale·L) x; x: (B, N, C)."""
        return self.apply(x, parts, zero_order, ctx, "flow", scale)

    @staticmethod
    def functions(kind: str, scale: float, c0: torch.Tensor):
        """f and its divided difference μ ↦ (f(c₀ + μ) − f(c₀)) / μ."""
        if kind == "solve":
            def f(lam):
                return 1 / (1 - scale * lam)

            def divided(mu):
                return scale / ((1 - scale * (c0 + mu)) * (1 - scale * c0))
            return f, divided

        def f(lam):  # flow
            return torch.exp(scale * lam)

        def divided(mu):  # e^{a c₀} a φ₁(a μ), φ₁(z) = (e^z − 1)/z
            z = scale * mu
            safe = torch.where(z == 0, torch.ones_like(z), z)
            return torch.exp(scale * c0) * scale * torch.where(
                z == 0, torch.ones_like(z), torch.expm1(safe) / safe)
        return f, divided

    def apply(self, x, parts, zero_order, ctx, kind, scale):
        parts = tuple((c, word if isinstance(word, tuple) else (word,)) for c, word in parts)
        c0 = torch.as_tensor(zero_order, dtype=x.dtype, device=x.device)
        f, divided = self.functions(kind, scale, c0)
        grid = x[:, EXTRA_TOKENS:]  # (B, L, C)
        batch, length, channels = grid.shape
        if GRID_SHAPE is None:
            view = grid  # (B, L, C)
        else:
            view = grid.reshape(batch, *GRID_SHAPE, channels)  # (B, rows, cols, C)
        if not GRID_MASKS or ctx.lengths is None:
            result = self.domain(view, parts, c0, f, divided, kind, scale)
        else:
            result = f(c0) * view  # padding: L = c₀
            extents = ctx.lengths.reshape(batch, -1)  # (B, 1) or (B, 2)
            for extent in torch.unique(extents, dim=0):
                size = tuple(int(n) for n in extent)
                if min(size) == 0:
                    continue
                rows = (extents == extent).all(dim=1).nonzero().flatten()  # (b,)
                corner = tuple(slice(0, n) for n in size)
                inner = self.domain(view[(rows, *corner)], parts, c0, f, divided, kind, scale)
                index = torch.meshgrid(rows, *(torch.arange(n, device=x.device) for n in size),
                                       indexing="ij")
                result = result.index_put(index, inner)
        result = result.reshape(batch, length, channels)
        if EXTRA_TOKENS:  # the extra tokens: L = c₀
            result = torch.cat([f(c0) * x[:, :EXTRA_TOKENS], result], dim=1)
        return result

    # ------------------------------------------------------------------ one domain
    def domain(self, g, parts, c0, f, divided, kind, scale):
        """f(L) g on one domain g: (b, *extent, C)."""
        dims = tuple(range(1, g.ndim - 1))

        def shifted(mu):  # f at the eigenvalues c₀ + μ of L
            return f(c0 + mu)

        if BOUNDARY == "periodic":
            return self.spectral(((g, shifted),), parts, dims, "periodic")
        if not all(self.symmetric(stencil) for _, word in parts for stencil in word):
            return self.dense(g, parts, c0, kind, scale)
        if BOUNDARY == "copy":
            # L = c₀ + p(M), M a stencil with the border rows held at zero,
            # M = [[0, 0], [B, S]] (border, interior); p(M) = [[0, 0], [C, p(S)]] with
            # C = (p(M) border) on the interior.  The border keeps f(c₀)·u; the interior
            # gets f(c₀ + p(S)) core + ((f(c₀ + p(S)) − f(c₀)) / p(S)) C, p(S) diagonal (odd
            # about the border tokens) with the eigenvalues μ = p(σ)
            interior = tuple(slice(1, n - 1) for n in g.shape[1:-1])
            if min(n for n in g.shape[1:-1]) <= 2:
                return f(c0) * g
            inside = torch.zeros_like(g)
            inside[(slice(None), *interior)] = 1
            border = g * (1 - inside)
            coupling = self.stencils(border, parts, inside)[(slice(None), *interior)]
            core = g[(slice(None), *interior)]
            pairs = ((core, shifted), (coupling, divided))
            moved = self.spectral(pairs, parts, dims, "dirichlet")
            widths = (0, 0) + (1, 1) * len(dims)  # F.pad: one token at both ends of each axis
            return f(c0) * border + F.pad(moved, widths)
        else:
            return self.spectral(((g, shifted),), parts, dims, BOUNDARY)

    @staticmethod
    def symmetric(stencil) -> bool:
        w = dict(zip(stencil.offsets, stencil.weights, strict=True))
        return all(w[o] == w.get(-o) for o in w)

    @staticmethod
    def along(stencil, g: torch.Tensor, dim: int) -> torch.Tensor:
        """Σ_j w_j g_{i + j e_dim}: a stencil's 1-D weights along one axis of g (b, *extent, C)."""
        extended = with_ghosts(g, dim, stencil.radius)
        windows = [(extended.narrow(dim, stencil.radius + o, g.shape[dim]), n)
                   for o, n in zip(stencil.offsets, stencil.numerators, strict=True) if n != 0]
        return weighted_sum(windows).mul_(1 / stencil.over)

    def stencils(self, g, parts, inside=None):
        """Σ_w c_w S_{w_1} ⋯ S_{w_k} g on one domain g: (b, *extent, C), each word applied
        innermost first; inside (1 on the interior) holds the border's rate at zero after
        each stencil (copy), as the explicit code does."""
        total = torch.zeros_like(g)
        for coefficient, word in parts:
            value = g
            for stencil in reversed(word):
                rate = torch.zeros_like(value)
                for dim in stencil.dims:
                    rate = rate + self.along(stencil, value, dim)
                value = rate if inside is None else rate * inside
            total = total + coefficient * value
        return total

    def spectral(self, inputs, parts, dims, boundary):
        """Σ_j h_j(μ) applied to the Fourier modes of g_j's symmetric extension, for pairs
        (g_j, h_j) on one extent; μ = Σ_w c_w Π_{S ∈ w} σ_S(θ) are the eigenvalues of the
        stencils' polynomial."""
        spectrum = None
        for g, h in inputs:
            extended = g
            for dim in dims:
                extended = extend(extended, dim, boundary)
            modes = torch.fft.rfftn(extended, dim=dims)  # (b, *modes, C)
            if spectrum is None:
                periods = [extended.shape[d] for d in dims]
                mu = self.eigenvalues(modes.shape[1:-1], parts, dims, periods, g, modes.dtype)
                spectrum = 0
            multiplier = h(mu)
            if not torch.is_complex(multiplier):
                multiplier = multiplier.to(modes.dtype)
            spectrum = spectrum + modes * multiplier[None, ..., None]
        g = inputs[0][0]
        out = torch.fft.irfftn(spectrum, s=periods, dim=dims)
        for dim in dims:
            start = 1 if boundary == "dirichlet" else 0
            out = out.narrow(dim, start, g.shape[dim])
        return out

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

    def dense(self, g, parts, c0, kind, scale):
        """f(L) g with the dense matrix of L on this domain (odd derivatives, non-periodic)."""
        extent = tuple(g.shape[1:-1])
        size = 1
        for n in extent:
            size *= n
        matrix = c0 * torch.eye(size, dtype=g.dtype, device=g.device)
        for coefficient, word in parts:
            product = None
            for stencil in word:  # outer first: S_{w_1} S_{w_2} ⋯
                key = (id(stencil), extent, g.dtype, g.device)
                if key not in self.matrices:
                    unit = torch.eye(size, dtype=g.dtype, device=g.device)
                    unit = unit.reshape(size, *extent, 1)
                    columns = self.stencils(unit, ((1.0, (stencil,)),)).reshape(size, size)
                    if BOUNDARY == "copy":  # the border is held fixed: its rows are zero
                        held = torch.ones(extent, dtype=g.dtype, device=g.device)
                        held[tuple(slice(1, n - 1) for n in extent)] = 0
                        columns = columns * (1 - held.reshape(1, size))
                    self.matrices[key] = columns.T  # column j: S e_j
                step = self.matrices[key]
                product = step if product is None else product @ step
            matrix = matrix + coefficient * product
        flat = g.reshape(g.shape[0], size, g.shape[-1])  # (b, n, C)
        eye = torch.eye(size, dtype=g.dtype, device=g.device)
        if kind == "solve":
            out = torch.linalg.solve(eye - scale * matrix, flat)
        else:
            out = torch.linalg.matrix_exp(scale * matrix) @ flat
        return out.reshape(g.shape)


def extend(g: torch.Tensor, dim: int, boundary: str) -> torch.Tensor:
    """g's symmetric extension along dim to one period of the boundary's reflection."""
    n = g.shape[dim]
    if boundary == "periodic":
        return g
    if boundary == "neumann":  # even about the end tokens: period 2(n − 1)
        return torch.cat([g, g.narrow(dim, 1, n - 2).flip(dim)], dim=dim)
    # dirichlet (and the interior of copy): odd about the zeros at −1 and n: period 2(n + 1)
    zero = torch.zeros_like(g.narrow(dim, 0, 1))
    return torch.cat([zero, g, zero, -g.flip(dim)], dim=dim)
# pdelang: end ImplicitLinear
