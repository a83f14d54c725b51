"""Resource limits and the slow paths of the front end (issue 11, item 3).

Every limit is checked before the work it bounds, gives a located error naming the
environment variable that raises it, and is documented in the spec-format guide
(docs/guide/spec-format.md); the inputs that used
to take tens of seconds (nested ``tanh``, the accuracy-32 Laplacian of a 2-D grid) are fast;
the walkers over the expression tree work at the depths the limits allow (no recursion)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import sympy

from pdelang.compiler.driver import compile_spec, compile_text
from pdelang.errors import PdelangError
from pdelang.compiler.language import ast
from pdelang.compiler.spec.limits import LIMITS, limit
from pdelang.compiler.symbolic.lower import expanded_size

REPO = Path(__file__).resolve().parent.parent.parent
HEAT = REPO / "specs" / "heat1d.yaml"
RD2D = REPO / "specs" / "reaction_diffusion2d.yaml"

SPEC = """\
pdelang: 1
name: limits
grid: {{axes: [x], shape: [24]}}
fields: {{u: {{channels: 4}}}}
parameters: {{D: 0.1}}
terms:
  a: "{term}"
equation: dt(u) = a
"""


def test_every_limit_is_documented_with_its_variable():
    guide = (REPO / "docs" / "guide" / "spec-format.md").read_text(encoding="utf-8")
    for spec in LIMITS.values():
        assert spec.env in guide, f"{spec.env} is not in the guide's Limits paragraph"
        assert limit(spec.name) == spec.default


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_a_limit_reads_its_environment_variable(name, monkeypatch):
    monkeypatch.setenv(LIMITS[name].env, "1_234")
    assert limit(name) == 1234
    monkeypatch.setenv(LIMITS[name].env, "0")
    with pytest.raises(PdelangError, match=LIMITS[name].env):
        limit(name)


def test_nested_tanh_is_fast():
    """9 nested tanh took 12 s (SymPy's assumptions expanded real and imaginary parts at
    every level); the field's values are real, so they stop at once."""
    started = time.perf_counter()
    compile_text(SPEC.format(term="tanh(" * 9 + "D * laplace(u)" + ")" * 9))
    compile_text(SPEC.format(term="tanh(" * 40 + "u" + ")" * 40), until="analysis")
    assert time.perf_counter() - started < 10


def test_a_real_field_does_not_rewrite_powers_as_abs():
    """(u^2)^0.5 stays a power (SymPy's real=True would make it Abs(u), which has no
    discretization): the spec's meaning is unchanged."""
    model = compile_text(SPEC.format(term="(u^2)^0.5 * D"), until="symbolic").symbolic
    assert not model.terms[0].expr.has(sympy.Abs)
    compile_text(SPEC.format(term="(u^2)^0.5 * D"))


def test_the_largest_accuracy_on_the_2d_spec_is_fast():
    """accuracy 32 on the shipped 2-D spec took 17 s (sympy.simplify of the symbol text)."""
    started = time.perf_counter()
    result = compile_spec(RD2D, ["discretization.laplace.accuracy=32"], until="discrete")
    assert time.perf_counter() - started < 8
    assert result.analysis.stability.max_stable_dt is not None
    assert "cos(16*theta_x)" in result.analysis.stability.symbol


def test_the_highest_derivative_order_is_fast():
    started = time.perf_counter()
    compile_spec(HEAT, ["terms.diffusion=D * diff(u, x, 16)"], until="discrete")
    assert time.perf_counter() - started < 8
    with pytest.raises(PdelangError, match="must be ≤ 16"):
        compile_spec(HEAT, ["terms.diffusion=D * diff(u, x, 64)"], until="symbolic")


@pytest.mark.parametrize("term", [
    " + ".join(["u"] * 1000),  # the most operators allowed, as one chain
    " + ".join(f"u^{k}" for k in range(1, 200)),
    " - ".join(["D * laplace(u)"] * 300),
    " * ".join(["u"] * 999),
    "-" * 999 + "u",
    "(" * 150 + "u" + ")" * 150,
    "tanh(" * 49 + "u" + ")" * 49,  # with the reference from the equation: 50 levels
], ids=["sum", "powers", "differences", "product", "signs", "parentheses", "calls"])
def test_long_chains_at_the_limits_compile(term):
    """The parser's AST, the lowering, the cycle check and the walkers use explicit stacks:
    a chain of a thousand operators does not recurse, even from a deep stack."""
    def deep(k):
        return compile_text(SPEC.format(term=term)) if k == 0 else deep(k - 1)

    assert sys.getrecursionlimit() - 400 > 0
    deep(300)


def test_a_long_chain_of_term_references_is_refused_before_lowering_recurses():
    """t0: t1, t1: t2, …: lowering a reference recurses into the term, so a reference adds
    a level of nesting (250 plain references used to reach the recursion limit)."""
    chain = "\n".join(f"  t{i}: t{i + 1}" for i in range(250)) + "\n  t250: u"
    text = SPEC.format(term="u").replace('  a: "u"', chain).replace("dt(u) = a", "dt(u) = t0")

    def deep(k):
        return compile_text(text, "chain.yaml") if k == 0 else deep(k - 1)

    with pytest.raises(PdelangError, match="nests more than 50 levels deep once the terms"):
        deep(300)
    short = SPEC.format(term="u").replace('  a: "u"', "\n".join(
        f"  t{i}: t{i + 1}" for i in range(40)) + "\n  t40: u").replace("dt(u) = a", "dt(u) = t0")
    compile_text(short)


def test_ast_helpers_handle_a_thousand_levels():
    node = ast.Name("u", None)
    for _ in range(5000):
        node = ast.BinOp("+", node, ast.Number(1.0, "1", None), None)
    assert str(node).count("+") == 5000
    assert sum(1 for _ in ast.walk(node)) == 10001


def test_expanded_size_bounds_the_expansion_without_expanding():
    u, v = sympy.symbols("u v")
    assert expanded_size((u + v) ** 3, 100) == (4, None)
    assert expanded_size((u + v + 1) ** 2 * (u + 1), 100) == (12, None)
    size, culprit = expanded_size((u + v) ** 10**9, 5000)
    assert size > 5000 and culprit == (u + v) ** 10**9
    nested = u
    for _ in range(30):
        nested = (nested + 1) ** 2
    assert expanded_size(nested, 5000)[1] is not None


def test_the_equation_summand_limit():
    eq = " + ".join(f"{k + 1} * u" for k in range(257))
    text = SPEC.format(term="u").replace("dt(u) = a", f"dt(u) = {eq}")
    with pytest.raises(PdelangError, match="the equation has 257 summands") as info:
        compile_text(text, "eq.yaml", until="symbolic")
    assert info.value.location.line == 8
