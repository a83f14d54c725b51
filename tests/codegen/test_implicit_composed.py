"""Implicit terms with composed stencils: ``L u = c₀ u + Σ_w c_w S_{w_1} ⋯ S_{w_k} u``.

A ``time.implicit`` term may apply stencils to stencils (``laplace(laplace(u))``, the
Swift–Hohenberg linear part ``(r − 1) u − 2Δu − Δ²u``, ``diff(diff(u, x, 2), y, 2)``): its
discrete IR holds *words* of stencil keys, outer first, and the generated ``ImplicitLinear``
block diagonalizes the polynomial of the stencils by the boundary's symmetric extension (the
symbol of a word is the product of its stencils' symbols), with the copy boundary's border
coupling ``(p(M) border)`` on the interior through the divided difference of f at the total
eigenvalue, and a product of dense matrices in word order for odd derivatives off a periodic
grid.  What is checked here, in float64, to ~1e-10 relative:

1. Every boundary × 1-D (16 tokens) / 2-D (8×6) × accuracy 2 / 4, one CLS token, without and
   with a padded batch, for the Swift–Hohenberg term (r − 1 = −0.7 and, growing, +0.2) and a
   term of longer words (−¾Δ² − ½∂²ₓ∂²ₓ or ∂²ₓ∂²ᵧ + ⅛Δ³): the generated ``flow_<term>``
   (scheme lie) equals ``scipy.linalg.expm(τL) x`` and ``solve_<term>`` (imex_euler) equals
   ``numpy.linalg.solve(I − τL, x)``, L assembled from the generated *explicit* operator
   ``f_<term>`` on unit vectors (with each sequence's own mask), and both equal the NumPy
   reference's dense computation; CLS and padding tokens see f(c₀) only; no dense matrix.
2. Odd words on a bounded grid (``diff(laplace(u), x)`` ≠ ``laplace(diff(u, x))`` there): the
   dense path multiplies the stencils' matrices in word order.
3. Independently of any matrix: on a periodic grid a Fourier mode of the Swift–Hohenberg
   operator is multiplied by 1/(1 − τμ) and e^{τμ}, μ = r − 1 − 2σ − σ², σ the stencil's
   symbol.
4. Hypothesis: random words (depth 1–3 of laplace and even-order diffs), coefficients, zero
   order, boundary, 1-D / 2-D, padding; flow and solve against the dense matrices.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

from pdelang.lab.testing.harness import compile_any, reference_for, stepper_for
from pdelang.lab.testing.properties import relative_error

BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")
TAU = 0.37
EXACT_RTOL = 1e-10
LENGTH_1D = 16
SHAPE_2D = (8, 6)
SPACING = 0.75

TEMPLATE = """pdelang: 1
name: composed_{tag}
grid:
  axes: {axes}
{shape}  spacing: {spacing}
  boundary: {boundary}
  extra_tokens: 1
fields:
  u: {{channels: 2}}
parameters:
  r: {{value: 0.25, learnable: true}}
terms:
{terms}
equation: dt(u) = {equation}
time:
  span: [0, 2]
  layers: 1
  substeps: 2
  scheme: {scheme}
  implicit: [{implicit}]
discretization:
  laplace: {{accuracy: {accuracy}}}
  diff: {{accuracy: {accuracy}}}
