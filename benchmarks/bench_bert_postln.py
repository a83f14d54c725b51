"""Benchmark: the generated post-LN stepper (specs/bert_postln.yaml) vs ``nn.TransformerEncoder``.

Both models carry the same weights (copied from a randomly initialised torch stack of six
``TransformerEncoderLayer(384, 12, 1536, dropout=0, activation='gelu', batch_first=True,
norm_first=False, layer_norm_eps=1e-12)``).  Forward only, eval mode, batch 8 × 128 tokens,
no attention maps, under ``torch.no_grad`` and ``torch.inference_mode``.  The torch stack is
timed with its native "fast path" (used in eval/no-grad) and, when available, with the fast
path disabled (``torch.backends.mha.set_fastpath_enabled(False)``).  The variants run
interleaved — one call of each per round, in rotating order — after a warm-up; the medians of
the rounds are compared.

    python benchmarks/bench_bert_postln.py [--device cpu|cuda] [--repeats 30] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(REPO))

from benchmarks.timing import interleaved  # noqa: E402
CHANNELS, HEADS, HIDDEN, LAYERS, EPS = 384, 12, 1536, 6, 1e-12


def torch_encoder(std: float = 0.05, seed: int = 0) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(CHANNELS, HEADS, HIDDEN, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=False, layer_norm_eps=EPS)
    encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * std
            param.copy_(1.0 + noise if ".norm" in name and name.endswith("weight") else noise)
    return encoder.eval()


def copy_weights(stepper: nn.Module, encoder: nn.TransformerEncoder) -> None:
    with torch.no_grad():
        for ours, theirs in zip(stepper.layers, encoder.layers, strict=True):
            att = ours.interaction_attention
            w, b = theirs.self_attn.in_proj_weight, theirs.self_attn.in_proj_bias
            for i, lin in enumerate((att.q, att.k, att.v)):
                lin.weight.copy_(w[i * CHANNELS:(i + 1) * CHANNELS])
                lin.bias.copy_(b[i * CHANNELS:(i + 1) * CHANNELS])
            att.o.weight.copy_(theirs.self_attn.out_proj.weight)
            att.o.bias.copy_(theirs.self_attn.out_proj.bias)
            ours.reaction_mlp.fc1.weight.copy_(theirs.linear1.weight)
            ours.reaction_mlp.fc1.bias.copy_(theirs.linear1.bias)
            ours.reaction_mlp.fc2.weight.copy_(theirs.linear2.weight)
            ours.reaction_mlp.fc2.bias.copy_(theirs.linear2.bias)
            for norm, ref in ((ours.norm_interaction, theirs.norm1),
                              (ours.norm_reaction, theirs.norm2)):
                norm.weight.copy_(ref.weight)
                norm.bias.copy_(ref.bias)


@contextlib.contextmanager
def fastpath(enabled: bool):
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    previous = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(previous)


def has_fastpath_switch() -> bool:
    return hasattr(getattr(torch.backends, "mha", None), "set_fastpath_enabled")


def make_variants(stepper, encoder, u):
    variants = {}
    for mode_name, mode in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
        def run_pdelang(mode=mode):
            with mode():
                return stepper(u)

        def run_torch(mode=mode):
            with mode(), fastpath(True):
                return encoder(u)

        variants[f"pdelang/{mode_name}"] = run_pdelang
        variants[f"torch fast path/{mode_name}"] = run_torch
        if has_fastpath_switch():
            def run_torch_slow(mode=mode):
                with mode(), fastpath(False):
                    return encoder(u)

            variants[f"torch no fast path/{mode_name}"] = run_torch_slow
    return variants


def benchmark(device: str = "cpu", batch: int = 8, tokens: int = 128, repeats: int = 30,
              warmup: int = 3, threads: int | None = None, seed: int = 0) -> dict:
    os.chdir(REPO)
    import pdelang

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    stepper_class = pdelang.build("specs/bert_postln.yaml")
    stepper = stepper_class().to(dev).eval()
    encoder = torch_encoder(seed=seed).to(dev)
    copy_weights(stepper, encoder)
    u = torch.randn(batch, tokens, CHANNELS, generator=torch.Generator().manual_seed(seed + 1))
    u = u.to(dev)

    with torch.no_grad():
        ours, theirs = stepper(u), encoder(u)
        with fastpath(False):
            slow = encoder(u)
    scale = float(theirs.abs().max())
    error = float((ours - theirs).abs().max()) / scale
    error_slow = float((ours - slow).abs().max()) / scale

    variants = make_variants(stepper, encoder, u)
    timings = interleaved(variants, repeats, warmup, dev)
    times = timings.times
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratios = {}
    for mode in ("no_grad", "inference_mode"):
        ours_t = medians[f"pdelang/{mode}"]
        ratios[f"pdelang/torch fast path ({mode})"] = ours_t / medians[f"torch fast path/{mode}"]
        if f"torch no fast path/{mode}" in medians:
            ratios[f"pdelang/torch no fast path ({mode})"] = (
                ours_t / medians[f"torch no fast path/{mode}"])
    return {
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "shape": [batch, tokens, CHANNELS],
        "repeats": repeats,
        "max_rel_error_vs_fast_path": error,
        "max_rel_error_vs_slow_path": error_slow,
        "median_ms": {k: v * 1e3 for k, v in medians.items()},
        "min_ms": {k: min(t) * 1e3 for k, t in times.items()},
        "ratios": ratios,
    }


def print_table(result: dict) -> None:
    print(f"bert_postln stepper vs nn.TransformerEncoder — {result['device']}, torch "
          f"{result['torch']}, {result['threads']} threads, input {tuple(result['shape'])}, "
          f"median of {result['repeats']} interleaved rounds")
    print(f"agreement: max |Δ| / max |y| = {result['max_rel_error_vs_fast_path']:.2e} (fast path), "
          f"{result['max_rel_error_vs_slow_path']:.2e} (no fast path)")
    width = max(len(k) for k in result["median_ms"])
    print(f"{'variant':<{width}}  {'median ms':>10}  {'min ms':>10}")
    for name, ms in result["median_ms"].items():
        print(f"{name:<{width}}  {ms:>10.2f}  {result['min_ms'][name]:>10.2f}")
    for name, ratio in result["ratios"].items():
        print(f"ratio {name}: {ratio:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30, help="interleaved rounds (≥ 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available")
    result = benchmark(args.device, args.batch, args.tokens, args.repeats, args.warmup,
                       args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
