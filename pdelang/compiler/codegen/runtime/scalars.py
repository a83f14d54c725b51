"""Block ``SpecScalars``: the base of the generated classes that hold scalar parameters."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .constants import POSITIVE


# pdelang: begin SpecScalars
class SpecScalars(nn.Module):
    """Scalar coefficients that hold the spec's values exactly in every dtype: converting
    the module (``.double()``, ``.to(dtype)``) rebuilds each scalar that still holds its
    spec value from ``_spec_values``, in the new dtype (D = 0.1 in float64, not float32(0.1)
    widened); a scalar trained, loaded or set to another value converts as usual."""

    _spec_values: ClassVar[dict[str, float]] = {}  # scalar name → the spec's value

    def _apply(self, fn, *args, **kwargs):
        held = [name for name in self._spec_values if self._holds_spec_value(name)]
        super()._apply(fn, *args, **kwargs)
        with torch.no_grad():
            for name in held:
                stored, built = self._spec_storage(name)
                stored.copy_(built)
        return self

    def _spec_storage(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(the tensor that stores scalar ``name``, what it stores when built in its dtype
        and on its device): the value itself, or θ of a parametrized (positive) scalar."""
        value = self._spec_values[name]
        if POSITIVE and name in getattr(self, "parametrizations", ()):  # θ of softplus(θ)
            chain = self.parametrizations[name]
            stored = chain.original
            built = torch.tensor(value, dtype=stored.dtype, device=stored.device)
            for parametrization in reversed(chain):
                built = parametrization.right_inverse(built)
            return stored, built
        stored = getattr(self, name)
        return stored, torch.tensor(value, dtype=stored.dtype, device=stored.device)

    def _holds_spec_value(self, name: str) -> bool:
        stored, built = self._spec_storage(name)
        return not stored.is_meta and torch.equal(stored, built)
# pdelang: end SpecScalars