"""

# one implicit term a spec (a spec with several terms costs the stability analysis much more)
SWIFT_HOHENBERG = "(r - 1) * u - 2 * laplace(u) - laplace(laplace(u))"
WORDS_1D = ("-0.75 * laplace(laplace(u)) - 0.5 * diff(diff(u, x, 2), x, 2)"
            " + 0.125 * laplace(laplace(laplace(u)))")
WORDS_2D = WORDS_1D.replace("diff(diff(u, x, 2), x, 2)", "diff(diff(u, x, 2), y, 2)")
ODD = "0.25 * diff(laplace(u), x) - 0.125 * laplace(diff(u, x)) - 0.5 * laplace(laplace(u))"
R_VALUES = (0.3, 1.2)  # r − 1 = −0.7 and a growing +0.2
KIND_SCHEME = {"flow": "lie", "solve": "imex_euler"}


def dense_cache(block) -> dict:
    """The dense matrices an ``ImplicitLinear`` block has cached; the periodic variant has no
    dense path (every word is circulant: the FFT), so it holds none."""
    return getattr(block, "matrices", {})


def module_of(stepper):
    return sys.modules[type(stepper).__module__]


def spec_text(boundary: str, dims: int, accuracy: int, scheme: str, terms: dict[str, str],
              spacing: float = SPACING, tag: str = "") -> str:
    """A spec whose terms are all implicit."""
    axes = "[x]" if dims == 1 else "[x, y]"
    shape = f"  shape: [{LENGTH_1D}]\n" if dims == 1 else \
        f"  shape: [{SHAPE_2D[0]}, {SHAPE_2D[1]}]\n"
    lines = "\n".join(f"  {name}: {expr}" for name, expr in terms.items())
    tag = tag or f"{boundary}_{dims}d_{accuracy}_{scheme}"
    return TEMPLATE.format(tag=tag, axes=axes, shape=shape, spacing=spacing, boundary=boundary,
                           terms=lines, equation=" + ".join(terms), scheme=scheme,
                           implicit=", ".join(terms), accuracy=accuracy)


def expression(term: str, dims: int) -> str:
    if term == "swift_hohenberg":
        return SWIFT_HOHENBERG
    if term == "words":
        return WORDS_1D if dims == 1 else WORDS_2D
    return ODD


@functools.cache
def compiled(boundary: str, dims: int, accuracy: int, kind: str, term: str):
    """(compilation, float64 stepper with the spec's values) of a spec whose one term (the
    Swift–Hohenberg operator, a sum of longer words, or odd words) is implicit: flowed
    (lie) or solved (imex_euler)."""
    text = spec_text(boundary, dims, accuracy, KIND_SCHEME[kind],
                     {term: expression(term, dims)},
                     tag=f"{term}_{boundary}_{dims}d_{accuracy}_{kind}")
    compilation = compile_any(text)
    assert compilation.discrete.program.implicit == (term,)
    return compilation, stepper_for(compilation, seed=None)


def with_r(stepper, r: float):
    with torch.no_grad():
        stepper.shared.r.fill_(r)
    return stepper


def tokens_of(dims: int) -> int:
    return 1 + (LENGTH_1D if dims == 1 else SHAPE_2D[0] * SHAPE_2D[1])


def padded_mask(dims: int, accuracy: int) -> np.ndarray:
    """(3, N): right padding in 1-D (16, 11 and the least the widest stencil allows); top-left
    images in 2-D (8×6, 5×4, and (radius + 1)×6)."""
    radius = accuracy // 2 + 1  # the fourth derivative's stencil is the widest
    tokens = tokens_of(dims)
    mask = np.ones((3, tokens), dtype=bool)
    if dims == 1:
        for b, n in enumerate((LENGTH_1D, 11, radius + 1)):
            mask[b, 1 + n:] = False
        return mask
    for b, (rows, cols) in enumerate((SHAPE_2D, (5, 4), (radius + 1, 6))):
        image = np.zeros(SHAPE_2D, dtype=bool)
        image[:rows, :cols] = True
        mask[b, 1:] = image.ravel()
    return mask


def context(stepper, x: torch.Tensor, mask=None):
    return module_of(stepper).Context(x, None if mask is None else torch.as_tensor(mask),
                                      record=False)


def operator_matrix(stepper, terms, tokens: int, mask_row=None) -> np.ndarray:
    """The (N, N) matrix of Σ_terms L_t from the generated *explicit* operators ``f_<t>`` on
    the unit vectors (both channels carry them), with the sequence's own padding mask."""
    unit = torch.eye(tokens, dtype=torch.float64)[:, :, None].repeat(1, 1, 2)  # (N, N, 2)
    mask = None if mask_row is None else np.broadcast_to(mask_row, (tokens, tokens)).copy()
    ctx = context(stepper, unit, mask)
    total = np.zeros((tokens, tokens))
    with torch.no_grad():
        for term in terms:
            columns = getattr(stepper.layers[0], f"f_{term}")(unit, ctx, stepper.shared)
            assert torch.equal(columns[..., 0], columns[..., 1])  # channel-wise
            total += columns[..., 0].numpy().T  # column j: L e_j
    return total


