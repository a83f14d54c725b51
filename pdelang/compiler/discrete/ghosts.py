"""The grid's boundary rules as ghost values on NumPy arrays (float64): what the generated
``with_ghosts`` does in torch, written independently for the NumPy oracle
(:mod:`pdelang.interpreters.numpy_oracle`) and the operators' ``numpy_eval``."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["BOUNDARIES", "extend_with_ghosts", "ghost_table"]

BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")


@lru_cache(maxsize=4096)
def ghost_table(n: int, r: int, boundary: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """How to read a 1-D grid function ``g_0 … g_{n−1}`` at positions ``−r … n−1+r``.

    Returns ``(index, sign, first, last)``, arrays of length ``n + 2r`` such that the value at
    position ``p`` is ``sign·g[index] + first·g[0] + last·g[n−1]``:

    * periodic:  ``g_p = g_{p mod n}``;
    * neumann:   even mirror about the end tokens, ``g_{−j} = g_j``, ``g_{n−1+j} = g_{n−1−j}``;
    * dirichlet: ``g = 0`` one spacing beyond each end (positions −1 and n), odd mirror
      about those points further out: ``g_{−1−j} = −g_{j−1}``, ``g_{n+j} = −g_{n−j}``;
    * copy:      odd mirror about the end tokens, ``g_{−j} = 2g_0 − g_j``,
      ``g_{n−1+j} = 2g_{n−1} − g_{n−1−j}``.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}")
    if n < 1:
        raise ValueError("a grid needs at least one token")
    if boundary in ("neumann", "copy") and r >= n:
        raise ValueError(f"{boundary}: a radius-{r} stencil needs more than {r} tokens, got {n}")
    if boundary == "dirichlet" and r > n + 1:
        raise ValueError(f"dirichlet: a radius-{r} stencil needs ≥ {r - 1} tokens, got {n}")
    size = n + 2 * r
    index = np.zeros(size, dtype=np.int64)
    sign = np.ones(size)
    first = np.zeros(size)
    last = np.zeros(size)
    for slot, p in enumerate(range(-r, n + r)):
        if 0 <= p < n:
            index[slot] = p
        elif boundary == "periodic":
            index[slot] = p % n
        elif boundary == "neumann":
            index[slot] = -p if p < 0 else 2 * (n - 1) - p
        elif boundary == "dirichlet":
            if p in (-1, n):
                sign[slot] = 0.0
            elif p < -1:
                index[slot], sign[slot] = -2 - p, -1.0
            else:
                index[slot], sign[slot] = 2 * n - p, -1.0
        else:  # copy
            sign[slot] = -1.0
            if p < 0:
                index[slot], first[slot] = -p, 2.0
            else:
                index[slot], last[slot] = 2 * (n - 1) - p, 2.0
    for array in (index, sign, first, last):
        array.setflags(write=False)
    return index, sign, first, last


def extend_with_ghosts(g: np.ndarray, axis: int, r: int, boundary: str) -> np.ndarray:
    """``g`` with ``r`` ghost values on each side along ``axis`` (see :func:`ghost_table`)."""
    g = np.moveaxis(np.asarray(g, dtype=np.float64), axis, 0)
    n = g.shape[0]
    index, sign, first, last = ghost_table(n, r, boundary)
    shape = (-1,) + (1,) * (g.ndim - 1)
    out = sign.reshape(shape) * g[index]
    if boundary == "copy":
        out = out + first.reshape(shape) * g[0] + last.reshape(shape) * g[n - 1]
    return np.moveaxis(out, 0, axis)
