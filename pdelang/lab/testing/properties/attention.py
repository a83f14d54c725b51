"""(f) Attention maps: rows are probability distributions, causal attention gives the
future no weight, Sinkhorn attention is doubly stochastic."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pdelang.lab.testing.properties.results import PropertyResult, make_result


# ----------------------------------------------------------------------------- (f) attention
def check_attention_maps(maps: Iterable[np.ndarray], *, causal: bool = False,
                         kernel: str = "softmax", mask: np.ndarray | None = None,
                         rtol: float = 1e-10, sinkhorn_tol: float = 1e-4,
                         name: str = "attention_maps") -> PropertyResult:
    """(f) Each map ``(B, H, N, N)`` (rows = queries): entries ≥ 0; every real query's row
    sums to 1; padding keys get no weight; with ``causal`` no query attends a later token;
    with the Sinkhorn kernel (not causal) the columns of real keys also sum to 1 within
    ``sinkhorn_tol`` (and padding queries get all-zero rows)."""
    problems = []
    count = 0
    for index, p in enumerate(maps):
        p = np.asarray(p, dtype=np.float64)
        count += 1
        batch, _heads, n, _ = p.shape
        real = np.ones((batch, n), dtype=bool) if mask is None else np.asarray(mask, bool)
        if np.min(p) < -rtol:
            problems.append(f"map {index}: negative weight {np.min(p):.3g}")
        rows = p.sum(axis=-1)  # (B, H, N)
        q = np.broadcast_to(real[:, None, :], rows.shape)
        row_error = float(np.max(np.abs(rows[q] - 1.0))) if q.any() else 0.0
        if row_error > rtol:
            problems.append(f"map {index}: a real query's row sums to 1 ± {row_error:.3g}")
        padded_keys = np.broadcast_to(~real[:, None, None, :], p.shape)
        if padded_keys.any() and np.max(np.abs(p[padded_keys])) > rtol:
            problems.append(f"map {index}: a padding key gets weight "
                            f"{np.max(np.abs(p[padded_keys])):.3g}")
        if causal:
            future = np.triu(np.ones((n, n), dtype=bool), 1)
            leak = float(np.max(np.abs(p[..., future]))) if future.any() else 0.0
            if leak > rtol:
                problems.append(f"map {index}: weight {leak:.3g} on a future token")
        if kernel == "sinkhorn" and not causal:
            weights = p * real[:, None, :, None]
            cols = weights.sum(axis=-2)  # (B, H, N) over real queries
            k = np.broadcast_to(real[:, None, :], cols.shape)
            col_error = float(np.max(np.abs(cols[k] - 1.0))) if k.any() else 0.0
            if col_error > sinkhorn_tol:
                problems.append(f"map {index}: a column sums to 1 ± {col_error:.3g} "
                                f"(Sinkhorn tolerance {sinkhorn_tol:g})")
            pad_q = np.broadcast_to(~real[:, None, :, None], p.shape)
            if pad_q.any() and np.max(np.abs(p[pad_q])) > rtol:
                problems.append(f"map {index}: a padding query has non-zero weights")
    if count == 0:
        return make_result(name, False, "no attention map to check")
    return make_result(name, not problems, "; ".join(problems[:4]) or
                   f"{count} map(s): rows are distributions" + (", causal" if causal else "")
                   + (", doubly stochastic" if kernel == "sinkhorn" and not causal else ""),
                   maps=count, problems=problems[:10])