def dense(kind: str, matrix: np.ndarray, x: np.ndarray, tau: float = TAU) -> np.ndarray:
    if kind == "flow":
        return scipy.linalg.expm(tau * matrix) @ x
    return np.linalg.solve(np.eye(len(matrix)) - tau * matrix, x)


def scalar_f(kind: str, c0: float, tau: float = TAU) -> float:
    return math.exp(tau * c0) if kind == "flow" else 1 / (1 - tau * c0)


def generated(stepper, method: str, x: np.ndarray, mask=None, tau: float = TAU) -> np.ndarray:
    xt = torch.as_tensor(x)
    with torch.no_grad():
        return getattr(stepper.layers[0], method)(xt, tau, context(stepper, xt, mask),
                                                  stepper.shared).numpy()


def check_against_dense(stepper, compilation, kind: str, method: str, terms, c0: float,
                        u: np.ndarray, mask: np.ndarray, tau: float = TAU):
    """The generated method on u, without and with the padding mask, against the dense
    matrices of the explicit operators and the NumPy oracle; extra and padding tokens
    see f(c₀) only.  Returns the last (padded) result."""
    tokens = u.shape[1]
    reference = reference_for(compilation, stepper)
    factor = scalar_f(kind, c0, tau)
    for m in (None, mask):
        got = generated(stepper, method, u, m, tau)
        for b in range(u.shape[0]):
            matrix = operator_matrix(stepper, terms, tokens, None if m is None else m[b])
            want = dense(kind, matrix, u[b], tau)
            assert relative_error(got[b], want) <= EXACT_RTOL, (method, m is not None, b)
        want = reference.implicit_apply(kind, tuple(terms), tau, u, 0, reference.context(u, m))
        assert relative_error(got, want) <= EXACT_RTOL, (method, m is not None, "reference")
        np.testing.assert_allclose(got[:, 0], factor * u[:, 0], rtol=1e-13, atol=0)
        if m is not None:
            np.testing.assert_allclose(got[~m], factor * u[~m], rtol=1e-13, atol=0)
    # the stencils take part: not a mere scaling
    assert relative_error(got[:, 1:], factor * u[:, 1:]) > 1e-3, method
    return got


CONFIGS = [(b, dims, acc) for b in BOUNDARIES for dims in (1, 2) for acc in (2, 4)]


def config_id(config) -> str:
    boundary, dims, accuracy = config
    return f"{boundary}-{dims}d-acc{accuracy}"


# ----------------------------------------------------------------- 1. every boundary
@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_swift_hohenberg_equals_the_dense_computation(config, kind):
    """flow_swift_hohenberg (lie) == expm(τL) x and solve_swift_hohenberg (imex_euler) ==
    solve(I − τL, x) for L = (r − 1) − 2Δ − Δ², r − 1 = −0.7 and +0.2, by the symmetric
    extension's transform (no dense matrix cached)."""
    boundary, dims, accuracy = config
    compilation, stepper = compiled(boundary, dims, accuracy, kind, "swift_hohenberg")
    (implicit,) = compilation.discrete.implicit
    assert sorted(word for _, word in implicit.parts) == [("laplace",), ("laplace", "laplace")]
    block = stepper.layers[0].implicit
    dense_cache(block).clear()
    u = np.random.default_rng(7).standard_normal((3, tokens_of(dims), 2))
    for r in R_VALUES:
        with_r(stepper, r)
        check_against_dense(stepper, compilation, kind, f"{kind}_swift_hohenberg",
                            ("swift_hohenberg",), r - 1, u, padded_mask(dims, accuracy))
    assert dense_cache(block) == {}


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_longer_words_equal_the_dense_computation(config, kind):
    """−¾Δ² − ½ ∂²ₓ∂²ₓ (2-D: ∂²ₓ∂²ᵧ) + ⅛Δ³: words of two and three stencils."""
    boundary, dims, accuracy = config
    compilation, stepper = compiled(boundary, dims, accuracy, kind, "words")
    (implicit,) = compilation.discrete.implicit
    second = "diff[x,2]" if dims == 1 else "diff[y,2]"
    assert sorted(word for _, word in implicit.parts) == sorted(
        [("laplace", "laplace"), ("diff[x,2]", second) if dims == 1 else (second, "diff[x,2]"),
         ("laplace", "laplace", "laplace")])
    block = stepper.layers[0].implicit
    dense_cache(block).clear()
    u = np.random.default_rng(9).standard_normal((3, tokens_of(dims), 2))
    check_against_dense(stepper, compilation, kind, f"{kind}_words", ("words",), 0.0, u,
                        padded_mask(dims, accuracy))
    assert dense_cache(block) == {}


