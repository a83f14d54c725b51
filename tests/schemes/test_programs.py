"""Time schemes as data and the step program they generate (:mod:`pdelang.compiler.schemes`).

* the program of every scheme for two terms ``(a, b)``: instructions and their order, with
  and without implicit terms, the residual on and off, norms pre and post; the schedule
  stage on real specs; unknown schemes;
* exact coefficients (:class:`Coefficient`) and their formatting, ``float_combine``,
  ``run`` on a hand-checked RK4 step, ``describe``, ``restricted``;
* stability functions derived from the programs, against the textbook ones; the
  Runge–Kutta and IMEX tableaux satisfy the order conditions of their order (and the
  programs are consistent to that order on ``u' = (λ_a + λ_b) u``);
* the generated code writes Δt as ``DT`` and exact fractions of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy

from pdelang.compiler.analysis.stability import Z, amplification_factor, stability_function
from pdelang.compiler.driver import compile_spec
from pdelang.errors import SpecError
from pdelang.compiler.invariants import check_program
from pdelang.compiler.schemes import SCHEMES, exact_constant, lookup, restricted
from pdelang.compiler.schemes import program as P
from pdelang.compiler.schemes import runge_kutta as RK
from pdelang.compiler.schemes.program import Coefficient as C
from pdelang.compiler.schemes.schedule import schedule
from pdelang.compiler.spec.load import load_spec

AB = ("a", "b")
GAMMA = 1 - 1 / sympy.sqrt(2)
EXACT = {"GAMMA": GAMMA, "DELTA": -1 / sympy.sqrt(2)}


def program(scheme, implicit=(), residual=True, norms=(), terms=AB, split_order=None):
    return SCHEMES[scheme].program(terms, split_order or terms, implicit, residual, norms)


def shape(prog) -> list[str]:
    """Instruction kinds in order: ``Rate k1 [a,b]``, ``Solve u [b]``, ``Observe 0``…"""
    out = []
    for ins in prog.instructions:
        kind = type(ins).__name__
        if isinstance(ins, P.Observe):
            out.append(f"Observe {ins.index} {ins.label}")
        elif isinstance(ins, P.Project):
            out.append(f"Project {ins.target} {ins.norm}")
        elif isinstance(ins, P.Assign):
            out.append(f"Assign {ins.target}")
        else:
            out.append(f"{kind} {ins.target} [{','.join(ins.terms)}]")
    return out


def comb(*parts) -> P.Combination:
    """``comb(("u",), (1/2, "k1"))``: ``u + 1/2·Δt·k1``; a 3-tuple ``(c, r, False)`` has no Δt."""
    out = P.Combination(())
    for part in parts:
        if len(part) == 1:
            out = out.plus(1, part[0], dt=False)
        else:
            out = out.plus(*part)
    return out


U = comb(("u",))
HALF, THIRD, SIXTH = Fraction(1, 2), Fraction(1, 3), Fraction(1, 6)


# ----------------------------------------------------------------------------- shapes
def test_euler_program():
    prog = program("euler")
    assert prog.instructions == (
        P.Rate("k1", AB, U), P.Observe(0, "stage k1", "k1"),
        P.Assign("u", comb(("u",), (1, "k1"))), P.Observe(1, "update", "u"))
    assert (prog.kind, prog.order, prog.implicit, prog.norms) == ("runge_kutta", 1, (), ())
    off = program("euler", residual=False)  # without the identity part
    assert off.instructions[2] == P.Assign("u", comb((1, "k1")))
    assert not off.residual


def test_rk2_program():
    prog = program("rk2")
    assert prog.instructions == (
        P.Rate("k1", AB, U), P.Observe(0, "stage k1", "k1"),
        P.Rate("k2", AB, comb(("u",), (1, "k1"))), P.Observe(1, "stage k2", "k2"),
        P.Assign("u", comb(("u",), (HALF, "k1"), (HALF, "k2"))), P.Observe(2, "update", "u"))


def test_rk4_program():
    prog = program("rk4")
    assert shape(prog) == ["Rate k1 [a,b]", "Observe 0 stage k1", "Rate k2 [a,b]",
                           "Observe 1 stage k2", "Rate k3 [a,b]", "Observe 2 stage k3",
                           "Rate k4 [a,b]", "Observe 3 stage k4", "Assign u",
                           "Observe 4 update"]
    rates = [i for i in prog.instructions if isinstance(i, P.Rate)]
    assert [r.at for r in rates] == [U, comb(("u",), (HALF, "k1")), comb(("u",), (HALF, "k2")),
                                    comb(("u",), (1, "k3"))]
    assert prog.instructions[8] == P.Assign(
        "u", comb(("u",), (SIXTH, "k1"), (THIRD, "k2"), (THIRD, "k3"), (SIXTH, "k4")))
    off = program("rk4", residual=False)
    assert off.instructions[8] == P.Assign(
        "u", comb((SIXTH, "k1"), (THIRD, "k2"), (THIRD, "k3"), (SIXTH, "k4")))


def test_lie_program_follows_the_split_order():
    prog = program("lie", split_order=("b", "a"))
    assert prog.instructions == (
        P.Rate("k", ("b",), U), P.Assign("u", comb(("u",), (1, "k"))), P.Observe(0, "b", "u"),
        P.Rate("k", ("a",), U), P.Assign("u", comb(("u",), (1, "k"))), P.Observe(1, "a", "u"))
    assert prog.sub_steps == (("b", 1), ("a", 1))
    assert (prog.kind, prog.order, prog.terms) == ("splitting", 1, AB)  # equation order


def test_lie_program_with_an_implicit_term_takes_its_exact_flow():
    prog = program("lie", implicit=("b",))
    assert prog.instructions[3:] == (
        P.Flow("e", ("b",), C.of(1), U), P.Assign("u", comb(("e",))), P.Observe(1, "b", "u"))
    assert prog.order == 1  # a's explicit Euler sub-step
    off = program("lie", implicit=("b",), residual=False)
    assert off.instructions[1] == P.Assign("u", comb((1, "k")))
    assert off.instructions[4] == P.Assign("u", comb(("e",), (-1, "u", False)))  # e − u


def test_strang_program():
    prog = program("strang")
    assert shape(prog) == ["Rate k [a]", "Assign u", "Observe 0 a", "Rate k [b]", "Assign u",
                           "Observe 1 b", "Rate k [a]", "Assign u", "Observe 2 a"]
    assert prog.sub_steps == (("a", HALF), ("b", 1), ("a", HALF))
    assert prog.instructions[1] == P.Assign("u", comb(("u",), (HALF, "k")))
    assert prog.order == 1  # Euler sub-steps are not exact
    exact = program("strang", implicit=AB)
    assert shape(exact) == ["Flow e [a]", "Assign u", "Observe 0 a", "Flow e [b]", "Assign u",
                            "Observe 1 b", "Flow e [a]", "Assign u", "Observe 2 a"]
    assert [i.coefficient for i in exact.instructions if isinstance(i, P.Flow)] == \
        [C.of(HALF), C.of(1), C.of(HALF)]
    assert exact.order == 2  # every sub-step exact: the splitting's own order
    assert program("lie", implicit=AB).order == 1


def test_imex_euler_program():
    prog = program("imex_euler", implicit=("b",))
    assert prog.instructions == (
        P.Rate("k1", ("a",), U),
        P.Solve("u", ("b",), C.of(1), comb(("u",), (1, "k1"))),  # stiffly accurate
        P.Observe(0, "update", "u"))
    assert (prog.kind, prog.order, prog.implicit) == ("imex", 1, ("b",))
    off = program("imex_euler", implicit=("b",), residual=False)
    assert shape(off) == ["Rate k1 [a]", "Solve u2 [b]", "Observe 0 stage u2", "Assign u",
                          "Observe 1 update"]
    assert off.instructions[3] == P.Assign("u", comb(("u2",), (-1, "u", False)))


def test_imex_ars222_program():
    prog = program("imex_ars222", implicit=("b",))
    g, d = C.of("GAMMA"), C.of("DELTA")
    assert prog.instructions == (
        P.Rate("k1", ("a",), U),
        P.Solve("u2", ("b",), g, comb(("u",), (g, "k1"))),
        P.Observe(0, "stage u2", "u2"),
        P.Rate("k2", ("a",), comb(("u2",))),
        P.Rate("l2", ("b",), comb(("u2",))),
        P.Solve("u", ("b",), g, comb(("u",), (d, "k1"), (1 - d, "k2"), (1 - g, "l2"))),
        P.Observe(1, "update", "u"))
    assert [c.name for c in prog.constants] == ["GAMMA", "DELTA"]
    # the doubles nearest the exact values (not 1 - 2**-0.5, which rounds twice)
    assert prog.constant_values["GAMMA"] == float(sympy.N(1 - 1 / sympy.sqrt(2), 40))
    assert prog.constant_values["DELTA"] == float(sympy.N(-1 / sympy.sqrt(2), 40))
    off = program("imex_ars222", implicit=("b",), residual=False)
    assert shape(off)[-3:] == ["Observe 1 stage u3", "Assign u", "Observe 2 update"]


def test_imex_with_every_term_implicit_has_no_explicit_rate():
    prog = program("imex_ars222", implicit=AB)
    assert not any(isinstance(i, P.Rate) and i.target.startswith("k") for i in prog.instructions)
    assert [i.terms for i in prog.instructions if isinstance(i, P.Solve)] == [AB, AB]


@pytest.mark.parametrize("scheme", ["euler", "rk2", "rk4"])
def test_runge_kutta_post_norm_projects_once_after_the_step(scheme):
    norm = P.NormModule("norm", "post", AB)
    prog = program(scheme, norms=(norm,))
    assert shape(prog)[-3:] == ["Assign u", "Project u norm", "Observe " +
                                str(len(shape(prog)) // 2 - 1) + " update"]
    assert sum(isinstance(i, P.Project) for i in prog.instructions) == 1
    assert prog.post_norms == (norm,) and prog.pre_norms == {}


def test_splitting_post_norm_projects_after_each_normalized_sub_step():
    norms = (P.NormModule("norm_a", "post", ("a",)),)
    prog = program("strang", norms=norms)
    assert shape(prog) == ["Rate k [a]", "Assign u", "Project u norm_a", "Observe 0 a",
                           "Rate k [b]", "Assign u", "Observe 1 b",
                           "Rate k [a]", "Assign u", "Project u norm_a", "Observe 2 a"]


@pytest.mark.parametrize("scheme", ["lie", "rk4", "imex_euler"])
def test_pre_norms_act_inside_the_vector_field(scheme):
    norms = (P.NormModule("norm_a", "pre", ("a",)),)
    implicit = ("b",) if scheme.startswith("imex") else ()
    prog = program(scheme, implicit=implicit, norms=norms)
    assert not any(isinstance(i, P.Project) for i in prog.instructions)
    assert prog.pre_norms == {"a": "norm_a"} and prog.post_norms == ()
    assert shape(prog) == shape(program(scheme, implicit=implicit))
    assert "k1 = f_a(P ·)" in P.describe(prog) or "k = f_a(P ·) at u" in P.describe(prog)
    assert "f_b(P" not in P.describe(prog)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("residual", [True, False])
def test_every_generated_program_passes_the_verifier(scheme, residual):
    implicit = {"never": [()], "optional": [(), ("b",), AB], "required": [("b",), AB]}
    for imp in implicit[SCHEMES[scheme].implicit]:
        for placement in ("pre", "post"):
            normalized = tuple(t for t in AB if t not in imp)
            norms = () if not normalized else (
                (P.NormModule("norm", "post", normalized),)
                if placement == "post" and SCHEMES[scheme].kind != "splitting"
                else tuple(P.NormModule(f"norm_{t}", placement, (t,)) for t in normalized))
            prog = program(scheme, implicit=imp, residual=residual, norms=norms)
            check_program(prog)
            assert prog.scheme == scheme and prog.residual == residual
            assert prog.order <= SCHEMES[scheme].order


# ----------------------------------------------------------------------------- schedule
def test_schedule_builds_the_norm_modules_of_the_spec():
    lie = compile_spec("specs/master.yaml", until="program").program
    assert [(n.name, n.placement, n.terms) for n in lie.norms] == [
        ("norm_interaction", "post", ("interaction",)), ("norm_reaction", "post", ("reaction",))]
    assert [i.label for i in lie.instructions if isinstance(i, P.Observe)] == [
        "interaction", "reaction", "diffusion"]
    rk4 = compile_spec("specs/master.yaml", ["time.scheme=rk4"], until="program").program
    assert [(n.name, n.placement) for n in rk4.norms] == [("norm", "post")]
    assert shape(rk4)[-2:] == ["Project u norm", "Observe 4 update"]
    pre = compile_spec("specs/master.yaml", ["stabilizers.norm.placement=pre"],
                       until="program").program
    assert pre.pre_norms == {"interaction": "norm_interaction", "reaction": "norm_reaction"}
    assert not any(isinstance(i, P.Project) for i in pre.instructions)


def test_lookup_of_an_unknown_scheme_names_the_known_ones():
    assert lookup("rk4") is SCHEMES["rk4"]
    with pytest.raises(KeyError) as info:
        lookup("nope")
    message = str(info.value)
    assert "unknown time scheme 'nope'" in message
    for name in SCHEMES:
        assert name in message


def test_the_schema_refuses_an_unknown_scheme_with_a_location():
    with pytest.raises(SpecError) as info:
        load_spec("specs/heat1d.yaml", ["time.scheme=nope"])
    error = info.value
    assert "'time.scheme' must be one of" in error.message and "got 'nope'" in error.message
    for name in SCHEMES:
        assert name in error.message
    assert error.location is not None and error.location.file == "<--set>"


def test_schedule_refuses_an_unknown_scheme_with_the_spec_location():
    """The schema refuses unknown schemes first; the stage itself never defaults either."""
    c = compile_spec("specs/heat1d.yaml", until="symbolic")
    spec = dataclasses.replace(c.spec, time=dataclasses.replace(c.spec.time, scheme="rk5"))
    model = dataclasses.replace(c.symbolic, spec=spec)
    with pytest.raises(SpecError) as info:
        schedule(model)
    assert info.value.message == "unknown time scheme 'rk5'"
    assert info.value.location == c.spec.where("time.scheme")
    lines = Path("specs/heat1d.yaml").read_text().splitlines()
    assert info.value.location.line == lines.index("  scheme: euler") + 1
    assert "rk4" in (info.value.suggestion or "")


def test_schedule_refuses_an_imex_scheme_without_implicit_terms():
    with pytest.raises(SpecError, match="needs the stiff linear terms") as info:
        compile_spec("specs/heat1d.yaml", ["time.scheme=imex_euler"], until="program")
    assert info.value.location.file == "<--set>"


# ----------------------------------------------------------------------------- coefficients
def test_coefficient_arithmetic():
    g = C.of("GAMMA")
    assert C.of(1) - g == 1 - g == -(g - 1)
    assert (1 - g).parts == (("", Fraction(1)), ("GAMMA", Fraction(-1)))
    assert g + 1 == 1 - (-g) == C.of(1) + g
    assert (g - "GAMMA").is_zero and C.of(0).is_zero and C.of(Fraction(0)).parts == ()
    assert C.of(g) is g
    assert C.of(Fraction(1, 3)).rational == Fraction(1, 3)
    assert C.of(0).rational == 0
    assert g.rational is None and (1 - g).rational is None
    assert (1 - g).constants == ("GAMMA",) and C.of(2).constants == ()
    assert (1 - g).scaled(2) == C.of(2) - g - g
    assert g.scaled(0).is_zero
    assert hash(1 - g) == hash(C.of(1) - g)


def test_a_number_plus_a_coefficient():
    assert 1 + C.of("GAMMA") == C.of("GAMMA") + 1


@pytest.mark.parametrize(("coefficient", "text"), [
    (C.of(0), "0"),
    (C.of(1), "1"),
    (C.of(Fraction(1, 2)), "1/2"),
    (C.of(Fraction(-2, 3)), "-2/3"),
    (C.of("GAMMA"), "GAMMA"),
    (-C.of("GAMMA"), "-GAMMA"),
    (1 - C.of("GAMMA"), "1 - GAMMA"),
    (C.of("DELTA") - 1, "-1 + DELTA"),
    (-(1 - C.of("GAMMA")), "-1 + GAMMA"),
    (C.of("DELTA").scaled(2) + Fraction(1, 2), "1/2 + 2*DELTA"),
    (C.of("GAMMA").scaled(Fraction(-1, 2)), "-1/2*GAMMA"),
])
def test_coefficient_formatting(coefficient, text):
    assert str(coefficient) == text == P.format_coefficient(coefficient)


def test_coefficient_evaluates_with_float_and_exact_constants():
    floats = {c.name: c.value for c in SCHEMES["imex_ars222"].constants}
    c = 1 - C.of("GAMMA")
    assert c.evaluate(floats) == 1 - floats["GAMMA"]  # one float operation
    assert c.evaluate(floats) == pytest.approx(2 ** -0.5, rel=1e-15)
    assert isinstance(c.evaluate(floats), float)
    exact = c.evaluate(EXACT, lambda q: sympy.Rational(q.numerator, q.denominator))
    assert sympy.simplify(exact - 1 / sympy.sqrt(2)) == 0
    third = C.of(Fraction(1, 3)).evaluate({}, lambda q: sympy.Rational(q.numerator, q.denominator))
    assert third == sympy.Rational(1, 3)
    assert C.of(Fraction(1, 3)).evaluate({}, Fraction) == Fraction(1, 3)
    assert C.of(0).evaluate({}) == 0.0
    with pytest.raises(KeyError):
        C.of("GAMMA").evaluate({})  # a constant is never defaulted
    assert program("imex_ars222", implicit=("b",)).coefficient(c) == 1 - floats["GAMMA"]


def test_float_combine():
    combine = P.float_combine(0.1, {"GAMMA": 0.25})
    parts = [(C.of(1), 2.0, False), (C.of(Fraction(1, 2)), 4.0, True),
             (1 - C.of("GAMMA"), 8.0, True), (C.of(-3), 1.0, False)]
    assert combine(parts) == pytest.approx(2.0 + 0.05 * 4.0 + 0.075 * 8.0 - 3.0)
    assert combine([(C.of(1), 5.0, False)]) == 5.0
    dt = np.array([[0.1], [0.2]])  # one Δt per batch element, broadcast to the states
    np.testing.assert_allclose(P.float_combine(dt, {})([(C.of(1), np.ones((2, 3)), True)]),
                               np.array([[0.1] * 3, [0.2] * 3]))


class ScalarMachine:
    """Interprets a program on ``u' = Σ λ_t u`` with floats, recording the hooks."""

    def __init__(self, lam, dt, constants=None):
        self.lam, self.dt = lam, dt
        self.combine = P.float_combine(dt, constants or {})
        self.observed, self.projected = [], []

    def rate(self, terms, state):
        return sum(self.lam[t] for t in terms) * state

    def solve(self, terms, c, rhs):
        return rhs / (1 - float(c.evaluate({})) * self.dt * sum(self.lam[t] for t in terms))

    def flow(self, terms, c, state):
        return math.exp(float(c.evaluate({})) * self.dt * sum(self.lam[t] for t in terms)) \
            * state

    def project(self, norm, state):
        self.projected.append(norm)
        return state

    def observe(self, index, label, value):
        self.observed.append((index, label, value))


