"""What a call or a scheme means is its own module's to say: outside
``pdelang/compiler/operators/`` and ``pdelang/compiler/schemes/`` no code compares a value with
an operator's or a scheme's name (``m.op == "attention"``, ``scheme in ("lie", "strang")``);
it asks the operator (``records_attention``, ``is_causal``, ``attention_heads``,
``category``, ``parameter_shapes``) or the scheme (``SCHEMES[name].kind``).

A ratchet: the comparisons that remain are listed below with why; a new one fails, and a
listed one that is gone must be struck from the list (so the list only shrinks)."""

from __future__ import annotations

import ast
from pathlib import Path

from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.schemes import SCHEMES

PACKAGE = Path(__file__).resolve().parents[1] / "pdelang"
OWNERS = (PACKAGE / "compiler" / "operators", PACKAGE / "compiler" / "schemes")

# (file, literal): why it is still here
REMAINING = {
    ("lab/reference/registry.py", "gelu"): "a torch encoder's activation name (not the operator)",
    ("lab/reference/registry.py", "relu"): "a torch encoder's activation name (not the operator)",
    ("lab/reference/torch_encoder.py", "gelu"): "torch's activation name (not the operator)",
    ("lab/reference/torch_encoder.py", "relu"): "torch's activation name (not the operator)",
    ("lab/studies/paper1.py", "mlp"): "the name of a reference layer's part, not of an operator",
    ("lab/validation/weights.py", "lie"): "exact mode: one Lie–Trotter step is one layer",
    ("lab/testing/verify.py", "laplace"): "the stencil labels and the heat-equation check",
    ("lab/testing/strategies.py", "exp"): "a drawing style's name",
    ("lab/testing/strategies.py", "laplace"): "the drawn expressions' stiff terms",
    ("lab/testing/strategies.py", "diff"): "as above",
    ("lab/testing/strategies.py", "lie"): "which drawn schemes split",
    ("lab/testing/strategies.py", "strang"): "as above",
    ("lab/testing/strategies.py", "imex_euler"): "which drawn schemes are IMEX",
    ("lab/testing/strategies.py", "imex_ars222"): "as above",
}


def name_comparisons(package: Path = PACKAGE) -> set[tuple[str, str]]:
    """(file relative to the package, literal) of every comparison with an operator's or a
    scheme's name outside their own modules."""
    names = set(OPERATORS) | set(SCHEMES)
    found = set()
    for path in sorted(package.rglob("*.py")):
        if any(owner in path.parents for owner in OWNERS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            for side in (node.left, *node.comparators):
                items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) \
                    else [side]
                for item in items:
                    if isinstance(item, ast.Constant) and item.value in names:
                        found.add((path.relative_to(package).as_posix(), item.value))
    return found


def test_no_new_interpretation_of_an_operator_or_scheme_name():
    found = name_comparisons()
    assert found - set(REMAINING) == set(), "ask the operator or the scheme instead"
    assert set(REMAINING) - found == set(), "gone: strike it from REMAINING"


def test_the_scan_sees_a_planted_comparison(tmp_path):
    """Control: a lazy interpretation of an operator name is found."""
    fake = tmp_path / "pdelang" / "lab"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f(m):\n    return m.op in ('attention', 'other')\n")
    assert name_comparisons(tmp_path / "pdelang") == {("lab/x.py", "attention")}


def test_the_operator_facts_answer_what_the_names_did():
    attention = OPERATORS["attention"]
    assert attention.records_attention and attention.attention_heads({"heads": 3}) == 3
    assert attention.is_causal({"causal": True}) and not attention.is_causal({"causal": False})
    assert not any(op.records_attention for name, op in OPERATORS.items()
                   if name != "attention")
    assert {n for n, op in OPERATORS.items() if op.category == "norm"} == {"layernorm",
                                                                          "rmsnorm"}
    assert {n for n, s in SCHEMES.items() if s.kind == "splitting"} == {"lie", "strang"}
