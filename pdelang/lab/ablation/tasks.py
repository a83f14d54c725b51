"""Two small supervised tasks that wrap any compiled stepper.

A task owns a *task model*: an input embedding, the stepper (unchanged, shared with the
caller) and a linear head.  Only the stepper's structure is consulted:

* ``channels`` (int, required): the width ``C`` of every token;
* ``grid_shape`` (``None`` or ``(rows, cols)``; ``(n,)`` is read as a 1-D grid of ``n``
  tokens): fixes how many *grid* tokens the stepper is fed;
* ``extra_tokens`` (int, default 0): learned tokens prepended before the grid tokens
  (a CLS token for :class:`DigitsTask`);
* ``causal`` (bool, default False): picks the objective of :class:`TextTask`.

The stepper is called as ``stepper(u)`` with ``u`` of shape ``(B, N, C)``,
``N = extra_tokens + grid tokens`` and no mask.

Tasks
-----
:class:`DigitsTask`
    scikit-learn's bundled ``load_digits`` (1797 8x8 images, no download), pixel values
    scaled to ``[0, 1]``, a deterministic 80/20 train/test split
    (:func:`pdelang.lab.data.digits_train_test`).  Patch embedding: the image is cut into
    ``rows x cols`` patches (2x2 patches on a 4x4 grid by default, so 16 tokens), each
    flattened patch is mapped by a linear layer to ``C`` channels, a learned
    position embedding is added; a learned CLS token is prepended when
    ``extra_tokens >= 1`` (further extra tokens are learned "register" tokens).
    Read-out: the CLS token (token 0) if there is one, else the mean over the grid
    tokens, then a LayerNorm-free linear layer to 10 logits; loss = cross-entropy.
:class:`TextTask`
    character-level language modelling on the standard library's
    ``pydoc_data.topics.topics`` (about 465k characters, no download), restricted to
    printable ASCII plus newline (:func:`pdelang.lab.data.load_pydoc_text`); vocabulary = sorted
    set of characters.  The first 90% of the corpus is the train split, the last 10% the
    test split.  Model: token embedding + learned position embedding -> stepper -> linear
    head over the vocabulary.
    Objective:

    * causal stepper (structure ``causal`` true): next-token prediction, inputs
      ``x[0:N]``, targets ``x[1:N+1]``, loss averaged over all ``N`` positions;
    * non-causal stepper: a bidirectional stepper would see the answer, so a *masked-token*
      objective runs instead: exactly ``k = max(1, round(0.15 N))`` positions per sequence
      are replaced by a ``[MASK]`` id (one extra embedding row) and only those positions are
      predicted.

Initialisation: the patch projection (weights ``N(0, 1)``, zero bias) and the token
embedding (``N(0, 1)``) give the stepper input entries of order one; position, CLS and
extra-token embeddings start at ``N(0, 0.02^2)`` (GPT-2 / ViT convention).  The heads
start at zero (ViT convention), so every variant starts from the uniform prediction with
loss ``log(classes)`` (``log 10`` for digits, ``log |vocabulary|`` for text) and the default
divergence threshold (10x the first loss) is the same for every variant.  (With PyTorch's
default head init, the un-normalized output of a 384-wide stepper made healthy variants
spike to ~9x their first loss within two AdamW steps at lr 1e-3.)

All randomness (batch sampling, masking) comes from an explicit ``torch.Generator``;
evaluation uses a fixed subset (fixed seed), so every number is reproducible.
Parameters are created from the global torch RNG: construct tasks inside
:func:`pdelang.lab.ablation.train.seeded`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pdelang.lab.data import digits_train_test, load_pydoc_text
from pdelang.interpreters.builder import structure_of

__all__ = [
    "TASKS",
    "AblationTask",
    "Batch",
    "DigitsTask",
    "TaskOutput",
    "TextTask",
    "make_task",
    "resolve_structure",
]

POSITION_INIT_STD = 0.02  # GPT-2 / ViT convention for position / CLS embeddings
DIGITS_SIDE = 8
DIGITS_CLASSES = 10
MASK_FRACTION = 0.15
EVAL_SEED = 1234  # seed of the fixed evaluation subset


@dataclass
class Batch:
    """One batch of a task.

    ``inputs``: ``(B, 8, 8)`` float images (digits) or ``(B, N)`` token ids (text);
    ``targets``: ``(B,)`` class ids or ``(B, N)`` token ids; ``loss_mask``: ``None`` (every
    target counts) or a ``(B, N)`` bool tensor marking the targets that are predicted.
    """

    inputs: Tensor
    targets: Tensor
    loss_mask: Tensor | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device) -> Batch:
        mask = None if self.loss_mask is None else self.loss_mask.to(device)
        return Batch(self.inputs.to(device), self.targets.to(device), mask)


@dataclass
class TaskOutput:
    """Result of one forward pass of a task model on a batch.

    ``loss`` = mean cross-entropy over the predicted targets (differentiable); ``state`` =
    the stepper output ``(B, N, C)``; ``correct`` / ``count`` = correct and total predictions.
    """

    loss: Tensor
    logits: Tensor
    state: Tensor
    correct: int
    count: int


def resolve_structure(stepper: nn.Module, structure: Mapping[str, Any] | None) -> dict:
    """The stepper's structure (:func:`~pdelang.interpreters.builder.structure_of`) with
    defaults filled in (``channels`` is required)."""
    if structure is None:
        try:
            structure = structure_of(stepper)
        except TypeError as error:
            raise ValueError(f"no structure was given: {error}") from None
    if "channels" not in structure:
        raise ValueError("the structure lacks 'channels'")
    grid_shape = structure.get("grid_shape")
    return {
        **dict(structure),
        "channels": int(structure["channels"]),
        "grid_shape": None if grid_shape is None else tuple(int(s) for s in grid_shape),
        "extra_tokens": int(structure.get("extra_tokens", 0) or 0),
        "causal": bool(structure.get("causal", False)),
    }


def _final_state(result: Any) -> Tensor:
    """The final state from whatever a stepper's forward returned."""
    if isinstance(result, Tensor):
        return result
    if hasattr(result, "state"):
        return result.state
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], Tensor):
        return result[0]
    raise TypeError(f"stepper returned {type(result).__name__}, expected a tensor")