def test_run_reproduces_a_hand_computed_rk4_step():
    lam, dt, u = -0.7, 0.3, 1.5
    k1 = lam * u
    k2 = lam * (u + dt / 2 * k1)
    k3 = lam * (u + dt / 2 * k2)
    k4 = lam * (u + dt * k3)
    want = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    machine = ScalarMachine({"a": lam}, dt)
    got = P.run(program("rk4", terms=("a",)), machine, u)
    assert got == pytest.approx(want, rel=1e-15)
    z = lam * dt
    assert got == pytest.approx(u * (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24), rel=1e-14)
    assert [(i, label) for i, label, _ in machine.observed] == [
        (0, "stage k1"), (1, "stage k2"), (2, "stage k3"), (3, "stage k4"), (4, "update")]
    assert [v for *_, v in machine.observed] == pytest.approx([k1, k2, k3, k4, want])


def test_run_applies_projections_and_splits_the_terms():
    machine = ScalarMachine({"a": -1.0, "b": 2.0}, 0.1)
    norms = (P.NormModule("norm_b", "post", ("b",)),)
    got = P.run(program("lie", norms=norms), machine, 1.0)
    assert got == pytest.approx((1 - 0.1) * (1 + 0.2))
    assert machine.projected == ["norm_b"]
    assert [label for _, label, _ in machine.observed] == ["a", "b"]


