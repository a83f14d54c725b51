"""The discrete IR (output of stage ``discretize``): plain data, no SymPy, no torch.

It says exactly what one time step computes: the stages of the scheme with the
stabilizers in place, every term as an expression tree over the discrete operators,
the stencils as exact rationals, the modules and scalar parameters each layer owns.
The code printer and the NumPy reference interpreter both read this — and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from collections.abc import Mapping


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

    @property
    def attribute(self) -> str:
        return ("laplace" if self.key == "laplace"
                else "d" + str(self.derivative) + "_" + self.key[5:-1].split(",")[0])

    def scaled_weights(self) -> tuple[float, ...]:
        return tuple(float(w) / self.spacing ** self.derivative for w in self.weights)


@dataclass(frozen=True)
class OperatorModule:
    """A learned operator call site: one module per layer (``interaction_attention``)."""

    name: str
    op: str
    options: Mapping[str, object]


@dataclass(frozen=True)
class ScalarParameter:
    name: str
    value: float
    learnable: bool
    positive: bool
    per_layer: bool


@dataclass(frozen=True)
class DiscreteTerm:
    name: str
    expr: DExpr
    normalized: bool  # the norm stabilizer applies to this term (pre or post)


# ----------------------------------------------------------------------------- time stepping
@dataclass(frozen=True)
class SplitStep:
    """One sub-step of a splitting scheme: u ← [P](u + fraction·Δt·f_term([P]u))."""

    term: str
    fraction: Fraction


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method.

    Stages k_i = F(u + Δt Σ_j a_ij k_j), update u⁺ = u + Δt Σ b_i k_i."""

    a: tuple[tuple[Fraction, ...], ...]
    b: tuple[Fraction, ...]


TABLEAUS = {
    "euler": ButcherTableau(((),), (Fraction(1),)),
    # Heun's method (explicit trapezoidal rule), order 2.
    "rk2": ButcherTableau(((), (Fraction(1),)), (Fraction(1, 2), Fraction(1, 2))),
    # The classical fourth-order method.
    "rk4": ButcherTableau(
        ((), (Fraction(1, 2),), (Fraction(0), Fraction(1, 2)),
         (Fraction(0), Fraction(0), Fraction(1))),
        (Fraction(1, 6), Fraction(1, 3), Fraction(1, 3), Fraction(1, 6)),
    ),
}


@dataclass(frozen=True)
class StepProgram:
    scheme: str
    split_steps: tuple[SplitStep, ...] = ()  # lie / strang
    tableau: ButcherTableau | None = None  # euler / rk2 / rk4

    @property
    def is_splitting(self) -> bool:
        return self.tableau is None


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
    facts: Mapping[str, object] = field(default_factory=dict)  # derived facts for the header

    def term(self, name: str) -> DiscreteTerm:
        return next(t for t in self.terms if t.name == name)

    @property
    def causal(self) -> bool:
        return any(m.op == "attention" and m.options.get("causal") for m in self.modules)

    @property
    def heads(self) -> int | None:
        return next((int(m.options["heads"]) for m in self.modules if m.op == "attention"), None)

    @property
    def normalized_terms(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms if t.normalized)

    def structure(self) -> dict:
        """JSON-able description of the stepper (emitted as ``Stepper.STRUCTURE``)."""
        return {
            "name": self.name,
            "channels": self.channels,
            "layers": self.layers,
            "substeps": self.substeps,
            "dt": self.dt,
            "scheme": self.program.scheme,
            "split_order": [s.term for s in self.program.split_steps],
            "residual": self.residual,
            "norm": {"kind": self.norm.kind, "placement": self.norm.placement,
                     "eps": self.norm.eps, "affine": self.norm.affine, "final": self.norm.final,
                     "terms": list(self.normalized_terms)},
            "grid_axes": list(self.axes),
            "grid_shape": list(self.shape) if self.shape and len(self.axes) == 2 else None,
            "boundary": self.boundary,
            "extra_tokens": self.extra_tokens,
            "causal": self.causal,
            "heads": self.heads,
            "terms": [t.name for t in self.terms],
            "modules": {m.name: {"op": m.op, **{k: v for k, v in sorted(m.options.items())}}
                        for m in self.modules},
            "parameters": {p.name: {"value": p.value, "learnable": p.learnable,
                                    "positive": p.positive, "per_layer": p.per_layer}
                           for p in self.parameters},
        }
