"""The term grammar (Lark, LALR): precedence, numbers, calls, keyword arguments, references."""

from __future__ import annotations

import pytest
import sympy

from pdelang.compiler.driver import compile_spec
from pdelang.errors import ExpressionSyntaxError, SourceLocation
from pdelang.compiler.language import ast
from pdelang.compiler.language.parse import parse_source, parser
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.spec.model import SourceString
from pdelang.compiler.operators.laplace import Laplace


def parse(text: str, what: str = "term"):
    return parse_source(SourceString(text, SourceLocation("<t>", 1, 1, text)), what)


def shape(node) -> object:
    """The AST as nested tuples (no locations), for structural comparisons."""
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Neg):
        return ("neg", shape(node.operand))
    if isinstance(node, ast.BinOp):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, ast.Call):
        return ("call", node.func, tuple(shape(a) for a in node.args),
                tuple((k.name, shape(k.value)) for k in node.keywords))
    if isinstance(node, ast.Equation):
        return ("dt", node.field.id, shape(node.rhs))
    raise TypeError(node)


def test_the_grammar_is_lalr_and_strict():
    lark = parser()
    assert lark.options.parser == "lalr"
    assert lark.options.strict is True
    assert set(lark.options.start) == {"equation", "expression"}


@pytest.mark.parametrize("text,expected", [
    ("-u^2", ("neg", ("^", "u", 2.0))),           # unary minus binds looser than ^
    ("a-b-c", ("-", ("-", "a", "b"), "c")),       # left-associative
    ("a/b/c", ("/", ("/", "a", "b"), "c")),
    ("2^3^2", ("^", 2.0, ("^", 3.0, 2.0))),       # right-associative
    ("a+b*c", ("+", "a", ("*", "b", "c"))),
    ("(a+b)*c", ("*", ("+", "a", "b"), "c")),
    ("a*b^c", ("*", "a", ("^", "b", "c"))),
    ("-a*b", ("*", ("neg", "a"), "b")),
    ("2*-u", ("*", 2.0, ("neg", "u"))),
    ("u^-1", ("^", "u", ("neg", 1.0))),
    ("--u", ("neg", ("neg", "u"))),
    ("+u", "u"),
    ("((u))", "u"),
    ("a - -b", ("-", "a", ("neg", "b"))),
])
def test_precedence_and_associativity(text, expected):
    assert shape(parse(text)) == expected


@pytest.mark.parametrize("text,value", [
    ("1e-3", 1e-3), (".5", 0.5), ("2.", 2.0), ("1E+3", 1000.0), ("3", 3.0), ("0.25", 0.25),
    ("12.5e2", 1250.0),
])
def test_numbers(text, value):
    node = parse(text)
    assert isinstance(node, ast.Number)
    assert node.value == value and node.text == text


def test_numbers_lower_to_exact_rationals():
    spec = load_spec_text("pdelang: 1\nname: n\ngrid: {axes: [seq]}\nfields: {u: {channels: 2}}\n"
                          "terms:\n  a: 1e-3 * u + .5 * u + 2. * u + 3 * u\nequation: dt(u) = a\n")
    model = compile_spec(spec, until="symbolic").symbolic
    u = model.u
    assert sympy.simplify(model.term("a").expr - sympy.Rational(5501, 1000) * u) == 0


def test_calls_with_positional_and_keyword_arguments():
    node = parse("attention(u, heads=12, causal=true, kernel=sinkhorn, bias=false)")
    assert shape(node) == ("call", "attention", ("u",), (
        ("heads", 12.0), ("causal", "true"), ("kernel", "sinkhorn"), ("bias", "false")))
    node = parse("diff(u, seq, 2)")
    assert shape(node) == ("call", "diff", ("u", "seq", 2.0), ())
    node = parse("mlp(u, hidden=8, activation=relu,)")  # a trailing comma is fine
    assert shape(node) == ("call", "mlp", ("u",), (("hidden", 8.0), ("activation", "relu")))
    node = parse("tanh(linear(u) + 1)")
    assert shape(node) == ("call", "tanh", (("+", ("call", "linear", ("u",), ()), 1.0),), ())


SPEC = """pdelang: 1
name: opts
grid: {{axes: [seq]}}
fields: {{u: {{channels: 12}}}}
parameters: {{D: 0.1}}
terms:
  a: {term}
equation: dt(u) = a
"""


def lowered(term: str):
    compilation = compile_spec(
        load_spec_text(SPEC.format(term=term), "opts.yaml"), until="analysis")
    model, analysis = compilation.symbolic, compilation.analysis
    return model, analysis