# ----------------------------------------------------------------------------- describe
def test_describe_rk4():
    text = P.describe(program("rk4"))
    lines = text.splitlines()
    assert lines[0] == "scheme rk4 (runge_kutta, order 4); terms a, b; residual on"
    for line in ["  k1 = f_a(·) + f_b(·) at u",
                 "  observe 0 'stage k1': k1",
                 "  k2 = f_a(·) + f_b(·) at u + 1/2·Δt·k1",
                 "  k4 = f_a(·) + f_b(·) at u + Δt·k3",
                 "  u = u + 1/6·Δt·k1 + 1/3·Δt·k2 + 1/3·Δt·k3 + 1/6·Δt·k4",
                 "  observe 4 'update': u"]:
        assert line in lines
    assert text.endswith("\n") and len(lines) == 1 + len(program("rk4").instructions)
    off = P.describe(program("rk4", residual=False))
    assert "residual off" in off.splitlines()[0]
    assert "  u = 1/6·Δt·k1 + 1/3·Δt·k2 + 1/3·Δt·k3 + 1/6·Δt·k4" in off.splitlines()


def test_describe_strang():
    norms = (P.NormModule("norm_a", "post", ("a",)),)
    lines = P.describe(program("strang", norms=norms)).splitlines()
    assert lines[:2] == ["scheme strang (splitting, order 1); terms a, b; residual on",
                         "  norm norm_a: post on a"]
    assert lines[2:6] == ["  k = f_a(·) at u", "  u = u + 1/2·Δt·k", "  u = norm_a(u)",
                          "  observe 0 'a': u"]
    assert lines[6:9] == ["  k = f_b(·) at u", "  u = u + Δt·k", "  observe 1 'b': u"]
    assert lines[-1] == "  observe 2 'a': u"
    exact = P.describe(program("strang", implicit=AB)).splitlines()
    assert "implicit a, b" in exact[0] and "order 2" in exact[0]
    assert "  e = exp(1/2·Δt·L[a]) (u)" in exact
    assert "  u = e" in exact


