"""The operator protocol (:mod:`pdelang.compiler.operators.base`) and its registry.

* every registered operator implements the hooks its category needs — checked by calling
  each hook on a real lowered call of a small compiled spec (SymPy lowering, options,
  stencils and von Neumann symbols, discretization, torch printing, NumPy evaluation,
  hypothesis strategy), and the generated torch code agrees with the NumPy evaluation;
* a consumer without a handler fails loudly: :class:`MissingHandler` from every consumer
  entry point names the consumer and the operator, and a fake operator registered for one
  test stops the compilation in the first consumer that lacks its handler;
* discovery: an operator module dropped next to the others is found, a name defined twice
  is refused, and the registry is exactly what the package's modules define;
* option validation (attention heads, mlp hidden width, conv kernel, diff order);
* each operator's ``draw_call`` draws calls that lower to that operator.
"""

from __future__ import annotations

import math
import pkgutil
import re
import sys

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import pdelang.compiler.operators as ops_package
from pdelang.lab.testing.spec_builder import spec_text as build_spec
from pdelang.compiler.discrete import ir as D
from pdelang.compiler.driver import compile_text
from pdelang.errors import OperatorError
from pdelang.compiler.operators import OPERATORS, MissingHandler, Operator, operator_of
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.interpreters.numpy_oracle import NumpyOracle

CATEGORIES = ("differential", "interaction", "learned", "norm", "elementwise")

# One real call per registered operator (a new operator needs a line here: see
# test_every_operator_has_a_protocol_call).
CALLS = {
    "laplace": "D * laplace(u)",
    "diff": "D * diff(u, x, 2)",
    "attention": "attention(u, heads=2)",
    "conv": "conv(u, kernel=3)",
    "mlp": "mlp(u, hidden=8)",
    "glu": "glu(u, hidden=8)",
    "sphere_attention": "sphere_attention(u, beta=2.0)",
    "linear": "linear(u)",
    "layernorm": "layernorm(u)",
    "rmsnorm": "rmsnorm(u)",
    "tanh": "tanh(u)",
    "relu": "relu(u)",
    "gelu": "gelu(u)",
    "sigmoid": "sigmoid(u)",
    "exp": "exp(u)",
}


def spec_text(term: str, *, channels: int = 4, axes: str = "[x]", shape: str = "[8]",
              name: str = "proto") -> str:
    """A one-term spec: ``dt(u) = rate`` with ``rate: <term>``, euler, one small step."""
    return build_spec({"rate": term}, name=name, axes=axes.strip("[]").split(", "),
                      shape=[int(n) for n in shape.strip("[]").split(",")], spacing=0.5,
                      boundary="periodic", channels=channels, parameters={"D": 0.1},
                      span=(0, 0.1), substeps=1, scheme="euler")


def calls_of(expr):
    """(call, operator) for every operator call in a lowered expression."""
    atoms = expr.atoms(OperatorCall) | expr.atoms(sympy.tanh, sympy.exp)
    return [(a, operator_of(a)) for a in atoms if operator_of(a) is not None]


_COMPILED: dict[str, object] = {}


def compiled(name: str):
    """The compilation of the operator's protocol spec (once per session)."""
    if name not in _COMPILED:
        _COMPILED[name] = compile_text(spec_text(CALLS[name]), f"<{name}>")
    return _COMPILED[name]


def the_call(name: str):
    c = compiled(name)
    found = [call for call, op in calls_of(c.symbolic.terms[0].expr) if op.name == name]
    assert len(found) == 1, f"{CALLS[name]} lowered to {c.symbolic.terms[0].expr}"
    return c, found[0]


class StubLowering:
    """What :meth:`Operator.to_sympy` may consult (``axis_symbol``, ``new_instance``), with
    the instance names of an existing compilation."""

    def __init__(self, model):
        self.model = model
        self.new_instances = []

    def axis_symbol(self, axis):
        return self.model.axes[self.model.spec.grid.axes.index(axis)]

    def new_instance(self, op, options):
        (instance,) = [i for i in self.model.instances.values() if i.op == op.name]
        self.new_instances.append((op.name, dict(options)))
        return sympy.Symbol(instance.name)


