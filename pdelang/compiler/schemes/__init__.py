"""Time schemes as data: each generates the step program of one time step.

=============  ===========  =====  ==========================================================
scheme         kind         order  time.implicit
=============  ===========  =====  ==========================================================
euler          runge_kutta  1      not allowed (explicit)
rk2            runge_kutta  2      not allowed (explicit; Heun)
rk4            runge_kutta  4      not allowed (explicit; classical)
lie            splitting    1      optional: those terms' sub-steps are their exact flows
strang         splitting    2      optional: those terms' sub-steps are their exact flows
imex_euler     imex         1      required: implicit stage for those terms
imex_ars222    imex         2      required: ARS(2,2,2), L-stable implicit part
=============  ===========  =====  ==========================================================

:func:`schedule` (the pipeline stage) builds the program of a spec; :data:`SCHEMES` is the
registry.  Nothing here imports SymPy or torch; :func:`exact_constant` gives a scheme
constant's exact SymPy value to the analysis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from pdelang.compiler.schemes import program as P
from pdelang.compiler.schemes import runge_kutta as RK
from pdelang.compiler.schemes import splitting as S


@dataclass(frozen=True)
class Scheme:
    name: str
    kind: str  # splitting | runge_kutta | imex
    order: int  # the scheme's nominal order
    description: str
    implicit: str  # never | optional | required
    generate: Callable[..., P.StepProgram]
    constants: tuple[P.SchemeConstant, ...] = ()
    ssp: bool = False  # a convex combination of forward-Euler steps (Δt ≤ the Euler bound):
    # it keeps a discrete maximum principle (strong stability preserving, coefficient 1)

    def program(self, terms: tuple[str, ...], split_order: tuple[str, ...],
                implicit: tuple[str, ...], residual: bool,
                norms: tuple[P.NormModule, ...]) -> P.StepProgram:
        return self.generate(self, terms=terms, split_order=split_order, implicit=implicit,
                             residual=residual, norms=norms)


def _splitting(fractions):
    def generate(scheme, *, terms, split_order, implicit, residual, norms):
        return S.splitting_program(scheme.name, scheme.order, fractions(list(split_order)),
                                   terms, implicit, residual, norms)
    return generate


def _runge_kutta(explicit, implicit_tableau=None):
    def generate(scheme, *, terms, split_order, implicit, residual, norms):
        return RK.rk_program(scheme.name, scheme.order, explicit, implicit_tableau, terms,
                             implicit, residual, norms, scheme.constants)
    return generate


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("euler", "runge_kutta", 1, "forward Euler", "never", _runge_kutta(RK.EULER),
           ssp=True),
    Scheme("lie", "splitting", 1, "Lie–Trotter splitting", "optional",
           _splitting(S.lie_fractions), ssp=True),
    Scheme("strang", "splitting", 2, "Strang splitting (Macaron)", "optional",
           _splitting(S.strang_fractions), ssp=True),
    Scheme("rk2", "runge_kutta", 2, "Heun's method", "never", _runge_kutta(RK.HEUN),
           ssp=True),
    Scheme("rk4", "runge_kutta", 4, "classical Runge–Kutta", "never", _runge_kutta(RK.RK4)),
    Scheme("imex_euler", "imex", 1, "IMEX Euler (forward/backward)", "required",
           _runge_kutta(*RK.IMEX_EULER), ssp=True),
    Scheme("imex_ars222", "imex", 2, "IMEX ARS(2,2,2) (Ascher, Ruuth & Spiteri 1997)",
           "required", _runge_kutta(*RK.ARS222),
           (P.SchemeConstant("GAMMA", lambda m: 1 - 1 / m.sqrt(2), "1 − 1/√2"),
            P.SchemeConstant("DELTA", lambda m: -1 / m.sqrt(2), "1 − 1/(2γ) = −1/√2"))),
)}


def exact_constant(scheme: str, name: str):
    """The exact SymPy value of a scheme constant (for the symbolic analysis), from the one
    formula its :class:`~pdelang.compiler.schemes.program.SchemeConstant` declares."""
    constant = next(c for c in SCHEMES[scheme].constants if c.name == name)
    return constant.exact()


def restricted(program: P.StepProgram, terms) -> P.StepProgram:
    """The step of the linear part that the stability analysis and the linear stepper of the
    property checks interpret: the sub-steps of a splitting that advance none of ``terms``
    are removed (the identity — also without the residual, where they would replace the
    state by a value the linear part does not describe); in a Runge–Kutta program the other
    terms simply have no linear part (their rates are zero)."""
    keep = set(terms)
    if not program.is_splitting:
        return dataclasses.replace(program, norms=(), instructions=tuple(
            i for i in program.instructions if not isinstance(i, P.Project)))
    instructions: list[P.Instruction] = []
    group: list[P.Instruction] = []
    sub_steps = []
    index = 0
    for ins in program.instructions:
        group.append(ins)
        if isinstance(ins, P.Observe):
            term = ins.label
            if term in keep:
                instructions += [i for i in group[:-1] if not isinstance(i, P.Project)]
                instructions.append(P.Observe(index, term, ins.register))
                sub_steps.append(program.sub_steps[ins.index])
                index += 1
            group = []
    return dataclasses.replace(program, instructions=tuple(instructions),
                               sub_steps=tuple(sub_steps), norms=(),
                               terms=tuple(t for t in program.terms if t in keep),
                               implicit=tuple(t for t in program.implicit if t in keep))


def lookup(name: str) -> Scheme:
    """The scheme named ``name``; an unknown name is an error, never a default."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown time scheme {name!r}; known: {', '.join(SCHEMES)}") from None