def test_describe_writes_a_unit_coefficient_of_dt_as_dt():
    lines = P.describe(program("strang", implicit=AB)).splitlines()
    assert "  e = exp(Δt·L[b]) (u)" in lines
    lines = P.describe(program("imex_euler", implicit=("b",))).splitlines()
    assert "  u = (I − Δt·L[b])⁻¹ (u + Δt·k1)" in lines


def test_describe_imex_ars222():
    lines = P.describe(program("imex_ars222", implicit=("b",))).splitlines()
    assert lines[0] == ("scheme imex_ars222 (imex, order 2); terms a, b; residual on; "
                        "implicit b")
    assert lines[1] == "  GAMMA = 1 − 1/√2 = 0.2928932188134525"
    assert lines[2] == "  DELTA = 1 − 1/(2γ) = −1/√2 = -0.7071067811865476"
    assert "  u2 = (I − GAMMA·Δt·L[b])⁻¹ (u + GAMMA·Δt·k1)" in lines
    assert "  l2 = f_b(·) at u2" in lines
    assert ("  u = (I − GAMMA·Δt·L[b])⁻¹ (u + DELTA·Δt·k1 + (1 - DELTA)·Δt·k2 + "
            "(1 - GAMMA)·Δt·l2)") in lines
    off = P.describe(program("imex_ars222", implicit=("b",), residual=False)).splitlines()
    assert "  u = u3 − u" in off


