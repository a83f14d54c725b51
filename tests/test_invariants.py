"""The stage verifier (:mod:`pdelang.compiler.invariants`).

For every stage a valid intermediate form of a shipped spec is corrupted with
``dataclasses.replace`` and the verifier must raise :class:`InvariantError` naming the
stage and the node; the driver runs the verifier after each stage exactly when debugging is
on; and every shipped spec passes every invariant.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import pytest

from pdelang.compiler import driver, invariants
from pdelang.compiler.discrete import ir as D
from pdelang.compiler.driver import STAGE_NAMES, compile_spec
from pdelang.compiler.invariants import InvariantError, verify_stage
from pdelang.compiler.language import ast
from pdelang.compiler.schemes import program as P
from pdelang.compiler.symbolic.functions import OperatorCall

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted(p.name for p in (REPO / "specs").glob("*.yaml"))
_CACHE: dict[str, driver.Compilation] = {}


def compiled(name: str) -> driver.Compilation:
    if name not in _CACHE:
        _CACHE[name] = compile_spec(REPO / "specs" / name, debug=True)
    return _CACHE[name]


def values(c: driver.Compilation, **replaced) -> dict:
    """The driver's dict of a compilation's values, some replaced."""
    out = {"spec": c.spec, **{name: getattr(c, name) for name in STAGE_NAMES}}
    out.update(replaced)
    return out


def violation(stage: str, c, **replaced) -> InvariantError:
    """The InvariantError of ``stage`` on the compilation's values with some replaced."""
    with pytest.raises(InvariantError) as info:
        verify_stage(stage, values(c, **replaced))
    error = info.value
    assert error.stage == stage
    assert str(error).startswith(f"invariant violated after stage '{stage}' at {error.node}: ")
    assert isinstance(error, AssertionError)
    return error


# ----------------------------------------------------------------------------- ast
def test_ast_node_without_a_location():
    c = compiled("master.yaml")
    terms = dict(c.ast.terms)
    terms["reaction"] = ast.Name("u", None)
    error = violation("ast", c, ast=dataclasses.replace(c.ast, terms=terms))
    assert error.node == "reaction: u"
    assert "a node without a source location" in str(error)


def test_ast_nested_node_without_a_location():
    c = compiled("master.yaml")
    call = c.ast.terms["interaction"].right
    bad = dataclasses.replace(call, args=(ast.Name("u", None),))
    terms = {**c.ast.terms,
             "interaction": dataclasses.replace(c.ast.terms["interaction"], right=bad)}
    error = violation("ast", c, ast=dataclasses.replace(c.ast, terms=terms))
    assert error.node.startswith("interaction: ")


def test_ast_equation_node_without_a_location():
    c = compiled("heat1d.yaml")
    equation = dataclasses.replace(c.ast.equation, rhs=ast.Name("diffusion", None))
    error = violation("ast", c, ast=dataclasses.replace(c.ast, equation=equation))
    assert error.node == "equation: diffusion"


def test_ast_terms_are_the_specs():
    c = compiled("master.yaml")
    terms = {k: v for k, v in c.ast.terms.items() if k != "reaction"}
    error = violation("ast", c, ast=dataclasses.replace(c.ast, terms=terms))
    assert error.node == "terms" and "reaction" in str(error)


@pytest.mark.parametrize("where", ["keyword", "equation field"])
def test_ast_keyword_and_equation_field_without_a_location(where):
    c = compiled("master.yaml")
    if where == "keyword":
        binop = c.ast.terms["interaction"]
        call = binop.right
        keyword = dataclasses.replace(call.keywords[0], loc=None)
        bad_call = dataclasses.replace(call, keywords=(keyword,))
        terms = {**c.ast.terms, "interaction": dataclasses.replace(binop, right=bad_call)}
        parsed = dataclasses.replace(c.ast, terms=terms)
    else:
        field = dataclasses.replace(c.ast.equation.field, loc=None)
        parsed = dataclasses.replace(c.ast, equation=dataclasses.replace(c.ast.equation,
                                                                         field=field))
    violation("ast", c, ast=parsed)


# ----------------------------------------------------------------------------- symbolic
class Unregistered(OperatorCall):
    op_name = "unregistered"


