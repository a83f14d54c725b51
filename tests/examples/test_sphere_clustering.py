"""Gallery entry ``examples/sphere_clustering`` (Geshkovski, Letrouit, Polyanskiy and
Rigollet): the rules written in its README, on the entry's own computation (the generated
stepper of ``sphere.yaml``, float64).

* the operator's value is tangent: |⟨u(x), P⊥S(x)⟩| ≤ 1e-12 |u(x)| |S(x)| (float64, S the
  unprojected value: the scale at which the projection computes);
* equiangular reduction, every draw (n ∈ [2, 6] tokens in d = 6, ρ₀ ∈ (−1/(n−1), 0.95),
  β ∈ {0.5, 1, 4}), rk4 at Δt = 0.01 on [0, 2]: the Gram matrix stays equiangular (spread
  of the off-diagonal entries ≤ 1e-6) and ρ(t) at t = 0, 0.2, …, 2 matches the
  solve_ivp solution of ρ̇ = 2e^{βρ}(1 − ρ)(1 + (n − 1)ρ)/(e^β + (n − 1)e^{βρ}) to ≤ 1e-6;
* order under refinement (n = 4, β = 1, ρ₀ = −0.2, T = 2, Δt = 0.1, 0.05, 0.025): the
  observed orders of euler, rk2 and rk4 are 1, 2, 4 within ±0.2;
* generic starts (d ∈ [3, 5], n ∈ [8, 32], uniform on the sphere, β = 1, rk4, Δt = 0.05):
  1 − mean pairwise cosine < 1e-3 at t = 20 (one cluster).
"""

from __future__ import annotations

import numpy as np
import torch
from gallery_helpers import load_example
from hypothesis import given, settings
from hypothesis import strategies as st

sc = load_example("sphere_clustering")


@settings(max_examples=10)
@given(d=st.integers(2, 6), n=st.integers(2, 16), beta=st.sampled_from([0.0, 1.0, 9.0]),
       seed=st.integers(0, 2**31 - 1))
def test_the_projected_interaction_is_tangent(d, n, beta, seed):
    from pdelang.compiler.operators.sphere_attention import numpy_sphere_attention

    x = np.random.default_rng(seed).standard_normal((1, n, d))
    v = numpy_sphere_attention(x, beta, tangent=True)
    s = numpy_sphere_attention(x, beta, tangent=False)  # the scale the projection works at
    inner = np.abs((x * v).sum(-1))
    assert np.all(inner <= 1e-12 * np.linalg.norm(x, axis=-1) * np.linalg.norm(s, axis=-1))


@settings(max_examples=10)
@given(n=st.integers(2, 6), fraction=st.floats(0.05, 0.95), beta=st.sampled_from([0.5, 1.0, 4.0]),
       seed=st.integers(0, 2**31 - 1))
def test_the_equiangular_reduction(n, fraction, beta, seed):
    low = -1.0 / (n - 1)
    rho0 = low + fraction * (0.95 - low)
    result = sc.equiangular_error(n, 6, beta, rho0, span=2.0, layers=10, substeps=20,
                                  seed=seed)
    assert result["max_spread"] <= 1e-6, result
    assert result["max_error"] <= 1e-6, result


def test_the_schemes_show_their_order():
    for scheme, order in (("euler", 1), ("rk2", 2), ("rk4", 4)):
        errors = [sc.equiangular_error(4, 6, 1.0, -0.2, span=2.0, layers=1, substeps=k,
                                       scheme=scheme)["final_error"] for k in (20, 40, 80)]
        observed = sc.observed_orders(errors)
        assert all(abs(p - order) <= 0.2 for p in observed), (scheme, errors, observed)


@settings(max_examples=10)
@given(d=st.integers(3, 5), n=st.integers(8, 32), seed=st.integers(0, 2**31 - 1))
def test_generic_starts_collapse_to_one_cluster(d, n, seed):
    curve, _ = sc.collapse_curve(n, d, 1.0, seed)
    assert curve[-1] < 1e-3, curve[::8]


def test_the_circle_run_counts_clusters():
    """The plateau bookkeeping of study 3 (reported, not a prediction): two antipodal
    points are two clusters, and a point set never has fewer than one."""
    two = np.array([[1.0, 0.0], [1.0, 1e-4], [-1.0, 0.0]])
    assert sc.circle_clusters(two) == 2
    assert sc.circle_clusters(np.array([[0.0, 1.0]])) == 1
    assert torch.get_num_threads() == 1