# ------------------------------------------------------------ 2. odd words, dense path
ODD_CONFIGS = [("neumann", 1, 2), ("dirichlet", 1, 4), ("copy", 1, 4), ("copy", 2, 2),
               ("periodic", 1, 4)]


@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("config", ODD_CONFIGS, ids=[config_id(c) for c in ODD_CONFIGS])
def test_odd_words_multiply_the_dense_matrices_in_word_order(config, kind):
    boundary, dims, accuracy = config
    compilation, stepper = compiled(boundary, dims, accuracy, kind, "odd")
    (implicit,) = compilation.discrete.implicit
    words = {word for _, word in implicit.parts}
    assert words == {("diff[x,1]", "laplace"), ("laplace", "diff[x,1]"),
                     ("laplace", "laplace")}, words
    block = stepper.layers[0].implicit
    dense_cache(block).clear()
    u = np.random.default_rng(4).standard_normal((3, tokens_of(dims), 2))
    check_against_dense(stepper, compilation, kind, f"{kind}_odd", ("odd",), 0.0, u,
                        padded_mask(dims, accuracy))
    matrices = [m.numpy() for key, m in dense_cache(block).items()
                if key[1] == ((LENGTH_1D,) if dims == 1 else SHAPE_2D)]
    if boundary == "periodic":
        assert matrices == []  # circulant: the FFT, words commute
    else:
        # laplace and d/dx, cached once per extent; they do not commute on a bounded grid,
        # so matching the explicit operator above needs the products in word order
        assert len(matrices) == 2
        a, b = matrices
        assert np.max(np.abs(a @ b - b @ a)) > 1e-3


# ------------------------------------------------------- 3. Fourier modes, no matrices
@pytest.mark.parametrize("kind", ["flow", "solve"])
@pytest.mark.parametrize("accuracy", [2, 4])
def test_periodic_swift_hohenberg_multiplies_a_fourier_mode_by_f_of_its_symbol(kind, accuracy):
    _, stepper = compiled("periodic", 1, accuracy, kind, "swift_hohenberg")
    weights = {2: {-1: 1.0, 0: -2.0, 1: 1.0},
               4: {-2: -1 / 12, -1: 4 / 3, 0: -5 / 2, 1: 4 / 3, 2: -1 / 12}}[accuracy]
    positions = np.arange(LENGTH_1D)
    for r in R_VALUES:
        with_r(stepper, r)
        for k in (1, 3, 8):
            theta = 2 * math.pi * k / LENGTH_1D
            sigma = sum(w * math.cos(j * theta) for j, w in weights.items()) / SPACING**2
            mu = (r - 1) - 2 * sigma - sigma**2
            mode = np.cos(theta * positions + 0.3)
            u = np.concatenate([[0.5], mode])[None, :, None]
            out = generated(stepper, f"{kind}_swift_hohenberg", u)[0, :, 0]
            want = scalar_f(kind, mu) * mode
            np.testing.assert_allclose(out[1:], want, rtol=0, atol=1e-13)  # |mode| ≤ 1
            assert out[0] == pytest.approx(scalar_f(kind, r - 1) * 0.5, rel=1e-14)


