"""The first paper's study as designed before any run: the decision rules of claims A, B
and C with their thresholds, the σ of the information plane, and which specs are the fitted
and the reduced models (:mod:`pdelang.lab.studies.paper1` runs it;
:mod:`~pdelang.lab.studies.summary` and :mod:`~pdelang.lab.studies.figures` read the rules
from here, so none of them imports the runner)."""

from __future__ import annotations

RAW_THRESHOLD = 0.98
RESCALED_THRESHOLD = 0.9
MIN_SEEDS = 3
COMPRESSION_SIGMAS = (0.1, 0.3, 1.0)
SWEEP_SIGMAS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
#: absolute σ: multiples of the geometric mean of the layers' RMS spreads (the ViT's residual
#: stream grows ~10× over depth: in units of layer 0's spread every later layer saturates)
ABSOLUTE_UNIT = "mean"

RULES = {
    "claim_a": f"attention cosine ≥ {RAW_THRESHOLD} (raw) and ≥ {RESCALED_THRESHOLD} rescaled "
               "as (s − f)/(1 − f) against the strongest floor f of the layer, with the paired "
               "95 % bootstrap CI of s − f over inputs above 0, at every non-trivial layer, on "
               f"each of ≥ {MIN_SEEDS} reference seeds (text: disjoint held-out subsets); "
               "decided for the reduced models; fit mode cannot fail and is marked so",
    "claim_b": "compression from layer 2 to the last layer: ΔI(X;T) < 0 with a 95 % CI "
               f"excluding 0 at every σ of {list(COMPRESSION_SIGMAS)}, relative and absolute, "
               "and under the whitened-PCA control, on every seed",
    "claim_c": "a reduced model breaks down at a layer when its held-out relative state error "
               "is not below the previous-state floor's (the paired CI of model − floor does "
               "not lie below 0); set beside the reference MLP's update ‖R(u)‖/‖u‖ and the "
               "accuracy without the MLPs",
}

IMAGE_FIT_SPEC = "vit2d.yaml"
IMAGE_MODELS = {"tied": "reduced/vit_tied.yaml", "kernel": "reduced/vit_kernel.yaml"}
TEXT_FIT_SPEC = "master.yaml"
TEXT_MODELS = {"tied": "reduced/minilm_tied.yaml"}
