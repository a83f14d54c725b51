"""Block ``ACTIVATIONS``: every activation an ``mlp`` may name.

The printer copies only the entries a spec uses, each value's source text as written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# pdelang: begin ACTIVATIONS
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}
# pdelang: end ACTIVATIONS
