"""The discrete IR (output of stage ``discretize``): plain data, no SymPy, no torch.

It says exactly what one time step computes: the stages of the scheme with the
stabilizers in place, every term as an expression tree over the discrete operators,
the stencils as exact rationals, the modules and scalar parameters each layer owns.
The code printer and the NumPy oracle both read this — and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from pdelang.compiler.schemes.program import StepProgram




# ----------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Const:
    value: Fraction | float

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class Param:
    name: str


@dataclass(frozen=True)
class State:
    """The field (the state u of shape (B, N, C))."""


@dataclass(frozen=True)
class Sum:
    terms: tuple[DExpr, ...]


@dataclass(frozen=True)
class Product:
    factors: tuple[DExpr, ...]


@dataclass(frozen=True)
class Power:
    base: DExpr
    exponent: Fraction | float


@dataclass(frozen=True)
class Elementwise:
    func: str  # tanh | exp | relu | gelu | sigmoid
    operand: DExpr


@dataclass(frozen=True)
class ApplyStencil:
    """Σ_axes Σ_j w_j u(x + j h e_axis) / h^k on grid tokens (zero on extra/padding tokens)."""

    stencil: str  # key into DiscreteModel.stencils
    operand: DExpr


@dataclass(frozen=True)
class ApplyModule:
    """A learned operator module of the layer (attention, mlp, linear, layernorm, rmsnorm)."""

    module: str
    op: str
    operand: DExpr


DExpr = (Const | Param | State | Sum | Product | Power | Elementwise | ApplyStencil
         | ApplyModule)


def children(node: DExpr) -> tuple[DExpr, ...]:
    if isinstance(node, (Sum,)):
        return node.terms
    if isinstance(node, Product):
        return node.factors
    if isinstance(node, Power):
        return (node.base,)
    if isinstance(node, (Elementwise, ApplyStencil, ApplyModule)):
        return (node.operand,)
    return ()


def walk(node: DExpr):
    yield node
    for child in children(node):
        yield from walk(child)


# ----------------------------------------------------------------------------- modules
@dataclass(frozen=True)
class DiscreteStencil:
    """A derivative operator: ``derivative``-th derivative along ``axes`` (summed)."""

    key: str  # laplace | diff[axis,k]
    derivative: int
    axes: tuple[int, ...]  # indices into the grid axes
    offsets: tuple[int, ...]
    weights: tuple[Fraction, ...]  # exact, before the 1/h^k factor
    spacing: float
    accuracy: int
    order: int

    @property
    def radius(self) -> int:
        return max(abs(o) for o in self.offsets)

    attribute: str = ""  # the generated module attribute that applies it (laplace, d2_x)
    operator: str = ""  # the operator it discretizes (laplace, diff)

    def scaled_weights(self) -> tuple[float, ...]:
        return tuple(float(w) / self.spacing ** self.derivative for w in self.weights)


@dataclass(frozen=True)
class OperatorModule:
    """A learned operator call site: one module per layer (``interaction_attention``), with
    what its operator says of the call (filled by ``discretize``: the IR is plain data and
    never asks an operator by name)."""

    name: str
    op: str
    options: Mapping[str, object]
    category: str = ""  # the operator's category ("norm", "interaction", …)
    records_attention: bool = False
    causal: bool = False
    heads: int | None = None  # of a call that records attention maps


@dataclass(frozen=True)
class ScalarParameter:
    name: str
    value: float
    learnable: bool
    positive: bool
    per_layer: bool
    basis: tuple[str, int] | None = None  # (kind, K): value(t) = Σ_k c_k P_k(s(t))

    @property
    def coefficients(self) -> tuple[float, ...] | None:
        """The basis coefficients it starts from, (value, 0, …, 0); None without a basis."""
        return None if self.basis is None else (self.value,) + (0.0,) * (self.basis[1] - 1)


@dataclass(frozen=True)
class DiscreteTerm:
    name: str
    expr: DExpr
    normalized: bool  # the norm stabilizer applies to this term (pre or post)


# ----------------------------------------------------------------------------- implicit terms
@dataclass(frozen=True)
class ImplicitTerm:
    """A linear, constant-coefficient term ``L u = c₀ u + Σ_w c_w S_w(u)`` that the step
    program treats implicitly (``Solve``) or by its exact flow (``Flow``): the field-free
    coefficient expressions and the words of stencils they multiply, each word the stencil
    keys in the order they are applied, outer first (``("laplace", "laplace")`` is
    ``laplace(laplace(u))``; :mod:`pdelang.compiler.symbolic.linear`)."""

    term: str
    zero_order: DExpr  # c₀ (field-free)
    parts: tuple[tuple[DExpr, tuple[str, ...]], ...]  # (c_w field-free, stencil keys)


@dataclass(frozen=True)
class NormStabilizer:
    kind: str  # layernorm | rmsnorm | none
    placement: str  # pre | post
    eps: float
    affine: bool
    final: bool


@dataclass(frozen=True)
class DiscreteModel:
    name: str
    class_name: str
    description: str
    spec_file: str
    spec_sha256: str
    equation: str
    channels: int
    axes: tuple[str, ...]
    shape: tuple[int, ...] | None
    spacing: float
    boundary: str
    extra_tokens: int
    dt: float
    layers: int
    substeps: int
    residual: bool
    norm: NormStabilizer
    terms: tuple[DiscreteTerm, ...]
    program: StepProgram
    parameters: tuple[ScalarParameter, ...]
    modules: tuple[OperatorModule, ...]
    stencils: Mapping[str, DiscreteStencil]
    implicit: tuple[ImplicitTerm, ...] = ()
    stencil_radius: int = 0  # ghost tokens any operator reads beyond an end
    t0: float = 0.0  # time.span[0]: where layer 0's interval starts
    tied: bool = False  # one weight set shared by every layer (time.tied)
    padding: bool = True  # a batch may mix lengths (grid.padding): the padded-batch path
    facts: Mapping[str, object] = field(default_factory=dict)  # derived facts for the header

    def term(self, name: str) -> DiscreteTerm:
        return next(t for t in self.terms if t.name == name)

    @property
    def causal(self) -> bool:
        return any(m.causal for m in self.modules)

    @property
    def heads(self) -> int | None:
        return next((m.heads for m in self.modules if m.heads is not None), None)

    @property
    def attention_modules(self) -> tuple:
        """The call-site modules that record attention maps."""
        return tuple(m for m in self.modules if m.records_attention)

    @property
    def norm_modules(self) -> tuple:
        """The call-site modules that are normalizations (``layernorm(u)``, ``rmsnorm(u)``)."""
        return tuple(m for m in self.modules if m.category == "norm")

    @property
    def normalized_terms(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms if t.normalized)

    def implicit_term(self, name: str) -> ImplicitTerm:
        return next(t for t in self.implicit if t.term == name)

    def structure(self) -> dict:
        """JSON-able description of the stepper (emitted as ``Stepper.STRUCTURE``)."""
        implicit = {"implicit": list(self.program.implicit)} if self.program.implicit else {}
        return implicit | {
            "name": self.name,
            "channels": self.channels,
            "layers": self.layers,
            "substeps": self.substeps,
            **({"tied": True} if self.tied else {}),
            "dt": self.dt,
            "scheme": self.program.scheme,
            "split_order": [term for term, _ in self.program.sub_steps],
            "residual": self.residual,
            "norm": {"kind": self.norm.kind, "placement": self.norm.placement,
                     "eps": self.norm.eps, "affine": self.norm.affine, "final": self.norm.final,
                     "terms": list(self.normalized_terms)},
            "grid_axes": list(self.axes),
            "grid_shape": list(self.shape) if self.shape and len(self.axes) == 2 else None,
            "boundary": self.boundary,
            "extra_tokens": self.extra_tokens,
            "padding": self.padding,
            "causal": self.causal,
            "heads": self.heads,
            "terms": [t.name for t in self.terms],
            "modules": {m.name: {"op": m.op, **{k: v for k, v in sorted(m.options.items())}}
                        for m in self.modules},
            "parameters": {p.name: {"value": p.value, "learnable": p.learnable,
                                    "positive": p.positive, "per_layer": p.per_layer}
                           | ({"basis": {"kind": p.basis[0], "size": p.basis[1]}}
                              if p.basis else {})
                           for p in self.parameters},
        }