def test_symbolic_split_order_is_a_permutation_of_the_terms():
    c = compiled("master.yaml")
    bad = dataclasses.replace(c.symbolic, split_order=("interaction", "reaction"))
    error = violation("symbolic", c, symbolic=bad)
    assert error.node == "split_order"


def test_symbolic_terms_are_unique_and_not_empty():
    c = compiled("master.yaml")
    twice = dataclasses.replace(c.symbolic, terms=c.symbolic.terms + c.symbolic.terms[:1])
    assert violation("symbolic", c, symbolic=twice).node == "equation"
    empty = dataclasses.replace(c.symbolic, terms=(), split_order=())
    assert "no term" in str(violation("symbolic", c, symbolic=empty))


def test_symbolic_unregistered_operator():
    c = compiled("heat1d.yaml")
    term = c.symbolic.terms[0]
    bad_term = dataclasses.replace(term, expr=Unregistered(c.symbolic.u))
    error = violation("symbolic", c, symbolic=dataclasses.replace(c.symbolic, terms=(bad_term,)))
    assert error.node == "term diffusion: Unregistered(u(x))"
    assert "an unregistered operator" in str(error)


def test_symbolic_instance_table():
    c = compiled("master.yaml")
    instances = dict(c.symbolic.instances)
    name = "interaction_attention"
    instances[name] = dataclasses.replace(instances[name], name="other")
    error = violation("symbolic", c,
                      symbolic=dataclasses.replace(c.symbolic, instances=instances))
    assert error.node == f"instance {name}"
    del instances[name]  # the call site has no instance any more
    error = violation("symbolic", c,
                      symbolic=dataclasses.replace(c.symbolic, instances=instances))
    assert error.node.startswith("term interaction: ")
    assert "a call site without instance" in str(error)


# ----------------------------------------------------------------------------- program
def _program(c, instructions=None, **changes):
    prog = c.program
    if instructions is not None:
        changes["instructions"] = tuple(instructions)
    return dataclasses.replace(prog, **changes)


def test_program_reads_a_register_before_writing_it():
    c = compiled("reaction_diffusion2d.yaml")  # rk4
    instructions = list(c.program.instructions)
    assert isinstance(instructions[2], P.Rate) and instructions[2].target == "k2"
    instructions[2] = P.Rate("k2", instructions[2].terms,
                             P.Combination.state("u").plus(Fraction(1, 2), "k3"))
    error = violation("program", c, program=_program(c, instructions))
    assert error.node == "instruction 2 (Rate)"
    assert "reads register 'k3' before it is written" in str(error)


def test_program_observe_indices_increase():
    c = compiled("reaction_diffusion2d.yaml")
    instructions = list(c.program.instructions)
    assert isinstance(instructions[3], P.Observe)
    instructions[3] = dataclasses.replace(instructions[3], index=0)
    error = violation("program", c, program=_program(c, instructions))
    assert error.node == "instruction 3 (Observe)"
    assert "diagnostics indices do not increase" in str(error)


@pytest.mark.parametrize("norm", ["norm_nope", "norm_pre"])
def test_program_projects_with_a_post_norm_module(norm):
    c = compiled("master.yaml")  # lie, post norms
    prog = c.program
    index = next(i for i, ins in enumerate(prog.instructions) if isinstance(ins, P.Project))
    instructions = list(prog.instructions)
    instructions[index] = P.Project("u", norm)
    norms = prog.norms + (P.NormModule("norm_pre", "pre", ("diffusion",)),)
    error = violation("program", c, program=_program(c, instructions, norms=norms))
    assert error.node == f"instruction {index} (Project)"
    assert f"projects with {norm!r}, not a post norm module" in str(error)


def test_program_solves_only_implicit_terms():
    c = compiled("allen_cahn_imex.yaml")
    prog = c.program
    index = next(i for i, ins in enumerate(prog.instructions) if isinstance(ins, P.Solve))
    instructions = list(prog.instructions)
    instructions[index] = dataclasses.replace(instructions[index], terms=("reaction",))
    error = violation("program", c, program=_program(c, instructions))
    assert error.node == f"instruction {index} (Solve)"
    assert "solves explicit terms ('reaction',)" in str(error)


def test_program_flows_only_implicit_terms():
    c = compiled("heat1d_implicit.yaml")  # lie, exact flow of the diffusion
    prog = c.program
    assert isinstance(prog.instructions[0], P.Flow)
    error = violation("program", c, program=_program(c, implicit=()))
    assert error.node == "instruction 0 (Flow)"


