"""Block ``imports``: the import lines every generated module starts with.

The printer adds ``from torch.nn.utils import parametrize`` when a parameter is positive
and drops ``torch.nn.functional`` when nothing uses it.  (The docstring above and the
``__all__`` below are not part of the block.)
"""

# pdelang: begin imports
from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
# pdelang: end imports

__all__ = ["ClassVar", "F", "NamedTuple", "nn", "torch"]
