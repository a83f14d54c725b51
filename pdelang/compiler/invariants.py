"""The verifier: invariants of each stage's output, checked after the stage (tinygrad style).

The driver calls :func:`verify_stage` after every stage when debugging is on (``--debug``,
``PDELANG_DEBUG=1``, and always in the test suite).  A violated invariant is a bug in
pdelang, not in the spec: :class:`InvariantError` names the stage and the node, so the
stage that produced the bad value is found at once instead of three stages later.
"""

from __future__ import annotations

import ast as python_ast
import math
from fractions import Fraction
import sympy

from pdelang.compiler.language import ast
from pdelang.compiler.operators import operator_of, OPERATORS
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.schemes import SCHEMES, program as P
from pdelang.compiler.analysis.analyse import STABLE_AGAIN
from pdelang.compiler.analysis.stencils import taylor_error
from pdelang.compiler.discrete import ir as D


class InvariantError(AssertionError):
    """An intermediate form broke an invariant of its stage (a compiler bug)."""

    def __init__(self, stage: str, node: str, message: str) -> None:
        super().__init__(f"invariant violated after stage '{stage}' at {node}: {message}")
        self.stage = stage
        self.node = node


def _fail(stage: str, node, message: str):
    raise InvariantError(stage, str(node), message)


# ----------------------------------------------------------------------------- per stage
def check_ast(parsed, spec) -> None:
    if set(parsed.terms) != set(spec.terms):
        _fail("ast", "terms", f"parsed {sorted(parsed.terms)}, the spec has {sorted(spec.terms)}")
    if getattr(parsed.equation.field, "loc", None) is None:
        _fail("ast", "equation", "the evolved field has no source location")
    for name, expr in [*parsed.terms.items(), ("equation", parsed.equation.rhs)]:
        for node in ast.walk(expr):
            keywords = node.keywords if isinstance(node, ast.Call) else ()
            for located in (node, *keywords):
                if getattr(located, "loc", None) is None:
                    _fail("ast", f"{name}: {located}", "a node without a source location")


def check_symbolic(model) -> None:
    names = [t.name for t in model.terms]
    if not names:
        _fail("symbolic", "equation", "no term")
    if len(set(names)) != len(names):
        _fail("symbolic", "equation", f"a term twice: {names}")
    if sorted(model.split_order) != sorted(names):
        _fail("symbolic", "split_order", f"{model.split_order} is not a permutation of {names}")
    for term in model.terms:  # (a non-finite constant is the user's: analyse locates it)
        for call in term.expr.atoms(OperatorCall):
            if operator_of(call) is None:
                _fail("symbolic", f"term {term.name}: {call}", "an unregistered operator")
            if len(call.args) > 1 and isinstance(call.args[-1], sympy.Symbol) \
                    and str(call.args[-1]) not in model.instances \
                    and operator_of(call).learned:
                _fail("symbolic", f"term {term.name}: {call}", "a call site without instance")
    for name, instance in model.instances.items():
        if instance.name != name or operator_of_name(instance.op) is None:
            _fail("symbolic", f"instance {name}", f"bad instance {instance}")


def operator_of_name(name):
    return OPERATORS.get(name)


