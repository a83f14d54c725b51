"""The one data module of the research tools: built-in, deterministic data that needs no download.

Validation, the reference adapters (:meth:`pdelang.lab.reference.base.Reference.sample_inputs`) and
the ablation tasks (:mod:`pdelang.lab.ablation.tasks`) all read their data here.  It is a
top-level module, next to :mod:`pdelang.lab.metrics`, because no single tool owns it.  Two sources:

Text: the Python reference manual as shipped in the standard library
(``pydoc_data.topics.topics``, read in sorted topic order by :func:`pydoc_topics`).  It is used
in three forms:

* :func:`load_corpus` — *sentences* (validation and the text references).  Each topic is cut
  into paragraphs; headings and paragraphs whose lines are not all indented alike (grammar
  rules, most code) are dropped, and wrapped lines are joined (undoing hyphenation at a line
  end); footnote marks like ``[1]`` are removed, whitespace is collapsed, and the text is split
  into sentences at ``.``, ``!`` or ``?`` followed by a capital letter.  A sentence is kept when
  it has 5–40 words, starts with a capital letter or a quote, ends with ``.``, ``!`` or ``?``
  and is mostly letters; duplicates are removed.  Split: a sentence is *held out* when the
  first byte of ``md5(sentence)`` is below 51 (≈ 20 %), otherwise it is *train*.  Within a
  split, sentences are ordered by their md5 digest, so the first ``n`` are a deterministic
  sample spread over all topics.
* :func:`load_labelled_corpus` — *labelled sentences* (the text task of ``I(T; Y)``,
  :mod:`pdelang.lab.information`): the sentences of :func:`load_corpus` (same split, same order)
  from the ``K = 8`` topics with the most kept sentences (:func:`labelled_topics`), labelled by
  their topic.  A sentence found in several topics belongs to the first in sorted order (the
  one that kept it).  With Python 3.11: 607 train and 171 held-out sentences, every class
  with ≥ 42 train and ≥ 11 held-out ones.
* :func:`load_pydoc_text` — one *character* string (the ablation's text task): the topics
  joined with newlines, restricted to printable ASCII plus newline.

All three depend on the Python version (the topics change between releases) but are
deterministic for a given one.

Images: scikit-learn's bundled 8x8 digits (``load_digits``, 1797 images, values 0..16) scaled
to ``[0, 1]`` (:func:`digits_arrays`).  Two fixed splits exist, each kept because published
numbers depend on it:

* :func:`load_digits_images` (validation, the image references): a
  ``numpy.random.default_rng(0)`` permutation, the first 80 % ``'train'``, the rest
  ``'heldout'``;
* :func:`digits_train_test` (the ablation's digits task): a legacy
  ``numpy.random.RandomState(split_seed)`` permutation, the last ``test_fraction`` ``'test'``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from pydoc_data.topics import topics

SPLITS = ("train", "heldout")
MIN_WORDS = 5
MAX_WORDS = 40
HELDOUT_THRESHOLD = 51  # of 256: the held-out share of the md5 space (~20 %)
DIGITS_TRAIN_FRACTION = 0.8
LABELLED_TOPICS = 8  # classes of the labelled text task: the topics with the most sentences

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z\"'(])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "cf.", "vs.", "mr.", "dr.", "no.", "fig.")
_FOOTNOTE = re.compile(r"\[\d+\]")
_HEADING_RULE = re.compile(r"^([*=\-~^#\"+])\1{2,}\s*$")
_MARKUP = re.compile(r"::=|>>>|\.\.\.\s*$|[*`|{}\\]")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _digest(sentence: str) -> bytes:
    return hashlib.md5(sentence.encode("utf-8")).digest()


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences at ``.!?`` followed by whitespace and a capital or quote.

    A break after a common abbreviation (``e.g.``, ``i.e.``, ``etc.``, ...) is not a sentence end.
    """
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        pieces.append(text[start:end].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    sentences: list[str] = []
    for piece in pieces:
        if sentences and sentences[-1].lower().endswith(_ABBREVIATIONS):
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece:
            sentences.append(piece)
    return sentences


def _join_lines(lines: list[str]) -> str:
    """Join wrapped lines with spaces, undoing hyphenation at a line end (``built-`` + ``in``)."""
    text = ""
    for line in lines:
        part = line.strip()
        text = text + part if text.endswith("-") or not text else f"{text} {part}"
    return text


def _prose_paragraphs(document: str) -> list[str]:
    """Paragraphs of a pydoc topic that may be prose, each joined into one line.

    Headings (a line underlined with ``***``/``===``/...) are dropped, as are paragraphs whose
    lines are not all indented alike (code, grammar rules and tables usually are not); the
    sentence filter removes what code remains.
    """
    paragraphs: list[str] = []
    block: list[str] = []
    for line in [*document.splitlines(), ""]:
        if line.strip():
            block.append(line)
            continue
        if block:
            indents = {len(part) - len(part.lstrip()) for part in block}
            heading = any(_HEADING_RULE.match(part.strip()) for part in block)
            if not heading and len(indents) == 1:
                paragraphs.append(_join_lines(block))
            block = []
    return paragraphs


def _acceptable(sentence: str) -> bool:
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if not (sentence[0].isupper() or sentence[0] in "\"'"):
        return False
    if sentence[-1] not in ".!?" or _MARKUP.search(sentence):
        return False
    visible = [ch for ch in sentence if not ch.isspace()]
    letters = sum(ch.isalpha() for ch in visible)
    return letters >= 0.75 * len(visible)


def pydoc_topics() -> list[tuple[str, str]]:
    """``(name, text)`` of every ``pydoc_data.topics`` topic, in sorted name order."""
    return [(name, topics[name]) for name in sorted(topics)]


@functools.lru_cache(maxsize=1)
def _topic_of_sentence() -> dict[str, str]:
    """Every kept sentence → the pydoc topic it is first found in (topics in sorted order)."""
    topics: dict[str, str] = {}
    for name, document in pydoc_topics():
        for paragraph in _prose_paragraphs(document):
            for sentence in split_sentences(_FOOTNOTE.sub("", paragraph)):
                if _acceptable(sentence) and sentence not in topics:
                    topics[sentence] = name
    return topics


@functools.lru_cache(maxsize=1)
def _all_sentences() -> tuple[str, ...]:
    return tuple(_topic_of_sentence())


@functools.lru_cache(maxsize=2)
def _split_sentences_of(split: str) -> tuple[str, ...]:
    chosen = [
        sentence
        for sentence in _all_sentences()
        if (_digest(sentence)[0] < HELDOUT_THRESHOLD) == (split == "heldout")
    ]
    return tuple(sorted(chosen, key=_digest))


def load_corpus(split: str = "train", n: int | None = None) -> list[str]:
    """The first ``n`` sentences (all if ``None``) of the ``'train'`` or ``'heldout'`` split."""
    _check_split(split)
    sentences = _split_sentences_of(split)
    if n is not None:
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if n > len(sentences):
            raise ValueError(f"the {split} split has only {len(sentences)} sentences, asked {n}")
        sentences = sentences[:n]
    return list(sentences)


@functools.lru_cache(maxsize=4)
def labelled_topics(topics: int = LABELLED_TOPICS) -> tuple[str, ...]:
    """The ``topics`` pydoc topics with the most kept sentences (both splits together), most
    first (ties: by name): the classes of :func:`load_labelled_corpus`."""
    if topics < 2:
        raise ValueError(f"a labelled corpus needs at least 2 topics, got {topics}")
    counts = Counter(_topic_of_sentence().values())
    if topics > len(counts):
        raise ValueError(f"the corpus has only {len(counts)} topics with sentences, asked "
                         f"{topics}")
    ranked = sorted(counts, key=lambda name: (-counts[name], name))
    return tuple(ranked[:topics])


def load_labelled_corpus(
    split: str = "train", n: int | None = None, *, topics: int = LABELLED_TOPICS
) -> tuple[list[str], list[int], list[str]]:
    """``(sentences, labels, label_names)``: the labelled text task (for ``I(T; Y)`` on text).

    The label of a sentence is the pydoc topic it comes from, as an index into
    ``label_names`` (:func:`labelled_topics`: the ``topics`` topics with the most sentences,
    most first).  The sentences are those of :func:`load_corpus` (same ``split``, same md5
    order) whose topic is one of them; the first ``n`` (all if ``None``) are returned.
    """
    _check_split(split)
    names = labelled_topics(topics)
    index = {name: label for label, name in enumerate(names)}
    topic_of = _topic_of_sentence()
    sentences = [s for s in _split_sentences_of(split) if topic_of[s] in index]
    if n is not None:
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if n > len(sentences):
            raise ValueError(f"the labelled {split} split has only {len(sentences)} sentences, "
                             f"asked {n}")
        sentences = sentences[:n]
    return sentences, [index[topic_of[s]] for s in sentences], list(names)


def read_text_file(path: str | Path, mode: str = "auto") -> list[str]:
    """Sentences of a user's UTF-8 text file.

    ``mode='lines'``: every non-empty line is one sentence.  ``mode='sentences'``: lines are
    joined within paragraphs (blank-line separated) and split with :func:`split_sentences`.
    ``mode='auto'`` (default) uses ``'sentences'`` when some line holds a sentence boundary in
    its middle (wrapped prose), otherwise ``'lines'``.
    """
    if mode not in ("auto", "lines", "sentences"):
        raise ValueError(f"mode must be 'auto', 'lines' or 'sentences', got {mode!r}")
    text = Path(path).read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    if mode == "auto":
        wrapped = any(len(split_sentences(line)) > 1 for line in lines if line)
        mode = "sentences" if wrapped else "lines"
    if mode == "lines":
        sentences = [line for line in lines if line]
    else:
        sentences = []
        for paragraph in re.split(r"\n\s*\n", text):
            sentences.extend(split_sentences(paragraph))
    if not sentences:
        raise ValueError(f"{path}: no text found")
    return sentences


def _printable(char: str) -> bool:
    return char == "\n" or 32 <= ord(char) <= 126


@functools.lru_cache(maxsize=1)
def load_pydoc_text() -> str:
    """The ``pydoc_data`` topics joined with newlines, printable ASCII + newline only.

    Characters outside that set (a handful of typographic quotes/dashes, tabs) are dropped.
    """
    text = "\n".join(document for _, document in pydoc_topics())
    return "".join(char for char in text if _printable(char))


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: ``(N, 8, 8)`` float32 images in ``[0, 1]`` and ``(N,)`` int64 labels.

    Cached and shared: index into them (a copy), never write to them.
    """
    from sklearn.datasets import load_digits  # lazy: sklearn

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    return images, data.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels = digits_arrays()
    order = torch.tensor(np.random.default_rng(0).permutation(len(labels)), dtype=torch.long)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels), order


def load_digits_images(
    n: int | None = None, split: str = "heldout"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: digits as ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` and ``(N,)`` long."""
    _check_split(split)
    images, labels, order = _digits()
    cut = round(DIGITS_TRAIN_FRACTION * len(order))
    indices = order[:cut] if split == "train" else order[cut:]
    if n is not None:
        if n < 0 or n > len(indices):
            raise ValueError(f"the {split} split has {len(indices)} images, asked {n}")
        indices = indices[:n]
    return images[indices].clone(), labels[indices].clone()


def digits_train_test(
    split_seed: int = 0, test_fraction: float = 0.2
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{'train': (images, labels), 'test': (images, labels)}``: ``(N, 8, 8)`` float32 images
    in ``[0, 1]`` and ``(N,)`` int64 labels.

    The split is a ``numpy.random.RandomState(split_seed)`` permutation whose last
    ``round(test_fraction * 1797)`` images are the test split.
    """
    images, labels = digits_arrays()
    order = np.random.RandomState(split_seed).permutation(len(labels))
    n_test = round(test_fraction * len(labels))
    train_idx, test_idx = order[: len(labels) - n_test], order[len(labels) - n_test :]
    return {
        "train": (torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx])),
        "test": (torch.from_numpy(images[test_idx]), torch.from_numpy(labels[test_idx])),
    }
