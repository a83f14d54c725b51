"""The extracted weights reproduce every reference exactly.

An independent plain-torch forward (float64, written here from the layer map in
``pdelang.lab.reference.base``, using only ``ReferenceArchitecture`` + ``LayerWeights`` + the final
norm) recomputes every hidden state and attention map from ``run.embeddings``; it must agree with
the reference's own outputs to a relative error of 1e-5.  Random models are also checked after
perturbing *every* parameter (so LayerNorm scales/shifts and biases are not 1/0 and a swapped
or transposed tensor cannot go unnoticed).
"""

from __future__ import annotations

import math

import pytest
import torch

from pdelang.lab.reference import LayerWeights, ReferenceArchitecture, ReferenceRun, load_reference
from pdelang.lab.reference.bert import BertReference, bert_from_config
from pdelang.lab.reference.gpt2 import GPT2Reference, gpt2_from_config
from pdelang.lab.reference.torch_encoder import TorchEncoderReference, torch_reference
from pdelang.lab.reference.vit import ViTReference, vit_from_config
from pdelang.lab.data import load_digits_images

TOLERANCE = 1e-5

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Attention is all you need.",
    "A partial differential equation relates a function to its derivatives in space and time.",
    "Hi!",
]


# ----------------------------------------------------------------- independent forward


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight.double() + bias.double()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             eps: float) -> torch.Tensor:
    assert bias is None
    return x / torch.sqrt((x**2).mean(-1, keepdim=True) + eps) * weight.double()


NORMS = {"layernorm": layer_norm, "rmsnorm": rms_norm}


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "relu":
        return torch.clamp_min(x, 0.0)
    if name == "silu":
        return x / (1.0 + torch.exp(-x))
    raise AssertionError(name)


def linear(x: torch.Tensor, w: LayerWeights, name: str) -> torch.Tensor:
    y = x @ w[name + ".weight"].double().T
    bias = w.get(name + ".bias")
    return y if bias is None else y + bias.double()


def rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE from its definition: pair (i, i + d/2) turned by n·θ^(−2i/d) at token n."""
    tokens, d = x.shape[-2], x.shape[-1]
    angle = torch.arange(tokens, dtype=torch.float64)[:, None] * theta ** (
        -torch.arange(0, d, 2, dtype=torch.float64) / d)[None]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()], -1)


def attention(
    u: torch.Tensor, w: LayerWeights, arch: ReferenceArchitecture, blocked: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, tokens, channels = u.shape
    d = channels // arch.heads
    groups = arch.kv_heads or arch.heads

    def heads(t: torch.Tensor, count: int) -> torch.Tensor:
        return t.view(batch, tokens, count, d).transpose(1, 2)

    q = heads(linear(u, w, "attention.q"), arch.heads)
    k = heads(linear(u, w, "attention.k"), groups)
    v = heads(linear(u, w, "attention.v"), groups)
    if arch.rope_theta:
        q, k = rotate(q, arch.rope_theta), rotate(k, arch.rope_theta)
    # query head h reads key/value head h // (heads / groups)
    k = k[:, [h * groups // arch.heads for h in range(arch.heads)]]
    v = v[:, [h * groups // arch.heads for h in range(arch.heads)]]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(blocked, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    mixed = (probs @ v).transpose(1, 2).reshape(batch, tokens, channels)
    return linear(mixed, w, "attention.o"), probs


def feed_forward(x: torch.Tensor, w: LayerWeights, arch: ReferenceArchitecture) -> torch.Tensor:
    if "mlp.gate.weight" in w:  # SwiGLU / GeGLU
        gated = activation(linear(x, w, "mlp.gate"), arch.activation) * linear(x, w, "mlp.up")
        return linear(gated, w, "mlp.down")
    return linear(activation(linear(x, w, "mlp.fc1"), arch.activation), w, "mlp.fc2")


def independent_forward(
    arch: ReferenceArchitecture,
    layers: list[LayerWeights],
    final_weight: torch.Tensor | None,
    final_bias: torch.Tensor | None,
    embeddings: torch.Tensor,
    mask: torch.Tensor | None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    u = embeddings.double()
    batch, tokens, _ = u.shape
    blocked = torch.zeros(batch, 1, tokens, tokens, dtype=torch.bool)
    if mask is not None:
        blocked = blocked | ~mask.bool()[:, None, None, :]
    if arch.causal:
        blocked = blocked | torch.ones(tokens, tokens, dtype=torch.bool).triu(1)
    eps, norm_of = arch.norm_eps, NORMS[arch.norm_kind]

    def norm(x: torch.Tensor, w: LayerWeights, part: str) -> torch.Tensor:
        return norm_of(x, w[part + ".weight"], w.get(part + ".bias"), eps)

    states, maps = [u], []
    for w in layers:
        if arch.norm_placement == "post":
            attended, probs = attention(u, w, arch, blocked)
            v = norm(u + attended, w, "norm_attention")
            u = norm(v + feed_forward(v, w, arch), w, "norm_mlp")
        else:
            attended, probs = attention(norm(u, w, "norm_attention"), w, arch, blocked)
            v = u + attended
            u = v + feed_forward(norm(v, w, "norm_mlp"), w, arch)
        states.append(u)
        maps.append(probs)
    final = u if final_weight is None else norm_of(u, final_weight, final_bias, eps)
    return states, maps, final


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def assert_reproduced(reference, run: ReferenceRun) -> None:
    arch = reference.architecture
    assert len(run.hidden_states) == arch.layers + 1
    assert len(run.attentions) == arch.layers
    assert run.hidden_states[0] is run.embeddings or torch.equal(
        run.hidden_states[0], run.embeddings
    )
    assert (reference.final_norm_weight is not None) == arch.final_norm
    states, maps, final = independent_forward(
        arch,
        reference.layer_weights,
        reference.final_norm_weight,
        reference.final_norm_bias,
        run.embeddings,
        run.mask,
    )
    for index in range(1, arch.layers + 1):
        assert rel(states[index], run.hidden_states[index]) < TOLERANCE, f"state {index}"
        assert rel(maps[index - 1], run.attentions[index - 1]) < TOLERANCE, f"map {index}"
        assert run.attentions[index - 1].shape == (
            run.embeddings.shape[0], arch.heads, run.embeddings.shape[1], run.embeddings.shape[1]
        )
    assert rel(final, run.final_state) < TOLERANCE
    for tensor in (*run.hidden_states, *run.attentions, run.final_state):
        assert tensor.dtype == torch.float32


def perturb_(model: torch.nn.Module, scale: float = 0.05, seed: int = 1) -> None:
    """Add seeded noise to every parameter; LayerNorm weights stay near 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def minilm():
    return load_reference("minilm")


