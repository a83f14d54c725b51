"""The legacy phase diagram's grid (``pdelang phase --recipe legacy``): depths × learning
rates × norms × residual × depth scaling from the command line, with located errors, and
the ablation variants of its cells."""

from __future__ import annotations
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from pdelang.lab.ablation.options import option_items
from pdelang.errors import OverrideError, PdelangError, SourceLocation
from pdelang.compiler.spec.load import load_spec

__all__ = [
    "DEFAULT_DEPTHS",
    "DEFAULT_LRS",
    "DEFAULT_NORMS",
    "DEFAULT_RESIDUALS",
    "DEPTH_SCALINGS",
    "LAYERS_KEY",
    "LR_KEY",
    "NORM_KEY",
    "QUICK_EVAL_EXAMPLES",
    "QUICK_GRID",
    "RESIDUAL_KEY",
    "SPAN_KEY",
    "PhaseGrid",
    "check_grid",
    "grid_number",
    "parse_grid",
    "phase_variants",
]


DEFAULT_DEPTHS = (6, 12, 24, 48)


DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


DEFAULT_NORMS = ("layernorm", "rmsnorm", "none")


DEFAULT_RESIDUALS = (True, False)


DEPTH_SCALINGS = ("step", "time")


NORM_KEY, RESIDUAL_KEY, LR_KEY = "stabilizers.norm.kind", "stabilizers.residual", "train.lr"


LAYERS_KEY, SPAN_KEY = "time.layers", "time.span"


_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass(frozen=True)
class PhaseGrid:
    """The axes of the phase diagram."""

    depths: tuple[int, ...] = DEFAULT_DEPTHS
    lrs: tuple[float, ...] = DEFAULT_LRS
    norms: tuple[str, ...] = DEFAULT_NORMS
    residuals: tuple[bool, ...] = DEFAULT_RESIDUALS
    depth_scaling: str = "step"

    @property
    def cells(self) -> int:
        return len(self.depths) * len(self.lrs) * len(self.norms) * len(self.residuals)


QUICK_GRID = PhaseGrid(depths=(3, 6), lrs=(1e-3, 1e-2), norms=("layernorm", "none"),
                       residuals=(True,))


QUICK_EVAL_EXAMPLES = 64


def _unique(option: str, values: list, where: list[SourceLocation]) -> tuple:
    seen = set()
    for value, location in zip(values, where):
        if value in seen:
            raise OverrideError(f"{option}: {value} is listed twice", location,
                                "list each value once")
        seen.add(value)
    return tuple(values)


def _numbers(option: str, text: str, kind, valid, what: str, example: str) -> tuple:
    """The numbers of ``--option TEXT`` (``kind`` int or float, each ``valid``), every bad
    one an :class:`OverrideError` at its place in the option."""
    items = option_items(option, text)
    values = []
    for item, where in items:
        try:
            value = kind(item)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise OverrideError(f"{option}: '{item}' is not {what}", where, example)
        values.append(value)
    return _unique(option, values, [w for _, w in items])


def parse_grid(depths: str | None = None, lrs: str | None = None, norms: str | None = None,
               residuals: str | None = None, depth_scaling: str = "step", *,
               quick: bool = False) -> PhaseGrid:
    """The grid of ``--depths 6,12 --lrs 1e-4,1e-2 --norms layernorm,none --residual on,off``
    (``None``: the default axis, or with ``quick`` the axis of :data:`QUICK_GRID`); a bad
    value is an :class:`OverrideError` located in its option's text.  Norm kinds are checked
    against the spec by :func:`check_grid`."""
    grid = QUICK_GRID if quick else PhaseGrid()
    grid = PhaseGrid(grid.depths, grid.lrs, grid.norms, grid.residuals, depth_scaling)
    if depth_scaling not in DEPTH_SCALINGS:
        raise PdelangError(f"--depth-scaling {depth_scaling}: unknown",
                           suggestion="step (add layers of the spec's Δt) or time (keep the "
                                      "span, Δt = span / depth)")
    fields: dict[str, Any] = {}
    if depths is not None:
        fields["depths"] = _numbers("--depths", depths, int, lambda v: v >= 1,
                                    "a whole number of layers, at least 1",
                                    "e.g. --depths 6,12,24,48")
    if lrs is not None:
        fields["lrs"] = _numbers("--lrs", lrs, float, lambda v: math.isfinite(v) and v > 0,
                                 "a positive learning rate", "e.g. --lrs 1e-4,1e-3,1e-2")
    if norms is not None:
        items = option_items("--norms", norms)
        fields["norms"] = _unique("--norms", [t for t, _ in items], [w for _, w in items])
    if residuals is not None:
        items = option_items("--residual", residuals)
        values = []
        for text, where in items:
            if text.lower() not in _TRUE + _FALSE:
                raise OverrideError(f"--residual: '{text}' is neither on nor off", where,
                                    "--residual on,off (or true,false)")
            values.append(text.lower() in _TRUE)
        fields["residuals"] = _unique("--residual", values, [w for _, w in items])
    return PhaseGrid(**{**grid.__dict__, **fields})


def check_grid(spec: str, grid: PhaseGrid, base: Sequence[str] = (),
               norms_text: str | None = None) -> None:
    """Every norm kind must be one the spec schema accepts: an unknown one is an
    :class:`OverrideError` located in ``--norms`` (``norms_text``, as given) before anything
    runs.  (Errors of a combination — a spec that does not compile at some depth — are the
    cells' to report.)"""
    where = dict(option_items("--norms", norms_text)) if norms_text is not None else {}
    for norm in grid.norms:
        try:
            load_spec(spec, [*base, f"{NORM_KEY}={norm}"])
        except PdelangError as exc:
            if exc.location is None or exc.location.file != "<--set>":
                raise
            message = exc.message.removeprefix(f"--set {NORM_KEY}={norm}: ")
            raise OverrideError(f"--norms: {norm}: {message}", where.get(norm),
                                exc.suggestion) from None


def grid_number(value: float) -> str:
    """A float as the shortest text that reads back as it (``1e-4``, ``0.003``)."""
    return repr(float(value)).replace("e-0", "e-").replace("e+0", "e+")


def phase_variants(spec, grid: PhaseGrid) -> list[dict[str, str]]:
    """One variant (``--set``-style key → value) per cell of ``grid``, the deepest first.

    ``spec``: the loaded base spec (its time span and layers give Δt).  The deepest cells
    come first because they take longest: a queue that starts its longest tasks first ends
    soonest when there are more tasks than workers (the longest-processing-time rule)."""
    t0, t1 = spec.time.span
    step = (t1 - t0) / spec.time.layers
    variants = []
    for depth in sorted(grid.depths, reverse=True):
        end = t0 + depth * step if grid.depth_scaling == "step" else t1
        for residual in grid.residuals:
            for norm in grid.norms:
                for lr in grid.lrs:
                    variants.append({LAYERS_KEY: str(depth),
                                     SPAN_KEY: f"[{grid_number(t0)}, {grid_number(end)}]",
                                     RESIDUAL_KEY: "true" if residual else "false",
                                     NORM_KEY: norm, LR_KEY: grid_number(lr)})
    return variants
