"""Small immutable containers shared by the stages."""

from __future__ import annotations

from types import MappingProxyType
from collections.abc import Mapping


def frozen_dict(items) -> Mapping:
    """A read-only view of a fresh dict (stage values must not be mutated)."""
    return MappingProxyType(dict(items))