# -------------------------------------------------------------------------------- tests


def test_minilm_architecture(minilm):
    arch = minilm.architecture
    assert (arch.kind, arch.channels, arch.heads, arch.layers, arch.hidden) == (
        "bert", 384, 12, 6, 1536
    )
    assert (arch.activation, arch.norm_placement, arch.norm_eps) == ("gelu", "post", 1e-12)
    assert not arch.final_norm and not arch.causal and arch.grid_shape is None
    assert minilm.final_norm_weight is None and minilm.final_norm_bias is None
    assert not minilm.model.training
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in minilm.model.parameters())
    assert "minilm" in minilm.describe() and "384" in minilm.describe()


def test_minilm_reproduced_with_padding(minilm):
    inputs = minilm.inputs_from_text(SENTENCES)
    run = minilm.run(inputs)
    assert run.mask is not None and not bool(run.mask.all()), "the batch must contain padding"
    assert run.mask[:, 0].all() and run.embeddings.shape[-1] == 384
    # padded keys get exactly zero attention
    padded_keys = ~run.mask.bool()[:, None, None, :].expand_as(run.attentions[0])
    assert float(run.attentions[0][padded_keys].abs().max()) == 0.0
    assert_reproduced(minilm, run)


def test_minilm_embeddings_are_the_embedding_module_output(minilm):
    inputs = minilm.inputs_from_text(SENTENCES[:2])
    run = minilm.run(inputs)
    with torch.no_grad():
        expected = minilm.model.embeddings(
            input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"]
        )
    torch.testing.assert_close(run.embeddings, expected)
    torch.testing.assert_close(run.final_state, run.hidden_states[-1])


@pytest.mark.parametrize("perturbed", [False, True])
def test_hf_config_bert_reproduced(perturbed):
    reference = bert_from_config()
    if perturbed:
        perturb_(reference.model)
        reference = BertReference(reference.model, reference.tokenizer, "perturbed bert")
    run = reference.run(reference.inputs_from_text(SENTENCES))
    assert not bool(run.mask.all())
    assert_reproduced(reference, run)


