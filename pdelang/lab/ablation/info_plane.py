"""The information plane along training (``ablate --metrics info``, digits task).

At step 0 (before any update), every ``every`` optimizer steps and after the last one, the
task model's stepper maps a fixed set of train digits (the probe's training set) and of test
digits (held out) to its layer states; per layer boundary ℓ = 0 … L (0: the embedded
patches the stepper receives) the same estimators as ``validate --metrics info``
(:mod:`pdelang.lab.validation.information_flow`): I(X; T_ℓ + Z) by sample propagation, σ
relative to the layer's spread by default, and I(T_ℓ; Y) as the usable information of a
logistic-regression probe, T_ℓ the flattened state.  (Shwartz-Ziv & Tishby's picture of
training in the information plane, with Goldfeld et al.'s noisy T and Xu et al.'s usable
information in place of binning.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdelang.lab.validation.information_flow import DEFAULT_SIGMA, layer_information, per_layer

PROBE_EXAMPLES = 512
HELDOUT_EXAMPLES = 256


def digits_observer(task, *, sigma: float = DEFAULT_SIGMA, sigma_scale: str = "relative",
                    probe_examples: int = PROBE_EXAMPLES,
                    heldout_examples: int = HELDOUT_EXAMPLES) -> Callable[[int], dict]:
    """``observe(step) -> {"step", "layers": [{"layer", "i_xt_bits", "i_ty_bits", …}]}``
    for a :class:`~pdelang.lab.ablation.tasks.DigitsTask` (its fixed first train and test
    examples)."""
    train = task.eval_batches("train", probe_examples, probe_examples)[0]
    test = task.eval_batches("test", heldout_examples, heldout_examples)[0]

    def states(batch):
        u = task.stepper_inputs(batch)  # (B, N, C)
        out = task.stepper(u, return_trajectory=True)
        return out.states, torch.ones(u.shape[:2], dtype=torch.bool)

    def observe(step: int) -> dict:
        was_training = task.model.training
        task.model.eval()
        try:
            with torch.no_grad():
                train_states, train_mask = states(train)
                test_states, test_mask = states(test)
        finally:
            task.model.train(was_training)
        if not all(bool(torch.isfinite(s).all()) for s in test_states + train_states):
            return {"step": step, "layers": [], "note": "non-finite states"}
        features_train = per_layer(train_states, train_mask, "flat")
        features_test = per_layer(test_states, test_mask, "flat")
        rows = []
        for layer in range(len(features_test)):
            row = layer_information(features_train, features_test, train.targets.numpy(),
                                    test.targets.numpy(), sigma, layer, sigma_scale)
            rows.append({"layer": layer, **row})
        return {"step": step, "layers": rows}

    return observe
