"""An independent NumPy interpreter of the discrete IR — the differential-testing oracle.

Given a :class:`~pdelang.compiler.discrete.ir.DiscreteModel` and the weights of a generated stepper
(its ``state_dict()`` converted to float64 NumPy arrays by :func:`weights_from_stepper`),
:class:`NumpyOracle` evaluates every expression node and the step program from the
mathematics alone.  It never calls, imports or reads the generated code; the only thing it
shares with the code printer is the discrete IR and the naming of the weights in the state
dict (``layers.<ℓ>.<module>.<q|k|v|o|fc1|fc2>.weight``, ``layers.<ℓ>.norm_<term>.weight``,
``shared.<param>``, ``layers.<ℓ>.parametrizations.<param>.original`` for a positive
parameter θ whose value is softplus(θ), ``final_norm.weight``).

Semantics (float64 throughout):

* the state ``u`` has shape ``(B, N, C)``: ``E = extra_tokens`` tokens off the grid, then the
  grid tokens (``L`` in 1-D; ``rows × cols`` in row-major order in 2-D);
* ``ApplyStencil``: on grid tokens ``(L u)_i = Σ_axes Σ_j w_j u_{i + j e_axis} / h^k`` with
  ghost values from the boundary rule (:func:`ghost_table`); the rate is zero on extra
  tokens and padding tokens, and on the end tokens (every border token in 2-D) for ``copy``;
  with padding (a mask whose grid part is ``True`` for the first ``n_b`` tokens of sequence
  ``b``) the ghost rules apply at the ends of each sequence's own ``n_b`` tokens;
* ``ApplyModule``: multi-head attention (row softmax, optionally causal, or Sinkhorn in the
  log domain: alternate column then row normalization over the real tokens, rows last),
  MLP ``W_2 σ(W_1 u + b_1) + b_2``, linear ``W u (+ b)``, LayerNorm, RMSNorm;
* the step program: split sub-steps ``u ← [P](u + f·Δt·F_term([P]u))`` (``u ← f·Δt·F`` without
  residual), or the Butcher tableau ``k_i = F(u + Δt Σ_j a_ij k_j)``,
  ``u⁺ = [P](u + Δt Σ_i b_i k_i)``, with the norm ``P`` pre (inside the vector field of each
  normalized term) or post (after each normalized sub-step, or after each Runge–Kutta
  step); ``layers × substeps`` steps, layer ℓ's weights for steps ℓ·S … (ℓ+1)·S − 1; then the
  final norm if there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import reduce
from typing import Any, NamedTuple
from collections.abc import Mapping

import numpy as np
from numpy.polynomial import legendre

from pdelang.compiler.discrete import ir as D
from pdelang.compiler.operators import OPERATORS, MissingHandler
from pdelang.compiler.schemes import program as P

__all__ = [
    "NumpyOracle",
    "OracleOutput",
    "apply_stencil",
    "extend_with_ghosts",
    "gelu",
    "ghost_table",
    "layer_norm",
    "rms_norm",
    "softplus",
    "stencil_along",
    "stencil_weights",
    "weights_from_stepper",
]



# ----------------------------------------------------------------------------- weights
def weights_from_stepper(stepper: Any) -> dict[str, np.ndarray]:
    """A generated stepper's ``state_dict()`` as float64 NumPy arrays (copies)."""
    out = {}
    for key, value in stepper.state_dict().items():
        out[key] = np.array(value.detach().cpu().double().numpy(), dtype=np.float64, copy=True)
    return out


def softplus(x):
    """log(1 + eˣ), computed stably."""
    return np.logaddexp(0.0, x)


# ----------------------------------------------------------------------------- elementwise
# The operators' own NumPy definitions (pdelang.compiler.operators), re-exported for callers.
from pdelang.compiler.operators.elementwise import numpy_gelu as gelu  # noqa: E402
from pdelang.compiler.operators.layernorm import layer_norm  # noqa: E402
from pdelang.compiler.operators.mlp import numpy_activation  # noqa: E402
from pdelang.compiler.operators.rmsnorm import rms_norm  # noqa: E402