# ----------------------------------------------------------------------------- the registry
def test_every_operator_has_a_protocol_call():
    assert set(CALLS) == set(OPERATORS), "add a call of the new operator to CALLS"


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_declares_its_identity(name):
    op = OPERATORS[name]
    assert isinstance(op, Operator)
    assert op.name == name
    assert op.category in CATEGORIES
    assert op.meaning
    assert issubclass(op.sympy_class, (OperatorCall, sympy.Function))
    assert op.signature.startswith(f"{name}(operand")
    for option in op.options:
        assert option.kind in ("int", "float", "bool", "choice", "axis")
        assert op.option(option.name) is option
    assert set(op.positional_options) <= {o.name for o in op.options}
    if op.constant_coefficient:  # a fixed stencil: linear, differential, not learned
        assert op.linear and not op.learned and op.category == "differential"


# ----------------------------------------------------------------------------- hooks
def _hook_to_sympy(op, c, call):
    model = c.symbolic
    stub = StubLowering(model)
    if op.learned:
        (instance,) = [i for i in model.instances.values() if i.op == op.name]
        options = dict(instance.options)
    else:
        options = op.options_of(call, model)
    again = op.to_sympy(model.u, options, stub)
    assert again == call
    assert operator_of(again) is op
    assert bool(stub.new_instances) == op.learned  # a weight-owning call site per call


def _hook_options_of(op, c, call):
    options = op.options_of(call, c.symbolic)
    assert isinstance(options, dict)
    if op.learned:
        (instance,) = [i for i in c.symbolic.instances.values() if i.op == op.name]
        assert options == dict(instance.options)
    if op.name == "diff":
        assert options == {"axis": "x", "order": 2}
    # the facts the analysis reads from the options
    assert op.differential_order(options) >= 0
    assert op.stencil_radius(options, c.spec.accuracy) >= 0


def _hook_key(op, c, call):
    key = op.key(call)
    assert key in c.analysis.stencils
    assert key in c.discrete.stencils


def _hook_stencils(op, c, call):
    facts = op.stencils(call, c.symbolic)
    key = op.key(call)
    assert set(facts) == {key}
    assert facts[key] == c.analysis.stencils[key]
    assert facts[key].operator == op.name
    assert facts[key].stencil.derivative == op.differential_order(op.options_of(call,
                                                                            c.symbolic))


def _hook_von_neumann(op, c, call):
    model = c.symbolic
    thetas = {a: sympy.Symbol(f"theta_{a}", real=True) for a in model.axes}
    parts = op.von_neumann(call, model, op.stencils(call, model), thetas)
    assert parts
    h = float(c.spec.grid.spacing)
    total_0 = total_pi = 0.0
    for axis, symbol, _stencil in parts:
        assert axis in model.axes
        at = {model.h: h}
        total_0 += complex(symbol.subs({**at, **{t: 0 for t in thetas.values()}}))
        total_pi += complex(symbol.subs({**at, **{t: sympy.pi for t in thetas.values()}}))
    assert abs(total_0) < 1e-12  # a derivative of a constant mode is zero
    # second differences (accuracy 2): λ(π) = −4/h² on the one axis
    assert total_pi == pytest.approx(-4 / h**2)


def _hook_discretize(op, c, call):
    node = op.discretize(call, D.State(), c.symbolic)
    assert node.operand == D.State()
    if op.category == "differential":
        assert node == D.ApplyStencil(op.key(call), D.State())
    elif op.category == "elementwise":
        assert node == D.Elementwise(op.name, D.State())
        folded = op.discretize(call, D.Const(0.5), c.symbolic)  # a constant folds
        assert isinstance(folded, D.Const)
        assert float(folded.value) == pytest.approx(float(op.numpy_eval(None, np.array(0.5),
                                                                        None, 0, None)))
    else:
        (module,) = c.discrete.modules
        assert node == D.ApplyModule(module.name, op.name, D.State())
    # the node is the one in the discrete model's term
    assert node in list(D.walk(c.discrete.terms[0].expr))


def _node(op, c):
    (node,) = [n for n in D.walk(c.discrete.terms[0].expr)
               if isinstance(n, (D.ApplyStencil, D.ApplyModule, D.Elementwise))]
    return node