def test_describe_writes_negative_coefficients_with_a_minus():
    prog = dataclasses.replace(program("euler"), instructions=(
        P.Rate("k1", AB, U),
        P.Assign("u", comb(("u",), (-C.of("GAMMA"), "k1"), (Fraction(-1, 2), "k1"))),
        P.Observe(0, "update", "u")))
    assert "  u = u − GAMMA·Δt·k1 − 1/2·Δt·k1" in P.describe(prog).splitlines()


# ----------------------------------------------------------------------------- restricted
def test_restricted_removes_the_other_terms_sub_steps_of_a_splitting():
    norms = (P.NormModule("norm_a", "post", ("a",)), P.NormModule("norm_b", "post", ("b",)))
    prog = program("strang", norms=norms)
    only_a = restricted(prog, ("a",))
    assert only_a.instructions == (
        P.Rate("k", ("a",), U), P.Assign("u", comb(("u",), (HALF, "k"))),
        P.Observe(0, "a", "u"),
        P.Rate("k", ("a",), U), P.Assign("u", comb(("u",), (HALF, "k"))),
        P.Observe(1, "a", "u"))
    assert only_a.sub_steps == (("a", HALF), ("a", HALF))
    assert only_a.terms == ("a",) and only_a.norms == ()
    only_b = restricted(prog, ("b",))
    assert shape(only_b) == ["Rate k [b]", "Assign u", "Observe 0 b"]
    assert only_b.sub_steps == (("b", 1),)
    assert restricted(prog, AB).instructions == tuple(
        i for i in prog.instructions if not isinstance(i, P.Project))
    # without the residual the other sub-steps are the identity too (not u ← Δt f(u))
    off = restricted(program("lie", residual=False), ("b",))
    assert shape(off) == ["Rate k [b]", "Assign u", "Observe 0 b"]