gelu_tanh = numpy_activation("gelu_tanh")


# boundaries: the ghost rules on NumPy arrays are a discretization fact (compiler layer)
from pdelang.compiler.discrete.ghosts import BOUNDARIES, extend_with_ghosts, ghost_table  # noqa: E402,F401


def stencil_along(g: np.ndarray, axis: int, offsets, weights, boundary: str) -> np.ndarray:
    """``Σ_j w_j g_{i + offsets_j}`` along ``axis`` for every grid index ``i`` (weights already
    divided by ``h^k``), with ghost values from ``boundary``."""
    offsets = tuple(int(o) for o in offsets)
    r = max(abs(o) for o in offsets)
    g = np.asarray(g, dtype=np.float64)
    n = g.shape[axis]
    padded = np.moveaxis(extend_with_ghosts(g, axis, r, boundary), axis, 0)
    rate = np.zeros_like(padded[:n])
    for offset, weight in zip(offsets, weights):
        rate = rate + float(weight) * padded[r + offset: r + offset + n]
    return np.moveaxis(rate, 0, axis)


def stencil_weights(stencil: D.DiscreteStencil) -> tuple[float, ...]:
    """The stencil's weights divided by ``h^k``, as floats."""
    return tuple(float(Fraction(w)) / stencil.spacing ** stencil.derivative
                 for w in stencil.weights)


def apply_stencil(u: np.ndarray, stencil: D.DiscreteStencil, *, boundary: str,
                  extra_tokens: int = 0, grid_shape: tuple[int, ...] | None = None,
                  lengths: np.ndarray | None = None, weights=None) -> np.ndarray:
    """The ``ApplyStencil`` node on a state ``u`` of shape ``(B, N, C)``.

    ``grid_shape`` is ``(rows, cols)`` on a 2-D grid (``None`` in 1-D); ``lengths`` the number
    of real grid tokens of each sequence (1-D), or the real ``(rows, cols)`` of each image,
    a ``(B, 2)`` array (2-D); ``None`` when nothing is padding;
    ``weights`` overrides :func:`stencil_weights` (e.g. for a perturbed stencil).
    """
    u = np.asarray(u, dtype=np.float64)
    weights = stencil_weights(stencil) if weights is None else tuple(weights)
    batch, _tokens, channels = u.shape
    g = u[:, extra_tokens:]
    if grid_shape is not None and len(grid_shape) == 2:
        rows, cols = grid_shape
        if g.shape[1] != rows * cols:
            raise ValueError(f"{g.shape[1]} grid tokens do not fill a {rows}×{cols} grid")
        grid = g.reshape(batch, rows, cols, channels)
        rate = np.zeros_like(grid)
        extents = [(rows, cols)] * batch if lengths is None else [tuple(map(int, e))
                                                                   for e in lengths]
        for b, (r, c) in enumerate(extents):
            # each image is its own domain: the top-left r × c corner of the grid
            if r == 0 or c == 0:
                continue
            image = grid[b, :r, :c]
            for axis in stencil.axes:
                rate[b, :r, :c] += stencil_along(image, axis, stencil.offsets, weights,
                                                 boundary)
            if boundary == "copy":
                rate[b, 0, :c] = rate[b, r - 1, :c] = 0.0
                rate[b, :r, 0] = rate[b, :r, c - 1] = 0.0
        rate = rate.reshape(batch, rows * cols, channels)
    elif lengths is None:
        rate = stencil_along(g, 1, stencil.offsets, weights, boundary)
        if boundary == "copy":
            rate[:, 0] = rate[:, -1] = 0.0
    else:
        rate = np.zeros_like(g)
        for b in range(batch):
            n = int(lengths[b])
            if n == 0:
                continue
            rate[b, :n] = stencil_along(g[b, :n], 0, stencil.offsets, weights, boundary)
            if boundary == "copy":
                rate[b, 0] = rate[b, n - 1] = 0.0
    if extra_tokens:
        rate = np.concatenate([np.zeros((batch, extra_tokens, channels)), rate], axis=1)
    return rate


