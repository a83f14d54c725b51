"""Runge–Kutta schemes as data: Butcher tableaux, explicit and IMEX.

An additive (IMEX) Runge–Kutta method splits the right-hand side into an explicit part
``F_E`` (the terms not named in ``time.implicit``) and an implicit part ``F_I = L`` (linear,
constant-coefficient terms), each with its tableau ``(A, b)`` on shared nodes:

    U_i = uₙ + Δt Σ_{j<i} (a^E_ij k_j + a^I_ij l_j) + Δt a^I_ii L U_i
        = (I − a^I_ii Δt L)⁻¹ (uₙ + Δt Σ_{j<i} (a^E_ij k_j + a^I_ij l_j))
    k_i = F_E(U_i),   l_i = L U_i
    uₙ₊₁ = uₙ + Δt Σ_i (b^E_i k_i + b^I_i l_i)      (= U_s for a stiffly accurate pair)

The explicit schemes are the case without implicit terms (every a_ii = 0):

* ``euler``  forward Euler, order 1;
* ``rk2``    Heun's method (explicit trapezoidal rule), order 2;
* ``rk4``    the classical fourth-order method;
* ``imex_euler``  forward/backward Euler, (1,1,1) in Ascher–Ruuth–Spiteri's notation, order 1;
* ``imex_ars222`` Ascher–Ruuth–Spiteri (2,2,2), order 2, L-stable implicit part, with
  γ = 1 − 1/√2 and δ = 1 − 1/(2γ) (Ascher, Ruuth & Spiteri 1997, §2.6).

Without the residual, the step keeps only the increment ``uₙ₊₁ − uₙ``.  A post-norm projects
the state after the whole step (one ``norm`` module per layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from pdelang.compiler.schemes import program as P

C = P.Coefficient.of


@dataclass(frozen=True)
class Tableau:
    """A Runge–Kutta tableau ``(A, b)``: row i of A holds a_i1 … a_ii (diagonal included)."""

    a: tuple[tuple[P.Coefficient, ...], ...]
    b: tuple[P.Coefficient, ...]

    @staticmethod
    def of(a, b) -> Tableau:
        return Tableau(tuple(tuple(C(x) for x in row) for row in a), tuple(C(x) for x in b))

    @property
    def stages(self) -> int:
        return len(self.b)

    def entry(self, i: int, j: int) -> P.Coefficient:
        row = self.a[i]
        return row[j] if j < len(row) else C(0)

    @property
    def explicit(self) -> bool:
        return all(self.entry(i, i).is_zero for i in range(self.stages))

    @property
    def stiffly_accurate(self) -> bool:
        """b equals the last row of A (so uₙ₊₁ is the last stage)."""
        last = self.stages - 1
        return all((self.entry(last, j) - self.b[j]).is_zero for j in range(self.stages))


ZERO = Tableau.of(((),), (0,))

EULER = Tableau.of(((),), (1,))
_HALF, _THIRD, _SIXTH = Fraction(1, 2), Fraction(1, 3), Fraction(1, 6)
HEUN = Tableau.of(((), (1,)), (_HALF, _HALF))
RK4 = Tableau.of(((), (_HALF,), (0, _HALF), (0, 0, 1)), (_SIXTH, _THIRD, _THIRD, _SIXTH))

# (1,1,1) forward/backward Euler: stage 1 = uₙ, stage 2 implicit.
IMEX_EULER = (Tableau.of(((), (1,)), (1, 0)), Tableau.of(((), (0, 1)), (0, 1)))

# ARS(2,2,2): γ = 1 − 1/√2, δ = 1 − 1/(2γ) = −1/√2.
_G, _D = C("GAMMA"), C("DELTA")
ARS222 = (
    Tableau(((), (_G,), (_D, C(1) - _D)), (_D, C(1) - _D, C(0))),
    Tableau(((), (C(0), _G), (C(0), C(1) - _G, _G)), (C(0), C(1) - _G, _G)),
)


def rk_program(scheme: str, order: int, explicit: Tableau, implicit_tableau: Tableau | None,
               terms: tuple[str, ...], implicit: tuple[str, ...], residual: bool,
               norms: tuple[P.NormModule, ...],
               constants: tuple[P.SchemeConstant, ...] = ()) -> P.StepProgram:
    """The step program of an (additive) Runge–Kutta method (see the module doc)."""
    explicit_terms = tuple(t for t in terms if t not in implicit)
    imp = implicit_tableau or ZERO
    s = explicit.stages
    stiff = implicit_tableau is not None and explicit.stiffly_accurate and imp.stiffly_accurate

    def used_later(tableau: Tableau, j: int) -> bool:
        later = any(not tableau.entry(i, j).is_zero for i in range(j + 1, s))
        return later or (not stiff and not tableau.b[j].is_zero)

    instructions: list[P.Instruction] = []
    observed = 0
    stage_state: dict[int, str] = {}
    for i in range(s):
        combination = P.Combination.state("u")
        for j in range(i):
            if explicit_terms:
                combination = combination.plus(explicit.entry(i, j), f"k{j + 1}")
            if implicit:
                combination = combination.plus(imp.entry(i, j), f"l{j + 1}")
        diagonal = imp.entry(i, i) if implicit else C(0)
        last = i == s - 1
        if not diagonal.is_zero and last and stiff and residual:
            # the last stage of a stiffly accurate pair is uₙ₊₁: solve into the state
            instructions.append(P.Solve("u", implicit, diagonal, combination))
            stage_state[i] = "u"
            continue
        if not diagonal.is_zero:
            target = f"u{i + 1}"
            instructions.append(P.Solve(target, implicit, diagonal, combination))
            instructions.append(P.Observe(observed, f"stage {target}", target))
            observed += 1
            state = P.Combination.state(target)
        elif combination.is_register is None and implicit_tableau is not None:
            target = f"u{i + 1}"  # a stage state read by more than one rate: name it once
            instructions.append(P.Assign(target, combination))
            state = P.Combination.state(target)
        else:
            state = combination
            target = combination.is_register or ""
        stage_state[i] = target
        if explicit_terms and used_later(explicit, i):
            instructions.append(P.Rate(f"k{i + 1}", explicit_terms, state))
            if implicit_tableau is None:
                instructions.append(P.Observe(observed, f"stage k{i + 1}", f"k{i + 1}"))
                observed += 1
        if implicit and used_later(imp, i):
            instructions.append(P.Rate(f"l{i + 1}", implicit, state))
    if stiff and residual:
        value = None  # solved into u above
    elif stiff:
        value = P.Combination.state(stage_state[s - 1]).plus(-1, "u", dt=False)
    else:
        value = P.Combination.state("u") if residual else P.Combination(())
        for j in range(s):
            if explicit_terms:
                value = value.plus(explicit.b[j], f"k{j + 1}")
            if implicit:
                value = value.plus(imp.b[j], f"l{j + 1}")
        if not value.parts:  # pragma: no cover - b sums to 1, so some weight is non-zero
            value = P.Combination.state("u").plus(-1, "u", dt=False)
    if value is not None:
        instructions.append(P.Assign("u", value))
    for norm in norms:
        if norm.placement == "post":
            instructions.append(P.Project("u", norm.name))
    instructions.append(P.Observe(observed, "update", "u"))
    kind = "runge_kutta" if implicit_tableau is None else "imex"
    return P.StepProgram(scheme=scheme, kind=kind, order=order,
                         instructions=tuple(instructions), terms=terms, implicit=implicit,
                         residual=residual, norms=norms, constants=constants)
