"""Block ``imports``: the import lines every generated module starts with.

These are all the imports a module may need; the printer keeps those whose names the
module reads (``ClassVar`` only for a class with spec scalars, ``F`` only where a block or
term calls it, ``parametrize`` only for a positive parameter).  (The docstring above and the
``__all__`` below are not part of the block.)
"""

# pdelang: begin imports
from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
# pdelang: end imports

__all__ = ["ClassVar", "F", "NamedTuple", "nn", "parametrize", "torch"]
