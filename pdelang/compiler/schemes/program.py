"""The step program: what one time step computes, as a short list of instructions.

A time scheme is data that *generates* a step program (:mod:`pdelang.compiler.schemes`); every
backend *interprets* the same program — the torch printer (generated code), the NumPy
reference, the linear stepper of the property checks, and the stability analysis (run
symbolically on ``u' = λu``).  So ``check``, ``verify`` and the generated header cannot
disagree about a scheme.

Registers hold states ``(B, N, C)`` (or their stand-ins in a backend): ``u`` is the state
(it holds uₙ on entry and uₙ₊₁ on exit); schemes name stage states ``u2, u3, …`` and rates
``k1, k2, …`` (explicit) and ``l2, …`` (implicit terms' rates).

Instructions (Δt is the step):

* :class:`Rate`     ``k ← Σ_{t ∈ terms} f_t([P_t] x)``: the explicit vector field of some
  terms at a combination ``x`` of registers (``P_t``: the pre-norm of term t, if any);
* :class:`Solve`    ``k ← (I − c Δt L)⁻¹ x``, ``L = Σ_{t ∈ terms} L_t``: a linear implicit
  stage of linear, constant-coefficient terms;
* :class:`Flow`     ``k ← exp(c Δt L) x``: the exact flow of linear terms over ``c Δt``;
* :class:`Assign`   ``k ← x`` (the update; without the residual, x has no identity part);
* :class:`Project`  ``k ← P(k)``: a post-normalization (a norm module of the layer);
* :class:`Observe`  the diagnostics hook (``ctx.after(index, label, k)``).

A combination ``x`` is ``Σ_i c_i [Δt] r_i`` (:class:`Combination`); coefficients are exact:
rationals, or rational combinations of named scheme constants such as ``GAMMA = 1 − 1/√2``
(:class:`Coefficient`).  Everything here is plain, immutable data without SymPy or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol
import sympy


# ----------------------------------------------------------------------------- coefficients
@dataclass(frozen=True)
class Coefficient:
    """An exact coefficient ``Σ_k q_k K_k``: rationals ``q_k`` times ``K_k``, which is 1 (the
    name ``""``) or a named constant of the scheme (``GAMMA``)."""

    parts: tuple[tuple[str, Fraction], ...]  # (constant name or "", rational), sorted, ≠ 0

    @staticmethod
    def of(value: int | Fraction | str | Coefficient) -> Coefficient:
        """A coefficient from a rational, a constant's name, or a coefficient."""
        if isinstance(value, Coefficient):
            return value
        if isinstance(value, str):
            return Coefficient(((value, Fraction(1)),))
        q = Fraction(value)
        return Coefficient((("", q),) if q else ())

    def _combine(self, other: Coefficient, sign: int) -> Coefficient:
        total: dict[str, Fraction] = dict(self.parts)
        for name, q in Coefficient.of(other).parts:
            total[name] = total.get(name, Fraction(0)) + sign * q
        return Coefficient(tuple(sorted((k, v) for k, v in total.items() if v)))

    def __add__(self, other) -> Coefficient:
        return self._combine(Coefficient.of(other), 1)

    __radd__ = __add__

    def __sub__(self, other) -> Coefficient:
        return self._combine(Coefficient.of(other), -1)

    def __rsub__(self, other) -> Coefficient:
        return Coefficient.of(other)._combine(self, -1)

    def __neg__(self) -> Coefficient:
        return Coefficient(tuple((k, -v) for k, v in self.parts))

    def scaled(self, q: Fraction | int) -> Coefficient:
        q = Fraction(q)
        return Coefficient(tuple((k, v * q) for k, v in self.parts if v * q))

    @property
    def is_zero(self) -> bool:
        return not self.parts

    @property
    def rational(self) -> Fraction | None:
        """The value if it is rational (no named constant), else None."""
        if not self.parts:
            return Fraction(0)
        if len(self.parts) == 1 and self.parts[0][0] == "":
            return self.parts[0][1]
        return None

    @property
    def constants(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.parts if k)

    def evaluate(self, constants: Mapping[str, Any], convert: Callable = float):
        """The value, with each rational converted by ``convert`` (``float``, or
        ``sympy.Rational`` for an exact value) and each named constant from ``constants``."""
        total = convert(Fraction(0))
        for name, q in self.parts:
            total = total + convert(q) * (1 if name == "" else constants[name])
        return total

    def __str__(self) -> str:
        return format_coefficient(self)


