"""An operator declares its learned parameters once (``parameter_shapes``): the declaration
is what the generated module allocates, name for name and shape for shape, for every learned
operator and its options, in 1-D and 2-D; the weight count of ``check_weights`` is read from
it; a learned operator without it is a ``MissingHandler``, never zero weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdelang.lab.testing.spec_builder import spec_text
from pdelang.compiler.operators import OPERATORS, MissingHandler
from pdelang.compiler.operators.base import Operator
from pdelang.lab.testing.harness import compile_any, stepper_for

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").rglob("*.yaml"))


def _spec(term: str, axes: str = "[x]", channels: int = 4, extra: str = "") -> str:
    two_d = "," in axes
    return spec_text(term, name="shapes", axes=axes.strip("[]").split(", "),
                     shape=[4, 4] if two_d else [8], boundary="periodic", channels=channels,
                     span=(0, 2), layers=2, substeps=1, scheme="euler") + extra


CALLS = [
    ("attention(u, heads=2)", "[x]"),
    ("attention(u, heads=2, bias=false, rank=1)", "[x]"),
    ("attention(u, heads=4, causal=true)", "[x]"),
    ("attention(u, heads=2, kv_heads=1, rope_theta=10000, bias=false)", "[x]"),
    ("attention(u, heads=4, kv_heads=1, rank=2)", "[x, y]"),
    ("mlp(u, hidden=6)", "[x]"),
    ("glu(u, hidden=6)", "[x]"),
    ("glu(u, hidden=5, bias=true, activation=gelu)", "[x, y]"),
    ("mlp(u, hidden=6, bias=false, activation=relu)", "[x]"),
    ("mlp(u)", "[x]"),
    ("linear(u)", "[x]"),
    ("linear(u, bias=true)", "[x]"),
    ("conv(u, kernel=3)", "[x]"),
    ("conv(u, kernel=5, bias=true)", "[x, y]"),
    ("layernorm(u)", "[x]"),
    ("layernorm(u, affine=false)", "[x]"),
    ("rmsnorm(u, eps=0.001)", "[x, y]"),
    ("mlp(layernorm(u)) + attention(rmsnorm(u), heads=2)", "[x]"),
]


def _declared_and_allocated(compilation, stepper):
    spec = compilation.spec
    for name, inst in compilation.symbolic.instances.items():
        declared = OPERATORS[inst.op].parameter_shapes(spec.field.channels, inst.options,
                                                       spec.grid.dims)
        for layer in stepper.layers:
            module = getattr(layer, name)
            allocated = {key: tuple(p.shape) for key, p in module.named_parameters()}
            yield inst.op, name, declared, allocated


@pytest.mark.parametrize(("term", "axes"), CALLS)
def test_the_declaration_is_what_the_generated_module_allocates(term, axes):
    compilation = compile_any(_spec(term, axes))
    stepper = stepper_for(compilation)
    seen = 0
    for op, name, declared, allocated in _declared_and_allocated(compilation, stepper):
        assert declared == allocated, (op, name)
        seen += 1
    assert seen  # every call site of the term was checked


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_specs_declare_what_they_allocate(path):
    compilation = compile_any(path)
    stepper = stepper_for(compilation)
    for op, name, declared, allocated in _declared_and_allocated(compilation, stepper):
        assert declared == allocated, (path.name, op, name)


def test_the_weight_limit_counts_the_declaration(monkeypatch):
    """check_weights reads parameter_shapes: a declaration that doubles the MLP's hidden
    weights moves a spec over a limit that the true count stays under."""
    from pdelang.compiler.symbolic import lower

    text = _spec("mlp(u, hidden=8, bias=false)", channels=4)
    true_count = 2 * (8 * 4 + 4 * 8)  # 2 layers, W1 and W2
    monkeypatch.setattr(lower, "limit", lambda what: true_count + 16 * 2 * 4 + 8)
    compile_any(text)  # under the limit (norm/term allowances included)
    mlp = OPERATORS["mlp"]
    original = type(mlp).parameter_shapes
    monkeypatch.setattr(type(mlp), "parameter_shapes", lambda self, c, o, d: {
        k: (2 * s[0], *s[1:]) for k, s in original(self, c, o, d).items()})
    with pytest.raises(Exception, match="weights"):
        compile_any(text)


def test_a_learned_operator_without_a_declaration_is_a_missing_handler():
    class Bare(Operator):
        name = "bare_learned"
        learned = True

    with pytest.raises(MissingHandler, match="parameter_shapes"):
        Bare().parameter_shapes(4, {}, 1)
    assert OPERATORS["laplace"].parameter_shapes(4, {}, 1) == {}  # fixed stencils: none


def test_every_learned_operator_declares_its_parameters():
    for name, operator in OPERATORS.items():
        if operator.learned:
            assert type(operator).parameter_shapes is not Operator.parameter_shapes, name


def test_the_oracle_reads_the_declared_keys():
    """The NumPy oracle checks its weights against the declarations: a state dict that
    lacks a declared parameter, or holds it with another shape, is refused by name."""
    from pdelang.interpreters.numpy_oracle import NumpyOracle, weights_from_stepper

    compilation = compile_any(_spec("attention(u, heads=2, kv_heads=1) + glu(u, hidden=6)"))
    weights = weights_from_stepper(stepper_for(compilation))
    NumpyOracle(compilation.discrete, weights)  # complete: accepted
    missing = {k: v for k, v in weights.items() if not k.endswith("f_glu.up.weight")}
    with pytest.raises(KeyError, match="glu declares"):
        NumpyOracle(compilation.discrete, missing)
    key = "layers.1.f_attention.k.weight"
    wrong = {**weights, key: weights[key].repeat(2, axis=0)}
    with pytest.raises(ValueError, match="attention declares"):
        NumpyOracle(compilation.discrete, wrong)