def test_splitting_evaluates_no_implicit_term_explicitly():
    c = compiled("heat1d_implicit.yaml")
    instructions = [P.Rate("k", ("diffusion",), P.Combination.state("u")),
                    P.Assign("u", P.Combination.state("u").plus(1, "k")),
                    P.Observe(0, "diffusion", "u")]
    error = violation("program", c, program=_program(c, instructions))
    assert error.node == "instruction 0 (Rate)"
    assert "evaluates an implicit term explicitly" in str(error)


def test_program_advances_each_term_once_per_step():
    c = compiled("heat1d.yaml")  # euler
    instructions = list(c.program.instructions)
    index = next(i for i, ins in enumerate(instructions) if isinstance(ins, P.Assign))
    instructions[index] = P.Assign(
        "u", P.Combination.state("u").plus(Fraction(9, 10), "k1"))
    error = violation("program", c, program=_program(c, instructions))
    assert error.node == "term diffusion"
    assert "advanced 0.9 times per step, not once" in str(error)


def test_program_splitting_advancing_a_term_twice():
    c = compiled("master.yaml")
    prog = c.program
    doubled = _program(c, prog.instructions + (
        P.Rate("k", ("reaction",), P.Combination.state("u")),
        P.Assign("u", P.Combination.state("u").plus(1, "k")),
        P.Observe(3, "reaction", "u")))
    error = violation("program", c, program=doubled)
    assert error.node == "term reaction" and "advanced 2 times" in str(error)


def test_program_scheme_terms_and_instructions():
    c = compiled("master.yaml")
    assert violation("program", c, program=_program(c, scheme="nope")).node == "scheme"
    assert violation("program", c, program=_program(
        c, terms=("interaction", "reaction", "diffusion"))).node == "terms"
    assert violation("program", c, program=_program(c, implicit=("nope",))).node == "implicit"
    twice = c.program.norms + c.program.norms[:1]
    assert violation("program", c, program=_program(c, norms=twice)).node == "norms"
    bad = _program(c, (object(),))
    assert violation("program", c, program=bad).node == "instruction 0 (object)"
    unknown = _program(c, (P.Rate("k", ("nope",), P.Combination.state("u")),))
    assert "unknown terms ('nope',)" in str(violation("program", c, program=unknown))


@pytest.mark.parametrize("residual", [True, False])
def test_program_coefficients_name_only_its_constants(residual):
    c = compiled("allen_cahn_imex.yaml")
    bad = _program(c, constants=(), residual=residual)
    error = violation("program", c, program=bad)
    assert "GAMMA" in str(error)


# ----------------------------------------------------------------------------- analysis
def _analysis(c, **stability):
    return dataclasses.replace(c.analysis,
                               stability=dataclasses.replace(c.analysis.stability, **stability))


def test_analysis_unstable_below_the_bound():
    c = compiled("heat1d.yaml")
    assert c.analysis.stability.dt < c.analysis.stability.max_stable_dt
    error = violation("analysis", c, analysis=_analysis(c, verdict="unstable"))
    assert error.node == "stability"
    assert "unstable at a Δt below the bound" in str(error)


@pytest.mark.parametrize(("change", "message"), [
    ({"verdict": "fine"}, "verdict 'fine'"),
    ({"max_stable_dt": -1.0}, "max stable Δt -1.0"),
    ({"max_stable_dt": math.inf}, "max stable Δt inf"),
    ({"max_stable_dt": math.nan}, "max stable Δt nan"),
    ({"max_stable_dt": None, "verdict": "unstable"}, "unstable without a bound"),
])
def test_analysis_stability_facts(change, message):
    c = compiled("heat1d.yaml")
    error = violation("analysis", c, analysis=_analysis(c, **change))
    assert error.node == "stability" and message in str(error)


def test_analysis_stable_above_the_bound():
    c = compiled("heat1d.yaml")
    violation("analysis", c, analysis=_analysis(c, dt=2 * c.analysis.stability.max_stable_dt))


