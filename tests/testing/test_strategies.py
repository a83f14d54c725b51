"""``pdelang.lab.testing.strategies``: generated specs are valid and cover the grammar; generated
fields have the symmetry of their boundary's ghost rule."""

from __future__ import annotations

import ast
import cmath
import functools
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from testing_helpers import examples

from pdelang.compiler.analysis.stencils import centred_stencil
from pdelang.compiler.driver import Compilation
from pdelang.compiler.spec.model import Spec
from pdelang.lab.testing import strategies as S
from pdelang.lab.testing.fields import Profile, profile, smooth_field
from pdelang.lab.testing.harness import compile_any
from pdelang.interpreters.numpy_oracle import extend_with_ghosts, stencil_along


# ----------------------------------------------------------------------------- validity
@examples(10)
@given(S.compilations())
def test_generated_specs_compile_to_valid_python(compilation):
    assert isinstance(compilation, Compilation)
    spec, model = compilation.spec, compilation.discrete
    # the discrete model is the spec's: terms, grid, scheme, stabilizers
    # (an inline piece of the equation such as ``- 0.5 * u`` becomes one more term)
    names = [t.name for t in model.terms]
    assert names[:len(spec.terms)] == list(spec.terms)
    assert len(names) - len(spec.terms) == (1 if re.search(r"\* u$", spec.equation.text) else 0)
    assert model.boundary == spec.grid.boundary
    assert model.axes == spec.grid.axes
    assert model.extra_tokens == spec.grid.extra_tokens
    assert model.program.scheme == spec.time.scheme
    assert model.residual == spec.stabilizers.residual
    assert model.dt == pytest.approx(spec.time.dt, rel=1e-12)
    # every derivative operator got a stencil of the requested accuracy
    for stencil in model.stencils.values():
        op = "laplace" if stencil.key == "laplace" else "diff"
        assert stencil.accuracy == spec.accuracy[op]
    # the generated module is valid Python defining the stepper class
    tree = ast.parse(compilation.python)
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert spec.class_name in classes


@examples(10)
@given(S.specs(dims=(2,), learned=False))
def test_specs_respect_their_arguments(spec):
    assert isinstance(spec, Spec)
    assert spec.grid.dims == 2 and spec.grid.shape is not None
    assert not re.search(r"attention|mlp|linear|layernorm|rmsnorm",
                         " ".join(s.text for s in spec.terms.values()))


@examples(6)
@given(S.derivative_spec_texts())
def test_derivative_specs_have_one_stencil_of_the_drawn_accuracy(text):
    model = compile_any(text).discrete
    (stencil,) = model.stencils.values()
    accuracy = int(re.search(r"accuracy: (\d)", text).group(1))
    assert stencil.accuracy == accuracy
    assert stencil.derivative == (2 if "laplace" in text else
                                  int(re.search(r"diff\(u, \w+, (\d)\)", text).group(1)))
    if model.shape and len(model.axes) == 2:  # the grid is wide enough for the stencil
        assert min(model.shape) > stencil.radius


@examples(6)
@given(S.diffusion_spec_texts())
def test_diffusion_specs_are_linear_diffusion_with_a_stability_bound(text):
    compilation = compile_any(text)
    model = compilation.discrete
    assert set(model.stencils) == {"laplace"}
    assert not model.modules
    bound = compilation.analysis.stability.max_stable_dt
    assert bound is not None and math.isfinite(bound) and bound > 0
    if model.program.is_splitting:  # two terms, so the splitting has something to split
        assert len({t for t, _ in model.program.sub_steps}) == 2


@pytest.mark.parametrize(("attention", "norm"), [(True, True), (True, False), (False, True)])
def test_learned_specs_contain_what_was_asked(attention, norm):
    @examples(3)
    @given(S.learned_spec_texts(attention=attention, norm=norm))
    def check(text):
        model = compile_any(text).discrete
        ops = {m.op for m in model.modules}
        assert ("attention" in ops) == attention
        assert "mlp" in ops
        assert (model.norm.kind != "none") == norm

    check()


