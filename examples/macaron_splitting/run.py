"""Lie vs Strang (Macaron) splitting on a real model's weights (Lu et al. 2019, arXiv
1906.02762): a numerical property of the schemes on MiniLM's layer-0 weights, not a claim
about the network.

One MiniLM layer in the pre-LN formulation, dt(u) = R(LN u) + A(LN u) on t ∈ [0, 1]
(MiniLM itself is post-LN: its post-step norm is not part of a smooth flow, so the order
study uses the norm inside the vector field), from the embeddings of real sentences
(no padding). Two studies against a reference solution (rk4, 512 steps):

1. **exact sub-flows**: Lie  [Φ_A(h) Φ_R(h)]^K  and Strang  [Φ_R(h/2) Φ_A(h) Φ_R(h/2)]^K,
   h = 1/K, with every sub-flow Φ computed by the generated rk4 stepper of
   ``minilm_flows.yaml`` (64 rk4 steps per sub-flow: exact to far below the splitting error);
2. **pdelang's own schemes** ``lie`` and ``strang`` (``preln_minilm.yaml``), whose sub-steps
   are single explicit Euler steps, as a Transformer layer computes them (Strang's
   R/2, A, R/2 with Euler sub-steps is the Macaron layer).

    python examples/macaron_splitting/run.py [--out DIR]

writes ``results.json`` and ``macaron_splitting.png`` (default: this folder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "minilm_flows.yaml"
LAYER = HERE / "preln_minilm.yaml"
_CACHE: dict = {}


def reference():
    from pdelang.lab.reference import load_reference

    if "ref" not in _CACHE:
        _CACHE["ref"] = load_reference("minilm")
    return _CACHE["ref"]


def layer_weights(spec: Path) -> dict:
    """Layer 0 of MiniLM's weights in the module names of ``spec`` (loaded into a six-layer
    build by pdelang's reference loader, then layer 0 taken)."""
    import pdelang
    from pdelang.lab.validation.weights import load_reference_weights

    key = ("weights", spec)
    if key not in _CACHE:
        full = pdelang.build(spec, ["time.layers=6", "time.span=[0, 6]"])()
        load_reference_weights(full, reference(), stabilizers=False)
        _CACHE[key] = {k[len("layers.0."):]: v for k, v in full.state_dict().items()
                       if k.startswith("layers.0.")}
    return _CACHE[key]


