"""Sinkhorn attention → heat diffusion (Sander, Ablin, Blondel and Peyré, "Sinkformers:
Transformers with doubly stochastic attention", AISTATS 2022, arXiv 2110.11773).

The spec ``sinkhorn.yaml`` is one rescaled Sinkformer layer as a vector field,
dt(u) = (A[u] − u)/ε, with A pdelang's ``attention(kernel=sinkhorn_symmetric)``. Channel 0
of u holds the token positions x_i (a uniform or a stretched grid of [0, 1]), channel 1 a
field f(x_i). This script sets the weights W_Q = W_K = (√(2/ε), 0), W_V = W_O = I: the
scores are 2 x_i x_j/ε and the doubly stochastic P equals that of the Gaussian kernel
e^{−(x_i − x_j)²/ε} (the Sinkhorn scalings absorb e^{x_i²/ε} e^{x_j²/ε}). It evaluates the
generated module's vector field (``rate``) in float64 and compares it with the predicted
limit, ``heat.yaml``: dt(u) = ¼ laplace(u) (derivation in the README).

    python examples/sinkhorn_diffusion/run.py [--out DIR]

Writes ``results.json`` and ``sinkhorn_diffusion.png`` in DIR (default: this folder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "sinkhorn.yaml"
HEAT = HERE / "heat.yaml"
EPSILONS = (4e-3, 2e-3, 1e-3, 5e-4, 2.5e-4)
TOKENS = 512
K = 2 * math.pi  # f(x) = sin(K x)
INTERIOR = (0.25, 0.75)  # compared points: ≥ 0.25 from the ends (≥ 5.5 kernel widths √(ε/2))
STRETCH = 0.3  # the non-uniform grid x = s − a sin(2πs)/(2π): density 1/(1 − a cos 2πs)
_CLASSES: dict[tuple, type] = {}


def model(kernel: str, tokens: int, iterations: int = 60):
    """An instance (float64) of the generated Sinkformer layer with this kernel."""
    import pdelang

    key = (kernel, tokens, iterations)
    if key not in _CLASSES:
        _CLASSES[key] = pdelang.build(SPEC, [
            f"terms.sinkformer=(attention(u, kernel={kernel}, iterations={iterations}, "
            f"bias=false, rank=1) - u) / eps", f"grid.spacing={1.0 / tokens!r}"])
    return _CLASSES[key]().double()


def set_weights(layer, eps: float) -> None:
    """W_Q = W_K = (√(2/ε), 0): scores 2 x_i x_j/ε; W_V = W_O = I; the spec's ε."""
    import torch

    state = layer.state_dict()
    scale = math.sqrt(2.0 / eps)
    qk = torch.tensor([[scale, 0.0]], dtype=torch.float64)
    state["shared.eps"].fill_(eps)
    for name, value in (("q", qk), ("k", qk), ("v", torch.eye(2)), ("o", torch.eye(2))):
        state[f"layers.0.sinkformer_attention.{name}.weight"].copy_(value)


def grid(tokens: int, stretch: float = 0.0):
    """Token positions x_i = φ(s_i), s_i = (i + ½)/N, φ(s) = s − a sin(2πs)/(2π), and
    (log ρ)'(x_i) of their density ρ(φ(s)) = 1/φ'(s) = 1/(1 − a cos 2πs)."""
    import numpy as np

    s = (np.arange(tokens) + 0.5) / tokens
    x = s - stretch * np.sin(2 * np.pi * s) / (2 * np.pi)
    dphi = 1 - stretch * np.cos(2 * np.pi * s)
    dlogrho = -(2 * np.pi * stretch * np.sin(2 * np.pi * s)) / dphi**2  # d/dx(−log φ'(s))
    return x, dlogrho


def layer_field(kernel: str, eps: float, tokens: int = TOKENS, stretch: float = 0.0,
                iterations: int = 60) -> dict:
    """The generated layer's vector field at u = (x, sin(Kx)) and its attention map's
    marginal errors (rows are normalized last: exact up to roundoff)."""
    import numpy as np
    import torch

    x, dlogrho = grid(tokens, stretch)
    u = torch.tensor(np.stack([x, np.sin(K * x)], axis=-1), dtype=torch.float64)[None]
    layer = model(kernel, tokens, iterations)
    set_weights(layer, eps)
    with torch.no_grad():
        rate = layer.rate(0.0, u)[0].numpy()
        p = layer(u, return_attention=True).attentions[0][0, 0]  # (N, N)
    return {"x": x, "dlogrho": dlogrho, "velocity": rate[:, 0], "Lf": rate[:, 1],
            "column_error": float((p.sum(0) - 1).abs().max()),
            "row_error": float((p.sum(1) - 1).abs().max())}