@pytest.mark.parametrize("scheme", ["euler", "rk4", "imex_ars222"])
def test_restricted_keeps_runge_kutta_programs_without_projections(scheme):
    implicit = ("b",) if scheme.startswith("imex") else ()
    norms = (P.NormModule("norm", "post", ("a",)),)
    prog = program(scheme, implicit=implicit, norms=norms)
    got = restricted(prog, ("b",))
    assert got.instructions == tuple(i for i in prog.instructions
                                     if not isinstance(i, P.Project))
    assert got.terms == prog.terms and got.norms == () and got.implicit == prog.implicit


def test_restricted_splitting_is_a_well_formed_program():
    prog = restricted(program("lie", implicit=("b",)), ("a",))
    check_program(prog)


# ----------------------------------------------------------------------------- stability
def _same(a, b) -> bool:
    return sympy.simplify(a - b) == 0


R_EULER = 1 + Z
R_RK2 = 1 + Z + Z**2 / 2
R_RK4 = 1 + Z + Z**2 / 2 + Z**3 / 6 + Z**4 / 24
R_ARS = (1 + (1 - 2 * GAMMA) * Z) / (1 - GAMMA * Z) ** 2


@pytest.mark.parametrize(("scheme", "implicit", "want"), [
    ("euler", (), R_EULER),
    ("rk2", (), R_RK2),
    ("rk4", (), R_RK4),
    ("lie", (), R_EULER),
    ("strang", (), R_EULER),
    ("lie", ("a",), sympy.exp(Z)),
    ("strang", ("a",), sympy.exp(Z)),
    ("imex_euler", ("a",), 1 / (1 - Z)),
    ("imex_ars222", ("a",), R_ARS),
])
def test_stability_function_of_each_scheme(scheme, implicit, want):
    assert _same(stability_function(scheme, ("a",), implicit), want)
    # without the residual a step keeps only the increment: R(z) − 1
    assert _same(stability_function(scheme, ("a",), implicit, residual=False), want - 1)