@pytest.mark.parametrize("perturbed", [False, True])
def test_hf_config_gpt2_reproduced(perturbed):
    reference = gpt2_from_config()
    if perturbed:
        perturb_(reference.model)
        reference = GPT2Reference(reference.model, reference.tokenizer, "perturbed gpt2")
    inputs = reference.inputs_from_text(SENTENCES)
    run = reference.run(inputs)
    assert not bool(run.mask.all())
    # causal: nothing above the diagonal
    upper = torch.ones(run.attentions[0].shape[-2:], dtype=torch.bool).triu(1)
    assert float(run.attentions[0][..., upper].abs().max()) == 0.0
    with torch.no_grad():
        ids = inputs["input_ids"]
        expected = reference.model.wte(ids) + reference.model.wpe(torch.arange(ids.shape[1]))
    torch.testing.assert_close(run.embeddings, expected)
    assert_reproduced(reference, run)


@pytest.mark.parametrize("perturbed", [False, True])
def test_hf_config_vit_reproduced(perturbed):
    reference = vit_from_config()
    if perturbed:
        perturb_(reference.model)
        reference = ViTReference(reference.model, "perturbed vit")
    images, _ = load_digits_images(5, "heldout")
    inputs = reference.inputs_from_images(images)
    run = reference.run(inputs)
    assert run.mask is None and run.embeddings.shape == (5, 17, 64)
    assert_reproduced(reference, run)


def test_vit_tokens_are_cls_then_row_major_patches():
    reference = vit_from_config()
    perturb_(reference.model)
    images, _ = load_digits_images(2, "train")
    pixels = reference.inputs_from_images(images)["pixel_values"]
    run = reference.run({"pixel_values": pixels})
    embeddings = reference.model.embeddings
    conv = embeddings.patch_embeddings.projection
    position = embeddings.position_embeddings[0]
    rows, cols = reference.architecture.grid_shape
    assert (rows, cols) == (4, 4) and reference.architecture.extra_tokens == 1
    torch.testing.assert_close(run.embeddings[:, 0], (embeddings.cls_token[0, 0] + position[0])
                               .expand(2, -1))
    for r in range(rows):
        for c in range(cols):
            patch = pixels[:, :, 2 * r: 2 * r + 2, 2 * c: 2 * c + 2].reshape(2, -1)
            token = patch @ conv.weight.reshape(64, -1).T + conv.bias + position[1 + r * cols + c]
            torch.testing.assert_close(run.embeddings[:, 1 + r * cols + c], token)


@pytest.mark.parametrize("placement", ["pre", "post"])
@pytest.mark.parametrize("perturbed", [False, True])
def test_torch_encoder_reproduced(placement, perturbed):
    reference = torch_reference(placement)
    if perturbed:
        perturb_(reference.model)
        reference = TorchEncoderReference(model=reference.model, name="perturbed")
    inputs = reference.inputs_from_text(SENTENCES)
    run = reference.run(inputs)
    assert reference.architecture.norm_placement == placement
    assert reference.architecture.final_norm == (placement == "pre")
    assert_reproduced(reference, run)
    with torch.no_grad():
        whole = reference.model(inputs["input_ids"], inputs["attention_mask"])
    real = inputs["attention_mask"].bool()
    assert rel(whole[real], run.final_state[real]) < TOLERANCE


def test_torch_encoder_layers_are_not_clones():
    reference = torch_reference("post")
    first, second = reference.layer_weights[:2]
    assert not torch.equal(first["attention.q.weight"], second["attention.q.weight"])
    assert not torch.equal(first["mlp.fc1.weight"], second["mlp.fc1.weight"])


def test_swapped_norms_are_detected():
    """The check has teeth: exchanging the two LayerNorms of a layer breaks reproduction."""
    reference = torch_reference("pre")
    perturb_(reference.model)
    reference = TorchEncoderReference(model=reference.model, name="perturbed")
    run = reference.run(reference.inputs_from_text(SENTENCES))
    w = reference.layer_weights[1]
    swapped = w.replace(norm_attention=w.part("norm_mlp"), norm_mlp=w.part("norm_attention"))
    layers = [reference.layer_weights[0], swapped, *reference.layer_weights[2:]]
    states, _, _ = independent_forward(
        reference.architecture, layers, reference.final_norm_weight, reference.final_norm_bias,
        run.embeddings, run.mask,
    )
    assert rel(states[2], run.hidden_states[2]) > 1e-3


@pytest.mark.parametrize(
    "builder, kind", [(bert_from_config, "bert"), (gpt2_from_config, "gpt2"),
                      (vit_from_config, "vit")]
)
def test_hf_dir_round_trip(tmp_path, builder, kind):
    original = builder()
    perturb_(original.model)
    original.model.save_pretrained(tmp_path)
    loaded = load_reference(f"hf:{tmp_path}")
    assert loaded.architecture == original.architecture
    assert loaded.name == f"hf:{tmp_path}"
    saved = original.model.state_dict()
    for key, value in loaded.model.state_dict().items():
        if key in saved:
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    # the stale weights extracted before perturbing differ from the loaded ones
    assert not torch.equal(loaded.layer_weights[0]["attention.q.weight"],
                           original.layer_weights[0]["attention.q.weight"])
    if kind == "vit":
        inputs = loaded.inputs_from_images(load_digits_images(3, "heldout")[0])
    else:
        inputs = loaded.inputs_from_text(SENTENCES)  # no tokenizer files: word-hash fallback
    run = loaded.run(inputs)
    assert_reproduced(loaded, run)


