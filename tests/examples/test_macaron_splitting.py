"""Gallery entry ``examples/macaron_splitting`` (Lu et al. 2019): the observed orders of Lie
and Strang splitting on MiniLM's layer-0 weights (pre-LN flow) — a numerical property of
the schemes on real weights, not a claim about the network.

Default suite (smaller than the entry's run: one sentence of 8 tokens, 16 rk4 steps per
sub-flow, reference 8 × 16 rk4 steps, K = 4, 8, 16 sub-steps):

* exact sub-flows: the fitted order (log-log slope of the error over K = 4, 8, 16, i.e. the
  mean of the two observed orders) of Lie within 1 ± 0.3, of Strang within 2 ± 0.3, and
  Strang's error below Lie's at every K;

slow (``pytest -m slow``; ten 384-channel builds): pdelang's own ``strang`` scheme, whose
sub-steps are single Euler steps (the Macaron layer), has observed order 1 ± 0.25, not 2.
"""

from __future__ import annotations

import pytest
from gallery_helpers import load_example

mac = load_example("macaron_splitting")


def fitted(data) -> float:
    """The mean of the observed orders over successive halvings of h."""
    return sum(data["observed_orders"]) / len(data["observed_orders"])


@pytest.fixture(scope="module")
def sentence():
    return mac.embeddings(count=1, tokens=8)


@pytest.fixture(scope="module")
def exact(sentence):
    return mac.exact_subflow_study(sentence, ks=(4, 8, 16), substeps=16)


def test_lie_with_exact_subflows_is_first_order(exact):
    study, _ = exact
    assert abs(fitted(study["lie"]) - 1) <= 0.3, study["lie"]


def test_strang_with_exact_subflows_is_second_order(exact):
    study, _ = exact
    assert abs(fitted(study["strang"]) - 2) <= 0.3, study["strang"]
    assert all(s < lie for s, lie in zip(study["strang"]["errors"], study["lie"]["errors"]))
    # the reference is far more accurate than the smallest splitting error
    assert study["reference_check"] < 1e-2 * study["strang"]["errors"][-1]


@pytest.mark.slow
def test_macaron_with_euler_substeps_is_first_order(sentence, exact):
    _, ref = exact
    own = mac.pdelang_scheme_study(sentence, ref, ks=(8, 16, 32))
    assert all(abs(p - 1) <= 0.25 for p in own["strang"]["observed_orders"]), own["strang"]
