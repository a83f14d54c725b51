"""Gallery: rescaled Sinkhorn attention tends to the heat equation ¼ f'' (Sinkformers,
arXiv 2110.11773), computed by the entry's own script on a smaller grid and ε ladder
(examples/sinkhorn_diffusion/README.md states the rules; the full ladder is run.py's)."""

from __future__ import annotations

import pytest

from gallery_helpers import load_example

run = load_example("sinkhorn_diffusion")

TOKENS = 256  # h = 1/256: ≥ 5.7 points per kernel width √(ε/2) down to ε = 1e-3
EPSILONS = (4e-3, 2e-3, 1e-3)


@pytest.fixture(scope="module")
def uniform():
    return run.uniform_study(epsilons=EPSILONS, tokens=TOKENS)


def test_constant_is_one_quarter_with_order_one(uniform):
    for row in uniform["rows"]:
        # the whole-line Gaussian multiplier (1 − e^{−εK²/4})/(εK²) = ¼ − εK²/32 + O(ε²)
        assert abs(row["error_vs_exact"]) <= 1e-5, row
        assert row["error_vs_limit"] < 0  # approached from below, as −εK²/32
    assert all(0.9 <= p <= 1.1 for p in uniform["orders"]), uniform["orders"]
    assert abs(uniform["rows"][-1]["error_vs_limit"]) <= 2e-3


def test_doubly_stochastic_to_roundoff(uniform):
    for row in uniform["rows"]:
        assert row["column_error"] <= 1e-9 and row["row_error"] <= 1e-12, row


def test_against_the_heat_spec(uniform):
    """sinkhorn.yaml's rate against heat.yaml's ¼ laplace(u): the gap is the O(ε) term."""
    gaps = [row["heat_spec_relative_gap"] for row in uniform["rows"]]
    assert gaps[-1] <= 6e-3, gaps
    assert all(0.9 <= p <= 1.1 for p in uniform["heat_spec_orders"]), gaps


def test_non_uniform_density_drift_and_weighted_laplacian():
    """Stretched grid: (P x − x)/ε → ¼ (log ρ)' (the drift that makes the token density
    solve ∂tρ = ¼ ρ'' when W_V = −I) and (P f − f)/ε → ¼ (f'' + (log ρ)' f')."""
    result = run.stretched_study(epsilons=EPSILONS, tokens=TOKENS)
    last = result["rows"][-1]
    assert last["velocity_relative_error"] <= 5e-3 and last["field_relative_error"] <= 5e-3
    assert all(0.8 <= p <= 1.2 for p in result["velocity_orders"] + result["field_orders"])


def test_control_softmax_has_no_diffusion_limit():
    """Same scores 2 x_i x_j/ε, row softmax only: e^{x_j²/ε} is not absorbed, every token
    attends to the right end, and (P f − f)/ε grows like 1/ε instead of tending to ¼ f''."""
    result = run.uniform_study("softmax", epsilons=(2e-3, 1e-3), tokens=TOKENS, heat=False)
    errors = [abs(row["error_vs_limit"]) for row in result["rows"]]
    assert all(e > 1.0 for e in errors) and errors[1] > errors[0], errors


def test_control_alternating_sinkhorn_does_not_converge_in_the_same_budget():
    """kernel=sinkhorn (alternating normalization), the same 60 iterations: the marginals
    are far from one at ε = 1e-3 (the first attempt's failure)."""
    field = run.layer_field("sinkhorn", 1e-3, tokens=TOKENS)
    assert field["column_error"] > 1e-3


def test_wrong_constant_is_rejected(uniform):
    assert abs(uniform["rows"][-1]["coefficient"] - 0.5) > 0.2


def test_generated_code_equals_the_numpy_oracle():
    """``pdelang verify`` on the spec: the generated sinkhorn_symmetric branch (padded
    batches included) against pdelang's NumPy oracle, random weights."""
    from pdelang.lab.testing.verify import verify

    report = verify(run.SPEC, steps=100)
    result = report.results["generated_equals_reference"]
    assert result.passed and max(result.details["errors"].values()) < 1e-12, result.message


def test_random_symmetric_scores_give_doubly_stochastic_maps():
    """W_Q = W_K drawn at random (scores of either sign, no position channel): rows sum to
    one exactly, columns to ≤ 1e-9 after the spec's 60 iterations."""
    import torch

    layer = run.model("sinkhorn_symmetric", 32)
    g = torch.Generator().manual_seed(0)
    state = layer.state_dict()
    w = 3 * torch.randn(1, 2, generator=g, dtype=torch.float64)
    for name, value in (("q", w), ("k", w), ("v", torch.eye(2)), ("o", torch.eye(2))):
        state[f"layers.0.sinkformer_attention.{name}.weight"].copy_(value)
    u = torch.randn(3, 32, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        p = layer(u, return_attention=True).attentions[0]
    assert (p.sum(-1) - 1).abs().max() < 1e-12
    assert (p.sum(-2) - 1).abs().max() < 1e-9
    assert (p - p.transpose(-2, -1)).abs().max() < 1e-9  # symmetric scores: symmetric P