def format_coefficient(c: Coefficient) -> str:
    """``1/2``, ``GAMMA``, ``1 - GAMMA``, ``-1 + 2*DELTA`` (the rational part first)."""
    if not c.parts:
        return "0"
    pieces = []
    for name, q in sorted(c.parts, key=lambda p: p[0] != ""):  # the rational part first
        magnitude = abs(q)
        if name:
            text = name if magnitude == 1 else f"{magnitude}*{name}"
        else:
            text = str(magnitude)
        pieces.append(("-" if q < 0 else "+", text))
    out = ("-" if pieces[0][0] == "-" else "") + pieces[0][1]
    for sign, text in pieces[1:]:
        out += f" {sign} {text}"
    return out


@dataclass(frozen=True)
class SchemeConstant:
    """A named constant of a scheme, declared once as a ``formula`` over a namespace with
    ``sqrt`` (``lambda m: 1 - 1 / m.sqrt(2)``): ``formula(sympy)`` is its exact value (the
    symbolic analysis), :attr:`value` the double nearest to it (printed into generated
    code; evaluating the formula in floats would round twice); ``definition`` says it in
    words."""

    name: str
    formula: Callable[[Any], Any] = field(compare=False, repr=False)
    definition: str

    @functools.cached_property
    def value(self) -> float:
        return float(sympy.N(self.exact(), 40))

    def exact(self):
        return self.formula(sympy)


# ----------------------------------------------------------------------------- combinations
@dataclass(frozen=True)
class Part:
    """``coefficient · [Δt ·] register``."""

    coefficient: Coefficient
    register: str
    dt: bool = False


@dataclass(frozen=True)
class Combination:
    """``Σ_i c_i [Δt] r_i``: a linear combination of registers."""

    parts: tuple[Part, ...]

    @staticmethod
    def state(register: str = "u") -> Combination:
        return Combination((Part(Coefficient.of(1), register),))

    def plus(self, coefficient, register: str, dt: bool = True) -> Combination:
        c = Coefficient.of(coefficient)
        if c.is_zero:
            return self
        return Combination(self.parts + (Part(c, register, dt),))

    @property
    def registers(self) -> tuple[str, ...]:
        return tuple(p.register for p in self.parts)

    @property
    def is_register(self) -> str | None:
        """The register if the combination is exactly ``1 · r``, else None."""
        if len(self.parts) == 1 and not self.parts[0].dt and \
                self.parts[0].coefficient.rational == 1:
            return self.parts[0].register
        return None


# ----------------------------------------------------------------------------- instructions
@dataclass(frozen=True)
class Rate:
    """``target ← Σ_{t ∈ terms} f_t([P_t] at)``: explicit evaluation of the terms' vector
    field (with each term's pre-norm, if it has one)."""

    target: str
    terms: tuple[str, ...]
    at: Combination


@dataclass(frozen=True)
class Solve:
    """``target ← (I − coefficient·Δt·L)⁻¹ rhs`` with ``L = Σ_{t ∈ terms} L_t`` (linear,
    constant-coefficient terms): one linear implicit stage."""

    target: str
    terms: tuple[str, ...]
    coefficient: Coefficient
    rhs: Combination


@dataclass(frozen=True)
class Flow:
    """``target ← exp(coefficient·Δt·L) at``: the exact flow of linear terms."""

    target: str
    terms: tuple[str, ...]
    coefficient: Coefficient
    at: Combination


@dataclass(frozen=True)
class Assign:
    """``target ← value``: the state update (with or without the identity part)."""

    target: str
    value: Combination


@dataclass(frozen=True)
class Project:
    """``target ← P(target)``: a post-normalization with the layer's norm module ``norm``."""

    target: str
    norm: str


@dataclass(frozen=True)
class Observe:
    """The diagnostics hook: ``ctx.after(index, label, register)``."""

    index: int
    label: str
    register: str


