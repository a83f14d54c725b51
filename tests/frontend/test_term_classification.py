"""Symbolic classification of terms (linear/nonlinear, local/non-local, order, learnable) and
the operator registry (unknown operator, arity, options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdelang.compiler.driver import compile_spec
from pdelang.errors import OperatorError
from pdelang.compiler.operators import OPERATORS, lookup
from pdelang.compiler.operators.mlp import ACTIVATIONS
from pdelang.compiler.spec.load import load_spec, load_spec_text
from pdelang.compiler.operators.laplace import Laplace

REPO = Path(__file__).parent.parent.parent

SPEC = """pdelang: 1
name: cls
grid: {{axes: [seq]}}
fields: {{u: {{channels: 8}}}}
parameters:
  D: {{value: 0.1, learnable: true}}
  c: 2.0
terms:
  a: {term}
equation: dt(u) = a
"""


def facts(term: str):
    analysis = compile_spec(
        load_spec_text(SPEC.format(term=term), "cls.yaml"), until="analysis").analysis
    (only,) = analysis.terms
    return only


def test_master_terms():
    analysis = compile_spec(load_spec(REPO / "specs" / "master.yaml"), until="analysis").analysis
    by_name = {t.name: t for t in analysis.terms}
    assert list(by_name) == ["diffusion", "interaction", "reaction"]
    d, i, r = by_name["diffusion"], by_name["interaction"], by_name["reaction"]
    assert (d.linear, d.local, d.order) == (True, True, 2)
    assert (i.linear, i.local, i.order) == (False, False, 0)
    assert (r.linear, r.local, r.order) == (False, True, 0)
    assert d.learnable == ("D",)
    assert set(i.learnable) == {"alpha", "interaction_attention"}
    assert r.learnable == ("reaction_mlp",)
    assert d.operators == ("laplace",)
    assert i.operators == ("attention",)
    assert r.operators == ("mlp",)


@pytest.mark.parametrize("term,linear,local,order", [
    ("tanh(linear(u))", False, True, 0),
    ("linear(u)", True, True, 0),
    ("linear(u, bias=true)", False, True, 0),  # affine, not linear
    ("D*laplace(u) + diff(u, seq, 3)", True, True, 3),
    ("attention(u)", False, False, 0),
    ("attention(u, heads=2, causal=true) + D*laplace(u)", False, False, 2),
    ("0.5 * u", True, True, 0),
    ("-c * diff(u, seq)", True, True, 1),
    ("u - u^3", False, True, 0),
    ("laplace(u^2)", False, True, 2),
    ("laplace(laplace(u))", True, True, 4),  # the order composes
    ("D * laplace(u) + c * u", True, True, 2),
    ("exp(u)", False, True, 0),
    ("relu(u) + gelu(u) + sigmoid(u)", False, True, 0),
    ("mlp(linear(u))", False, True, 0),
    ("rmsnorm(u)", False, True, 0),
    ("layernorm(u)", False, True, 0),
    ("c", False, True, 0),  # a constant source: affine
])
def test_inline_classification(term, linear, local, order):
    f = facts(term)
    assert (f.linear, f.local, f.order) == (linear, local, order), f


def test_learnable_parameters_and_weights():
    f = facts("D * laplace(u) + c * u")
    assert f.learnable == ("D",)  # c is not learnable
    f = facts("linear(u) + mlp(u)")
    assert set(f.learnable) == {"a_linear", "a_mlp"}
    f = facts("layernorm(u, affine=false)")
    assert f.learnable == ()
    f = facts("tanh(u)")
    assert f.learnable == ()


def test_linear_operators_are_linear_in_sympy():
    model = compile_spec(
        load_spec_text(SPEC.format(term="laplace(u)"), "cls.yaml"), until="symbolic").symbolic
    u, D = model.u, model.parameters["D"]
    assert Laplace(u + 2 * u) == 3 * Laplace(u)
    assert Laplace(D * u) == D * Laplace(u)
    assert Laplace(D) == 0
    assert Laplace(u ** 2) != 0


def test_registry_contents():
    assert set(OPERATORS) >= {"laplace", "diff", "attention", "mlp", "linear", "layernorm",
                              "rmsnorm", "tanh", "relu", "gelu", "sigmoid", "exp"}
    assert lookup("laplase") is None
    att = OPERATORS["attention"]
    assert not att.local and att.learned and not att.linear
    assert att.option("heads").kind == "int" and att.option("heads").default == 1
    assert att.option("kernel").choices == ("softmax", "sinkhorn", "sinkhorn_symmetric")
    assert OPERATORS["laplace"].linear and OPERATORS["laplace"].local
    assert OPERATORS["diff"].differential_order({"order": 3}) == 3
    assert OPERATORS["laplace"].differential_order({}) == 2
    assert OPERATORS["mlp"].option("activation").choices == ACTIVATIONS
    assert OPERATORS["diff"].signature == "diff(operand, axis, order)"
    assert OPERATORS["attention"].signature.startswith("attention(operand, heads=<int>")


def test_every_operator_lowers():
    """Each registered operator can be called with just its operand (plus required options)."""
    for name, op in OPERATORS.items():
        call = f"{name}(u, seq)" if name == "diff" else f"{name}(u)"
        f = facts(call)
        assert name in f.operators, (name, f)
        assert f.linear == op.linear, name
        assert f.local == op.local, name


@pytest.mark.parametrize("term,fragment,hint", [
    ("laplase(u)", "unknown operator 'laplase'", "did you mean 'laplace'?"),
    ("attention(u, head=2)", "attention() has no option 'head'", "did you mean 'heads'?"),
    ("mlp(u, activation=gelo)", "must be one of gelu", "did you mean 'gelu'?"),
    ("attention(u, causal=maybe)", "must be true or false, got 'maybe'", None),
    ("attention(u, heads=2.5)", "must be an integer, got 2.5", None),
    ("attention(u, heads=3)", "heads=3 does not divide the 8 channels", "2 or 4"),
    ("laplace(u, u)", "laplace() takes 1 positional argument, got 2",
     "signature: laplace(operand)"),
    ("diff(u, seq, 1, 1)", "diff() takes 3 positional arguments, got 4", "signature: diff("),
    ("mlp()", "mlp() needs an operand", "signature: mlp(operand"),
    ("diff(u)", "diff() needs 'axis'", "signature: diff(operand, axis, order)"),
    ("diff(u, seq, order=1, axis=seq)", "diff() got 'axis' twice", None),
    ("D(u)", "unknown operator 'D'", "'D' is a parameter, not an operator"),
    ("layernorm(u, eps=-1)", "must be ≥ 0", None),
])
def test_operator_errors(term, fragment, hint):
    with pytest.raises(OperatorError) as info:
        facts(term)
    err = info.value
    assert fragment in err.message, str(err)
    if hint is not None:
        assert err.suggestion and hint in err.suggestion, str(err)
    assert err.location.file == "cls.yaml" and err.location.line == 9
    assert "^" in str(err)


def test_power_of_an_operator_call():
    f = facts("laplace(u) * laplace(u)")
    assert (f.linear, f.local, f.order) == (False, True, 2)