def heat_field(tokens: int = TOKENS):
    """heat.yaml's vector field ¼ laplace(u) (4th-order differences) at u = (x, sin(Kx)) on the
    uniform grid."""
    import numpy as np
    import pdelang
    import torch

    x, _ = grid(tokens)
    stepper = pdelang.build(HEAT, [f"grid.spacing={1.0 / tokens!r}"])().double()
    u = torch.tensor(np.stack([x, np.sin(K * x)], axis=-1), dtype=torch.float64)[None]
    with torch.no_grad():
        return stepper.rate(0.0, u)[0].numpy()[:, 1]


def exact_coefficient(eps: float) -> float:
    """c(ε) for the Gaussian kernel on the whole line: P sin(Kx) = e^{−εK²/4} sin(Kx), so
    (P f − f)/ε = −c(ε) K² f with c(ε) = (1 − e^{−εK²/4})/(εK²) = ¼ − εK²/32 + O(ε²)."""
    return -math.expm1(-eps * K * K / 4) / (eps * K * K)


def fitted_coefficient(field: dict) -> float:
    """Least-squares c in (P f − f)/ε ≈ c f'' over the interior points, f = sin(Kx)."""
    import numpy as np

    x = field["x"]
    inside = (x >= INTERIOR[0]) & (x <= INTERIOR[1])
    second = -K * K * np.sin(K * x[inside])
    return float(field["Lf"][inside] @ second / (second @ second))


def orders(errors):
    return [math.log2(a / b) for a, b in itertools.pairwise(errors)]


def uniform_study(kernel: str = "sinkhorn_symmetric", epsilons=EPSILONS, tokens: int = TOKENS,
                  iterations: int = 60, heat: bool = True) -> dict:
    """The constant on the uniform grid across the ε ladder."""
    import numpy as np

    rows = []
    reference = heat_field(tokens) if heat else None
    for eps in epsilons:
        field = layer_field(kernel, eps, tokens, 0.0, iterations)
        c = fitted_coefficient(field)
        row = {"eps": eps, "coefficient": c, "exact": exact_coefficient(eps),
               "error_vs_limit": c - 0.25, "error_vs_exact": c - exact_coefficient(eps),
               "column_error": field["column_error"], "row_error": field["row_error"]}
        if reference is not None:
            x = field["x"]
            inside = (x >= INTERIOR[0]) & (x <= INTERIOR[1])
            row["heat_spec_relative_gap"] = float(
                np.abs(field["Lf"][inside] - reference[inside]).max()
                / np.abs(reference[inside]).max())
        rows.append(row)
    result = {"kernel": kernel, "tokens": tokens, "iterations": iterations, "rows": rows,
              "orders": orders([abs(r["error_vs_limit"]) for r in rows])}
    if heat:
        result["heat_spec_orders"] = orders([r["heat_spec_relative_gap"] for r in rows])
    return result


def stretched_study(epsilons=EPSILONS, tokens: int = TOKENS, stretch: float = STRETCH) -> dict:
    """Non-uniform density: the position channel's (P x − x)/ε against ¼ (log ρ)', and the
    field channel against ¼ (f'' + (log ρ)' f') (relative max errors over the interior)."""
    import numpy as np

    rows = []
    for eps in epsilons:
        field = layer_field("sinkhorn_symmetric", eps, tokens, stretch)
        x, g = field["x"], field["dlogrho"]
        inside = (x >= INTERIOR[0]) & (x <= INTERIOR[1])
        drift = 0.25 * g
        weighted = 0.25 * (-K * K * np.sin(K * x) + g * K * np.cos(K * x))
        rows.append({
            "eps": eps,
            "velocity_relative_error": float(np.abs(field["velocity"] - drift)[inside].max()
                                             / np.abs(drift[inside]).max()),
            "field_relative_error": float(np.abs(field["Lf"] - weighted)[inside].max()
                                          / np.abs(weighted[inside]).max()),
            "column_error": field["column_error"]})
    return {"stretch": stretch, "rows": rows,
            "velocity_orders": orders([r["velocity_relative_error"] for r in rows]),
            "field_orders": orders([r["field_relative_error"] for r in rows])}


