"""Smooth test fields whose symmetry matches each boundary's ghost rule.

A centred stencil reaches its full order up to the boundary only on fields whose extension
by the ghost rule is itself smooth.  For each rule the field below is smooth across the
boundary *because* it has the symmetry the rule imposes (grid positions ``i = 0 … n−1``,
coordinate ``x = i h``):

=========  ========================================  ==========================================
boundary   ghost rule                                test field (per axis)
=========  ========================================  ==========================================
periodic   ``u_{−j} = u_{n−j}``                      ``sin(ωx + φ)``, ``ω = 2πm/(nh)``
neumann    even about the end tokens, ``u_{−j}=u_j``  ``cos(ωx)``, ``ω = πm/((n−1)h)``: even
                                                     about ``x = 0`` and ``x = (n−1)h``
dirichlet  zero at ``x = −h`` and ``x = nh``, odd     ``sin(ω(x + h))``, ``ω = πm/((n+1)h)``:
           about those points                        odd about ``x = −h`` and ``x = nh``
copy       odd about the end tokens,                 ``a + b x/((n−1)h) + sin(ωx)``,
           ``u_{−j} = 2u_0 − u_j``                    ``ω = πm/((n−1)h)``: ``u − u_end`` is odd
                                                     about both end tokens
=========  ========================================  ==========================================

In 2-D the field is the product of two such profiles (plus a constant for ``copy``).  With
``copy`` the end (border) tokens are held fixed, so the rate is compared on the interior only.
The *resolution* ``θ = ωh`` (radians per grid spacing) is what a refinement study varies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FieldSample", "Profile", "profile", "resolution_sizes", "smooth_field", "theta_of"]


@dataclass(frozen=True)
class Profile:
    """A 1-D profile: ``value(k)`` is its k-th derivative (k = 0: the values) on the grid."""

    boundary: str
    n: int
    h: float
    m: int
    phase: float = 0.0
    offset: float = 0.0  # a (copy)
    slope: float = 0.0  # b (copy)

    @property
    def omega(self) -> float:
        L = {"periodic": self.n / 2.0, "neumann": self.n - 1.0, "copy": self.n - 1.0,
             "dirichlet": self.n + 1.0}[self.boundary]
        return math.pi * self.m / (L * self.h)

    @property
    def theta(self) -> float:
        return self.omega * self.h

    def value(self, k: int = 0) -> np.ndarray:
        x = np.arange(self.n) * self.h
        w = self.omega
        shift = k * math.pi / 2
        if self.boundary == "periodic":
            return w**k * np.sin(w * x + self.phase + shift)
        if self.boundary == "neumann":
            return w**k * np.cos(w * x + shift)
        if self.boundary == "dirichlet":
            return w**k * np.sin(w * (x + self.h) + shift)
        length = (self.n - 1) * self.h
        out = w**k * np.sin(w * x + shift)
        if k == 0:
            out = out + self.offset + self.slope * x / length
        elif k == 1:
            out = out + self.slope / length
        return out


def profile(boundary: str, n: int, h: float = 1.0, m: int = 1, seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    return Profile(boundary, n, h, m, phase=float(rng.uniform(0, 2 * math.pi)),
                   offset=float(rng.uniform(-1, 1)), slope=float(rng.uniform(-1, 1)))


def theta_of(boundary: str, n: int, m: int) -> float:
    return Profile(boundary, n, 1.0, m).theta


def resolution_sizes(boundary: str, m: int, thetas=(0.42, 0.33, 0.26, 0.2)) -> list[int]:
    """Grid sizes n at which mode m is resolved with θ ≈ each target."""
    base = {"periodic": 2 * math.pi * m, "neumann": math.pi * m, "copy": math.pi * m,
            "dirichlet": math.pi * m}[boundary]
    corr = {"periodic": 0, "neumann": 1, "copy": 1, "dirichlet": -1}[boundary]
    sizes = []
    for theta in thetas:
        n = round(base / theta) + corr
        if sizes and n <= sizes[-1]:
            n = sizes[-1] + 1
        sizes.append(n)
    return sizes


@dataclass(frozen=True)
class FieldSample:
    """Grid values, the exact derivative the operator approximates, and where to compare."""

    values: np.ndarray  # grid shape: (n,) or (rows, cols)
    exact: np.ndarray  # same shape
    compare: np.ndarray  # bool, same shape
    theta: float  # the coarsest resolution ωh over the axes

    def as_state(self, extra_tokens: int = 0) -> np.ndarray:
        """The values as a state (1, extra + tokens, 1) (extra tokens are zero)."""
        flat = self.values.reshape(1, -1, 1)
        if extra_tokens:
            flat = np.concatenate([np.zeros((1, extra_tokens, 1)), flat], axis=1)
        return flat


def smooth_field(boundary: str, shape: tuple[int, ...], derivative: int,
               axes: tuple[int, ...], h: float = 1.0, modes: tuple[int, ...] = (1,),
               seed: int = 0) -> FieldSample:
    """A smooth field for ``boundary`` on a grid of ``shape`` and the exact value of
    ``Σ_{a ∈ axes} ∂^k/∂x_a^k`` of it (k = ``derivative``).  ``modes`` gives the mode
    number per axis (the last one repeats)."""
    dims = len(shape)
    modes = tuple(modes) + (modes[-1],) * (dims - len(modes))
    profiles = [profile(boundary, n, h, m, seed + 7 * a) for a, (n, m) in
                enumerate(zip(shape, modes))]
    if dims == 1:
        p = profiles[0]
        values, exact = p.value(0), p.value(derivative)
        compare = np.ones(shape, dtype=bool)
        if boundary == "copy":
            compare[0] = compare[-1] = False
        return FieldSample(values, exact, compare, p.theta)
    px, py = profiles
    values = np.outer(px.value(0), py.value(0))
    exact = np.zeros(shape)
    if 0 in axes:
        exact = exact + np.outer(px.value(derivative), py.value(0))
    if 1 in axes:
        exact = exact + np.outer(px.value(0), py.value(derivative))
    compare = np.ones(shape, dtype=bool)
    if boundary == "copy":
        # product of odd profiles plus a constant: u − u_border is odd about every border
        px0 = Profile("copy", px.n, h, px.m)
        py0 = Profile("copy", py.n, h, py.m)
        values = px.offset + np.outer(px0.value(0), py0.value(0))
        exact = np.zeros(shape)
        if 0 in axes:
            exact = exact + np.outer(px0.value(derivative), py0.value(0))
        if 1 in axes:
            exact = exact + np.outer(px0.value(0), py0.value(derivative))
        compare[0, :] = compare[-1, :] = compare[:, 0] = compare[:, -1] = False
    return FieldSample(values, exact, compare, max(px.theta, py.theta))
