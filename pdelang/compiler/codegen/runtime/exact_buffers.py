"""Block ``ExactBuffers``: the base of runtime modules whose buffers hold exact values."""

from __future__ import annotations

import torch
from torch import nn


# pdelang: begin ExactBuffers
class ExactBuffers(nn.Module):
    """Buffers built from exact values (stencil weights w/h^k), held in float64 and rebuilt
    from those values whenever the module is converted (``.double()``, ``.to(dtype,
    device)``): rounded once to the new dtype, so that a float32 module's rounding never
    reaches a float64 one (``.float().double()`` holds them exactly)."""

    def register_exact(self, **values: tuple[float, ...]) -> None:
        self.exact = values
        for name, exact in values.items():  # float64: the values themselves
            self.register_buffer(name, torch.tensor(exact, dtype=torch.float64),
                                 persistent=False)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for name, exact in self.exact.items():
            old = getattr(self, name)
            setattr(self, name, torch.tensor(exact, dtype=old.dtype, device=old.device))
        return self
# pdelang: end ExactBuffers