# ----------------------------------------------------------------------------- coverage
# Every feature of the grammar the generator claims to cover, as a pattern over the YAML text.
FEATURES = {
    "laplace": r"laplace\(",
    "diff, positional order": r"diff\([^()]*, \w+, \d\)",
    "diff, keyword order": r"order=\d",
    "diff, default order": r", (?:x|y|seq|s|rows|cols)\)",
    "attention": r"attention\(",
    "attention heads": r"heads=\d",
    "causal attention": r"causal=true",
    "sinkhorn kernel": r"kernel=sinkhorn",
    "sinkhorn iterations": r"iterations=\d",
    "attention bias": r"attention\([^)]*bias=",
    "mlp": r"mlp\(",
    "mlp hidden": r"hidden=\d",
    "mlp activation": r"activation=\w",
    "linear": r"(?<![a-z])linear\(",
    "layernorm operator": r"(?<![a-z])layernorm\(",
    "rmsnorm operator": r"rmsnorm\(",
    "norm eps": r"eps=",
    "norm affine": r"affine=",
    "tanh": r"tanh\(", "relu": r"relu\(", "gelu": r"gelu\(", "sigmoid": r"sigmoid\(",
    "exp": r"exp\(",
    "integer power": r"\^[23]", "square root": r"\^0\.5",
    "division": r" / ", "subtraction": r" - ", "unary minus": r"-\(|-[a-z]",
    "unary plus": r"\+\(|\+[a-z]",
    "exponent notation": r"\de-1", "leading-dot number": r"[ (]\.\d",
    "parameter": r"\bD\b|\balpha\b",
    "learnable parameter": r"learnable: true", "positive parameter": r"positive: true",
    "per-layer parameter": r"per_layer: true",
    **{f"boundary {b}": rf"boundary: {b}" for b in S.BOUNDARIES},
    "1-D grid": r"axes: \[\w+\]", "2-D grid": r"axes: \[\w+, \w+\]",
    "extra tokens": r"extra_tokens: [12]",
    **{f"scheme {s}": rf"scheme: {s}" for s in S.SCHEMES},
    "split order": r"split_order:",
    **{f"accuracy {p}": rf"accuracy: {p}" for p in S.ACCURACIES},
    "residual off": r"residual: false", "residual on": r"residual: true",
    "layernorm stabilizer": r"kind: layernorm", "rmsnorm stabilizer": r"kind: rmsnorm",
    "pre placement": r"placement: pre", "post placement": r"placement: post",
    "final norm": r"final: true", "norm on chosen terms": r"terms: \[t",
    "inline term in the equation": r"equation: .* \* u$",
}


