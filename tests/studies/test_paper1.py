"""The decision rules of ``pdelang study paper1`` (issue 21), run on synthetic references
whose answer is known: a model that reproduces the reference passes claim A, a model that
*is* a floor fails it (its rescaled score is 0 and its CI against the floor includes 0), a
layer exact by construction is not counted, fewer than three seeds never make a claim hold,
and claim C flags exactly the layers where the model is no better than "nothing happens".
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace

import pytest
import torch

from pdelang.lab.studies import paper1 as P
from pdelang.lab.studies.rules import MIN_SEEDS
from pdelang.lab.validation.floors import head_mean_maps, uniform_maps

B, N, H, C, L = 24, 6, 2, 5, 3


def reference(seed: int):
    """A fake reference run: states drifting layer by layer and peaked attention maps."""
    generator = torch.Generator().manual_seed(seed)
    states = [torch.randn(B, N, C, generator=generator, dtype=torch.float64)]
    for _ in range(L):
        states.append(states[-1] + 0.8 * torch.randn(B, N, C, generator=generator,
                                                     dtype=torch.float64))
    maps = [torch.softmax(3 * torch.randn(B, H, N, N, generator=generator,
                                          dtype=torch.float64), -1) for _ in range(L)]
    mask = torch.ones(B, N, dtype=torch.bool)
    return SimpleNamespace(hidden_states=states, attentions=maps, bool_mask=mask)


def model_like(run, maps, states):
    return SimpleNamespace(model_maps=maps, output=SimpleNamespace(states=states))


@pytest.fixture(scope="module")
def floors():
    run, train = reference(0), reference(1)
    return run, P._floor_piece(None, run, train, bootstrap=300)


def rows_for(run, floor_piece, maps, states, exact=()):
    values = P._model_values(model_like(run, maps, states), run)
    return P._against_floors(values, floor_piece, set(exact), 300, 0)


def test_a_model_that_reproduces_the_reference_passes_claim_a(floors):
    run, piece = floors
    noisy = [(m + 1e-4 * torch.rand_like(m)) for m in run.attentions]
    noisy = [m / m.sum(-1, keepdim=True) for m in noisy]
    rows = rows_for(run, piece, noisy, run.hidden_states)
    verdict = P._attention_verdict(rows)
    assert verdict["holds"], verdict
    assert verdict["layers_checked"] == [1, 2, 3]
    assert all(r["against_floor"]["rescaled"] > 0.99 for r in rows)


def test_a_model_that_is_a_floor_fails_claim_a(floors):
    """Head-mean maps score exactly the head-mean floor: rescaled 0 against it (if it is
    the strongest) or below 0 — never ≥ 0.9 — and not above the strongest floor."""
    run, piece = floors
    rows = rows_for(run, piece, [head_mean_maps(m) for m in run.attentions], run.hidden_states)
    verdict = P._attention_verdict(rows)
    assert not verdict["holds"]
    for row, failure in zip(rows, verdict["failures"]):
        assert row["against_floor"]["rescaled"] <= 1e-12
        assert any("not above its floor" in reason for reason in failure["reasons"])


def test_layers_exact_by_construction_are_not_counted(floors):
    run, piece = floors
    uniform = uniform_maps(run.bool_mask, H, N)
    maps = [uniform, *run.attentions[1:]]  # layer 1 fails badly, but it is "exact"
    rows = rows_for(run, piece, maps, run.hidden_states, exact=(1,))
    verdict = P._attention_verdict(rows)
    assert verdict["holds"] and verdict["layers_checked"] == [2, 3]
    assert not P._attention_verdict(rows_for(run, piece, maps, run.hidden_states))["holds"]


def test_claim_c_flags_the_layers_no_better_than_nothing_happening(floors):
    """The previous state as the model's state at layer 3 is exactly the floor there: its
    error difference is 0, so layer 3 breaks down; layers reproduced exactly do not."""
    run, piece = floors
    states = list(run.hidden_states)
    states[3] = run.hidden_states[2]
    rows = rows_for(run, piece, run.attentions, states)
    assert P._breakdown(rows) == [3]


def test_fewer_seeds_than_the_rule_asks_never_make_claim_a_hold():
    from pdelang.lab.studies.summary import _claim_a

    passing = {"verdict": {"holds": True, "layers_checked": [2], "failures": []}}
    assert not _claim_a([passing] * (MIN_SEEDS - 1), MIN_SEEDS)["holds"]
    assert _claim_a([passing] * MIN_SEEDS, MIN_SEEDS)["holds"]
    failing = {"verdict": {"holds": False, "layers_checked": [2], "failures": [{}]}}
    assert not _claim_a([passing] * MIN_SEEDS + [failing], MIN_SEEDS)["holds"]


def test_the_study_command_locates_a_bad_seed_list():
    from pdelang.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["study", "paper1", "--seeds", "0,x", "--out", "unused"])
    assert code == 2
    assert "--seeds 0,x" in err.getvalue() and "^" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["study", "paper1", "--text-steps", "0", "--out", "unused"])
    assert code == 2
    assert "--text-steps 0" in err.getvalue() and "^" in err.getvalue()


def test_a_failure_of_an_unconverged_fit_leaves_claim_a_undecided():
    """An optimizer stopped by its step budget refutes nothing: a failing verdict from a fit
    whose kept restart did not converge is undecided (None); a passing one still holds (a
    model in the family reaches the bar), and a converged failure is a failure."""
    from pdelang.lab.studies.summary import _claim_a

    passing = {"holds": True, "failures": [], "layers_checked": [2]}
    failing = {"holds": False, "failures": [{"layer": 2, "reasons": ["raw"]}],
               "layers_checked": [2]}

    def fit(verdict, converged):
        return {"verdict": verdict, "best_restart": 1,
                "restarts": [{"converged": True}, {"converged": converged}]}

    n = MIN_SEEDS
    assert _claim_a([fit(failing, False)] * n, n)["holds"] is None
    assert _claim_a([fit(failing, True)] * n, n)["holds"] is False
    assert _claim_a([fit(passing, False)] * n, n)["holds"] is True
    # text: one fit, scored on every subset
    subsets = [{"verdict": failing}] * n
    assert _claim_a(subsets, n, fits=[fit(failing, False)])["holds"] is None
    assert _claim_a(subsets, n, fits=[fit(failing, True)])["holds"] is False
