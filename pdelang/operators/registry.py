"""The operator registry: the one place that defines every operator of the term language.

For each operator: its name, signature (positional parameters and typed options with
defaults), its mathematical meaning, and the facts the analysis needs (linear in its
operand, local or non-local, differential order, learned weights).  The lowering stage
checks calls against these signatures; the code generator looks operators up here too.

Derivative syntax: ``diff(u, AXIS)`` is ∂u/∂AXIS, ``diff(u, AXIS, K)`` (or
``diff(u, AXIS, order=K)``) is the K-th derivative along the named grid axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """A typed option of an operator call (``heads=12``, ``activation=gelu``)."""

    name: str
    kind: str  # int | float | bool | choice | axis
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    doc: str = ""
    required: bool = False

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name}=" + "|".join(self.choices)
        return f"{self.name}=<{self.kind}>"


@dataclass(frozen=True)
class OperatorDef:
    name: str
    category: str  # differential | interaction | learned | norm | elementwise
    meaning: str  # the mathematics, in words and symbols
    options: tuple[Option, ...] = ()
    positional_options: tuple[str, ...] = ()  # options that may also be given by position
    linear: bool = False  # linear in its operand
    local: bool = True
    learned: bool = False

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    @property
    def signature(self) -> str:
        parts = ["operand"] + [o.name if o.name in self.positional_options else o.describe()
                               for o in self.options]
        return f"{self.name}({', '.join(parts)})"

    def differential_order(self, options: dict) -> int:
        if self.name == "laplace":
            return 2
        if self.name == "diff":
            return int(options["order"])
        return 0


ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "tanh")

_OPS = [
    OperatorDef(
        "laplace", "differential",
        "Δu = Σ_axes ∂²u/∂x_a², discretized by the centred stencil of the requested accuracy",
        linear=True,
    ),
    OperatorDef(
        "diff", "differential",
        "∂^k u/∂x_a^k along the named grid axis a (centred stencil)",
        options=(Option("axis", "axis", required=True, doc="a grid axis name"),
                 Option("order", "int", 1, minimum=1, doc="derivative order k")),
        positional_options=("axis", "order"),
        linear=True,
    ),
    OperatorDef(
        "attention", "interaction",
        "A[u](x) = W_O Σ_y softmax_y(<W_Q u(x), W_K u(y)>/√d_h) W_V u(y), per head",
        options=(Option("heads", "int", 1, minimum=1, doc="number of heads (divides channels)"),
                 Option("causal", "bool", False, doc="no attention to later tokens"),
                 Option("kernel", "choice", "softmax", ("softmax", "sinkhorn"),
                        doc="row-softmax, or Sinkhorn (doubly stochastic, Sander et al.)"),
                 Option("iterations", "int", 20, minimum=1,
                        doc="Sinkhorn iterations (kernel=sinkhorn)"),
                 Option("bias", "bool", True, doc="biases on the Q, K, V, O projections")),
        local=False, learned=True,
    ),
    OperatorDef(
        "mlp", "learned",
        "R(u) = W_2 σ(W_1 u + b_1) + b_2, token-wise",
        options=(Option("hidden", "int", None, minimum=1, doc="hidden width (default 4C)"),
                 Option("activation", "choice", "gelu", ACTIVATIONS),
                 Option("bias", "bool", True)),
        learned=True,
    ),
    OperatorDef("linear", "learned", "W u (+ b), a learned C×C map, token-wise",
                options=(Option("bias", "bool", False),), linear=True, learned=True),
    OperatorDef("layernorm", "norm", "(u − mean(u)) / √(var(u) + ε) · γ + β over channels",
                options=(Option("eps", "float", 1e-5, minimum=0.0),
                         Option("affine", "bool", True)), learned=True),
    OperatorDef("rmsnorm", "norm", "u / √(mean(u²) + ε) · γ over channels",
                options=(Option("eps", "float", 1e-5, minimum=0.0),
                         Option("affine", "bool", True)), learned=True),
    OperatorDef("tanh", "elementwise", "tanh(u), elementwise"),
    OperatorDef("relu", "elementwise", "max(u, 0), elementwise"),
    OperatorDef("gelu", "elementwise", "u Φ(u), elementwise (exact, erf form)"),
    OperatorDef("sigmoid", "elementwise", "1 / (1 + e^{−u}), elementwise"),
    OperatorDef("exp", "elementwise", "e^u, elementwise"),
]

OPERATORS: dict[str, OperatorDef] = {op.name: op for op in _OPS}


def lookup(name: str) -> OperatorDef | None:
    return OPERATORS.get(name)