def test_analysis_inconsistent_stencil():
    c = compiled("heat1d.yaml")
    facts = c.analysis.stencils["laplace"]
    stencil = dataclasses.replace(facts.stencil, weights=tuple(2 * w for w in
                                                               facts.stencil.weights))
    stencils = {"laplace": dataclasses.replace(facts, stencil=stencil)}
    error = violation("analysis", c,
                      analysis=dataclasses.replace(c.analysis, stencils=stencils))
    assert error.node == "stencil laplace" and "not consistent" in str(error)


# ----------------------------------------------------------------------------- discrete
def _with_term(c, index: int, expr) -> D.DiscreteModel:
    terms = list(c.discrete.terms)
    terms[index] = dataclasses.replace(terms[index], expr=expr)
    return dataclasses.replace(c.discrete, terms=tuple(terms))


@pytest.mark.parametrize(("node", "message"), [
    (D.ApplyStencil("nope", D.State()), "an unknown stencil"),
    (D.ApplyModule("nope_mlp", "mlp", D.State()), "an unknown module"),
    (D.ApplyModule("interaction_attention", "mlp", D.State()), "an unknown module"),
    (D.Param("nope"), "an undeclared parameter"),
    (D.Const(math.inf), "a non-finite constant"),
    (D.Const(math.nan), "a non-finite constant"),
    (D.Elementwise("softplus", D.State()), "an unknown elementwise function"),
    (D.Elementwise("mlp", D.State()), "an unknown elementwise function"),
])
def test_discrete_expression_nodes(node, message):
    c = compiled("master.yaml")
    term = c.discrete.terms[0]
    bad = _with_term(c, 0, D.Sum((term.expr, D.Product((D.Const(Fraction(1, 2)), node)))))
    error = violation("discrete", c, discrete=bad)
    assert error.node == f"term {term.name}: {node}"
    assert message in str(error)


def test_discrete_nested_node_is_found():
    c = compiled("master.yaml")
    deep = D.Elementwise("tanh", D.Power(D.ApplyStencil("nope", D.State()), Fraction(2)))
    error = violation("discrete", c, discrete=_with_term(c, 1, deep))
    assert error.node.startswith(f"term {c.discrete.terms[1].name}: ApplyStencil")


def test_discrete_implicit_terms():
    c = compiled("allen_cahn_imex.yaml")
    (implicit,) = c.discrete.implicit
    bad = dataclasses.replace(implicit, parts=((D.Param("D"), ("laplace", "nope")),))
    error = violation("discrete", c, discrete=dataclasses.replace(c.discrete, implicit=(bad,)))
    assert error.node == "implicit diffusion" and "unknown stencil nope" in str(error)
    for word in ((), "laplace"):  # a word is a non-empty tuple of keys
        bad = dataclasses.replace(implicit, parts=((D.Param("D"), word),))
        error = violation("discrete", c,
                          discrete=dataclasses.replace(c.discrete, implicit=(bad,)))
        assert error.node == "implicit diffusion" and "non-empty tuple" in str(error)
    bad = dataclasses.replace(implicit, zero_order=D.Param("nope"))
    error = violation("discrete", c, discrete=dataclasses.replace(c.discrete, implicit=(bad,)))
    assert error.node == "implicit diffusion: Param(name='nope')"
    error = violation("discrete", c, discrete=dataclasses.replace(c.discrete, implicit=()))
    assert error.node == "implicit"


def test_discrete_stencils_and_terms():
    c = compiled("heat1d.yaml")
    stencil = c.discrete.stencils["laplace"]
    broken = dataclasses.replace(stencil, weights=tuple(2 * w for w in stencil.weights))
    error = violation("discrete", c,
                      discrete=dataclasses.replace(c.discrete, stencils={"laplace": broken}))
    assert error.node == "stencil laplace"
    assert "weights are not consistent with the derivative" in str(error)
    renamed = dataclasses.replace(stencil, operator="nope")
    error = violation("discrete", c,
                      discrete=dataclasses.replace(c.discrete, stencils={"laplace": renamed}))
    assert error.node == "stencil laplace"
    error = violation("discrete", c, discrete=dataclasses.replace(c.discrete, terms=()))
    assert error.node == "terms"


# ----------------------------------------------------------------------------- python
@pytest.mark.parametrize(("line", "imported"), [
    ("import os", "os"), ("import os.path", "os.path"), ("from subprocess import run",
                                                         "subprocess"),
    ("import numpy as np", "numpy"),
])
def test_python_imports_only_torch(line, imported):
    c = compiled("heat1d.yaml")
    source = c.python + line + "\n"
    error = violation("python", c, python=source)
    assert error.node == f"line {source.count(chr(10))}"
    assert f"imports {imported} (only torch)" in str(error)