def check_program(program, model=None) -> None:
    stage = "program"
    if program.scheme not in SCHEMES:
        _fail(stage, "scheme", f"unknown scheme {program.scheme!r}")
    terms = set(program.terms)
    if model is not None and program.terms != tuple(t.name for t in model.terms):
        _fail(stage, "terms", f"{program.terms} are not the equation's terms")
    if not set(program.implicit) <= terms:
        _fail(stage, "implicit", f"{program.implicit} are not all terms")
    norms = {n.name: n for n in program.norms}
    if len(norms) != len(program.norms):
        _fail(stage, "norms", "two norm modules with one name")
    known_constants = {c.name for c in program.constants}
    for index, ins in enumerate(program.instructions):
        for coefficient in _coefficients(ins):
            missing = set(coefficient.constants) - known_constants
            if missing:
                _fail(stage, f"instruction {index} ({type(ins).__name__})",
                      f"a coefficient names {', '.join(sorted(missing))}, not a constant of "
                      "the program")
    written = {"u"}
    last_observe = -1
    for index, ins in enumerate(program.instructions):
        node = f"instruction {index} ({type(ins).__name__})"
        reads: tuple[str, ...] = ()
        if isinstance(ins, (P.Rate, P.Solve, P.Flow, P.Assign)):
            combination = (ins.at if isinstance(ins, (P.Rate, P.Flow)) else
                           ins.rhs if isinstance(ins, P.Solve) else ins.value)
            reads = combination.registers
            if isinstance(ins, (P.Rate, P.Solve, P.Flow)) and not set(ins.terms) <= terms:
                _fail(stage, node, f"unknown terms {ins.terms}")
            if isinstance(ins, (P.Solve, P.Flow)) and not set(ins.terms) <= set(program.implicit):
                _fail(stage, node, f"solves explicit terms {ins.terms}")
            if isinstance(ins, P.Rate) and program.is_splitting and \
                    set(ins.terms) & set(program.implicit):
                _fail(stage, node, "a splitting evaluates an implicit term explicitly")
        elif isinstance(ins, P.Project):
            reads = (ins.target,)
            if ins.norm not in norms or norms[ins.norm].placement != "post":
                _fail(stage, node, f"projects with {ins.norm!r}, not a post norm module")
        elif isinstance(ins, P.Observe):
            reads = (ins.register,)
            if ins.index <= last_observe:
                _fail(stage, node, "diagnostics indices do not increase")
            last_observe = ins.index
        else:
            _fail(stage, node, f"unknown instruction {ins!r}")
        for register in reads:
            if register not in written:
                _fail(stage, node, f"reads register {register!r} before it is written")
        if hasattr(ins, "target"):
            written.add(ins.target)
    if program.residual:
        _check_consistent(program)


def _coefficients(ins):
    out = []
    if isinstance(ins, (P.Solve, P.Flow)):
        out.append(ins.coefficient)
    for name in ("at", "rhs", "value"):
        combination = getattr(ins, name, None)
        if combination is not None:
            out += [p.coefficient for p in combination.parts]
    return out


def _check_consistent(program) -> None:
    """Each term is integrated once per step: ∂G/∂z_t = 1 at z = 0 for every term, G the
    step's amplification on ``u' = Σ_t λ_t u`` (a numeric derivative)."""
    constants = program.constant_values

    class Machine:
        def __init__(self, z):
            self.z = z

        def combine(self, parts):
            return sum(float(c.evaluate(constants)) * v for c, v, _ in parts)

        def rate(self, terms, s):
            return sum(self.z[t] for t in terms) * s

        def solve(self, terms, c, s):
            return s / (1 - float(c.evaluate(constants)) * sum(self.z[t] for t in terms))

        def flow(self, terms, c, s):
            return math.exp(float(c.evaluate(constants)) * sum(self.z[t] for t in terms)) * s

        def project(self, norm, s):
            return s

        def observe(self, *args):
            pass

    eps = 1e-7
    for term in program.terms:
        z = {t: (eps if t == term else 0.0) for t in program.terms}
        slope = (P.run(program, Machine(z), 1.0) - 1.0) / eps
        if abs(slope - 1.0) > 1e-5:
            _fail("program", f"term {term}", f"advanced {slope:.6g} times per step, not once")


def check_analysis(analysis) -> None:
    for key, facts in analysis.stencils.items():
        s = facts.stencil
        try:
            taylor_error(s.offsets, s.weights, s.derivative)
        except ValueError as error:
            _fail("analysis", f"stencil {key}", str(error))
    st = analysis.stability
    if st.verdict not in ("stable", "unstable", "unknown", "no_stable_dt"):
        _fail("analysis", "stability", f"verdict {st.verdict!r}")
    if st.verdict == "no_stable_dt" and st.max_stable_dt != 0:
        _fail("analysis", "stability", "no stable Δt with a bound above 0")
    if st.max_stable_dt is not None:
        if not (math.isfinite(st.max_stable_dt) and st.max_stable_dt >= 0):
            _fail("analysis", "stability", f"max stable Δt {st.max_stable_dt}")
        if st.verdict == "unstable" and st.dt <= st.max_stable_dt:
            _fail("analysis", "stability", "unstable at a Δt below the bound")
        if st.verdict == "stable" and st.dt > st.max_stable_dt * (1 + 1e-12) and \
                not any(STABLE_AGAIN in c for c in st.caveats):
            _fail("analysis", "stability", "stable at a Δt above the bound")
    if st.verdict == "unstable" and st.max_stable_dt is None:
        _fail("analysis", "stability", "unstable without a bound")


