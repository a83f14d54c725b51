"""Block ``StepperOutput``: what ``forward`` returns with a trajectory or attention maps."""

from __future__ import annotations

from typing import NamedTuple

import torch


# pdelang: begin StepperOutput
class StepperOutput(NamedTuple):
    """What ``forward`` returns when a trajectory or the attention maps are requested."""

    state: torch.Tensor  # (B, N, C) final state, after the final norm if there is one
    states: list[torch.Tensor]  # layers + 1 states (B, N, C) at layer boundaries, u(0) first
    attentions: list[torch.Tensor]  # (B, heads, N, N), one per attention evaluation
# pdelang: end StepperOutput
