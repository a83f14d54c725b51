"""The typed, immutable spec (output of stage ``load``).

Every value keeps its source location: ``Spec.locations`` maps a dotted path
(``grid.spacing``, ``terms.diffusion``, ``time.split_order[1]``; ``<path>#key`` for the
key itself) to a :class:`~pdelang.errors.SourceLocation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping

from pdelang.errors import SourceLocation
from pdelang.compiler.spec.initial import Init
from pdelang.compiler.spec.yaml_source import TextOrigin


@dataclass(frozen=True)
class Grid:
    axes: tuple[str, ...]
    shape: tuple[int, ...] | None
    spacing: float
    boundary: str
    extra_tokens: int
    padding: bool = True  # a batch may mix lengths (a mask marks the padding)

    @property
    def dims(self) -> int:
        return len(self.axes)


@dataclass(frozen=True)
class FieldDecl:
    name: str
    channels: int


@dataclass(frozen=True)
class ParameterDecl:
    name: str
    value: float
    learnable: bool = False
    positive: bool = False
    per_layer: bool = False
    basis: tuple[str, int] | None = None  # (kind, K): value(t) = Σ_k c_k P_k(s(t))

    @property
    def coefficients(self) -> tuple[float, ...] | None:
        """The basis coefficients it starts from, (value, 0, …, 0); None without a basis."""
        return None if self.basis is None else (self.value,) + (0.0,) * (self.basis[1] - 1)


@dataclass(frozen=True)
class NormSpec:
    kind: str  # layernorm | rmsnorm | none
    placement: str  # pre | post
    eps: float
    final: bool
    affine: bool
    terms: tuple[str, ...] | None  # None: every term with a learned operator


@dataclass(frozen=True)
class Stabilizers:
    residual: bool
    norm: NormSpec


@dataclass(frozen=True)
class TimeSpec:
    span: tuple[float, float]
    layers: int
    substeps: int
    scheme: str
    split_order: tuple[str, ...] | None
    implicit: tuple[str, ...] = ()  # terms the scheme treats implicitly
    tied: bool = False  # one weight set for every layer

    @property
    def steps(self) -> int:
        return self.layers * self.substeps

    @property
    def dt(self) -> float:
        """Δt = (t1 − t0) / (layers × substeps)."""
        return (self.span[1] - self.span[0]) / self.steps


@dataclass(frozen=True)
class SourceString:
    """A string from the spec with the location of each of its characters."""

    text: str
    location: SourceLocation
    origin: TextOrigin | None = None

    def locate(self, offset: int, length: int = 1) -> SourceLocation:
        if self.origin is None:
            return self.location.shifted(offset, length)
        return self.origin.locate(offset, self.text, length)


@dataclass(frozen=True)
class Spec:
    """A validated spec.  Immutable; build a changed copy with overrides instead."""

    file: str
    sha256: str
    name: str
    description: str
    grid: Grid
    field: FieldDecl
    parameters: Mapping[str, ParameterDecl]
    terms: Mapping[str, SourceString]
    equation: SourceString
    stabilizers: Stabilizers
    time: TimeSpec
    accuracy: Mapping[str, int]  # discretized operator → accuracy order
    init: Init | None = None  # the spec's initial condition, if it names one
    locations: Mapping[str, SourceLocation] = field(default_factory=dict, repr=False)
    raw: Mapping = field(default_factory=dict, repr=False)  # validated plain values

    def where(self, path: str) -> SourceLocation | None:
        """Location of the value at a dotted path, or of the closest enclosing value."""
        while path:
            if path in self.locations:
                return self.locations[path]
            path = path.rsplit(".", 1)[0] if "." in path else ""
        return self.locations.get("")

    @property
    def class_name(self) -> str:
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("_")) + "Stepper"


def frozen_mapping(items: dict) -> Mapping:
    return MappingProxyType(dict(items))