def test_stability_function_of_splittings_of_two_terms():
    assert _same(stability_function("lie", AB), (1 + Z / 2) ** 2)
    assert _same(stability_function("strang", AB), (1 + Z / 4) ** 2 * (1 + Z / 2))
    assert _same(stability_function("strang", AB, AB), sympy.exp(Z))
    assert _same(stability_function("lie", AB, ("b",)), (1 + Z / 2) * sympy.exp(Z / 2))
    assert _same(stability_function(SCHEMES["rk4"], AB), R_RK4)  # a Scheme object too


def test_stability_function_matches_the_explicit_tableaux():
    """R(z) = 1 + z bᵀ (I − zA)⁻¹ 1 of each tableau == R(z) derived from the program."""
    for name, tableau in (("euler", RK.EULER), ("rk2", RK.HEUN), ("rk4", RK.RK4)):
        a, b, _ = _matrices(tableau)
        s = len(b)
        r = 1 + Z * (b.T * (sympy.eye(s) - Z * a).inv() * sympy.ones(s, 1))[0]
        assert _same(stability_function(name), r), name
    a, b, _ = _matrices(RK.ARS222[1])
    r = 1 + Z * (b.T * (sympy.eye(3) - Z * a).inv() * sympy.ones(3, 1))[0]
    assert _same(stability_function("imex_ars222", ("a",), ("a",)), r)


# ----------------------------------------------------------------------------- order conditions
def _matrices(tableau: RK.Tableau):
    s = tableau.stages
    value = {"": 1, **EXACT}

    def exact(c: P.Coefficient):
        return sum((sympy.Rational(q.numerator, q.denominator) * value[k] for k, q in c.parts),
                   sympy.Integer(0))

    a = sympy.Matrix(s, s, lambda i, j: exact(tableau.entry(i, j)))
    b = sympy.Matrix(s, 1, lambda i, _j: exact(tableau.b[i]))
    return a, b, a * sympy.ones(s, 1)


def _conditions(a, b, c, order):
    """Σ residuals of the classical order conditions up to ``order`` (trees up to 4)."""
    cc = c.multiply_elementwise(c)
    checks = [((b.T * sympy.ones(len(b), 1))[0], 1)]
    if order >= 2:
        checks += [((b.T * c)[0], sympy.Rational(1, 2))]
    if order >= 3:
        checks += [((b.T * cc)[0], sympy.Rational(1, 3)), ((b.T * a * c)[0], sympy.Rational(1, 6))]
    if order >= 4:
        checks += [((b.T * cc.multiply_elementwise(c))[0], sympy.Rational(1, 4)),
                   ((b.T * c.multiply_elementwise(a * c))[0], sympy.Rational(1, 8)),
                   ((b.T * a * cc)[0], sympy.Rational(1, 12)),
                   ((b.T * a * a * c)[0], sympy.Rational(1, 24))]
    return [sympy.simplify(got - want) for got, want in checks]


@pytest.mark.parametrize(("scheme", "tableau"), [("euler", RK.EULER), ("rk2", RK.HEUN),
                                                 ("rk4", RK.RK4)])
def test_explicit_tableaux_have_exactly_their_order(scheme, tableau):
    order = SCHEMES[scheme].order
    a, b, c = _matrices(tableau)
    assert tableau.explicit
    assert all(r == 0 for r in _conditions(a, b, c, order))
    if order < 4:
        assert any(r != 0 for r in _conditions(a, b, c, order + 1))


@pytest.mark.parametrize(("scheme", "pair"), [("imex_euler", RK.IMEX_EULER),
                                              ("imex_ars222", RK.ARS222)])
def test_imex_pairs_satisfy_the_order_conditions_of_their_order(scheme, pair):
    order = SCHEMES[scheme].order
    explicit, implicit = pair
    ae, be, ce = _matrices(explicit)
    ai, bi, ci = _matrices(implicit)
    assert explicit.explicit and not implicit.explicit
    assert explicit.stiffly_accurate and implicit.stiffly_accurate
    assert all(sympy.simplify(x - y) == 0 for x, y in zip(ce, ci))  # shared nodes
    assert all(r == 0 for r in _conditions(ae, be, ce, order))
    assert all(r == 0 for r in _conditions(ai, bi, ci, order))
    if order >= 2:  # the coupling conditions of an additive method of order 2
        assert sympy.simplify((be.T * ci)[0] - sympy.Rational(1, 2)) == 0
        assert sympy.simplify((bi.T * ce)[0] - sympy.Rational(1, 2)) == 0
    # the implicit part is diagonally implicit with a constant diagonal (one factorization)
    diagonal = {sympy.simplify(ai[i, i]) for i in range(ai.rows) if ai[i, i] != 0}
    assert len(diagonal) == 1
    assert exact_constant("imex_ars222", "GAMMA") == GAMMA