def test_keyword_values_of_each_type():
    model, _ = lowered("attention(u, heads=3, causal=true, kernel=sinkhorn, iterations=5) "
                       "+ layernorm(u, eps=1e-6, affine=false) + mlp(u, activation=silu)")
    att = model.instances["a_attention"].options
    assert att["heads"] == 3 and type(att["heads"]) is int
    assert att["causal"] is True
    assert att["kernel"] == "sinkhorn"
    assert att["iterations"] == 5
    assert att["bias"] is True  # the default
    ln = model.instances["a_layernorm"].options
    assert ln["eps"] == pytest.approx(1e-6) and isinstance(ln["eps"], float)
    assert ln["affine"] is False
    mlp = model.instances["a_mlp"].options
    assert mlp["activation"] == "silu"
    assert mlp["hidden"] == 48  # default 4C


def test_diff_options_by_position_and_by_keyword():
    m1, _ = lowered("diff(u, seq, 2)")
    m2, _ = lowered("diff(u, axis=seq, order=2)")
    m3, _ = lowered("diff(u, seq, order=2)")
    assert m1.term("a").expr == m2.term("a").expr == m3.term("a").expr
    seq = m1.axes[0]
    assert m1.term("a").expr.doit() == sympy.Derivative(m1.u, (seq, 2))


def test_negative_numbers_as_option_values():
    model, _ = lowered("layernorm(u, eps=-0)")
    assert model.instances["a_layernorm"].options["eps"] == 0


def test_term_references_are_inlined():
    text = ("pdelang: 1\nname: refs\ngrid: {axes: [seq]}\nfields: {u: {channels: 4}}\n"
            "parameters: {D: 0.1, k: 2.0}\n"
            "terms:\n  diffusion: D * laplace(u)\n  decay: -k * u\n"
            "  both: diffusion + 0.5 * decay\n"
            "equation: dt(u) = both\n")
    model = compile_spec(load_spec_text(text), until="symbolic").symbolic
    D, k = model.parameters["D"], model.parameters["k"]
    expected = D * Laplace(model.u) - k * model.u / 2
    assert sympy.expand(model.term("both").expr - expected) == 0
    assert [t.name for t in model.terms] == ["both"]
    assert model.unused_terms == ()


def test_equation_pieces_and_names():
    text = ("pdelang: 1\nname: pieces\ngrid: {axes: [seq]}\nfields: {u: {channels: 4}}\n"
            "terms:\n  a: laplace(u)\n  b: tanh(u)\n  c: u\n"
            "equation: dt(u) = a - 0.5 * b + u^2\n")
    compilation = compile_spec(load_spec_text(text), until="analysis")
    model, analysis = compilation.symbolic, compilation.analysis
    assert [t.name for t in model.terms] == ["a", "b", "term3"]
    assert sympy.simplify(model.term("b").expr + sympy.tanh(model.u) / 2) == 0
    assert model.unused_terms == ("c",)
    assert any("term 'c' is defined but not used" in w for w in analysis.warnings)


def test_equation_parse():
    eq = parse("dt(u) = a + b", "equation")
    assert shape(eq) == ("dt", "u", ("+", "a", "b"))


def test_ast_nodes_keep_their_columns():
    node = parse("D * laplace(u, eps=1)")
    assert node.loc.col == 1
    call = node.right
    assert call.loc.col == 5 and call.loc.length == len("laplace(u, eps=1)")
    assert call.args[0].loc.col == 13
    assert call.keywords[0].loc.col == 16
    assert call.keywords[0].value.loc.col == 20


@pytest.mark.parametrize("text,col,fragment", [
    ("D * * laplace(u)", 5, "unexpected '*'"),
    ("laplace(u", 10, "ends too early"),
    ("laplace(u))", 11, "unexpected ')'"),
    ("u ** 2", 3, "unexpected '*'"),
    ("u +", 4, "ends too early"),
    ("u $ 2", 3, "unexpected character '$'"),
    ("u [2]", 3, "unexpected character '['"),
    ("2 3", 3, "unexpected number '3'"),
    ("a = b", 3, "unexpected '='"),
    ("f(a=1, 2)", 8, "positional argument follows a keyword"),
    ("f(a=1, a=2)", 8, "option 'a' is given twice"),
])
def test_syntax_errors_are_located(text, col, fragment):
    with pytest.raises(ExpressionSyntaxError) as info:
        parse(text)
    err = info.value
    assert fragment in err.message
    assert (err.location.line, err.location.col) == (1, col)
    assert "^" in str(err)


def test_python_power_gets_a_hint():
    with pytest.raises(ExpressionSyntaxError) as info:
        parse("u ** 2")
    assert info.value.suggestion == "powers are written with '^'"
    assert info.value.location.length == 2


def test_equation_must_start_with_dt():
    with pytest.raises(ExpressionSyntaxError, match=r"must start with dt\(<field>\)"):
        parse("d(u) = a", "equation")
    with pytest.raises(ExpressionSyntaxError, match="ends too early"):
        parse("dt(u) =", "equation")
    with pytest.raises(ExpressionSyntaxError, match="is empty"):
        parse("   ", "term")