# ------------------------------------------------------------------------ Llama family


@pytest.mark.parametrize("perturbed", [False, True])
def test_hf_config_llama_reproduced(perturbed):
    """RMSNorm, grouped-query attention with rotary embeddings, SwiGLU, no biases: the
    independent forward above, written from the definitions, reproduces the model."""
    from pdelang.lab.reference.llama import LlamaReference, llama_from_config

    reference = llama_from_config()
    arch = reference.architecture
    assert (arch.kv_heads, arch.heads, arch.rope_theta, arch.norm_kind, arch.reaction) == (
        2, 4, 500000.0, "rmsnorm", "glu")
    assert not any(key.endswith(".bias") for key in reference.layer_weights[0].tensors)
    if perturbed:
        perturb_(reference.model)
        reference = LlamaReference(reference.model, reference.tokenizer, "perturbed llama")
    inputs = reference.inputs_from_text(SENTENCES)
    run = reference.run(inputs)
    assert not bool(run.mask.all())
    upper = torch.ones(run.attentions[0].shape[-2:], dtype=torch.bool).triu(1)
    assert float(run.attentions[0][..., upper].abs().max()) == 0.0
    with torch.no_grad():
        torch.testing.assert_close(run.embeddings, reference.model.embed_tokens(
            inputs["input_ids"]))
    assert_reproduced(reference, run)


def test_the_independent_forward_sees_rope_and_the_kv_groups():
    """Control: the check has teeth for the Llama parts: without the rotation, or with the
    key/value heads assigned round-robin instead of in blocks, reproduction fails."""
    import dataclasses

    from pdelang.lab.reference.llama import llama_from_config

    reference = llama_from_config()
    perturb_(reference.model)
    run = reference.run(reference.inputs_from_text(SENTENCES))
    arch = reference.architecture
    no_rope = dataclasses.replace(arch, rope_theta=0.0)
    states, _, _ = independent_forward(no_rope, reference.layer_weights,
                                       reference.final_norm_weight, None, run.embeddings,
                                       run.mask)
    assert rel(states[1], run.hidden_states[1]) > 1e-3
    other_theta = dataclasses.replace(arch, rope_theta=10000.0)
    states, _, _ = independent_forward(other_theta, reference.layer_weights,
                                       reference.final_norm_weight, None, run.embeddings,
                                       run.mask)
    assert rel(states[1], run.hidden_states[1]) > 1e-3
    # swap the two key/value heads' rows: query heads then read the other group
    d = arch.head_dim
    swapped = []
    for w in reference.layer_weights:
        attention = w.part("attention")
        for name in ("k.weight", "v.weight"):
            attention[name] = torch.cat([attention[name][d:], attention[name][:d]])
        swapped.append(w.replace(attention=attention))
    states, _, _ = independent_forward(arch, swapped, reference.final_norm_weight, None,
                                       run.embeddings, run.mask)
    assert rel(states[1], run.hidden_states[1]) > 1e-3


def test_llama_dir_round_trip_with_gqa_and_rope_theta(tmp_path):
    """``hf:PATH`` of a ``LlamaForCausalLM`` written by ``save_pretrained`` from a config with
    grouped-query attention (6 query heads, 2 key/value heads) and rope_theta = 12345."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=80,
                         num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                         rope_theta=12345.0, rms_norm_eps=1e-5, initializer_range=0.2,
                         max_position_embeddings=64)
    torch.manual_seed(3)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    loaded = load_reference(f"hf:{tmp_path}")
    arch = loaded.architecture
    assert (arch.kind, arch.heads, arch.kv_heads, arch.rope_theta, arch.norm_eps) == (
        "llama", 6, 2, 12345.0, 1e-5)
    run = loaded.run(loaded.inputs_from_text(SENTENCES))
    assert_reproduced(loaded, run)


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rotary embedding of type"),
    ({"head_dim": 8}, "head_dim"),
])
def test_unsupported_llama_variants_are_refused_by_name(change, message):
    from pdelang.lab.reference.llama import llama_from_config

    with pytest.raises(ValueError, match=message):
        llama_from_config(**change)