# --------------------------------------------------------------- printing of the words
def test_generated_parts_print_words_and_pass_ruff(tmp_path):
    sources = {"swift_hohenberg": compiled("copy", 2, 4, "flow", "swift_hohenberg")[0].python,
               "words": compiled("copy", 2, 4, "solve", "words")[0].python}
    assert "(-1.0, (self.laplace, self.laplace))" in sources["swift_hohenberg"]
    # a one-stencil word prints as its stencil
    assert "(-2.0, self.laplace)" in sources["swift_hohenberg"]
    assert "(1 / 8, (self.laplace, self.laplace, self.laplace))" in sources["words"]  # exact
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    rules = ["--isolated", "--select", "E,F,W,B,UP,RUF", "--ignore", "RUF001,RUF002,RUF003",
             "--line-length", "100", "--target-version", "py310"]
    result = subprocess.run(command + ["check", "--no-cache", *rules, str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------ 4. hypothesis
# even-order unit operators: (source with {} for the operand, the sign of its symbol)
UNITS_1D = (("laplace({})", -1), ("diff({}, x, 2)", -1), ("diff({}, x, 4)", 1))
UNITS_2D = UNITS_1D + (("diff({}, y, 2)", -1), ("diff({}, y, 4)", 1))
COEFFICIENTS = (0.25, 0.5, 0.75, 1.0, 1.5)
ZERO_ORDERS = (-0.75, -0.25, 0.0, 0.25, 0.5)


@st.composite
def composed_cases(draw):
    boundary = draw(st.sampled_from(BOUNDARIES))
    dims = draw(st.sampled_from((1, 2)))
    accuracy = draw(st.sampled_from((2, 4)))
    units = UNITS_1D if dims == 1 else UNITS_2D
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        word = draw(st.lists(st.sampled_from(units), min_size=1, max_size=3))
        text, sign = "u", 1
        for unit, unit_sign in word:
            text, sign = unit.format(text), sign * unit_sign
        # dissipative: c_w Π σ ≤ 0 (every unit's symbol has one sign)
        pieces.append(f"{-sign * draw(st.sampled_from(COEFFICIENTS))!r} * {text}")
    zero = draw(st.sampled_from(ZERO_ORDERS))
    if zero:
        pieces.append(f"{zero!r} * u")
    kind = draw(st.sampled_from(("flow", "solve")))
    padded = draw(st.booleans())
    return boundary, dims, accuracy, " + ".join(pieces), zero, kind, padded


@functools.cache
def drawn_stepper(boundary, dims, accuracy, expr, kind):
    scheme = "lie" if kind == "flow" else "imex_euler"
    text = spec_text(boundary, dims, accuracy, scheme, {"lin": expr}, spacing=2.0,
                     tag="drawn")
    compilation = compile_any(text)
    return compilation, stepper_for(compilation, seed=None)


@given(composed_cases())
def test_random_words_equal_the_dense_computation(case):
    """Random polynomials of even-order stencils (spacing 2: moderate eigenvalues)."""
    boundary, dims, accuracy, expr, zero, kind, padded = case
    compilation, stepper = drawn_stepper(boundary, dims, accuracy, expr, kind)
    u = np.random.default_rng(1).standard_normal((3, tokens_of(dims), 2))
    mask = padded_mask(dims, accuracy) if padded else None
    got = generated(stepper, f"{kind}_lin", u, mask)
    reference = reference_for(compilation, stepper)
    want = reference.implicit_apply(kind, ("lin",), TAU, u, 0, reference.context(u, mask))
    assert relative_error(got, want) <= EXACT_RTOL, (expr, "reference")
    for b in range(3):
        matrix = operator_matrix(stepper, ("lin",), tokens_of(dims),
                                 None if mask is None else mask[b])
        assert relative_error(got[b], dense(kind, matrix, u[b])) <= EXACT_RTOL, (expr, b)
    np.testing.assert_allclose(got[:, 0], scalar_f(kind, zero) * u[:, 0], rtol=1e-13, atol=0)
    assert dense_cache(stepper.layers[0].implicit) == {}  # even words: the transforms