def check_discrete(model) -> None:
    stage = "discrete"
    # names become Python code (class, attribute and method names): ASCII identifiers only
    names = [model.name, model.class_name, *(t.name for t in model.terms),
             *(p.name for p in model.parameters), *(m.name for m in model.modules),
             *(s.attribute for s in model.stencils.values()),
             *(n.name for n in model.program.norms)]
    for name in names:
        if not (name.isascii() and name.isidentifier()):
            _fail(stage, f"name {name!r}", "not an ASCII identifier, but printed as code")
    # numbers become Python literals: finite only (repr(inf) is the bare name inf)
    numbers = [("dt", model.dt), ("spacing", model.spacing), ("norm eps", model.norm.eps),
               *((f"parameter {p.name}", p.value) for p in model.parameters)]
    for what, value in numbers:
        if not math.isfinite(float(value)):
            _fail(stage, what, f"the non-finite number {value!r} would be printed as code")
    modules = {m.name: m for m in model.modules}
    parameters = {p.name for p in model.parameters}
    if tuple(t.name for t in model.terms) != model.program.terms:
        _fail(stage, "terms", "the terms are not the program's")
    for key, stencil in model.stencils.items():
        if stencil.key != key or stencil.operator not in OPERATORS or not stencil.attribute:
            _fail(stage, f"stencil {key}", f"bad stencil {stencil}")
        total = sum((w * Fraction(o) ** stencil.derivative for o, w in
                     zip(stencil.offsets, stencil.weights)), Fraction(0))
        if total != math.factorial(stencil.derivative):
            _fail(stage, f"stencil {key}", "weights are not consistent with the derivative")
    exprs = [(f"term {t.name}", t.expr) for t in model.terms]
    for implicit in model.implicit:
        if implicit.term not in model.program.implicit:
            _fail(stage, f"implicit {implicit.term}", "not implicit in the program")
        exprs.append((f"implicit {implicit.term}", implicit.zero_order))
        for coefficient, word in implicit.parts:  # a word: stencil keys, outer first
            exprs.append((f"implicit {implicit.term}", coefficient))
            if not isinstance(word, tuple) or not word:
                _fail(stage, f"implicit {implicit.term}",
                      f"a word of stencils must be a non-empty tuple of keys, not {word!r}")
            for key in word:
                if key not in model.stencils:
                    _fail(stage, f"implicit {implicit.term}", f"unknown stencil {key}")
    for where, expr in exprs:
        for node in D.walk(expr):
            if isinstance(node, D.ApplyStencil) and node.stencil not in model.stencils:
                _fail(stage, f"{where}: {node}", "an unknown stencil")
            if isinstance(node, D.ApplyModule) and (node.module not in modules
                                                    or modules[node.module].op != node.op):
                _fail(stage, f"{where}: {node}", "an unknown module")
            if isinstance(node, D.Param) and node.name not in parameters:
                _fail(stage, f"{where}: {node}", "an undeclared parameter")
            if isinstance(node, D.Elementwise) and (
                    node.func not in OPERATORS or OPERATORS[node.func].category != "elementwise"):
                _fail(stage, f"{where}: {node}", "an unknown elementwise function")
            if isinstance(node, D.Const) and not math.isfinite(float(node.value)):
                _fail(stage, f"{where}: {node}", "a non-finite constant")
    if {i.term for i in model.implicit} != set(model.program.implicit):
        _fail(stage, "implicit", "the program's implicit terms have no linear structure")


ALLOWED_IMPORTS = {"__future__", "typing", "torch", "torch.nn.functional", "torch.nn",
                   "torch.nn.utils"}


def check_python(source: str) -> None:
    try:
        tree = python_ast.parse(source)
    except SyntaxError as error:
        _fail("python", f"line {error.lineno}", f"not valid Python: {error.msg}")
    for node in python_ast.walk(tree):
        if isinstance(node, python_ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, python_ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        bad = [n for n in names if n not in ALLOWED_IMPORTS]
        if bad:
            _fail("python", f"line {node.lineno}", f"imports {', '.join(bad)} (only torch)")
    if "Stepper" not in {n.targets[0].id for n in tree.body if isinstance(n, python_ast.Assign)
                         and isinstance(n.targets[0], python_ast.Name)}:
        _fail("python", "module", "no Stepper alias")


def verify_stage(name: str, values: dict) -> None:
    """Check the invariants of stage ``name``'s output in ``values`` (the driver's dict)."""
    if name == "ast":
        check_ast(values["ast"], values["spec"])
    elif name == "symbolic":
        check_symbolic(values["symbolic"])
    elif name == "program":
        check_program(values["program"], values["symbolic"])
    elif name == "analysis":
        check_analysis(values["analysis"])
    elif name == "discrete":
        check_discrete(values["discrete"])
    elif name == "python":
        check_python(values["python"])