Instruction = Rate | Solve | Flow | Assign | Project | Observe


@dataclass(frozen=True)
class NormModule:
    """A normalization module of each layer: where it acts and which terms it stabilizes.

    ``placement`` ``pre``: inside the vector field of its terms (``f_t(P u)``); ``post``: a
    projection of the state after the sub-step (splitting) or step (Runge–Kutta) that
    advanced its terms."""

    name: str  # module attribute: norm_<term> or norm
    placement: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class StepProgram:
    """One time step of a scheme, with the stabilizers in place."""

    scheme: str
    kind: str  # splitting | runge_kutta | imex
    order: int  # the order this program claims (see the scheme generators)
    instructions: tuple[Instruction, ...]
    terms: tuple[str, ...]  # every term of the equation, in equation order
    implicit: tuple[str, ...] = ()  # terms advanced by Solve / Flow
    residual: bool = True
    norms: tuple[NormModule, ...] = ()
    constants: tuple[SchemeConstant, ...] = ()
    sub_steps: tuple[tuple[str, Fraction], ...] = ()  # splitting: (term, fraction of Δt)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_splitting(self) -> bool:
        return self.kind == "splitting"

    @property
    def pre_norms(self) -> dict[str, str]:
        """term → the norm module applied to its argument (pre placement)."""
        return {t: n.name for n in self.norms if n.placement == "pre" for t in n.terms}

    @property
    def ode_obstacle(self) -> str | None:
        """Why refining Δt → 0 does *not* converge to the ODE ``du/dt = F(u)``,
        ``F(u) = Σ_t f_t([P_t] u)`` (``None`` when it does).

        Every scheme here is consistent with that ODE when the update keeps its identity
        part and the norms act inside the vector field (``pre``, or none).  Without the
        residual a sub-step *replaces* the state (``u ← Δt f(u)``), which has no limit as
        Δt → 0; a ``post`` norm projects after every (sub-)step, so the number of
        projections grows with the refinement and the limit is not the flow of ``F``."""
        if not self.residual:
            return ("without the residual a sub-step replaces the state (u ← Δt·f(u)) "
                    "instead of adding to it, so refining Δt has no ODE limit")
        if self.post_norms:
            return ("a post-norm projects the state after every (sub-)step, so refining Δt "
                    "multiplies the projections and the limit is not the flow of an ODE")
        return None

    @property
    def post_norms(self) -> tuple[NormModule, ...]:
        return tuple(n for n in self.norms if n.placement == "post")

    @property
    def constant_values(self) -> dict[str, float]:
        return {c.name: c.value for c in self.constants}

    def coefficient(self, c: Coefficient) -> float:
        return float(c.evaluate(self.constant_values))



# ----------------------------------------------------------------------------- reading
def signed(c: Coefficient) -> tuple[str, Coefficient]:
    """(``+`` or ``-``, the magnitude): a coefficient is written with a minus when its parts
    are all negative (``-GAMMA``, ``-1/2``), as it is (``1 - GAMMA``) otherwise."""
    if c.parts and all(v < 0 for _, v in c.parts):
        return "-", -c
    return "+", c


def join_signed(pieces: list[tuple[str, str]], minus: str = "-", empty: str = "0") -> str:
    """``a + b - c`` from [(sign, text)], the first sign written only if it is a minus."""
    if not pieces:
        return empty
    text = (minus if pieces[0][0] == "-" else "") + pieces[0][1]
    for sign, piece in pieces[1:]:
        text += f" {minus if sign == '-' else '+'} {piece}"
    return text


def _combination_text(combination: Combination) -> str:
    pieces = []
    for part in combination.parts:
        sign, magnitude = signed(part.coefficient)
        factor = "" if magnitude.rational == 1 else (
            f"{magnitude}·" if magnitude.rational is not None or len(magnitude.parts) == 1
            else f"({magnitude})·")
        pieces.append((sign, f"{factor}{'Δt·' if part.dt else ''}{part.register}"))
    return join_signed(pieces, minus="−")


def _scaled(c: Coefficient) -> str:
    """``Δt·``, ``1/2·Δt·``, ``GAMMA·Δt·``."""
    return "Δt·" if c.rational == 1 else f"{c}·Δt·"