def _hook_torch_expr(op, c, call):
    node = _node(op, c)
    text = op.torch_expr(node, "u", c.discrete)
    assert "(u" in text
    # ``D * laplace(u)``: an operator that folds a field-free factor prints one call
    scaled = op.torch_scaled_expr(node, "u", "p.D", c.discrete) if "D *" in CALLS[op.name] \
        else None
    assert _flat(scaled if scaled is not None else text) in _flat(c.python)
    if scaled is not None:
        assert scaled.startswith(text[:-1]) and "scale=p.D" in scaled


def _flat(source: str) -> str:
    """Source without line breaks, indentation and the trailing commas of wrapped calls."""
    return re.sub(r",\)", ")", re.sub(r"\s+", "", source))


def _hook_torch_module(op, c, call):
    (module,) = c.discrete.modules
    assert module.op == op.name
    text = op.torch_module(module)
    assert _flat(f"self.{module.name} = {text}") in _flat(c.python)


def _hook_numpy_eval(op, c, call):
    from pdelang.lab.testing.harness import random_state, reference_for, stepper_for

    node = _node(op, c)
    if op.learned:
        reference = reference_for(c, stepper_for(c))
    else:
        reference = NumpyOracle(c.discrete, {})
    u = random_state(c.discrete, batch=2, seed=3)
    ctx = reference.context(u)
    value = op.numpy_eval(node, u, reference, 0, ctx)
    assert np.shape(value) == u.shape
    assert np.isfinite(value).all()
    if op.category == "differential":  # periodic second differences along x
        h = c.spec.grid.spacing
        want = (np.roll(u, -1, axis=1) - 2 * u + np.roll(u, 1, axis=1)) / h**2
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)
    elif op.category == "elementwise":
        reference_fn = {"tanh": np.tanh, "exp": np.exp, "relu": lambda x: np.maximum(x, 0),
                        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
                        "gelu": lambda x: np.vectorize(
                            lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(x)}
        np.testing.assert_allclose(value, reference_fn[op.name](u), rtol=1e-12, atol=1e-15)


def _hook_draw_call(op, c, call):
    text = op.draw_call(_FirstDraw(), _DrawContext(), "u")
    assert text.startswith(f"{op.name}(u")
    drawn = compile_text(spec_text(text), "<drawn>", until="symbolic")
    assert [o for _, o in calls_of(drawn.symbolic.terms[0].expr)] == [op]


class _FirstDraw:
    """A ``draw`` that takes the simplest example of each strategy (hypothesis' own
    minimal example, without running a test)."""

    def __call__(self, strategy):
        from hypothesis import find
        return find(strategy, lambda _: True)


HOOKS = {
    "to_sympy": _hook_to_sympy,
    "options_of": _hook_options_of,
    "stencils": _hook_stencils,
    "von_neumann": _hook_von_neumann,
    "discretize": _hook_discretize,
    "torch_expr": _hook_torch_expr,
    "torch_module": _hook_torch_module,
    "numpy_eval": _hook_numpy_eval,
    "draw_call": _hook_draw_call,
    "key": _hook_key,
}
REQUIRED = {
    "differential": ("to_sympy", "options_of", "stencils", "von_neumann", "discretize",
                     "torch_expr", "numpy_eval", "draw_call", "key"),
    "learned": ("to_sympy", "discretize", "torch_module", "numpy_eval", "draw_call"),
    "interaction": ("to_sympy", "discretize", "torch_module", "numpy_eval", "draw_call"),
    "norm": ("to_sympy", "discretize", "torch_module", "numpy_eval", "draw_call"),
    "elementwise": ("to_sympy", "discretize", "torch_expr", "numpy_eval", "draw_call"),
}
CASES = [(name, hook) for name in sorted(OPERATORS)
         for hook in REQUIRED[OPERATORS[name].category]]


@pytest.mark.parametrize(("name", "hook"), CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_operator_implements_the_hooks_of_its_category(name, hook):
    op = OPERATORS[name]
    c, call = the_call(name)
    try:
        HOOKS[hook](op, c, call)
    except MissingHandler as error:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{name} ({op.category}) lacks {hook}: {error}")


@pytest.mark.parametrize("name", sorted(n for n, o in OPERATORS.items()
                                        if o.category != "elementwise"))
def test_generated_torch_agrees_with_numpy_eval(name):
    """torch_expr / torch_module (the generated code) and numpy_eval (the reference) of
    every non-elementwise operator compute the same rate, padding and all."""
    from pdelang.lab.testing.stepper_checks import check_generated_matches_reference

    result = check_generated_matches_reference(compiled(name), batch=2)
    assert result.passed, result.message


def test_elementwise_functions_print_as_torch_calls():
    c = compile_text(spec_text("tanh(u) + relu(u) + gelu(u) + sigmoid(u) + exp(u)"))
    for op in (o for o in OPERATORS.values() if o.category == "elementwise"):
        assert op.torch_expr(D.Elementwise(op.name, D.State()), "u", c.discrete) in c.python


ELEMENTWISE = sorted(n for n, o in OPERATORS.items() if o.category == "elementwise")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_constant_folding_agrees_with_numpy_eval(name):
    """An elementwise function of a constant folds (``Elementwise.value``) to what its NumPy
    evaluation and the generated code compute, over the whole float range."""
    op = OPERATORS[name]
    for x in (-800.0, -30.0, -1.5, 0.0, 0.25, 30.0, 700.0):
        with np.errstate(over="ignore"):
            want = float(op.numpy_eval(None, np.array(x), None, 0, None))
        if not math.isfinite(want):
            continue
        assert op.value(x) == pytest.approx(want, rel=1e-12, abs=1e-300), (name, x)


def test_elementwise_constant_of_a_large_argument_compiles():
    for term in ("tanh(800) * u", "exp(-800) * u", "gelu(-800) * u", "relu(-3) * u"):
        c = compile_text(spec_text(term), "<folded>")
        (const,) = [n for n in D.walk(c.discrete.terms[0].expr) if isinstance(n, D.Const)]
        assert math.isfinite(float(const.value))


# ----------------------------------------------------------------------------- draw_call
class _DrawContext:
    """What ``draw_call`` may use (the hypothesis spec generator's context)."""

    def __init__(self):
        self.axes, self.channels = ("x",), 4
        self.accuracy = {"laplace": 2, "diff": 2}
        self.stencils, self.radius = [], 0

    def note_stencil(self, op, k):
        self.stencils.append((op, k))

    def note_radius(self, r):
        self.radius = max(self.radius, r)


@pytest.mark.parametrize("name", sorted(OPERATORS))
@settings(max_examples=6)
@given(data=st.data())
def test_draw_call_lowers_to_its_operator(name, data):
    op = OPERATORS[name]
    ctx = _DrawContext()
    text = op.draw_call(data.draw, ctx, "u")
    c = compile_text(spec_text(text, shape="[12]"), "<drawn>", until="symbolic")
    found = calls_of(c.symbolic.terms[0].expr)
    assert found, f"{text!r} lowered to {c.symbolic.terms[0].expr}"
    assert {o.name for _, o in found} == {name}, text
    if op.category == "differential":
        assert ctx.stencils and ctx.stencils[0][0] == name  # noted for the grid size
    if name == "conv":
        ((conv_call, _),) = found
        kernel = c.symbolic.instances[str(conv_call.args[1])].options["kernel"]
        assert ctx.radius == kernel // 2


# ----------------------------------------------------------------------------- MissingHandler
class BareCall(OperatorCall):
    op_name = "bare"


class Bare(Operator):
    """An operator that defines nothing but its name."""

    name = "bare"
    category = "elementwise"
    sympy_class = BareCall


class BareStencil(Bare):
    constant_coefficient = True
    linear = True
    category = "differential"


class BareLearned(Bare):
    learned = True
    category = "learned"


def _bare_model():
    return compile_text(spec_text("D * laplace(u)"), "<bare>")


def _entry_points():
    c = _bare_model()
    u = c.symbolic.u
    call = BareCall(u)
    thetas = {a: sympy.Symbol("theta", real=True) for a in c.symbolic.axes}
    node = D.Elementwise("bare", D.State())
    module = D.OperatorModule("rate_bare", "bare", {})
    reference = NumpyOracle(c.discrete, {})
    ctx = reference.context(np.zeros((1, 8, 4)))
    return [
        ("the SymPy lowering", "to_sympy", lambda: Bare().to_sympy(u, {}, None)),
        ("the analysis", "options_of", lambda: Bare().options_of(call, c.symbolic)),
        ("the stencil analysis", "stencils", lambda: BareStencil().stencils(call, c.symbolic)),
        ("the stability analysis", "von_neumann",
         lambda: BareStencil().von_neumann(call, c.symbolic, {}, thetas)),
        ("discretize", "discretize", lambda: Bare().discretize(call, D.State(), c.symbolic)),
        ("the torch printer", "torch_expr", lambda: Bare().torch_expr(node, "u", c.discrete)),
        ("the torch printer", "torch_module", lambda: BareLearned().torch_module(module)),
        ("the NumPy oracle", "numpy_eval",
         lambda: Bare().numpy_eval(node, np.zeros((1, 8, 4)), reference, 0, ctx)),
        ("the hypothesis strategies", "draw_call",
         lambda: Bare().draw_call(_FirstDraw(), _DrawContext(), "u")),
    ]


@pytest.mark.parametrize("index", range(9))
def test_operator_without_handlers_raises_missing_handler(index):
    consumer, method, hook = _entry_points()[index]
    with pytest.raises(MissingHandler) as info:
        hook()
    error = info.value
    assert isinstance(error, NotImplementedError)
    assert (error.consumer, error.operator) == (consumer, "bare")
    message = str(error)
    assert message.startswith(f"{consumer} has no handler for operator 'bare'")
    assert method in message and "pdelang/compiler/operators/bare.py" in message


def test_base_defaults_do_not_hide_missing_handlers():
    """The hooks with a default only default where that is right: no stencils for an
    operator without a fixed stencil; ``self.<module>(x)`` for a learned operator."""
    c = _bare_model()
    assert Bare().stencils(BareCall(c.symbolic.u), c.symbolic) == {}
    node = D.ApplyModule("rate_bare", "bare", D.State())
    assert BareLearned().torch_expr(node, "x", c.discrete) == "self.rate_bare(x)"
    assert Bare().check_call({"a": 1}, None) == {"a": 1}
    assert Bare().is_linear({}) is False and Bare().differential_order({}) == 0


def test_consumers_refuse_an_unregistered_operator_name():
    """The torch printer and the NumPy oracle look operators up by name: an unknown one
    is a MissingHandler naming the consumer, not a silent fallback."""
    from pdelang.compiler.codegen.printer import TorchPrinter

    c = _bare_model()
    node = D.Elementwise("nosuch", D.State())
    with pytest.raises(MissingHandler, match="the torch printer has no handler for "
                                             "operator 'nosuch'"):
        TorchPrinter(c.discrete).operator("nosuch", node)
    reference = NumpyOracle(c.discrete, {})
    u = np.zeros((1, 8, 4))
    with pytest.raises(MissingHandler, match="the NumPy oracle has no handler for "
                                             "operator 'nosuch'"):
        reference.evaluate(node, u, 0, reference.context(u))


class FakeCall(OperatorCall):
    op_name = "fake"


class Fake(Operator):
    """A registered operator whose handlers are switched on one by one (``have``)."""

    name = "fake"
    category = "elementwise"
    meaning = "a test operator"
    sympy_class = FakeCall

    def __init__(self, have=()):
        self.have = set(have)

    def to_sympy(self, operand, options, lowering):
        if "to_sympy" not in self.have:
            return super().to_sympy(operand, options, lowering)
        return FakeCall(operand)

    def options_of(self, call, model):
        if "options_of" not in self.have:
            return super().options_of(call, model)
        return {}

    def discretize(self, call, operand, model):
        if "discretize" not in self.have:
            return super().discretize(call, operand, model)
        return D.Elementwise(self.name, operand)

    def torch_expr(self, node, operand, model):
        if "torch_expr" not in self.have:
            return super().torch_expr(node, operand, model)
        return f"torch.tanh({operand})"

    def numpy_eval(self, node, operand, reference, layer, ctx):
        if "numpy_eval" not in self.have:
            return super().numpy_eval(node, operand, reference, layer, ctx)
        return np.tanh(operand)


# handlers in the order the pipeline's consumers need them, and the consumer that fails
# when the next one is missing
CHAIN = (("to_sympy", "the SymPy lowering"), ("options_of", "the analysis"),
         ("discretize", "discretize"), ("torch_expr", "the torch printer"),
         ("numpy_eval", "the NumPy oracle"))


@pytest.mark.parametrize("missing", range(len(CHAIN)), ids=[h for h, _ in CHAIN])
def test_registered_fake_operator_fails_in_the_first_consumer_without_a_handler(
        monkeypatch, missing):
    monkeypatch.setitem(OPERATORS, "fake", Fake(h for h, _ in CHAIN[:missing]))
    monkeypatch.setitem(ops_package._BY_SYMPY_CLASS, FakeCall, OPERATORS["fake"])
    consumer = CHAIN[missing][1]
    text = spec_text("0.5 * fake(u)")

    def compile_and_evaluate():
        c = compile_text(text, "<fake>", debug=True)
        reference = NumpyOracle(c.discrete, {})
        u = np.full((1, 8, 4), 0.3)
        return reference.term("rate", u, 0, reference.context(u))

    with pytest.raises(MissingHandler) as info:
        compile_and_evaluate()
    assert (info.value.consumer, info.value.operator) == (consumer, "fake")
    assert f"{consumer} has no handler for operator 'fake'" in str(info.value)


def test_registered_fake_operator_with_every_handler_works(monkeypatch):
    monkeypatch.setitem(OPERATORS, "fake", Fake(h for h, _ in CHAIN))
    monkeypatch.setitem(ops_package._BY_SYMPY_CLASS, FakeCall, OPERATORS["fake"])
    c = compile_text(spec_text("0.5 * fake(u)"), "<fake>", debug=True)
    assert "torch.tanh(u)" in c.python
    reference = NumpyOracle(c.discrete, {})
    u = np.full((1, 8, 4), 0.3)
    np.testing.assert_allclose(reference.term("rate", u, 0, reference.context(u)),
                               0.5 * np.tanh(u))


def test_fake_operator_is_gone_after_the_test():
    assert "fake" not in OPERATORS
    assert FakeCall not in ops_package._BY_SYMPY_CLASS


# ----------------------------------------------------------------------------- discovery
def test_registry_is_what_the_package_modules_define():
    modules = sorted(m.name for m in pkgutil.iter_modules(ops_package.__path__)
                     if m.name != "base")
    defined = {}
    for module_name in modules:
        module = sys.modules[f"pdelang.compiler.operators.{module_name}"]
        found = getattr(module, "OPERATORS", None) or (getattr(module, "OPERATOR", None),)
        found = [op for op in found if op is not None]
        assert found, f"pdelang/compiler/operators/{module_name}.py defines no OPERATOR(S)"
        for op in found:
            defined[op.name] = op
    assert defined == OPERATORS
    assert list(OPERATORS) == list(defined)  # module-name order
    assert ops_package._discover() == OPERATORS
    assert ops_package.operators() == list(OPERATORS.values())
    assert {op.name for op in ops_package.operators("norm")} == {"layernorm", "rmsnorm"}
    assert ops_package.lookup("laplace") is OPERATORS["laplace"]
    assert ops_package.lookup("nosuch") is None


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A second directory of the ``pdelang.compiler.operators`` package (as a plug-in would add);
    the modules imported from it are forgotten afterwards."""
    monkeypatch.setattr(ops_package, "__path__", [*ops_package.__path__, str(tmp_path)])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("pdelang.compiler.operators."):
            del sys.modules[name]
            if hasattr(ops_package, name.rsplit(".", 1)[1]):
                delattr(ops_package, name.rsplit(".", 1)[1])


PLUGIN = '''\
from pdelang.compiler.operators.base import Operator
from pdelang.compiler.symbolic.functions import OperatorCall


class Squash(OperatorCall):
    op_name = "{name}"


class SquashOperator(Operator):
    name = "{name}"
    category = "elementwise"
    meaning = "u / (1 + |u|)"
    sympy_class = Squash


OPERATOR = SquashOperator()
'''


def test_discovery_finds_an_operator_in_a_new_module(plugin_dir):
    (plugin_dir / "zz_squash.py").write_text(PLUGIN.format(name="squash"))
    found = ops_package._discover()
    assert "squash" in found
    assert type(found["squash"]).__module__ == "pdelang.compiler.operators.zz_squash"
    assert list(found)[:len(OPERATORS)] == list(OPERATORS)  # module-name order: last
    assert set(found) - set(OPERATORS) == {"squash"}


def test_discovery_refuses_two_operators_with_one_name(plugin_dir):
    (plugin_dir / "zz_other_laplace.py").write_text(PLUGIN.format(name="laplace"))
    with pytest.raises(RuntimeError, match="two operators named 'laplace'"):
        ops_package._discover()


def test_discovery_refuses_a_family_defining_a_name_twice(plugin_dir):
    (plugin_dir / "zz_family.py").write_text(
        PLUGIN.format(name="twin").replace("OPERATOR = SquashOperator()",
                                           "OPERATORS = (SquashOperator(), SquashOperator())"))
    with pytest.raises(RuntimeError, match="two operators named 'twin'"):
        ops_package._discover()


# ----------------------------------------------------------------------------- options
def _operator_error(term: str, channels: int = 4) -> OperatorError:
    text = spec_text(term, channels=channels)
    with pytest.raises(OperatorError) as info:
        compile_text(text, "<options>", until="symbolic")
    error = info.value
    assert error.location is not None and error.location.line == text.splitlines().index(
        f"  rate: {term}") + 1
    return error


def _column(term: str, piece: str) -> int:
    line = f"  rate: {term}"
    return line.index(piece) + 1


def test_attention_heads_must_divide_the_channels():
    term = "attention(u, heads=5)"
    error = _operator_error(term, channels=12)
    assert "heads=5 does not divide the 12 channels of 'u'" in error.message
    assert error.suggestion == "use heads=3 or 4 or 6"  # the divisors nearest to 5
    assert error.location.col == _column(term, "heads=5")  # the option, not the call
    assert "^~~~~~~" in str(error) and "hint: use heads=" in str(error)


def test_attention_heads_dividing_the_channels_pass():
    c = compile_text(spec_text("attention(u, heads=3)", channels=12), until="symbolic")
    (instance,) = c.symbolic.instances.values()
    assert instance.options["heads"] == 3 and instance.options["kernel"] == "softmax"


@pytest.mark.parametrize(("term", "hidden"), [("mlp(u)", 24), ("mlp(u, hidden=7)", 7)])
def test_mlp_hidden_width_defaults_to_four_times_the_channels(term, hidden):
    c = compile_text(spec_text(term, channels=6), until="discrete")
    (instance,) = c.symbolic.instances.values()
    assert instance.options["hidden"] == hidden
    (module,) = c.discrete.modules
    assert OPERATORS["mlp"].torch_module(module).startswith(f"MLP(CHANNELS, {hidden}, 'gelu'")


@pytest.mark.parametrize("kernel", [2, 4])
def test_conv_kernel_must_be_odd(kernel):
    term = f"conv(u, kernel={kernel})"
    error = _operator_error(term)
    assert error.message == f"conv kernel={kernel} must be odd (a centred stencil)"
    assert error.suggestion == f"use kernel={kernel - 1} or kernel={kernel + 1}"
    assert error.location.col == _column(term, f"kernel={kernel}")


def test_diff_order_has_a_maximum():
    from pdelang.compiler.operators.diff import MAX_DERIVATIVE

    assert OPERATORS["diff"].option("order").maximum == MAX_DERIVATIVE
    term = f"diff(u, x, {MAX_DERIVATIVE + 1})"
    error = _operator_error(term)
    assert f"must be ≤ {MAX_DERIVATIVE}, got {MAX_DERIVATIVE + 1}" in error.message
    assert error.location.col == _column(term, str(MAX_DERIVATIVE + 1))
    error = _operator_error(f"diff(u, x, order={MAX_DERIVATIVE + 1})")
    assert f"must be ≤ {MAX_DERIVATIVE}" in error.message
    c = compile_text(spec_text(f"diff(u, x, {MAX_DERIVATIVE})"), until="symbolic")
    (call, op), = calls_of(c.symbolic.terms[0].expr)
    assert op.options_of(call, c.symbolic) == {"axis": "x", "order": MAX_DERIVATIVE}
