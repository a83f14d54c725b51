"""The operator protocol: everything pdelang knows about one operator, in one object.

An operator of the term language (``laplace(u)``, ``attention(u, heads=12)``, …) is an
instance of a subclass of :class:`Operator`, defined in its own module of this package and
found there by :mod:`pdelang.compiler.operators` (no list to edit elsewhere).  It carries

* its **signature** (operand, typed options with defaults, positional options) and the
  validation of a call's options (:meth:`Operator.check_call`);
* its **facts**: linear in the operand, local, learned weights, constant coefficients (a fixed
  stencil that can be treated implicitly), differential order, stencil radius;
* its **SymPy class** and how a call is lowered to it (:meth:`Operator.to_sympy`);
* its **analysis**: the stencils it needs and their von Neumann symbols;
* its **discretization** into a node of the discrete IR (:meth:`Operator.discretize`);
* its **torch printing** (:meth:`Operator.torch_expr`, :meth:`Operator.torch_module`,
  :attr:`Operator.runtime_blocks`);
* its **NumPy evaluation** in the float64 NumPy oracle (:meth:`Operator.numpy_eval`);
* a **hypothesis strategy** for its calls (:meth:`Operator.draw_call`).

A consumer that needs a handler the operator does not define gets :class:`MissingHandler`,
which names the consumer and the operator (UFL's "missing handler", SymPy's strict printers):
nothing falls back silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pdelang.compiler.discrete import ir as D


class MissingHandler(NotImplementedError):
    """A consumer of the operator protocol met an operator that has no handler for it.

    This is a bug in pdelang (or in an operator plug-in), not in a spec."""

    def __init__(self, consumer: str, operator: str, method: str) -> None:
        super().__init__(f"{consumer} has no handler for operator '{operator}' "
                         f"(define {method} in pdelang/compiler/operators/{operator}.py)")
        self.consumer = consumer
        self.operator = operator


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
    maximum: float | None = None

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name}=" + "|".join(self.choices)
        return f"{self.name}=<{self.kind}>"


@dataclass(frozen=True)
class CallSite:
    """What an operator may consult while it checks one call: the spec's field and grid, and
    where each given option was written (for located errors)."""

    field: str
    channels: int
    axes: tuple[str, ...]
    loc: Any  # SourceLocation of the call
    option_locs: dict  # option name → SourceLocation of its value

    def where(self, option: str):
        return self.option_locs.get(option, self.loc)


class Operator:
    """Base of every operator.  Subclasses set the class attributes and override the hooks
    their category needs; the others raise :class:`MissingHandler`."""

    name: ClassVar[str] = ""
    category: ClassVar[str] = ""  # differential | interaction | learned | norm | elementwise
    meaning: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    positional_options: ClassVar[tuple[str, ...]] = ()  # options that may be given by position
    linear: ClassVar[bool] = False  # linear in its operand (for its default options)
    local: ClassVar[bool] = True
    learned: ClassVar[bool] = False  # owns weights: one module per call site and layer
    constant_coefficient: ClassVar[bool] = False  # a fixed linear stencil: may be implicit
    discretized: ClassVar[bool] = False  # has ``discretization.<name>.accuracy`` in the spec
    # (runtime file, block) its calls need; the printer adds the imports, constants and other
    # blocks these read (ghost functions, BOUNDARY, …) by the names in their code
    runtime_blocks: ClassVar[tuple[tuple[str, str], ...]] = ()
    # (runtime file, block) its blocks may call: emitted only when a printed block reads it
    helper_blocks: ClassVar[tuple[tuple[str, str], ...]] = ()
    records_attention: ClassVar[bool] = False  # its calls record attention maps
    # the part of a Transformer layer whose weights a call carries ("attention", "mlp"), for
    # mapping a reference model's weights onto a spec (None: no such part)
    reference_part: ClassVar[str | None] = None

    # ------------------------------------------------------------------ facts of a call
    def is_causal(self, options) -> bool:
        """Whether a call with these options lets a token see only earlier ones."""
        return False

    def attention_heads(self, options) -> int | None:
        """The heads of a call that records attention maps (None for other operators)."""
        return None

    def effective_options(self, options, channels: int) -> dict:
        """The options with every default that depends on the field resolved to its value
        for ``channels`` channels (``attention``: ``rank=0`` is C/heads), so that two calls
        that build the same map compare equal."""
        return dict(options)

    # ------------------------------------------------------------------ signature
    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    @property
    def signature(self) -> str:
        parts = ["operand"] + [o.name if o.name in self.positional_options else o.describe()
                               for o in self.options]
        return f"{self.name}({', '.join(parts)})"

    def check_call(self, options: dict, site: CallSite) -> dict:
        """Validate a call's options beyond their types (``heads`` divides the channels, …)
        and fill defaults that depend on the spec; raise a located
        :class:`~pdelang.errors.OperatorError`.  Returns the final options."""
        return options

    # ------------------------------------------------------------------ facts
    def is_linear(self, options) -> bool:
        return self.linear

    def differential_order(self, options) -> int:
        return 0

    def stencil_radius(self, options, accuracy) -> int:
        """Ghost tokens the operator reads beyond each end of the grid (0: pointwise)."""
        return 0

    def learnable(self, options) -> bool:
        """Whether a call site owns trainable weights."""
        return self.learned

    def warnings(self, options) -> list[str]:
        """Options that are valid but almost certainly not what the user meant."""
        return []

    # ------------------------------------------------------------------ symbolic
    affine_class: ClassVar[Any] = None  # the SymPy class when ``bias=true`` makes it affine

    def to_sympy(self, operand, options: dict, lowering):
        """The SymPy expression of a call.  ``lowering`` offers ``axis_symbol(name)`` and
        ``new_instance(operator, options)`` (the name of a new weight-owning call site).
        A learned operator's call is ``Class(operand, <its call site>)``."""
        if self.learned:
            cls = self.affine_class if options.get("bias") and self.affine_class \
                else self.sympy_class
            return cls(operand, lowering.new_instance(self, options))
        raise MissingHandler("the SymPy lowering", self.name, "to_sympy")

    def options_of(self, call, model) -> dict:
        """The options of a lowered SymPy call (the inverse of :meth:`to_sympy`)."""
        instance = model.instances.get(str(call.args[1])) if len(call.args) > 1 else None
        if instance is not None:
            return dict(instance.options)
        raise MissingHandler("the analysis", self.name, "options_of")

    # ------------------------------------------------------------------ analysis
    def stencils(self, call, model) -> dict:
        """key → :class:`~pdelang.compiler.analysis.analyse.StencilFacts` of the fixed stencils."""
        if self.constant_coefficient:
            raise MissingHandler("the stencil analysis", self.name, "stencils")
        return {}

    def von_neumann(self, call, model, stencils, thetas) -> list:
        """[(axis symbol, λ_axis(θ_axis) without the coefficient)] of a constant-coefficient
        linear call on the field: the von Neumann symbol, summed over the list."""
        raise MissingHandler("the stability analysis", self.name, "von_neumann")

    # ------------------------------------------------------------------ discretize
    def discretize(self, call, operand, model):
        """The discrete IR node of a lowered call, given its discretized operand (for a
        learned operator: its call site's module applied to the operand)."""
        if self.learned:
            instance = model.instances[str(call.args[1])]
            return D.ApplyModule(instance.name, self.name, operand)
        raise MissingHandler("discretize", self.name, "discretize")

    # ------------------------------------------------------------------ torch
    def torch_expr(self, node, operand: str, model) -> str:
        """Source of the call in a generated term method (``self.<module>(x)``); ``model`` is
        the discrete model being printed."""
        if self.learned:
            return f"self.{node.module}({operand})"
        raise MissingHandler("the torch printer", self.name, "torch_expr")

    def torch_scaled_expr(self, node, operand: str, scale: str, model) -> str | None:
        """Source of ``scale · call`` with the field-free factor ``scale`` (constant within a
        step: a number, a parameter) folded into the operator, or None when it has no such
        form and the printer multiplies.  The fixed stencils fold it into their kernel, so
        ``D * laplace(u)`` is one operation instead of two."""
        return None

    def parameter_shapes(self, channels: int, options, dims: int) -> dict[str, tuple[int, ...]]:
        """The learned tensors one call site allocates per layer, by name relative to the
        call site's module (``"q.weight"``), with their shapes, for ``channels`` channels,
        the call's validated ``options`` and a grid of ``dims`` axes.  The single source of
        the weight count (:func:`pdelang.compiler.symbolic.lower.check_weights`); a learned
        operator without it is a :class:`MissingHandler`, never zero weights."""
        if not self.learned:
            return {}
        raise MissingHandler("the weight declaration", self.name, "parameter_shapes")

    def torch_module(self, module) -> str:
        """Constructor source of a weight-owning call site's module."""
        raise MissingHandler("the torch printer", self.name, "torch_module")

    def print_flags(self, modules) -> dict[str, bool]:
        """Print-time flags (:mod:`pdelang.compiler.codegen.runtime.constants`) its blocks
        branch on, decided by the spec's call sites ``modules``: the printer folds them."""
        return {}

    def torch_constants(self, modules) -> list[str]:
        """Module-level lines the generated code needs before the runtime blocks."""
        return []

    # ------------------------------------------------------------------ numpy
    def numpy_eval(self, node, operand, oracle, layer: int, ctx):
        """The value of a call in the NumPy oracle (float64, from the mathematics)."""
        raise MissingHandler("the NumPy oracle", self.name, "numpy_eval")

    # ------------------------------------------------------------------ hypothesis
    def draw_call(self, draw, ctx, operand: str) -> str:
        """The text of a random valid call on ``operand`` (``ctx``: the spec being drawn)."""
        raise MissingHandler("the hypothesis strategies", self.name, "draw_call")


def number_option(draw, low: int, high: int):
    """A hypothesis draw of an int in [low, high] (small helper for ``draw_call``)."""
    from hypothesis import strategies as st  # lazy: hypothesis
    return draw(st.integers(low, high))


def drawn_bool(draw) -> str:
    from hypothesis import strategies as st  # lazy: hypothesis
    return draw(st.sampled_from(["true", "false"]))