# ----------------------------------------------------------------------------- context
@dataclass
class _Context:
    """Per-call masks (derived from the user's ``mask`` alone) and recorded attention maps."""

    tokens: int
    key_mask: np.ndarray | None = None  # (B, N) bool, True for real tokens
    lengths: np.ndarray | None = None  # (B,) real grid tokens (1-D), (B, 2) image extents (2-D)
    record: bool = False
    attentions: list = field(default_factory=list)


def _context(model: D.DiscreteModel, u: np.ndarray, mask, record: bool) -> _Context:
    batch, tokens, _ = u.shape
    ctx = _Context(tokens, record=record)
    if mask is None:
        return ctx
    mask = np.asarray(mask).astype(bool)
    if mask.shape != (batch, tokens):
        raise ValueError(f"mask must have shape {(batch, tokens)}, got {mask.shape}")
    if mask.all():
        return ctx
    ctx.key_mask = mask
    grid = mask[:, model.extra_tokens:]
    lengths = grid.sum(axis=1)
    if len(model.axes) == 2:
        rows, cols = model.shape
        image = grid.reshape(batch, rows, cols)
        extents = np.stack([image.any(axis=2).sum(axis=1), image.any(axis=1).sum(axis=1)], 1)
        for b, (r, c) in enumerate(extents):
            expected = np.zeros((rows, cols), dtype=bool)
            expected[:r, :c] = True
            if not (image[b] == expected).all():
                raise ValueError("padding on a 2-D grid must fill whole trailing rows and "
                                 "columns (each image in the top-left corner)")
        lengths = None if grid.all() else extents
    elif not (grid == (np.arange(grid.shape[1])[None, :] < lengths[:, None])).all():
        raise ValueError("padding tokens must follow the real tokens (right padding)")
    ctx.lengths = lengths
    return ctx


class OracleOutput(NamedTuple):
    state: np.ndarray  # (B, N, C) after the final norm, if any
    states: list  # layers + 1 states at layer boundaries
    attentions: list  # (B, heads, N, N) per attention evaluation


# ----------------------------------------------------------------------------- interpreter
class _OracleMachine:
    """The NumPy semantics of the step program's instructions (see
    :func:`pdelang.compiler.schemes.program.run`)."""

    def __init__(self, reference: NumpyOracle, layer: int, ctx: _Context, dt, shape):
        self.reference = reference
        self.layer = layer
        self.ctx = ctx
        self.dt = dt
        self.shape = shape
        self.combine = P.float_combine(dt, reference.model.program.constant_values)

    def _scale(self, coefficient):
        return self.reference.model.program.coefficient(coefficient) * self.dt

    def rate(self, terms, state):
        state = np.broadcast_to(state, self.shape)
        total = np.zeros(self.shape)
        for t in terms:
            total = total + self.reference.term(t, state, self.layer, self.ctx)
        return total

    def solve(self, terms, coefficient, rhs):
        return self.reference.implicit_apply("solve", terms, self._scale(coefficient),
                                             np.broadcast_to(rhs, self.shape), self.layer,
                                             self.ctx)

    def flow(self, terms, coefficient, state):
        return self.reference.implicit_apply("flow", terms, self._scale(coefficient),
                                             np.broadcast_to(state, self.shape), self.layer,
                                             self.ctx)

    def project(self, norm, state):
        return self.reference._norm_module(norm, self.layer, np.broadcast_to(state, self.shape))

    def observe(self, index, label, value):
        pass


