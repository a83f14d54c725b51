"""Gallery entry ``examples/rank_collapse`` (Dong, Cordonnier and Loukas 2021): the rules
written in its README, on the entry's own computation.

* without skips, every draw: res_3 / res_0 < 1e-3 (pure attention collapses to rank one);
* without skips, over 20 seeds: the median cubic exponent p = log κ_{l+1} / log κ_l ≥ 2
  (faster than exponential; a cubic recursion gives 3, exponential decay 1), computed only
  where the residuals are above float64 roundoff;
* with skips, and with skips + MLP, every draw: res_12 / res_0 > 0.3 (no collapse).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gallery_helpers import load_example

rc = load_example("rank_collapse")

draws = given(seed=st.integers(0, 2**31 - 1), tokens=st.integers(8, 48))


@settings(max_examples=20)
@draws
def test_pure_attention_collapses_in_three_layers(seed, tokens):
    res = rc.residuals("no_skip", seed, tokens)
    assert res[3] < 1e-3 * res[0], res


def test_the_collapse_is_faster_than_exponential():
    exponents = [p for seed in range(20) for p in rc.cubic_exponents(rc.residuals("no_skip", seed))]
    assert len(exponents) >= 20  # at least one measurable exponent per seed
    assert rc.median(exponents) >= 2, sorted(exponents)


@settings(max_examples=20)
@draws
def test_skip_connections_prevent_the_collapse(seed, tokens):
    res = rc.residuals("skip", seed, tokens)
    assert res[-1] > 0.3 * res[0], res


@settings(max_examples=20)
@draws
def test_skip_connections_with_an_mlp_prevent_the_collapse(seed, tokens):
    res = rc.residuals("skip_mlp", seed, tokens)
    assert res[-1] > 0.3 * res[0], res