def describe(program: StepProgram) -> str:
    """The program as text, one instruction a line (``pdelang compile --emit program``)."""
    lines = [f"scheme {program.scheme} ({program.kind}, order {program.order}); terms "
             f"{', '.join(program.terms)}; residual {'on' if program.residual else 'off'}"
             + (f"; implicit {', '.join(program.implicit)}" if program.implicit else "")]
    for c in program.constants:
        lines.append(f"  {c.name} = {c.definition} = {c.value!r}")
    for n in program.norms:
        lines.append(f"  norm {n.name}: {n.placement} on {', '.join(n.terms)}")
    pre = program.pre_norms

    def field(terms):
        return " + ".join(f"f_{t}({'P ' if t in pre else ''}·)" for t in terms)

    for ins in program.instructions:
        if isinstance(ins, Rate):
            text = f"{ins.target} = {field(ins.terms)} at {_combination_text(ins.at)}"
        elif isinstance(ins, Solve):
            text = (f"{ins.target} = (I − {_scaled(ins.coefficient)}L[{', '.join(ins.terms)}])⁻¹ "
                    f"({_combination_text(ins.rhs)})")
        elif isinstance(ins, Flow):
            text = (f"{ins.target} = exp({_scaled(ins.coefficient)}L[{', '.join(ins.terms)}]) "
                    f"({_combination_text(ins.at)})")
        elif isinstance(ins, Assign):
            text = f"{ins.target} = {_combination_text(ins.value)}"
        elif isinstance(ins, Project):
            text = f"{ins.target} = {ins.norm}({ins.target})"
        else:
            text = f"observe {ins.index} {ins.label!r}: {ins.register}"
        lines.append("  " + text)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- interpreting
class Machine(Protocol):
    """What a backend implements to interpret a step program (see :func:`run`)."""

    def combine(self, parts: list[tuple[Coefficient, Any, bool]]) -> Any: ...
    def rate(self, terms: tuple[str, ...], state: Any) -> Any: ...
    def solve(self, terms: tuple[str, ...], coefficient: Coefficient, rhs: Any) -> Any: ...
    def flow(self, terms: tuple[str, ...], coefficient: Coefficient, state: Any) -> Any: ...
    def project(self, norm: str, state: Any) -> Any: ...
    def observe(self, index: int, label: str, value: Any) -> None: ...


def run(program: StepProgram, machine: Machine, u: Any) -> Any:
    """Interpret one step of ``program`` on the state ``u`` with ``machine``'s semantics."""
    registers: dict[str, Any] = {"u": u}

    def value(combination: Combination):
        return machine.combine([(p.coefficient, registers[p.register], p.dt)
                                for p in combination.parts])

    for ins in program.instructions:
        if isinstance(ins, Rate):
            registers[ins.target] = machine.rate(ins.terms, value(ins.at))
        elif isinstance(ins, Solve):
            registers[ins.target] = machine.solve(ins.terms, ins.coefficient, value(ins.rhs))
        elif isinstance(ins, Flow):
            registers[ins.target] = machine.flow(ins.terms, ins.coefficient, value(ins.at))
        elif isinstance(ins, Assign):
            registers[ins.target] = value(ins.value)
        elif isinstance(ins, Project):
            registers[ins.target] = machine.project(ins.norm, registers[ins.target])
        elif isinstance(ins, Observe):
            machine.observe(ins.index, ins.label, registers[ins.register])
        else:  # pragma: no cover - the verifier rejects unknown instructions
            raise TypeError(f"unknown instruction {ins!r}")
    return registers["u"]


def float_combine(dt: Any, constants: Mapping[str, float]) -> Callable:
    """A ``combine`` for numeric backends: ``Σ c_i [Δt] r_i`` with float coefficients
    (``dt`` may be an array broadcastable to the states)."""
    def combine(parts):
        total = None
        for coefficient, value, times_dt in parts:
            c = float(coefficient.evaluate(constants))
            term = (c * dt) * value if times_dt else (value if c == 1.0 else c * value)
            total = term if total is None else total + term
        return total
    return combine