class NumpyOracle:
    """Evaluates a discrete model with given weights, in float64 NumPy.

    ``weights`` maps state-dict names to arrays (:func:`weights_from_stepper`).  ``dt`` (a
    float, or an array broadcastable to the state, e.g. ``(B, 1, 1)`` for one Δt per batch
    element) replaces the model's Δt in :meth:`step`, :meth:`forward` and :meth:`layer_step`.
    """

    def __init__(self, model: D.DiscreteModel, weights: Mapping[str, np.ndarray]) -> None:
        self.model = model
        self.weights = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.grid_shape = tuple(model.shape) if model.shape and len(model.axes) == 2 else None
        self._cache: dict = {}  # implicit terms: dense matrices and their functions
        self.depth = -1.0  # where basis coefficients are evaluated (s ∈ [−1, 1], see at())
        self.check_declared_weights()

    def check_declared_weights(self) -> None:
        """The weights hold every parameter each learned module's operator declares
        (:meth:`~pdelang.compiler.operators.base.Operator.parameter_shapes`), at
        ``layers.<ℓ>.<module>.<name>``, with its declared shape: the operators' NumPy
        definitions read exactly these keys.  ``KeyError``/``ValueError`` naming the
        declaration otherwise (weights from another stepper, a stale state dict)."""
        m = self.model
        dims = len(m.axes)
        for module in m.modules:
            declared = OPERATORS[module.op].parameter_shapes(m.channels, module.options, dims)
            for layer in range(m.layers):
                for name, shape in declared.items():
                    key = f"layers.{layer}.{module.name}.{name}"
                    if key not in self.weights:
                        raise KeyError(f"the weights have no {key!r}, which {module.op} "
                                       f"declares (shape {tuple(shape)})")
                    if tuple(self.weights[key].shape) != tuple(shape):
                        raise ValueError(f"weights[{key!r}] has shape "
                                         f"{tuple(self.weights[key].shape)}; {module.op} "
                                         f"declares {tuple(shape)}")

    # ------------------------------------------------------------------ weights
    def weight(self, key: str) -> np.ndarray:
        try:
            return self.weights[key]
        except KeyError:
            raise KeyError(f"the weights have no entry {key!r}") from None

    def optional_weight(self, key: str) -> np.ndarray | None:
        return self.weights.get(key)

    def scalar(self, name: str, layer: int) -> float:
        """The value of a scalar parameter (softplus of the stored θ if it is positive)."""
        spec = next(p for p in self.model.parameters if p.name == name)
        if spec.basis:  # Σ_k c_k P_k(s) at the depth of the step (see forward)

            return float(legendre.legval(self.depth, self.weight(f"shared.{name}_coefficients")))
        prefix = f"layers.{layer}." if spec.per_layer else "shared."
        raw = self.weights.get(f"{prefix}parametrizations.{name}.original")
        if raw is not None:
            return float(softplus(raw))
        return float(self.weight(prefix + name))

    def module_options(self, name: str) -> Mapping[str, object]:
        return next(m for m in self.model.modules if m.name == name).options

    # ------------------------------------------------------------------ operators
    def linear(self, x: np.ndarray, prefix: str, bias: bool) -> np.ndarray:
        y = x @ self.weight(prefix + ".weight").T
        if bias:
            y = y + self.weight(prefix + ".bias")
        return y

    def norm(self, x: np.ndarray, kind: str, eps: float, affine: bool, prefix: str):
        """A normalization (its operator's NumPy definition) with the weights at prefix."""
        op = OPERATORS.get(kind)
        if op is None or op.category != "norm":
            raise ValueError(f"unknown norm kind {kind!r}")
        return op.numpy_norm(x, eps, affine, prefix, self)

    def stencil(self, key: str, x: np.ndarray, ctx: _Context) -> np.ndarray:
        return apply_stencil(x, self.model.stencils[key], boundary=self.model.boundary,
                             extra_tokens=self.model.extra_tokens, grid_shape=self.grid_shape,
                             lengths=ctx.lengths)

    # ------------------------------------------------------------------ expressions
    def evaluate(self, node: D.DExpr, u: np.ndarray, layer: int, ctx: _Context):
        """The value of an expression node on the state ``u`` with layer ``layer``'s weights."""
        if isinstance(node, D.State):
            return u
        if isinstance(node, D.Const):
            return float(node.value)
        if isinstance(node, D.Param):
            return self.scalar(node.name, layer)
        if isinstance(node, D.Sum):
            total = 0.0
            for term in node.terms:
                total = total + self.evaluate(term, u, layer, ctx)
            return total
        if isinstance(node, D.Product):
            product = 1.0
            for factor in node.factors:
                product = product * self.evaluate(factor, u, layer, ctx)
            return product
        if isinstance(node, D.Power):
            base = self.evaluate(node.base, u, layer, ctx)
            exponent = node.exponent
            if isinstance(exponent, Fraction) and exponent.denominator == 1:
                return np.power(base, float(exponent.numerator))
            if exponent == Fraction(1, 2):
                return np.sqrt(base)
            return np.power(base, float(exponent))
        if isinstance(node, (D.Elementwise, D.ApplyStencil, D.ApplyModule)):
            name = (node.func if isinstance(node, D.Elementwise) else node.op
                    if isinstance(node, D.ApplyModule)
                    else self.model.stencils[node.stencil].operator)
            op = OPERATORS.get(name)
            if op is None:
                raise MissingHandler("the NumPy oracle", name, "an operator module")
            operand = self.evaluate(node.operand, u, layer, ctx)
            if not isinstance(node, D.Elementwise):
                operand = np.broadcast_to(operand, u.shape)
            return op.numpy_eval(node, operand, self, layer, ctx)
        raise TypeError(f"the reference cannot evaluate {node!r}")

    # ------------------------------------------------------------------ the step program
    def term(self, name: str, u: np.ndarray, layer: int, ctx: _Context | None = None):
        """F_term(u), with the pre-norm applied to the argument if the term has one."""
        ctx = ctx or _Context(u.shape[1])
        term = self.model.term(name)
        arg = u
        norm = self.model.program.pre_norms.get(name)
        if norm is not None:
            arg = self._norm_module(norm, layer, u)
        value = self.evaluate(term.expr, arg, layer, ctx)
        return np.broadcast_to(value, u.shape)

    def rhs(self, u: np.ndarray, layer: int, ctx: _Context | None = None) -> np.ndarray:
        """F(u) = Σ_terms F_term(u)."""
        ctx = ctx or _Context(u.shape[1])
        total = np.zeros_like(u)
        for t in self.model.terms:
            total = total + self.term(t.name, u, layer, ctx)
        return total

    def _norm_module(self, name: str, layer: int, x: np.ndarray) -> np.ndarray:
        n = self.model.norm
        return self.norm(x, n.kind, n.eps, n.affine, f"layers.{layer}.{name}")

    def implicit_matrix(self, terms, layer: int, ctx: _Context, tokens: int,
                        batch_index: int) -> np.ndarray:
        key = ("matrix", tuple(terms), layer, tokens,
               None if ctx.lengths is None else np.asarray(ctx.lengths[batch_index]).tobytes())
        if key not in self._cache:
            self._cache[key] = self._implicit_matrix(terms, layer, ctx, tokens, batch_index)
        return self._cache[key]

    def _implicit_matrix(self, terms, layer: int, ctx: _Context, tokens: int,
                         batch_index: int) -> np.ndarray:
        """The dense (N, N) matrix of L = Σ_{t ∈ terms} (c₀ I + Σ_w c_w S_{w_1} ⋯ S_{w_k}) on
        sequence ``batch_index``'s tokens (its own domain: stencil rows are zero off its grid,
        so extra and padding tokens see c₀ only); a word is the product of its stencils'
        matrices, outer first."""
        matrix = np.zeros((tokens, tokens))
        single = _Context(tokens, lengths=None if ctx.lengths is None
                          else ctx.lengths[batch_index:batch_index + 1])
        unit = np.eye(tokens)[:, :, None]  # (N, N, 1): column j is e_j
        lengths = None if ctx.lengths is None else np.repeat(
            ctx.lengths[batch_index:batch_index + 1], tokens, axis=0)
        stencils: dict[str, np.ndarray] = {}  # key → the stencil's (N, N) matrix

        def stencil_matrix(key: str) -> np.ndarray:
            if key not in stencils:
                rate = apply_stencil(unit, self.model.stencils[key],
                                     boundary=self.model.boundary,
                                     extra_tokens=self.model.extra_tokens,
                                     grid_shape=self.grid_shape, lengths=lengths)
                stencils[key] = rate[:, :, 0].T  # column j: S e_j
            return stencils[key]

        for name in terms:
            implicit = self.model.implicit_term(name)
            matrix += float(self.evaluate(implicit.zero_order, unit, layer, single)) \
                * np.eye(tokens)
            for coefficient, word in implicit.parts:
                c = float(self.evaluate(coefficient, unit, layer, single))
                matrix += c * reduce(np.matmul, (stencil_matrix(k) for k in word))
        return matrix

    def implicit_apply(self, kind: str, terms, scale, x: np.ndarray, layer: int,
                       ctx: _Context) -> np.ndarray:
        """(I − scale·L)⁻¹ x (``solve``) or exp(scale·L) x (``flow``), with dense matrices;
        ``scale`` may differ per batch element."""
        import scipy.linalg  # lazy: scipy

        batch, tokens, _ = x.shape
        scales = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (batch,)) \
            if np.ndim(scale) else np.full(batch, float(scale))
        out = np.empty_like(x)
        for b in range(batch):
            matrix = self.implicit_matrix(terms, layer, ctx, tokens, b)
            key = (kind, float(scales[b]), id(matrix))
            if key not in self._cache:  # (I − aL)⁻¹ or exp(aL), kept with its matrix
                self._cache[key] = (np.linalg.inv(np.eye(tokens) - scales[b] * matrix)
                                    if kind == "solve" else scipy.linalg.expm(scales[b] * matrix))
            out[b] = self._cache[key] @ x[b]
        return out

    def at(self, t: float) -> None:
        """Evaluate depth-dependent (``basis``) coefficients at depth t, as
        ``SharedParameters.at`` does: s = 2(t − t0)/(t1 − t0) − 1."""
        m = self.model
        self.depth = 2.0 * (t - m.t0) / (m.layers * m.substeps * m.dt) - 1.0

    def layer_step(self, u: np.ndarray, layer: int, ctx: _Context | None = None, dt=None):
        """One time step with layer ``layer``'s weights: the step program interpreted."""
        ctx = ctx or _Context(u.shape[1])
        dt = self.model.dt if dt is None else dt
        return P.run(self.model.program, _OracleMachine(self, layer, ctx, dt, u.shape), u)

    def final_norm(self, u: np.ndarray) -> np.ndarray:
        n = self.model.norm
        if not n.final or n.kind == "none":
            return u
        return self.norm(u, n.kind, n.eps, n.affine, "final_norm")

    def forward(self, u, mask=None, *, return_trajectory: bool = False,
                return_attention: bool = False, dt=None):
        """Integrate like the generated ``Stepper.forward`` (same arguments and results)."""
        u = np.asarray(u, dtype=np.float64)
        ctx = _context(self.model, u, mask, return_attention)
        states = [u]
        m = self.model
        for layer in range(m.layers):
            for substep in range(m.substeps):
                # depth-dependent (basis) coefficients: held at the step's midpoint
                self.at(m.t0 + (layer * m.substeps + substep + 0.5) * m.dt)
                u = self.layer_step(u, layer, ctx, dt)
            states.append(u)
        state = self.final_norm(u)
        if return_trajectory or return_attention:
            return OracleOutput(state, states, ctx.attentions)
        return state

    __call__ = forward

    def context(self, u: np.ndarray, mask=None, record: bool = False) -> _Context:
        """The per-call context for ``u`` and ``mask`` (for :meth:`term` and friends)."""
        return _context(self.model, np.asarray(u), mask, record)