def _zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear head with zero weight and bias (ViT convention): uniform initial prediction."""
    head = nn.Linear(in_features, out_features)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def _param_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.get_default_dtype()


class AblationTask(ABC):
    """Common interface of the ablation tasks (see module docstring).

    ``batches(split, batch_size, generator)`` -> endless iterator of training batches;
    ``forward(batch)`` -> :class:`TaskOutput`; ``loss(batch)`` -> scalar tensor;
    ``accuracy(batch)`` -> float; ``evaluate(split)`` -> ``{loss, accuracy, examples}`` on a
    fixed subset; ``parameters()`` -> every parameter (embedding + stepper + head).
    """

    name: str = "task"
    default_batch_size: int = 16
    default_eval_examples: int = 256

    def __init__(self, stepper: nn.Module, structure: Mapping[str, Any] | None = None):
        self.structure = resolve_structure(stepper, structure)
        self.channels: int = self.structure["channels"]
        self.extra_tokens: int = self.structure["extra_tokens"]
        self.model: nn.Module = self._build_model(stepper)
        device, dtype = _param_device_dtype(stepper)
        self.model.to(device=device, dtype=dtype)
        self.device = device

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def _build_model(self, stepper: nn.Module) -> nn.Module:
        """The task model; ``forward(inputs) -> (logits, stepper_input, stepper_output)``."""

    @abstractmethod
    def sample_batch(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        """A random batch drawn with ``generator``."""

    @abstractmethod
    def eval_batches(self, split: str, max_examples: int | None, batch_size: int) -> list[Batch]:
        """A fixed (generator-independent) list of batches covering the evaluation subset."""

    # -- shared API ---------------------------------------------------------------------
    @property
    def stepper(self) -> nn.Module:
        return self.model.stepper

    @property
    def tokens(self) -> int:
        """Number of tokens ``N`` fed to the stepper."""
        return self.extra_tokens + self.grid_tokens

    grid_tokens: int = 0

    def parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter of the task model: embedding, stepper and head."""
        return self.model.parameters()

    def train(self, mode: bool = True) -> AblationTask:
        self.model.train(mode)
        return self

    def eval(self) -> AblationTask:
        return self.train(False)

    def batches(
        self, split: str, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Endless iterator of random batches of ``split`` drawn with ``generator``."""
        batch_size = batch_size or self.default_batch_size
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        while True:
            yield self.sample_batch(split, batch_size, generator)

    def forward(self, batch: Batch) -> TaskOutput:
        """Loss ``L = mean_i CE(logits_i, target_i)`` over the predicted targets ``i``."""
        batch = batch.to(self.device)
        logits, _, state = self.model(batch.inputs)
        flat_logits = logits.reshape(-1, logits.shape[-1])
        flat_targets = batch.targets.reshape(-1)
        if batch.loss_mask is not None:
            selected = batch.loss_mask.reshape(-1)
            flat_logits, flat_targets = flat_logits[selected], flat_targets[selected]
        loss = F.cross_entropy(flat_logits.float(), flat_targets)
        correct = int((flat_logits.detach().argmax(-1) == flat_targets).sum())
        return TaskOutput(loss, logits, state, correct, int(flat_targets.numel()))

    def loss(self, batch: Batch) -> Tensor:
        """Scalar training loss of ``batch``."""
        return self.forward(batch).loss

    @torch.no_grad()
    def accuracy(self, batch: Batch) -> float:
        """Fraction of correct predictions on ``batch``."""
        output = self.forward(batch)
        return output.correct / max(output.count, 1)

    @torch.no_grad()
    def stepper_inputs(self, batch: Batch) -> Tensor:
        """The embedded tokens ``u`` (B, N, C) that the stepper receives for ``batch``."""
        batch = batch.to(self.device)
        return self.model.embed(batch.inputs)

    def evaluate(
        self, split: str = "test", max_examples: int | None = None, batch_size: int = 64
    ) -> dict[str, float]:
        """Mean loss and accuracy on a fixed subset of ``split`` (first ``max_examples``).

        Runs in eval mode without gradients and restores the previous mode.  Returns
        ``{"loss": float, "accuracy": float, "examples": int}`` (``examples`` counts
        predictions: images for digits, predicted characters for text).
        """
        if max_examples is None:
            max_examples = self.default_eval_examples
        was_training = self.model.training
        self.model.eval()
        total_loss, correct, count = 0.0, 0, 0
        try:
            with torch.no_grad():
                for batch in self.eval_batches(split, max_examples, batch_size):
                    output = self.forward(batch)
                    total_loss += float(output.loss) * output.count
                    correct += output.correct
                    count += output.count
        finally:
            self.model.train(was_training)
        if count == 0:
            return {"loss": math.nan, "accuracy": math.nan, "examples": 0}
        return {"loss": total_loss / count, "accuracy": correct / count, "examples": count}


# ---------------------------------------------------------------------------------------
# Digits
# ---------------------------------------------------------------------------------------

_SQUARE_LAYOUTS = {1: (1, 1), 4: (2, 2), 16: (4, 4), 64: (8, 8)}


def digits_patch_layout(grid_shape: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    """``(rows, cols, patch_h, patch_w)`` for cutting an 8x8 image to fit ``grid_shape``.

    ``None`` -> 2x2 patches on a 4x4 grid laid out as a sequence of 16 tokens; ``(r, c)``
    -> patches of ``(8/r) x (8/c)`` pixels (``r`` and ``c`` must divide 8); ``(n,)`` ->
    the square layout with ``n`` in {1, 4, 16, 64} tokens.
    """
    if grid_shape is None:
        rows, cols = 4, 4
    elif len(grid_shape) == 1 and grid_shape[0] in _SQUARE_LAYOUTS:
        rows, cols = _SQUARE_LAYOUTS[grid_shape[0]]
    elif len(grid_shape) == 2:
        rows, cols = grid_shape
    else:
        raise ValueError(f"digits task cannot lay 8x8 images out on grid {grid_shape}")
    if rows < 1 or cols < 1 or DIGITS_SIDE % rows or DIGITS_SIDE % cols:
        raise ValueError(f"digits task needs grid sides dividing 8, got {grid_shape}")
    return rows, cols, DIGITS_SIDE // rows, DIGITS_SIDE // cols


def image_patches(images: Tensor, rows: int, cols: int) -> Tensor:
    """``(B, 8, 8)`` -> ``(B, rows*cols, ph*pw)`` patches in row-major grid order."""
    batch = images.shape[0]
    ph, pw = images.shape[1] // rows, images.shape[2] // cols
    patches = images.reshape(batch, rows, ph, cols, pw).permute(0, 1, 3, 2, 4)
    return patches.reshape(batch, rows * cols, ph * pw)


class _DigitsModel(nn.Module):
    """Patch embedding + position embedding (+ CLS/extra tokens) -> stepper -> linear head."""

    def __init__(self, stepper: nn.Module, channels: int, extra_tokens: int, layout: tuple):
        super().__init__()
        self.rows, self.cols, ph, pw = layout
        self.extra_tokens = extra_tokens
        self.patch_embedding = nn.Linear(ph * pw, channels)
        nn.init.normal_(self.patch_embedding.weight, std=1.0)
        nn.init.zeros_(self.patch_embedding.bias)
        self.position_embedding = nn.Parameter(
            torch.randn(1, self.rows * self.cols, channels) * POSITION_INIT_STD
        )
        self.extra_embedding = (
            nn.Parameter(torch.randn(1, extra_tokens, channels) * POSITION_INIT_STD)
            if extra_tokens
            else None
        )
        self.stepper = stepper
        self.head = _zero_linear(channels, DIGITS_CLASSES)

    def embed(self, images: Tensor) -> Tensor:
        patches = image_patches(images.to(self.patch_embedding.weight.dtype), self.rows, self.cols)
        tokens = self.patch_embedding(patches) + self.position_embedding
        if self.extra_embedding is not None:
            extra = self.extra_embedding.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([extra, tokens], dim=1)
        return tokens

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u = self.embed(images)
        state = _final_state(self.stepper(u))
        pooled = state[:, 0] if self.extra_tokens else state.mean(dim=1)
        return self.head(pooled), u, state


class DigitsTask(AblationTask):
    """Classify scikit-learn's 8x8 digits with the stepper (see module docstring).

    The split is a fixed permutation (``numpy`` seed ``split_seed``): the last
    ``test_fraction`` of it is the test split.  ``evaluate`` uses the first
    ``max_examples`` test images (default 256 of 360).
    """

    name = "digits"
    default_batch_size = 16
    default_eval_examples = 256

    def __init__(
        self,
        stepper: nn.Module,
        structure: Mapping[str, Any] | None = None,
        *,
        test_fraction: float = 0.2,
        split_seed: int = 0,
    ):
        structure = resolve_structure(stepper, structure)
        self.layout = digits_patch_layout(structure["grid_shape"])
        self.grid_tokens = self.layout[0] * self.layout[1]
        super().__init__(stepper, structure)
        self.splits = digits_train_test(split_seed, test_fraction)

    def _build_model(self, stepper: nn.Module) -> nn.Module:
        return _DigitsModel(stepper, self.channels, self.extra_tokens, self.layout)

    def _split(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return self.splits[split]

    def split_size(self, split: str) -> int:
        return int(self._split(split)[1].shape[0])

    def sample_batch(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        images, labels = self._split(split)
        index = torch.randperm(labels.shape[0], generator=generator)[:batch_size]
        return Batch(images[index], labels[index])

    def batches(
        self, split: str, batch_size: int | None = None, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Endless epochs; each epoch is a fresh ``generator`` permutation of ``split``."""
        batch_size = batch_size or self.default_batch_size
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        images, labels = self._split(split)
        while True:
            order = torch.randperm(labels.shape[0], generator=generator)
            for start in range(0, len(order) - batch_size + 1, batch_size):
                index = order[start : start + batch_size]
                yield Batch(images[index], labels[index])

    def eval_batches(self, split: str, max_examples: int | None, batch_size: int) -> list[Batch]:
        images, labels = self._split(split)
        count = labels.shape[0] if max_examples is None else min(max_examples, labels.shape[0])
        return [
            Batch(images[start : min(start + batch_size, count)],
                  labels[start : min(start + batch_size, count)])
            for start in range(0, count, batch_size)
        ]


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _encoded_corpus() -> tuple[tuple[str, ...], Tensor]:
    text = load_pydoc_text()
    vocabulary = tuple(sorted(set(text)))
    lookup = np.zeros(128, dtype=np.int64)
    for index, char in enumerate(vocabulary):
        lookup[ord(char)] = index
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return vocabulary, torch.from_numpy(lookup[codes])


class _TextModel(nn.Module):
    """Token + position embedding (+ extra tokens) -> stepper -> linear head over the vocabulary."""

    def __init__(
        self, stepper: nn.Module, channels: int, extra_tokens: int, length: int,
        embedding_rows: int, vocabulary_size: int,
    ):
        super().__init__()
        self.extra_tokens = extra_tokens
        self.token_embedding = nn.Embedding(embedding_rows, channels)
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        self.position_embedding = nn.Parameter(
            torch.randn(1, length, channels) * POSITION_INIT_STD
        )
        self.extra_embedding = (
            nn.Parameter(torch.randn(1, extra_tokens, channels) * POSITION_INIT_STD)
            if extra_tokens
            else None
        )
        self.stepper = stepper
        self.head = _zero_linear(channels, vocabulary_size)

    def embed(self, ids: Tensor) -> Tensor:
        tokens = self.token_embedding(ids) + self.position_embedding[:, : ids.shape[1]]
        if self.extra_embedding is not None:
            extra = self.extra_embedding.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([extra, tokens], dim=1)
        return tokens

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u = self.embed(ids)
        state = _final_state(self.stepper(u))
        return self.head(state[:, self.extra_tokens :]), u, state


class TextTask(AblationTask):
    """Character-level LM on ``pydoc_data.topics`` (see module docstring for the objective).

    ``objective``: ``None`` (``"causal"`` for a causal stepper, else ``"masked"``),
    ``"causal"`` (refused for a non-causal stepper: it could read the targets) or
    ``"masked"``.  ``seq_len`` defaults to the grid size (``rows*cols`` or ``n``) or 64
    for ``grid_shape=None``.  ``evaluate`` uses ``max_examples`` fixed windows (default 32).
    """

    name = "text"
    default_batch_size = 16
    default_eval_examples = 32
    train_fraction = 0.9

    def __init__(
        self,
        stepper: nn.Module,
        structure: Mapping[str, Any] | None = None,
        *,
        seq_len: int | None = None,
        objective: str | None = None,
        mask_fraction: float = MASK_FRACTION,
    ):
        structure = resolve_structure(stepper, structure)
        grid_shape = structure["grid_shape"]
        grid_len = None if grid_shape is None else int(np.prod(grid_shape))
        if seq_len is None:
            seq_len = grid_len or 64
        elif grid_len is not None and seq_len != grid_len:
            raise ValueError(f"seq_len={seq_len} but the stepper's grid {grid_shape} has "
                             f"{grid_len} tokens")
        causal = structure["causal"]
        if objective is None:
            objective = "causal" if causal else "masked"
        if objective not in ("causal", "masked"):
            raise ValueError(f"objective must be 'causal' or 'masked', got {objective!r}")
        if objective == "causal" and not causal:
            raise ValueError("next-token prediction needs a causal stepper; "
                             "use objective='masked' for a bidirectional one")
        self.objective = objective
        self.seq_len = int(seq_len)
        self.grid_tokens = self.seq_len
        self.mask_fraction = mask_fraction
        self.masked_per_sequence = max(1, round(mask_fraction * self.seq_len))
        self.vocabulary, corpus = _encoded_corpus()
        cut = int(len(corpus) * self.train_fraction)
        self.splits = {"train": corpus[:cut], "test": corpus[cut:]}
        self.mask_id = len(self.vocabulary) if objective == "masked" else None
        super().__init__(stepper, structure)

    def _build_model(self, stepper: nn.Module) -> nn.Module:
        rows = len(self.vocabulary) + (1 if self.objective == "masked" else 0)
        return _TextModel(stepper, self.channels, self.extra_tokens, self.seq_len, rows,
                          len(self.vocabulary))

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocabulary[int(i)] for i in ids.reshape(-1) if i < len(self.vocabulary))

    def _windows(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        corpus = self.splits[split]
        span = self.seq_len + 1
        offsets = torch.randint(0, len(corpus) - span + 1, (batch_size,), generator=generator)
        windows = corpus[offsets[:, None] + torch.arange(span)]
        if self.objective == "causal":
            return Batch(windows[:, :-1], windows[:, 1:])
        ids = windows[:, :-1]
        scores = torch.rand(batch_size, self.seq_len, generator=generator)
        positions = scores.argsort(dim=1)[:, : self.masked_per_sequence]
        loss_mask = torch.zeros(batch_size, self.seq_len, dtype=torch.bool)
        loss_mask.scatter_(1, positions, True)
        inputs = ids.masked_fill(loss_mask, self.mask_id)
        return Batch(inputs, ids, loss_mask)

    def sample_batch(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        return self._windows(split, batch_size, generator)

    def eval_batches(self, split: str, max_examples: int | None, batch_size: int) -> list[Batch]:
        count = self.default_eval_examples if max_examples is None else max_examples
        generator = torch.Generator().manual_seed(EVAL_SEED)
        sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]
        return [self._windows(split, size, generator) for size in sizes]


TASKS: dict[str, type[AblationTask]] = {"digits": DigitsTask, "text": TextTask}


def make_task(
    name: str, stepper: nn.Module, structure: Mapping[str, Any] | None = None, **options: Any
) -> AblationTask:
    """Build the task called ``name`` (``"digits"`` or ``"text"``) around ``stepper``."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}") from None
    return cls(stepper, structure, **options)
