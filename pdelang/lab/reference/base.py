"""A neutral description of a reference Transformer and of one run of it.

Every adapter (BERT/MiniLM, ViT, GPT-2, Llama, ``torch.nn.TransformerEncoder``) reduces its
model to

* a :class:`ReferenceArchitecture` — the few numbers and switches that fix the layer map, and
  the spec calls it amounts to (:meth:`ReferenceArchitecture.calls`),
* one :class:`LayerWeights` per layer: tensors named by the parameters the spec operators
  declare (``attention.q.weight``, ``mlp.fc1.bias``, ``mlp.gate.weight``,
  ``norm_mlp.weight``), in ``nn.Linear`` convention (``weight`` is ``(out, in)``,
  ``y = x @ weight.T + bias``),
* an optional final norm, and
* a :meth:`Reference.run` that returns a :class:`ReferenceRun`: the embeddings ``u(0)``, the
  state at every layer boundary and every attention map.

The layer map all adapters share, with ``N`` the norm (LayerNorm, or RMSNorm for Llama),
``A`` the multi-head attention
``A(u) = concat_h(softmax(Q_h K_hᵀ / √d + M) V_h) W_oᵀ + b_o`` (``M`` = −∞ on masked keys and,
for causal models, on future keys; Llama: grouped-query heads and rotary embeddings of Q and
K) and ``F`` the feed-forward block (``act(u W_1ᵀ + b_1) W_2ᵀ + b_2``, or Llama's SwiGLU
``(silu(u W_gᵀ) ⊙ u W_uᵀ) W_dᵀ``)::

    post-LN (BERT, torch:post):  v = N_att(u + A(u));        u' = N_mlp(v + F(v))
    pre-LN  (ViT, GPT-2, Llama, torch:pre): v = u + A(N_att(u));    u' = v + F(N_mlp(v))

and, for models with a final norm, ``final_state = N_final(u_L)``.
"""

from __future__ import annotations

import abc
import contextlib
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
import os

from pdelang.compiler.operators import OPERATORS
from pdelang.lab.data import load_corpus, load_digits_images

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
NORM_PLACEMENTS = ("pre", "post")
KINDS = ("bert", "vit", "gpt2", "torch", "llama")