def test_python_is_valid_and_defines_the_stepper_alias():
    c = compiled("heat1d.yaml")
    error = violation("python", c, python=c.python + "def broken(:\n")
    assert error.node.startswith("line ") and "not valid Python" in str(error)
    without_alias = c.python.replace("\nStepper = ", "\nOtherName = ")
    assert violation("python", c, python=without_alias).node == "module"


# ----------------------------------------------------------------------------- the driver
def test_the_verifier_has_a_check_for_every_stage(monkeypatch):
    checked = []
    for name in ("check_ast", "check_symbolic", "check_program", "check_analysis",
                 "check_discrete", "check_python"):
        monkeypatch.setattr(invariants, name,
                            lambda *args, name=name: checked.append(name))
    c = compiled("heat1d.yaml")
    for stage in STAGE_NAMES:
        verify_stage(stage, values(c))
    assert checked == ["check_ast", "check_symbolic", "check_program", "check_analysis",
                       "check_discrete", "check_python"]


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(invariants, "verify_stage",
                        lambda name, values: calls.append((name, sorted(values))))
    return calls


def test_driver_verifies_every_stage_in_debug(recorded):
    driver.compile_spec(REPO / "specs" / "heat1d.yaml", debug=True)
    assert [name for name, _ in recorded] == list(STAGE_NAMES)
    # each check sees its stage's output and everything before it, nothing after
    for i, (_name, available) in enumerate(recorded):
        assert set(available) == {"spec", *STAGE_NAMES[:i + 1]}


def test_driver_verifies_up_to_until(recorded):
    driver.compile_spec(REPO / "specs" / "heat1d.yaml", until="analysis", debug=True)
    assert [name for name, _ in recorded] == ["ast", "symbolic", "program", "analysis"]


def test_driver_does_not_verify_without_debug(recorded, monkeypatch):
    driver.compile_spec(REPO / "specs" / "heat1d.yaml", debug=False)
    assert recorded == []
    monkeypatch.setenv("PDELANG_DEBUG", "0")
    driver.compile_spec(REPO / "specs" / "heat1d.yaml")
    assert recorded == []
    monkeypatch.delenv("PDELANG_DEBUG")
    driver.compile_spec(REPO / "specs" / "heat1d.yaml")
    assert recorded == []


def test_driver_debug_from_the_environment(recorded, monkeypatch):
    monkeypatch.setenv("PDELANG_DEBUG", "1")
    driver.compile_spec(REPO / "specs" / "heat1d.yaml", until="program")
    assert [name for name, _ in recorded] == ["ast", "symbolic", "program"]
    recorded.clear()
    driver.compile_spec(REPO / "specs" / "heat1d.yaml", until="program", debug=False)
    assert recorded == []  # the argument wins over the environment


def test_driver_stops_at_the_stage_that_broke_an_invariant(monkeypatch):
    """A stage that produces a bad value is named at once, before the next stage runs."""
    ran = []

    def bad_schedule(symbolic):
        prog = driver.schedule(symbolic)
        return dataclasses.replace(prog, instructions=prog.instructions[1:])  # no rate k1

    def analyse(*args):
        ran.append("analyse")
        return driver.analyse(*args)

    stages = tuple((name, bad_schedule if name == "program" else
                    analyse if name == "analysis" else stage, inputs)
                   for name, stage, inputs in driver.STAGES)
    monkeypatch.setattr(driver, "STAGES", stages)
    with pytest.raises(InvariantError) as info:
        driver.compile_spec(REPO / "specs" / "heat1d.yaml", debug=True)
    assert info.value.stage == "program"
    assert "reads register 'k1' before it is written" in str(info.value)
    assert ran == []


# ----------------------------------------------------------------------------- shipped specs
@pytest.mark.parametrize("name", SPECS)
def test_every_shipped_spec_passes_every_invariant(name):
    c = compiled(name)  # compiled with debug=True: verified after each stage
    everything = values(c)
    for stage in STAGE_NAMES:
        verify_stage(stage, everything)
    invariants.check_program(c.program, c.symbolic)
    assert c.python is not None
