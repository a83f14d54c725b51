"""Composed and growing specs: ``check``'s bound against an independent computation.

The independent side never reads pdelang's symbols: it builds the semi-discrete operator L as
a dense periodic matrix by composing stencil matrices (``np.roll``) exactly as the spec
writes them, takes its eigenvalues λ_k, and bisects Δt on the criterion of the analysis,
|R(Δt λ_k)| ≤ max(1, |e^{λ_k Δt}|)^2 for every k, with each scheme's stability function
R written by hand (euler 1 + z, rk4 its Taylor polynomial, lie with an exact flow e^z,
imex_euler with the whole linear part implicit 1/(1 − z)).  The grids are even-sized, so
they hold θ = π, where these symbols take their extremes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text

LAPLACE_2 = {-1: 1.0, 0: -2.0, 1: 1.0}
D1 = {-1: -0.5, 1: 0.5}


def circulant(weights: dict, n: int, h: float, k: int) -> np.ndarray:
    m = np.zeros((n, n))
    for offset, w in weights.items():
        m += w * np.roll(np.eye(n), offset, axis=1)
    return m / h**k


def laplace_2d(n: int, h: float) -> np.ndarray:
    one = circulant(LAPLACE_2, n, h, 2)
    eye = np.eye(n)
    return np.kron(one, eye) + np.kron(eye, one)


R = {
    "euler": lambda z: 1 + z,
    "rk4": lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24,
    "lie_flow": np.exp,
    "imex_euler": lambda z: 1 / (1 - z),
}


def spectrum(matrix: np.ndarray, fine: int = 1 << 14) -> np.ndarray:
    """The eigenvalues of a periodic (circulant) operator, sampled finely: the operator's
    first column e₀ ↦ L e₀ read off the matrix, spread over a grid of ``fine`` tokens (a
    stencil composition has a short first column), and its DFT (circulant eigenvalues)."""
    column = matrix[:, 0]
    n = len(column)
    reach = [k if k <= n // 2 else k - n for k in np.flatnonzero(np.abs(column) > 0)]
    wide = np.zeros(fine)
    for k in reach:
        wide[k % fine] = column[k % n]
    return np.fft.fft(wide)


def independent_bound(matrix: np.ndarray, scheme: str, upper: float = 1e3,
                      lam: np.ndarray | None = None) -> float | None:
    """sup{Δt : the criterion holds at every Δt' ≤ Δt} by a fine scan and bisection; None
    when it holds up to ``upper``.  ``lam``: the eigenvalues, when not a 1-D circulant."""
    lam = spectrum(matrix) if lam is None else lam

    def ok(dt):
        with np.errstate(all="ignore"):
            g = np.abs(R[scheme](dt * lam))
            allowed = np.exp(2 * np.maximum(np.real(lam) * dt, 0))
        return bool(np.all(g <= allowed * (1 + 1e-12)))

    grid = np.geomspace(1e-9, upper, 3000)
    bad = [dt for dt in grid if not ok(dt)]
    if not bad:
        return None
    hi = bad[0]
    lo = grid[np.searchsorted(grid, hi) - 1] if hi > grid[0] else 0.0
    if lo == 0.0:
        return 0.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    # a "stable" Δt with Δt·max|λ| below 1e-5 is the comparison's roundoff tolerance
    # (|1 + iy| ≤ 1 + 1e-12 for y < 1.4e-6), not a step: no stable Δt
    return 0.0 if lo * np.max(np.abs(lam)) < 1e-5 else lo


def analyse(text: str):
    return compile_spec(load_spec_text(text, "composed.yaml"), until="analysis").analysis


def spec_1d(terms: str, equation: str, *, scheme: str = "euler", h: float = 0.5,
            params: str = "K: 0.01", implicit: str = "", n: int = 64) -> str:
    return f"""pdelang: 1
name: composed
grid: {{axes: [x], shape: [{n}], spacing: {h}, boundary: periodic}}
fields: {{u: {{channels: 1}}}}
parameters: {{{params}}}
terms:
{terms}
equation: {equation}
time: {{span: [0, 0.001], layers: 1, substeps: 1, scheme: {scheme}{implicit}}}
"""


# ------------------------------------------------------------------ the table
H, K, N = 0.5, 0.01, 64
L1 = circulant(LAPLACE_2, N, H, 2)
TABLE = [
    # (name, spec text, the independent operator, scheme for R, expected closed form)
    ("hyperdiffusion, euler",
     spec_1d("  hyper: -K * laplace(laplace(u))", "dt(u) = hyper"),
     -K * L1 @ L1, "euler", H**4 / (8 * K)),
    ("hyperdiffusion as diff(u, x, 4), euler",
     spec_1d("  hyper: -K * diff(u, x, 4)", "dt(u) = hyper"),
     -K * circulant({-2: 1.0, -1: -4.0, 0: 6.0, 1: -4.0, 2: 1.0}, N, H, 4), "euler",
     H**4 / (8 * K)),
    ("Swift–Hohenberg r = 0.3, euler",
     spec_1d("  lin: (r - 1)*u - 2*laplace(u) - laplace(laplace(u))\n  cubic: -u^3",
             "dt(u) = lin + cubic", params="r: 0.3"),
     (0.3 - 1) * np.eye(N) - 2 * L1 - L1 @ L1, "euler", None),
    ("Swift–Hohenberg r = 0.3, lie + implicit (exact flow)",
     spec_1d("  lin: (r - 1)*u - 2*laplace(u) - laplace(laplace(u))\n  cubic: -u^3",
             "dt(u) = lin + cubic", scheme="lie", params="r: 0.3",
             implicit=", implicit: [lin]"),
     (0.3 - 1) * np.eye(N) - 2 * L1 - L1 @ L1, "lie_flow", None),
    ("Kuramoto–Sivashinsky linear part, rk4",
     spec_1d("  lin: -laplace(u) - laplace(laplace(u))", "dt(u) = lin", scheme="rk4"),
     -L1 - L1 @ L1, "rk4", None),
    ("Kuramoto–Sivashinsky linear part, imex_euler (backward Euler of a growing part)",
     spec_1d("  lin: -laplace(u) - laplace(laplace(u))\n  zero: 0*u", "dt(u) = lin + zero",
             scheme="imex_euler", implicit=", implicit: [lin]"),
     -L1 - L1 @ L1, "imex_euler", None),
    ("central advection, euler: no stable Δt",
     spec_1d("  adv: c * diff(u, x)", "dt(u) = adv", params="c: 1.0"),
     circulant(D1, N, H, 1), "euler", 0.0),
]


@pytest.mark.parametrize("name,text,matrix,scheme,closed", TABLE, ids=[t[0] for t in TABLE])
def test_check_bound_equals_an_independent_computation(name, text, matrix, scheme, closed):
    facts = analyse(text).stability
    expected = independent_bound(matrix, scheme)
    if expected is None:
        assert facts.max_stable_dt is None, (name, facts)
        assert facts.verdict == "stable"
    elif expected == 0.0:
        assert facts.max_stable_dt == 0.0 and facts.verdict == "no_stable_dt"
    else:
        assert facts.max_stable_dt == pytest.approx(expected, rel=1e-6), name
    if closed is not None:
        assert (facts.max_stable_dt or 0.0) == pytest.approx(closed, rel=1e-12)
    top = float(np.max(spectrum(matrix).real))
    assert facts.growth_rate == pytest.approx(top, abs=1e-6)  # the sup over θ, finely
    assert facts.grows == (top > 1e-9)


def test_composed_orders_and_the_hyperdiffusion_formula():
    analysis = analyse(spec_1d("  hyper: -K * laplace(laplace(u))", "dt(u) = hyper"))
    assert analysis.terms[0].order == 4
    assert analysis.stability.formula == "h**4/(8*K)"
    assert analysis.stability.exact


def test_2d_laplace_of_laplace_keeps_its_cross_term():
    """−K Δ²u in 2-D: λ = −K(σ_x + σ_y)², whose minimum −64K/h⁴ (θ = (π, π)) includes the
    cross term 2σ_xσ_y; dropping it would give −32K/h⁴ and twice the bound."""
    n = 16
    text = f"""pdelang: 1
name: hyper2d
grid: {{axes: [x, y], shape: [{n}, {n}], spacing: {H}, boundary: periodic}}
fields: {{u: {{channels: 1}}}}
parameters: {{K: {K}}}
terms:
  hyper: -K * laplace(laplace(u))
equation: dt(u) = hyper
time: {{span: [0, 0.001], layers: 1, substeps: 1, scheme: euler}}
"""
    facts = analyse(text).stability
    lap = laplace_2d(n, H)
    lam = np.linalg.eigvals(-K * lap @ lap)  # the 2-D grid of 16×16 modes holds (π, π)
    assert facts.max_stable_dt == pytest.approx(independent_bound(None, "euler", lam=lam),
                                                rel=1e-6)
    assert facts.max_stable_dt == pytest.approx(H**4 / (32 * K), rel=1e-12)


def test_a_nonlinear_inner_expression_is_named_in_the_caveats():
    facts = analyse(spec_1d("  a: -K * laplace(u^2)", "dt(u) = a")).stability
    assert facts.verdict == "unknown"
    assert facts.caveats and "laplace(u**2)" in facts.caveats[0]


# ------------------------------------------------------------------ drawn compositions
WORDS = {
    "laplace(u)": lambda n, h: circulant(LAPLACE_2, n, h, 2),
    "laplace(laplace(u))": lambda n, h: circulant(LAPLACE_2, n, h, 2) @ circulant(
        LAPLACE_2, n, h, 2),
    "diff(u, x, 2)": lambda n, h: circulant(LAPLACE_2, n, h, 2),
    "diff(laplace(u), x, 2)": lambda n, h: circulant(LAPLACE_2, n, h, 2) @ circulant(
        LAPLACE_2, n, h, 2),
    "u": lambda n, h: np.eye(n),
}


@st.composite
def composed_linear_specs(draw):
    """A linear, constant-coefficient operator drawn as a sum of composed words with signed
    coefficients (decaying, growing, anti-diffusive parts), an explicit scheme, a grid of
    8 to 4096 tokens."""
    count = draw(st.integers(1, 3))
    words = draw(st.lists(st.sampled_from(sorted(WORDS)), min_size=count, max_size=count,
                          unique=True))
    coefficients = [draw(st.sampled_from([-2.0, -1.0, -0.5, -0.25, 0.25, 0.5]))
                    for _ in words]
    scheme = draw(st.sampled_from(["euler", "rk4"]))
    n = draw(st.sampled_from([8, 64, 512, 4096]))
    h = draw(st.sampled_from([0.5, 1.0]))
    return words, coefficients, scheme, n, h


# ≈ 1.7 s an example: 6 in the default (derandomized ci) profile, 120 under
# HYPOTHESIS_PROFILE=thorough (twelve before, in both)
@settings(deadline=None, max_examples=6 if settings.default.derandomize else 120)
@given(composed_linear_specs())
def test_drawn_compositions_agree_with_the_independent_bound(drawn):
    words, coefficients, scheme, n, h = drawn
    term = " + ".join(f"({c}) * {w}" for c, w in zip(coefficients, words))
    text = spec_1d(f"  lin: {term}", "dt(u) = lin", scheme=scheme, h=h, n=n, params="K: 1")
    facts = analyse(text).stability
    size = 64  # room for the stencils' reach; the spectrum is then sampled finely
    matrix = sum(c * WORDS[w](size, h) for c, w in zip(coefficients, words))
    expected = independent_bound(matrix, scheme)
    # the equation's own growth: the sup over θ, finely sampled
    assert facts.growth_rate == pytest.approx(float(np.max(spectrum(matrix).real)), abs=1e-6)
    if expected is None:
        assert facts.max_stable_dt is None or facts.max_stable_dt > 1e2
    elif expected == 0.0:
        assert facts.max_stable_dt == 0.0
    else:
        assert facts.max_stable_dt is not None
        assert facts.max_stable_dt == pytest.approx(expected, rel=1e-4)


def test_a_split_step_stable_again_above_its_first_crossing():
    """Lie of two explicit terms, G = (1 + Δt λ₁)(1 + Δt λ₂): unstable just above the first
    crossing Δt*, stable again for every θ further up (at θ = π, h = 0.5: λ₁ = −24,
    λ₂ = −152).  The bound is the first crossing, and the verdict at the spec's Δt is what
    the criterion says there (the independent spectrum of both circulants, mode by mode)."""
    first = 1.5 * L1
    second = -0.5 * L1 @ L1 + 1.5 * L1
    lam1, lam2 = spectrum(first), spectrum(second)

    def excess(dt):
        return float(np.max(np.abs((1 + dt * lam1) * (1 + dt * lam2))) - 1)

    def spec_at(dt):
        return spec_1d('  first: "1.5 * diff(u, x, 2)"\n'
                       '  second: "-0.5 * laplace(laplace(u)) + 1.5 * laplace(u)"',
                       "dt(u) = first + second", scheme="lie").replace(
                           "span: [0, 0.001]", f"span: [0, {dt!r}]")

    grid = np.linspace(1e-4, 0.05, 5000)
    crossing = grid[np.argmax([excess(dt) > 1e-12 for dt in grid])]
    low = analyse(spec_at(0.025)).stability
    assert low.max_stable_dt == pytest.approx(crossing, rel=2e-3)
    assert excess(0.025) > 0.1 and low.verdict == "unstable"
    high = analyse(spec_at(0.035)).stability
    assert excess(0.035) <= 1e-12 and high.verdict == "stable"
    assert any("stable again" in c for c in high.caveats)