def verdicts(results: dict) -> dict:
    """The decision rules of the README, applied."""
    main = results["uniform"]["rows"]
    softmax = results["control_softmax"]["rows"]
    alternating = results["control_alternating"]["rows"]
    stretched = results["stretched"]
    checks = {
        "coefficient_matches_gaussian_multiplier": all(
            abs(r["error_vs_exact"]) <= 1e-5 for r in main),
        "coefficient_to_one_quarter": abs(main[-1]["error_vs_limit"]) <= 1e-3,
        "order_one": all(0.9 <= p <= 1.1 for p in results["uniform"]["orders"]),
        "marginals": all(r["column_error"] <= 1e-9 and r["row_error"] <= 1e-12
                         for r in main),
        "heat_spec_order_one": all(0.9 <= p <= 1.1
                                   for p in results["uniform"]["heat_spec_orders"]),
        "stretched_velocity": stretched["rows"][-1]["velocity_relative_error"] <= 0.05
        and all(0.8 <= p <= 1.2 for p in stretched["velocity_orders"][-2:]),
        "stretched_field": stretched["rows"][-1]["field_relative_error"] <= 0.05
        and all(0.8 <= p <= 1.2 for p in stretched["field_orders"][-2:]),
        "control_softmax_fails": all(abs(r["error_vs_limit"]) > 1.0
                                     for r in softmax if r["eps"] <= 1e-3),
        "control_wrong_constant_rejected": abs(main[-1]["coefficient"] - 0.5) > 0.2,
        "control_alternating_unconverged": all(r["column_error"] > 1e-3
                                               for r in alternating if r["eps"] <= 1e-3),
    }
    return {name: "pass" if ok else "FAIL" for name, ok in checks.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    results = {
        "prediction": "(P f − f)/ε → ¼ f'' (Gaussian kernel e^{−(x−y)²/ε}, doubly stochastic P)",
        "source": "Sander, Ablin, Blondel, Peyré, Sinkformers, AISTATS 2022, arXiv 2110.11773",
        "uniform": uniform_study(),
        "stretched": stretched_study(),
        "control_softmax": uniform_study("softmax", heat=False),
        "control_alternating": uniform_study("sinkhorn", heat=False),
    }
    results["verdicts"] = verdicts(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    figure(results, args.out / "sinkhorn_diffusion.png")
    return results


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    eps = [r["eps"] for r in results["uniform"]["rows"]]
    ax = axes[0]
    ax.loglog(eps, [abs(r["error_vs_limit"]) for r in results["uniform"]["rows"]], "o-",
              label="Sinkhorn (symmetric): |c − ¼|")
    ax.loglog(eps, [abs(r["error_vs_limit"]) for r in results["control_softmax"]["rows"]],
              "s--", label="softmax, same scores: |c − ¼|")
    ax.loglog(eps, [abs(r["error_vs_limit"]) for r in results["control_alternating"]["rows"]],
              "^:", label="Sinkhorn (alternating, 60 it.): |c − ¼|")
    ax.loglog(eps, [e * K * K / 32 for e in eps], "k-", lw=0.8, label="εK²/32 (predicted)")
    ax.set_xticks(eps, [f"{e:g}" for e in eps], minor=False)
    ax.minorticks_off()
    ax.set_xlabel("ε")
    ax.set_title("fitted constant c of (Pf − f)/ε ≈ c f''")
    ax.legend(fontsize=7)
    ax = axes[1]
    field = layer_field("sinkhorn_symmetric", 1e-3)
    ax.plot(field["x"], field["Lf"], label="pdelang: (Pf − f)/ε, ε = 1e-3")
    ax.plot(field["x"], heat_field(), "--", label="heat.yaml: ¼ laplace(f)")
    ax.axvspan(*INTERIOR, color="0.9", label="compared interior")
    ax.set_ylim(-1.5 * K * K / 4, 1.5 * K * K / 4)  # the ends (boundary layers) run off
    ax.set_xlabel("x")
    ax.set_title("uniform grid, f = sin 2πx")
    ax.legend(fontsize=7)
    ax = axes[2]
    field = layer_field("sinkhorn_symmetric", 2.5e-4, stretch=STRETCH)
    ax.plot(field["x"], field["velocity"], label="(Px − x)/ε, ε = 2.5e-4")
    ax.plot(field["x"], 0.25 * field["dlogrho"], "--", label="¼ (log ρ)'")
    ax.axvspan(*INTERIOR, color="0.9")
    ax.set_ylim(-1.2, 1.2)  # the ends (boundary layers) run off
    ax.set_xlabel("x")
    ax.set_title(f"stretched grid (a = {STRETCH}): token drift")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(main()["verdicts"], indent=2))