def test_a_scheme_constant_is_declared_once():
    """One formula gives both the exact value (analysis) and the printed double, which is
    the double nearest the exact value."""
    for scheme in SCHEMES.values():
        for constant in scheme.constants:
            exact = exact_constant(scheme.name, constant.name)
            assert exact == constant.exact()
            nearest = float(sympy.N(exact, 50))
            assert constant.value == nearest
            assert abs(sympy.Rational(constant.value) - exact) <= \
                abs(sympy.Rational(math.nextafter(nearest, math.inf)) - exact)
            assert abs(sympy.Rational(constant.value) - exact) <= \
                abs(sympy.Rational(math.nextafter(nearest, -math.inf)) - exact)


@pytest.mark.parametrize(("scheme", "implicit"), [
    ("euler", ()), ("rk2", ()), ("rk4", ()), ("lie", ()), ("strang", ()), ("lie", ("b",)),
    ("strang", ("b",)), ("strang", AB), ("imex_euler", ("b",)), ("imex_ars222", ("b",)),
    ("imex_ars222", AB)])
def test_programs_are_consistent_to_their_claimed_order(scheme, implicit):
    """G(s·x, s·y) − exp(s(x + y)) = O(s^{p+1}) with p the order the program claims."""
    prog = program(scheme, implicit=implicit)
    s, x, y = sympy.symbols("s x y")
    g = amplification_factor(prog, {"a": s * x, "b": s * y})
    error = sympy.series(g - sympy.exp(s * (x + y)), s, 0, prog.order + 1).removeO()
    assert sympy.simplify(error) == 0
    assert prog.order == (SCHEMES[scheme].order if prog.kind != "splitting"
                          or set(implicit) == set(AB) else 1)


# ----------------------------------------------------------------------------- generated code
def _forward(source: str) -> str:
    start = source.index("    def forward(")
    return source[start:]


def test_rk4_code_writes_fractions_of_dt():
    source = compile_spec("specs/reaction_diffusion2d.yaml").python
    assert re.search(r"^DT = 0\.02\b", source, re.M)
    assert len(re.findall(r"\bDT\b", source)) > 1
    layer = source[source.index("k2 = "):]
    # a stage's argument u + c·Δt·k as one fused add (torch.add(u, k, alpha=c * DT))
    assert "torch.add(u, k1, alpha=DT / 2)" in layer and "torch.add(u, k2, alpha=DT / 2)" in layer
    assert "torch.add(u, k3, alpha=DT)" in layer
    assert "DT / 6 * k1" in layer and "DT / 3 * k2" in layer
    assert "0.0033" not in source and "0.01 *" not in source
    update = next(line for line in source.splitlines() if line.strip().startswith("u = u + DT"))
    assert not re.search(r"\d\.\d", update), update  # no float literal in the update


def test_splitting_code_writes_dt_times_the_rate():
    """Δt·f(u) as ``DT * self.f(u)`` — except where Δt = 1 exactly (a Transformer layer):
    there the multiply is left out (1·x = x, and it saves a pass over the state)."""
    def updates(source):
        return [line.strip() for line in source.splitlines()
                if line.strip().startswith("u = ") and "self.f_" in line]

    half = compile_spec("specs/master.yaml", ["time.substeps=2"]).python  # Δt = 0.5
    lines = updates(half)
    assert len(lines) == 3
    assert all("alpha=DT)" in line or "DT * self.f_" in line for line in lines)
    assert lines[0].startswith("u = self.norm_interaction(torch.add(u, self.f_interaction(u")
    assert re.search(r"^DT = 0\.5\b", half, re.M)
    assert len(re.findall(r"\bDT\b", half)) > 1
    unit = compile_spec("specs/master.yaml").python  # Δt = 1
    lines = updates(unit)
    assert len(lines) == 3 and not any("DT" in line.split("#")[0] for line in lines)
    assert lines[0].startswith("u = self.norm_interaction(u + self.f_interaction(u")
    assert re.search(r"^DT = 1\.0\b", unit, re.M)
    strang = compile_spec("specs/master.yaml", ["time.scheme=strang"]).python
    assert "alpha=DT / 2)" in strang  # half steps keep their factor at Δt = 1


def test_imex_code_writes_scheme_constants_times_dt():
    source = compile_spec("specs/allen_cahn_imex.yaml").python
    assert "GAMMA * DT" in source
    assert "(1 - DELTA) * DT" in source and "(1 - GAMMA) * DT" in source
    assert "DELTA * DT * k1" in source
    assert re.search(r"^GAMMA = 0\.2928932188", source, re.M)
    assert re.search(r"^DELTA = -0\.7071067811", source, re.M)
    assert re.search(r"^DT = ", source, re.M)
    assert len(re.findall(r"\bDT\b", source)) > 1
    assert "0.29289" not in source.split("GAMMA = ", 1)[1].split("\n", 1)[1]