@dataclass(frozen=True)
class ReferenceArchitecture:
    """The shape and switches of a reference Transformer.

    Attributes:
        kind: ``'bert'`` | ``'vit'`` | ``'gpt2'`` | ``'torch'``.
        channels: model width ``C``.
        heads: number of attention heads (head width ``d = C / heads``).
        layers: number of layers ``L``.
        hidden: width ``H`` of the MLP.
        activation: ``'gelu'`` (exact, ``x Φ(x)`` with the erf), ``'gelu_tanh'``
            (``x/2 (1 + tanh(√(2/π)(x + 0.044715 x³)))``) or ``'relu'``.
        norm_placement: ``'post'`` (LayerNorm after each residual sum) or ``'pre'``
            (LayerNorm on the input of each sub-block).
        norm_eps: the ε of every LayerNorm.
        final_norm: whether a LayerNorm follows the last layer.
        causal: whether token ``i`` attends only to tokens ``j ≤ i``.
        grid_shape: ``None`` for a 1-D token sequence, ``(rows, cols)`` for image patches.
        extra_tokens: tokens before the grid (1 for ViT's CLS token), 0 otherwise.
        qkv_bias: whether the query/key/value projections carry biases.
        norm_kind: the normalization's operator (``'layernorm'`` or ``'rmsnorm'``; a spec
            must use the same).
        kv_heads: key/value heads of grouped-query attention (0: ``heads``, ordinary
            multi-head attention).
        rope_theta: the base θ of rotary position embeddings inside the attention (0: none).
        reaction: the spec operator of the feed-forward block: ``'mlp'``
            (``W_2 σ(W_1 u + b_1) + b_2``) or ``'glu'`` (``W_down(σ(W_gate u) ⊙ W_up u)``,
            SwiGLU with σ = SiLU).
        bias: whether the output projection and the feed-forward block carry biases.
    """

    kind: str
    channels: int
    heads: int
    layers: int
    hidden: int
    activation: str
    norm_placement: str
    norm_eps: float
    final_norm: bool
    causal: bool
    grid_shape: tuple[int, ...] | None
    extra_tokens: int
    qkv_bias: bool
    norm_kind: str = "layernorm"
    kv_heads: int = 0
    rope_theta: float = 0.0
    reaction: str = "mlp"
    bias: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown reference kind {self.kind!r}; expected one of {KINDS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {ACTIVATIONS}"
            )
        if self.norm_placement not in NORM_PLACEMENTS:
            raise ValueError(
                f"unknown norm placement {self.norm_placement!r}; expected one of "
                f"{NORM_PLACEMENTS}"
            )
        if self.channels % self.heads:
            raise ValueError(f"channels={self.channels} is not divisible by heads={self.heads}")
        if self.kv_heads and self.heads % self.kv_heads:
            raise ValueError(f"kv_heads={self.kv_heads} does not divide heads={self.heads}")

    def calls(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The spec calls a layer of this model amounts to: part → (operator, options), with
        every option that changes the layer map at its effective value (what
        :meth:`~pdelang.compiler.operators.base.Operator.effective_options` gives for a spec's
        call).  A spec can carry the weights exactly when its calls agree."""
        attention = {"heads": self.heads, "causal": self.causal, "kernel": "softmax",
                     "rank": self.head_dim, "kv_heads": self.kv_heads or self.heads,
                     "rope_theta": float(self.rope_theta), "bias": self.qkv_bias or self.bias}
        reaction = {"hidden": self.hidden, "activation": self.activation, "bias": self.bias}
        return {"attention": ("attention", attention), "mlp": (self.reaction, reaction)}

    @property
    def head_dim(self) -> int:
        """Width ``d = C / heads`` of one attention head."""
        return self.channels // self.heads

    @property
    def num_grid_tokens(self) -> int | None:
        """Number of tokens on the grid (``rows * cols``), or ``None`` for a 1-D sequence."""
        if self.grid_shape is None:
            return None
        count = 1
        for size in self.grid_shape:
            count *= size
        return count


#: The parts of a layer whose weights a reference gives: the attention's and the MLP's
#: (the reaction's) parameters, and the affine parameters of the norm of each sub-block.
PARTS = ("attention", "mlp", "norm_attention", "norm_mlp")


@dataclass(frozen=True, eq=False)
class LayerWeights:
    """The parameters of one Transformer layer, by neutral name ``<part>.<parameter>``.

    ``<part>`` is one of :data:`PARTS`; ``<parameter>`` is the name the spec operator of that
    part declares for it (:meth:`~pdelang.compiler.operators.base.Operator.parameter_shapes`),
    so the copy into a stepper is by name: ``attention.q.weight`` goes to the attention
    module's ``q.weight``, ``mlp.fc1.weight`` to an ``mlp``'s ``fc1.weight``,
    ``mlp.gate.weight`` to a ``glu``'s ``gate.weight``, ``norm_mlp.weight`` to the MLP's
    norm.  Linear maps are in ``nn.Linear`` convention (``weight`` is ``(out, in)``,
    ``y = x @ weight.T + bias``); heads are contiguous blocks of output rows.  A parameter the
    model does not have (a bias of a bias-free projection) is absent, not zero.

    ``norm_attention`` is the norm belonging to the attention sub-block (post-LN: applied to
    ``u + A(u)``; pre-LN: applied to the input of the attention), ``norm_mlp`` likewise for the
    MLP sub-block.
    """

    tensors: Mapping[str, torch.Tensor]

    def __post_init__(self) -> None:
        for key in self.tensors:
            part, dot, _ = key.partition(".")
            if not dot or part not in PARTS:
                raise ValueError(f"layer weight {key!r}: expected '<part>.<parameter>' with a "
                                 f"part in {PARTS}")
        object.__setattr__(self, "tensors", MappingProxyType(dict(self.tensors)))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __contains__(self, key: object) -> bool:
        return key in self.tensors

    def get(self, key: str) -> torch.Tensor | None:
        """The tensor ``key`` (``'<part>.<parameter>'``), or ``None`` if the model has none."""
        return self.tensors.get(key)

    def part(self, part: str) -> dict[str, torch.Tensor]:
        """The tensors of one part, by parameter name (``{'q.weight': …, …}``)."""
        prefix = part + "."
        return {key[len(prefix):]: value for key, value in self.tensors.items()
                if key.startswith(prefix)}

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> LayerWeights:
        """A copy with ``fn`` applied to every tensor."""
        return LayerWeights({key: fn(value) for key, value in self.tensors.items()})

    def to(self, dtype: torch.dtype) -> LayerWeights:
        """A copy with every tensor cast to ``dtype``."""
        return self.map(lambda tensor: tensor.to(dtype))

    def replace(self, **parts: Mapping[str, torch.Tensor]) -> LayerWeights:
        """A copy with the named parts' tensors replaced (``replace(norm_mlp={...})``)."""
        kept = {key: value for key, value in self.tensors.items()
                if key.partition(".")[0] not in parts}
        for part, tensors in parts.items():
            kept |= {f"{part}.{name}": value for name, value in tensors.items()}
        return LayerWeights(kept)

    def check_shapes(self, architecture: ReferenceArchitecture) -> None:
        """Raise ``ValueError`` unless the tensors are exactly what the spec operators the
        architecture amounts to (:meth:`ReferenceArchitecture.calls`) declare: every tensor
        has a declared parameter of its shape, and only biases may be missing."""
        c = architecture.channels
        declared: dict[str, tuple[int, ...]] = {}
        for part, (operator, options) in architecture.calls().items():
            shapes = OPERATORS[operator].parameter_shapes(c, options, 1)
            declared |= {f"{part}.{name}": tuple(shape) for name, shape in shapes.items()}
        for part in ("norm_attention", "norm_mlp"):
            for name in OPERATORS[architecture.norm_kind].affine_parameters:
                declared[f"{part}.{name}"] = (c,)
        for key, value in self.tensors.items():
            if key not in declared:
                raise ValueError(f"LayerWeights has {key!r}, which the spec operators of "
                                 f"{architecture.kind} do not declare")
            if tuple(value.shape) != declared[key]:
                raise ValueError(f"LayerWeights[{key!r}]: expected shape {declared[key]}, "
                                 f"got {tuple(value.shape)}")
        missing = [key for key in declared if key not in self.tensors
                   and not key.endswith(".bias")]
        if missing:
            raise ValueError(f"LayerWeights lacks {', '.join(missing)}")


def linear_weights(part_name: str, linear: Any, transpose: bool = False
                   ) -> dict[str, torch.Tensor]:
    """``{'<part_name>.weight': W, '<part_name>.bias': b}`` of a linear layer (float32 copies;
    no bias entry when it has none); ``transpose`` for ``y = x W + b`` layouts (GPT-2's
    ``Conv1D``)."""
    weight = linear.weight.T if transpose else linear.weight
    out = {f"{part_name}.weight": detach(weight)}
    if getattr(linear, "bias", None) is not None:
        out[f"{part_name}.bias"] = detach(linear.bias)
    return out


def norm_weights(part: str, norm: Any) -> dict[str, torch.Tensor]:
    """The affine parameters of a norm module as ``{'<part>.weight', '<part>.bias'}``."""
    return {f"{part}.{name}": detach(value) for name, value in norm.named_parameters()}


@dataclass(frozen=True, eq=False)
class ReferenceRun:
    """Everything one forward pass of a reference produced.

    Attributes:
        embeddings: ``(B, N, C)``, the reference's own embedding output = the PDE's ``u(0)``.
        mask: ``(B, N)`` with 1 for real tokens and 0 for (right) padding, or ``None``.
        hidden_states: ``L + 1`` tensors ``(B, N, C)``; element 0 is ``embeddings``, element
            ``i`` the output of layer ``i`` *before* any final norm.
        attentions: ``L`` tensors ``(B, heads, N, N)`` of softmax probabilities (rows = queries).
        final_state: ``LN_final(hidden_states[-1])`` if the model has a final norm, else
            ``hidden_states[-1]``.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor | None
    hidden_states: list[torch.Tensor]
    attentions: list[torch.Tensor]
    final_state: torch.Tensor

    @property
    def num_layers(self) -> int:
        """Number of layers ``L``."""
        return len(self.attentions)

    @property
    def bool_mask(self) -> torch.Tensor:
        """``(B, N)`` bool tensor, True on real tokens (all True when there is no mask)."""
        batch, tokens = self.embeddings.shape[:2]
        if self.mask is None:
            return torch.ones(batch, tokens, dtype=torch.bool)
        return self.mask.to(torch.bool)


class WordHashTokenizer:
    """A deterministic word-level tokenizer for references that ship no tokenizer.

    Used by randomly initialised models (``hf-config:bert``, ``hf-config:gpt2``, ``torch``) and
    by local model directories without tokenizer files.  A sentence is lower-cased and split
    into words and punctuation with the regex ``\\w+|[^\\w\\s]``; word ``w`` gets the id

        id(w) = n_special + crc32(utf8(w)) mod (vocab_size - n_special)

    (``crc32`` is stable across processes, unlike ``hash``).  Ids ``0 .. n_special - 1`` are
    reserved: 0 = padding, 1 = begin (``[CLS]``/BOS), 2 = end (``[SEP]``/EOS), 3 = unknown.
    ``bos``/``eos`` choose whether a sentence is wrapped in begin/end tokens.  Batches are right
    padded with id 0 and come with an ``attention_mask`` (1 = real token).
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    n_special = 4
    _WORD = re.compile(r"\w+|[^\w\s]")

    def __init__(self, vocab_size: int, *, bos: bool = True, eos: bool = True) -> None:
        if vocab_size <= self.n_special:
            raise ValueError(f"vocab_size must exceed {self.n_special}, got {vocab_size}")
        self.vocab_size = vocab_size
        self.bos = bos
        self.eos = eos

    def words(self, sentence: str) -> list[str]:
        """The words and punctuation marks of ``sentence``, lower-cased."""
        return self._WORD.findall(sentence.lower())

    def word_id(self, word: str) -> int:
        """The id of one word."""
        return self.n_special + zlib.crc32(word.encode("utf-8")) % (
            self.vocab_size - self.n_special
        )

    def encode(self, sentence: str, max_length: int) -> list[int]:
        """Ids of one sentence, with begin/end tokens, truncated to ``max_length``."""
        body = [self.word_id(word) for word in self.words(sentence)]
        room = max_length - int(self.bos) - int(self.eos)
        if room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for a word")
        ids = ([self.bos_id] if self.bos else []) + body[:room]
        return ids + ([self.eos_id] if self.eos else [])

    def __call__(self, sentences: Sequence[str], max_length: int = 128) -> dict[str, torch.Tensor]:
        """``{'input_ids', 'attention_mask'}``, both ``(B, N)`` long, right padded."""
        if isinstance(sentences, str):
            sentences = [sentences]
        if not sentences:
            raise ValueError("no sentences to tokenize")
        encoded = [self.encode(sentence, max_length) for sentence in sentences]
        length = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class Reference(abc.ABC):
    """A reference Transformer whose layers a PDE model imitates.

    Subclasses set, in ``__init__``: :attr:`name`, :attr:`architecture`, :attr:`model` (the
    underlying ``nn.Module``, float32, eval mode, gradients off), :attr:`layer_weights`,
    :attr:`final_norm_weight` / :attr:`final_norm_bias` (``None`` without a final norm) and
    :attr:`modality` (``'text'`` or ``'image'``), and implement :meth:`run`.
    """

    name: str
    architecture: ReferenceArchitecture
    model: nn.Module
    layer_weights: list[LayerWeights]
    final_norm_weight: torch.Tensor | None = None
    final_norm_bias: torch.Tensor | None = None
    modality: str = "text"

    def inputs_from_text(self, sentences: list[str], max_length: int = 128) -> dict[str, Any]:
        """Tokenize ``sentences`` (right padded) into the keyword inputs :meth:`run` takes."""
        raise TypeError(f"reference {self.name!r} takes images, not text (inputs_from_images)")

    def inputs_from_images(self, images: torch.Tensor) -> dict[str, Any]:
        """Turn ``(B, channels, H, W)`` images in ``[0, 1]`` into the inputs :meth:`run` takes."""
        raise TypeError(f"reference {self.name!r} takes text, not images (inputs_from_text)")

    def sample_inputs(self, n: int = 8, split: str = "heldout", max_length: int = 64) -> dict:
        """Inputs for ``n`` built-in samples: corpus sentences for text, digits for images."""
        if self.modality == "image":
            images, _ = load_digits_images(n, split)
            return self.inputs_from_images(images)
        return self.inputs_from_text(load_corpus(split, n), max_length=max_length)

    @abc.abstractmethod
    def run(self, inputs: dict[str, Any]) -> ReferenceRun:
        """One forward pass under ``torch.no_grad``: embeddings, states and attention maps."""

    def propagate(self, inputs: dict[str, Any], u0: torch.Tensor) -> torch.Tensor:
        """``u_L``, the last layer's output (before any final norm), as a *differentiable*
        function of ``u(0) = u0`` ``(B, N, C)``: the layer stack with ``inputs``'s mask, the
        embeddings replaced by ``u0`` (the token information flow ∂u_L/∂u_0 needs it)."""
        raise NotImplementedError(f"reference {self.name!r} cannot propagate a given u(0)")

    def parameter_count(self) -> int:
        """Number of parameters of the underlying model."""
        return sum(parameter.numel() for parameter in self.model.parameters())

    def describe(self) -> str:
        """A short human-readable summary of the reference."""
        arch = self.architecture
        grid = "1-D sequence" if arch.grid_shape is None else "x".join(map(str, arch.grid_shape))
        lines = [
            f"reference {self.name} ({arch.kind}, {self.parameter_count():,} parameters)",
            (
                f"  channels={arch.channels} heads={arch.heads} (head_dim={arch.head_dim}) "
                f"layers={arch.layers} hidden={arch.hidden}"
            ),
            (
                f"  {arch.reaction} activation={arch.activation} "
                f"norm={arch.norm_placement}-{arch.norm_kind} eps={arch.norm_eps:g} "
                f"final_norm={arch.final_norm} causal={arch.causal} qkv_bias={arch.qkv_bias} "
                f"bias={arch.bias}"
            ),
            *([f"  grouped-query attention: {arch.kv_heads} key/value heads"]
              if arch.kv_heads and arch.kv_heads != arch.heads else []),
            *([f"  rotary position embeddings: theta={arch.rope_theta:g}"]
              if arch.rope_theta else []),
            f"  tokens: {grid}" + (f" + {arch.extra_tokens} extra" if arch.extra_tokens else ""),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# --------------------------------------------------------------------------- helpers for adapters


def map_activation(name: str) -> str:
    """Map a Hugging Face / torch activation name to ``'gelu' | 'gelu_tanh' | 'relu' |
    'silu'``."""
    table = {
        "gelu": "gelu",
        "gelu_new": "gelu_tanh",
        "gelu_pytorch_tanh": "gelu_tanh",
        "relu": "relu",
        "silu": "silu",
        "swish": "silu",
    }
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(table)}")
    return table[name]


def detach(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A float32 copy of a parameter, detached from the module (``None`` stays ``None``)."""
    if tensor is None:
        return None
    return tensor.detach().to(torch.float32).clone()


def prepare_model(model: nn.Module) -> nn.Module:
    """Put ``model`` in float32, eval mode, without gradients."""
    model.float().eval()
    model.requires_grad_(False)
    return model


def set_offline() -> None:
    """Forbid Hugging Face hub downloads in this process (``HF_HUB_OFFLINE=1``)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    raise TypeError(f"cannot find a hidden-state tensor in a layer output of type {type(output)}")


@dataclass
class LayerBoundaries:
    """The tensors captured by :func:`capture_layer_boundaries`."""

    layer_input: torch.Tensor | None = None
    outputs: list[torch.Tensor] = field(default_factory=list)

    def hidden_states(self) -> list[torch.Tensor]:
        """``[input of layer 1, output of layer 1, ..., output of layer L]``."""
        if self.layer_input is None:
            raise RuntimeError("the first layer was never called")
        return [self.layer_input, *self.outputs]


@contextlib.contextmanager
def capture_layer_boundaries(layers: Sequence[nn.Module]) -> Iterator[LayerBoundaries]:
    """Record the input of ``layers[0]`` and the output of every layer with forward hooks.

    This is independent of how a library post-processes ``output_hidden_states`` (GPT-2's last
    element, for instance, has the final LayerNorm applied).
    """
    captured = LayerBoundaries()

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.layer_input = (args[0] if args else kwargs["hidden_states"]).detach()

    def post_hook(module: nn.Module, args: tuple, output: Any) -> None:
        captured.outputs.append(_first_tensor(output).detach())

    handles = [layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True)]
    handles += [layer.register_forward_hook(post_hook) for layer in layers]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_with_hooks(
    reference: Reference,
    layers: Sequence[nn.Module],
    forward: Callable[[], Any],
    mask: torch.Tensor | None,
) -> ReferenceRun:
    """One forward pass of a Hugging Face model as a :class:`ReferenceRun`.

    ``forward()`` calls the model with ``output_attentions=True`` (eager attention); under
    ``torch.no_grad`` the states come from hooks on ``layers``
    (:func:`capture_layer_boundaries`), the maps from ``output.attentions`` and the final state
    from ``output.last_hidden_state``.
    """
    with torch.no_grad(), capture_layer_boundaries(layers) as captured:
        output = forward()
    hidden_states = captured.hidden_states()
    attentions = [attention.detach() for attention in output.attentions]
    expected = reference.architecture.layers
    if len(hidden_states) != expected + 1 or len(attentions) != expected:
        raise RuntimeError(
            f"{reference.name}: captured {len(hidden_states)} states and {len(attentions)} "
            f"attention maps for {expected} layers (is eager attention enabled?)"
        )
    return ReferenceRun(
        embeddings=hidden_states[0],
        mask=mask,
        hidden_states=hidden_states,
        attentions=attentions,
        final_state=output.last_hidden_state.detach(),
    )


def propagate_with_hooks(
    layers: Sequence[nn.Module], forward: Callable[[], Any], u0: torch.Tensor
) -> torch.Tensor:
    """The output of ``layers[-1]`` when ``forward()`` runs the model with the input of
    ``layers[0]`` replaced by ``u0``: a differentiable function of ``u0`` (gradients are not
    switched off here; the model's own parameters stay frozen)."""
    captured: list[torch.Tensor] = []

    def replace(module: nn.Module, args: tuple, kwargs: dict):
        if args:
            return (u0, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": u0}

    def capture(module: nn.Module, args: tuple, output: Any) -> None:
        captured.append(_first_tensor(output))

    handles = [layers[0].register_forward_pre_hook(replace, with_kwargs=True),
               layers[-1].register_forward_hook(capture)]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
    return captured[-1]


def tokenize(tokenizer: Any, sentences: Sequence[str] | str, max_length: int) -> dict[str, Any]:
    """Right-padded ids truncated to ``max_length`` from a Hugging Face tokenizer or a
    :class:`WordHashTokenizer`: ``{'input_ids', 'attention_mask', ...}`` of ``(B, N)`` tensors."""
    if isinstance(sentences, str):
        sentences = [sentences]
    if isinstance(tokenizer, WordHashTokenizer):
        return tokenizer(sentences, max_length=max_length)
    encoded = tokenizer(
        list(sentences),
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return dict(encoded)


def local_tokenizer(path: Path, file_names: Sequence[str]) -> Any | None:
    """The tokenizer saved in a local model directory, or ``None`` when the directory holds
    none of ``file_names`` or its tokenizer does not load."""
    from transformers import AutoTokenizer  # lazy: transformers

    if not any((path / name).exists() for name in file_names):
        return None
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError):
        return None


def decoder_tokenizer(path: Path, file_names: Sequence[str], vocab_size: int) -> Any:
    """A causal decoder's tokenizer (GPT-2, Llama): the directory's own, right padded with
    its EOS token when it has no pad token, else a :class:`WordHashTokenizer` (BOS, no EOS)
    into ``vocab_size`` ids."""
    tokenizer = local_tokenizer(path, file_names)
    if tokenizer is None:
        return WordHashTokenizer(vocab_size, bos=True, eos=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence Hugging Face load reports and progress bars; restore the settings afterwards."""
    from transformers.utils import logging as hf_logging  # lazy: transformers

    verbosity = hf_logging.get_verbosity()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()
