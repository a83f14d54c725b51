"""The derived constants the generated module holds as literals, checked to be finite.

The printer writes numbers derived from the spec into the module: ``DT``, ``T0``, every
stencil's weights divided by h^k, the parameters' values, the norm's eps.  ``repr(inf)`` is the
bare name ``inf`` (a NameError on import) and a NaN weight silently poisons every step, so a
constant that float64 cannot hold is a user error located at the spec value it comes from,
raised before anything is written.  (Δt and the spacing's powers are refused earlier still,
when the spec loads and when the stencils are derived; this check covers what only the
discrete model knows, e.g. a weight 6/h⁴ that overflows although h⁴ itself is a normal
float64.)
"""

from __future__ import annotations

import math
import sys

from pdelang.errors import SpecError


def check_constants(spec, model) -> None:
    """Refuse a non-finite constant of the discrete ``model`` that the printer would write."""
    if not math.isfinite(model.dt) or model.dt == 0:
        raise SpecError(f"Δt = {model.dt!r} is not a finite, non-zero float64",
                        spec.where("time.span"), "change 'time.span', 'time.layers' or "
                        "'time.substeps' so that (t1 − t0) / (layers × substeps) is finite")
    if not math.isfinite(model.t0):
        raise SpecError(f"t0 = {model.t0!r} is not finite", spec.where("time.span"),
                        "give 'time.span' finite bounds")
    for stencil in model.stencils.values():
        with_overflow = _scaled_weights(stencil)
        if all(math.isfinite(w) for w in with_overflow):
            continue
        largest = max(abs(float(w)) for w in stencil.weights)
        k = stencil.derivative
        low = (largest / sys.float_info.max) ** (1 / k)
        name = stencil.attribute or stencil.key
        raise SpecError(f"grid.spacing {stencil.spacing!r}: the stencil '{name}' "
                        f"({stencil.key}, accuracy {stencil.accuracy}) has a weight "
                        f"{largest:g}/h^{k} that overflows float64",
                        spec.where("grid.spacing"),
                        f"use a spacing above {low * (1 + 1e-12):.3g} (rescale the "
                        "coefficients instead)")
    for p in model.parameters:
        if not math.isfinite(float(p.value)):
            raise SpecError(f"parameter '{p.name}' has the non-finite value {p.value!r}",
                            spec.where(f"parameters.{p.name}"), "give a finite value")
    if not math.isfinite(float(model.norm.eps)):
        raise SpecError(f"the norm's eps {model.norm.eps!r} is not finite",
                        spec.where("stabilizers.norm.eps"), "e.g. eps: 1.0e-5")


def _scaled_weights(stencil) -> list[float]:
    """The weights the module holds, w / h^k (an overflow read as infinity)."""
    try:
        return [float(w) for w in stencil.scaled_weights()]
    except (OverflowError, ZeroDivisionError):
        return [math.inf]


__all__ = ["check_constants"]