def stepper(spec: Path, overrides=()):
    """A float64 one-layer stepper of ``spec`` with MiniLM's layer-0 weights."""
    import pdelang

    model = pdelang.build(spec, list(overrides))().double()
    missing = model.layers[0].load_state_dict(layer_weights(spec), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    return model


def embeddings(count: int = 4, tokens: int = 16):
    """MiniLM's embeddings (u(0)) of corpus sentences of at least ``tokens`` tokens,
    truncated to ``tokens`` (no padding), float64 (B, N, 384)."""
    import torch

    ref = reference()
    inputs = ref.sample_inputs(4 * count, max_length=tokens)
    run = ref.run(inputs)
    full = run.bool_mask.all(dim=1) if run.bool_mask is not None else \
        torch.ones(run.embeddings.shape[0], dtype=torch.bool)
    u0 = run.embeddings[full][:count].double()
    if u0.shape[0] < count:
        raise RuntimeError("not enough unpadded sentences in the corpus sample")
    return u0


class Flows:
    """Φ_R(τ), Φ_A(τ) and the full flow, from one rk4 stepper of ``minilm_flows.yaml``."""

    def __init__(self, substeps: int = 64) -> None:
        self.model = stepper(FLOWS, [f"time.substeps={substeps}"])

    def __call__(self, u, a: float, b: float):
        import torch

        with torch.no_grad():
            self.model.shared.a.fill_(a)
            self.model.shared.b.fill_(b)
            return self.model(u)

    def reaction(self, u, tau):
        return self(u, tau, 0.0)

    def interaction(self, u, tau):
        return self(u, 0.0, tau)

    def exact(self, u, pieces: int = 8):
        """The layer's flow over [0, 1]: ``pieces`` × ``substeps`` rk4 steps (512)."""
        for _ in range(pieces):
            u = self(u, 1.0 / pieces, 1.0 / pieces)
        return u


def lie(flows: Flows, u, k: int):
    h = 1.0 / k
    for _ in range(k):
        u = flows.interaction(flows.reaction(u, h), h)
    return u


def strang(flows: Flows, u, k: int):
    h = 1.0 / k
    for _ in range(k):
        u = flows.reaction(flows.interaction(flows.reaction(u, h / 2), h), h / 2)
    return u


def relative_error(u, ref) -> float:
    return float((u - ref).norm() / ref.norm())


def orders(errors):
    return [math.log2(a / b) for a, b in itertools.pairwise(errors)]


def exact_subflow_study(u0, ks=(1, 2, 4, 8, 16), substeps: int = 64):
    flows = Flows(substeps)
    ref = flows.exact(u0)
    out = {}
    for name, scheme in (("lie", lie), ("strang", strang)):
        errors = [relative_error(scheme(flows, u0, k), ref) for k in ks]
        out[name] = {"substeps": list(ks), "errors": errors, "observed_orders": orders(errors)}
    # the reference's own accuracy: 512 vs 256 rk4 steps
    out["reference_check"] = relative_error(flows.exact(u0, pieces=4), ref)
    return out, ref


def pdelang_scheme_study(u0, ref, ks=(2, 4, 8, 16, 32)):
    import torch

    out = {}
    for scheme in ("lie", "strang"):
        errors = []
        for k in ks:
            model = stepper(LAYER, [f"time.scheme={scheme}", f"time.substeps={k}"])
            with torch.no_grad():
                errors.append(relative_error(model(u0), ref))
        out[scheme] = {"substeps": list(ks), "errors": errors, "observed_orders": orders(errors)}
    return out


def main(argv=None) -> dict:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    u0 = embeddings()
    exact, ref = exact_subflow_study(u0)
    own = pdelang_scheme_study(u0, ref)
    last = {k: v["observed_orders"][-2:] for k, v in exact.items() if k != "reference_check"}
    results = {
        "example": "macaron_splitting",
        "label": "a numerical property of the splitting schemes on MiniLM's layer-0 weights "
                 "(pre-LN formulation), not a claim about the network",
        "source": "Lu et al. 2019, arXiv 1906.02762 (Macaron = Strang splitting); "
                  "Strang 1968 / Hairer, Lubich, Wanner, Geometric Numerical Integration, II.5",
        "setup": {"sentences": int(u0.shape[0]), "tokens": int(u0.shape[1]),
                  "channels": 384, "span": [0, 1], "dtype": "float64",
                  "reference": "rk4, 512 steps", "sub_flows": "rk4, 64 steps each"},
        "exact_subflows": exact,
        "pdelang_schemes": own,
        "predictions": {
            "lie_order_1": {"predicted": "observed order 1 ± 0.25 (last two halvings)",
                            "measured": last["lie"],
                            "pass": all(abs(p - 1) <= 0.25 for p in last["lie"])},
            "strang_order_2": {"predicted": "observed order 2 ± 0.25 (last two halvings)",
                               "measured": last["strang"],
                               "pass": all(abs(p - 2) <= 0.25 for p in last["strang"])},
            "euler_substep_strang_order_1": {
                "predicted": "pdelang's strang (Euler sub-steps, the Macaron layer): "
                             "order 1 ± 0.25, not 2",
                "measured": own["strang"]["observed_orders"][-2:],
                "pass": all(abs(p - 1) <= 0.25 for p in own["strang"]["observed_orders"][-2:])},
        },
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "macaron_splitting.png")
    for name, p in results["predictions"].items():
        print(f"{name:30s} {'PASS' if p['pass'] else 'FAIL'}  measured {p['measured']}")
    print("reference check (256 vs 512 rk4 steps):", exact["reference_check"])
    return results


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles = {("exact_subflows", "lie"): ("C0o-", "Lie, exact sub-flows"),
              ("exact_subflows", "strang"): ("C3s-", "Strang, exact sub-flows"),
              ("pdelang_schemes", "lie"): ("C0o:", "pdelang lie (Euler sub-steps)"),
              ("pdelang_schemes", "strang"): ("C3s:", "pdelang strang = Macaron "
                                                      "(Euler sub-steps)")}
    for (group, scheme), (style, label) in styles.items():
        data = results[group][scheme]
        h = [1.0 / k for k in data["substeps"]]
        ax.loglog(h, data["errors"], style, label=label)
    h = [1.0 / k for k in results["exact_subflows"]["lie"]["substeps"]]
    e1 = results["exact_subflows"]["lie"]["errors"][-1]
    e2 = results["exact_subflows"]["strang"]["errors"][-1]
    ax.loglog(h, [e1 * (x / h[-1]) for x in h], "k--", lw=0.7, label="slope 1")
    ax.loglog(h, [e2 * (x / h[-1]) ** 2 for x in h], "k-.", lw=0.7, label="slope 2")
    ax.set_xlabel("sub-step h = 1/K (one layer, t ∈ [0, 1])")
    ax.set_ylabel("relative error of u(1)")
    ax.set_title("MiniLM layer 0, pre-LN flow: splitting error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
