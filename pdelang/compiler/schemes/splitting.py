"""Splitting schemes: each term in turn advances the state by its own sub-step.

A splitting is data — the sequence of (term, fraction of Δt) of its sub-steps:

* ``lie``    (Lie–Trotter, order 1): every term of ``split_order`` once, with the full Δt;
* ``strang`` (order 2): half steps of all but the last term, a full step of the last, then
  the half steps in reverse (the Macaron layout of Lu et al. 2019).

An explicit term's sub-step is one explicit Euler step of its vector field,
``u ← u + f·Δt·f_t(u)``; an implicit term's (``time.implicit``) is its exact flow
``u ← exp(f·Δt·L_t) u``, unconditionally stable.  Without the residual a sub-step keeps only
its increment: ``u ← f·Δt·f_t(u)``, or ``u ← exp(f·Δt·L_t) u − u``.  A post-norm projects the
state after the sub-step of each normalized term.

The splitting order is its order only if every sub-step is exact: the program claims the
scheme's order when every term is advanced by its exact flow, and order 1 otherwise (an
explicit Euler sub-step has its own first-order error).
"""

from __future__ import annotations

from fractions import Fraction

from pdelang.compiler.schemes import program as P


def lie_fractions(order: list[str]) -> list[tuple[str, Fraction]]:
    return [(t, Fraction(1)) for t in order]


def strang_fractions(order: list[str]) -> list[tuple[str, Fraction]]:
    half = [(t, Fraction(1, 2)) for t in order[:-1]]
    return half + [(order[-1], Fraction(1))] + half[::-1]


def splitting_program(scheme: str, nominal_order: int, fractions: list[tuple[str, Fraction]],
                      terms: tuple[str, ...], implicit: tuple[str, ...], residual: bool,
                      norms: tuple[P.NormModule, ...]) -> P.StepProgram:
    post = {t: n.name for n in norms if n.placement == "post" for t in n.terms}
    instructions: list[P.Instruction] = []
    for index, (term, fraction) in enumerate(fractions):
        if term in implicit:
            instructions.append(P.Flow("e", (term,), P.Coefficient.of(fraction),
                                       P.Combination.state("u")))
            value = P.Combination.state("e")
            if not residual:
                value = value.plus(-1, "u", dt=False)
        else:
            instructions.append(P.Rate("k", (term,), P.Combination.state("u")))
            value = P.Combination(()) if not residual else P.Combination.state("u")
            value = value.plus(fraction, "k")
        instructions.append(P.Assign("u", value))
        if term in post:
            instructions.append(P.Project("u", post[term]))
        instructions.append(P.Observe(index, term, "u"))
    exact = all(t in implicit for t, _ in fractions)
    return P.StepProgram(
        scheme=scheme, kind="splitting", order=nominal_order if exact else 1,
        instructions=tuple(instructions), terms=terms, implicit=implicit, residual=residual,
        norms=norms, sub_steps=tuple(fractions))