@pytest.fixture(scope="module")
def drawn_texts() -> list[str]:
    texts: list[str] = []

    @settings(max_examples=500, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(S.spec_texts())
    def collect(text):
        texts.append(text)

    collect()
    return texts


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_spec_texts_cover_the_grammar(drawn_texts, feature):
    """Every feature shows up in a fixed sample of generated specs — or, for the rarest
    option combinations (Hypothesis favours simple examples), ``find`` reaches one — and a
    spec that uses it loads through the YAML loader and the Lark grammar and compiles."""
    pattern = re.compile(FEATURES[feature], re.MULTILINE)
    hits = [t for t in drawn_texts if pattern.search(t)]
    if hits:
        text = hits[0]
    else:
        text = find(S.spec_texts(), lambda t: bool(pattern.search(t)),
                    settings=settings(max_examples=5000, phases=[Phase.generate],
                                      database=None, derandomize=True,
                                      suppress_health_check=list(HealthCheck)))
    _compiled(text)


@functools.cache
def _compiled(text: str):
    return compile_any(text)  # (features often share their first spec: compile it once)


# ----------------------------------------------------------------------------- fields
def _ratio(k: int, p: int, theta: float) -> float:
    """σ(θ) / (iθ)^k: how the accuracy-p stencil of the k-th derivative scales one Fourier
    mode of resolution θ = ωh (real for centred stencils)."""
    s = centred_stencil(k, p)
    sigma = sum(float(w) * cmath.exp(1j * j * theta) for j, w in zip(s.offsets, s.weights))
    value = sigma / (1j * theta) ** k
    assert abs(value.imag) < 1e-12
    return value.real


def _formula(prof: Profile, x: np.ndarray) -> np.ndarray:
    """The profile's closed form (fields.py's table), evaluated anywhere — also beyond the
    ends of the grid, where the ghost rule must reproduce it."""
    w, h = prof.omega, prof.h
    if prof.boundary == "periodic":
        return np.sin(w * x + prof.phase)
    if prof.boundary == "neumann":
        return np.cos(w * x)
    if prof.boundary == "dirichlet":
        return np.sin(w * (x + h))
    length = (prof.n - 1) * h
    return prof.offset + prof.slope * x / length + np.sin(w * x)


@examples(20)
@given(st.sampled_from(S.BOUNDARIES), st.integers(6, 40), st.integers(1, 3),
       st.sampled_from([0.5, 1.0, 2.0]), st.integers(1, 5), st.integers(0, 2**16))
def test_ghost_rule_extends_each_profile_by_its_own_formula(boundary, n, m, h, r, seed):
    """The symmetry of each test field is exactly the one its boundary's ghost rule imposes:
    the ghost values equal the closed form evaluated beyond the ends."""
    if boundary in ("neumann", "copy"):
        r = min(r, n - 1)
    prof = profile(boundary, n, h, m, seed)
    values = prof.value(0)
    np.testing.assert_allclose(values, _formula(prof, np.arange(n) * h), atol=1e-12)
    extended = extend_with_ghosts(values, 0, r, boundary)
    x = np.arange(-r, n + r) * h
    np.testing.assert_allclose(extended, _formula(prof, x), rtol=0, atol=1e-12)


@examples(20)
@given(st.sampled_from(S.BOUNDARIES), st.integers(1, 4), st.sampled_from(S.ACCURACIES),
       st.data())
def test_stencil_scales_smooth_fields_by_its_symbol_up_to_the_boundary(boundary, k, p, data):
    """On a field drawn by ``smooth_fields`` the ghost-extended grid function is one Fourier
    mode, so the stencil returns exactly σ(θ)/(iθ)^k times the exact derivative at *every*
    compared node, boundary nodes included (a field whose symmetry did not match the ghost
    rule would be off by O(1) next to the boundary)."""
    h = data.draw(st.sampled_from([0.5, 1.0, 2.0]), "h")
    sample = data.draw(S.smooth_fields(boundary, shape=(data.draw(st.integers(16, 40), "n"),),
                                       derivative=k, h=h), "field")
    stencil = centred_stencil(k, p)
    weights = [float(w) / h**k for w in stencil.weights]
    rate = stencil_along(sample.values, 0, stencil.offsets, weights, boundary)
    ratio = _ratio(k, p, sample.theta)
    compare = sample.compare
    assert compare.sum() >= len(compare) - 2
    residual = rate[compare] - ratio * sample.exact[compare]
    if boundary == "copy" and k == 1:
        # the copy field's affine part a + b·x/L has the constant derivative b/L, which the
        # stencil reproduces exactly (it is exact on polynomials) instead of scaling it
        residual = residual - residual.mean()
    scale = np.max(np.abs(sample.exact))
    np.testing.assert_allclose(residual, 0.0, rtol=0, atol=1e-9 * scale)


@examples(10)
@given(st.sampled_from(S.BOUNDARIES), st.integers(1, 4), st.integers(0, 1),
       st.tuples(st.integers(12, 20), st.integers(12, 20)), st.integers(1, 3),
       st.integers(1, 3), st.integers(0, 2**16))
def test_2d_fields_along_one_axis(boundary, k, axis, shape, m0, m1, seed):
    """2-D fields (products of profiles) are, along each axis, single modes too."""
    sample = smooth_field(boundary, shape, k, (axis,), 1.0, (m0, m1), seed)
    theta = Profile(boundary, shape[axis], 1.0, (m0, m1)[axis]).theta
    stencil = centred_stencil(k, 4)
    rate = stencil_along(sample.values, axis, stencil.offsets,
                         [float(w) for w in stencil.weights], boundary)
    scale = np.max(np.abs(sample.exact))
    np.testing.assert_allclose(rate[sample.compare],
                               _ratio(k, 4, theta) * sample.exact[sample.compare],
                               rtol=0, atol=1e-9 * scale)


@examples(10)
@given(S.periodic_fields(shape=(32,), derivative=2))
def test_periodic_fields_are_periodic_and_resolved(sample):
    assert sample.compare.all()
    # a periodic grid function of mode m: θ = 2πm/n, and the exact second derivative is
    # −ω² times the values
    omega = sample.theta  # h = 1
    np.testing.assert_allclose(sample.exact, -(omega**2) * sample.values, atol=1e-12)
    m = sample.theta * 32 / (2 * math.pi)
    assert abs(m - round(m)) < 1e-9
