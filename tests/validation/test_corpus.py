"""pdelang.lab.data: the built-in corpus, user text files and the digits images."""

from __future__ import annotations

import pytest
import torch

from pdelang.lab.data import (
    LABELLED_TOPICS,
    MAX_WORDS,
    MIN_WORDS,
    SPLITS,
    digits_arrays,
    digits_train_test,
    labelled_topics,
    load_corpus,
    load_digits_images,
    load_labelled_corpus,
    pydoc_topics,
    read_text_file,
    split_sentences,
)


def test_corpus_is_deterministic_disjoint_and_clean():
    train, heldout = load_corpus("train"), load_corpus("heldout")
    assert len(train) > 500 and len(heldout) > 100
    assert 0.1 < len(heldout) / (len(train) + len(heldout)) < 0.3
    assert not set(train) & set(heldout)
    assert len(set(train)) == len(train)
    assert load_corpus("train") == train
    for sentence in train + heldout:
        assert MIN_WORDS <= len(sentence.split()) <= MAX_WORDS
        assert sentence[-1] in ".!?"
        assert "::=" not in sentence and ">>>" not in sentence and "  " not in sentence


def test_corpus_prefixes():
    assert load_corpus("heldout", 5) == load_corpus("heldout")[:5]
    assert load_corpus("train", 0) == []
    with pytest.raises(ValueError):
        load_corpus("validation", 3)
    with pytest.raises(ValueError):
        load_corpus("heldout", 10**6)


def test_split_sentences():
    text = 'Hello there.  This is, e.g. a test! Is it?\nYes "it is." Fine.'
    assert split_sentences(text) == [
        "Hello there.", "This is, e.g. a test!", "Is it?", 'Yes "it is."', "Fine."
    ]
    assert split_sentences("version 3.8 is out. ok") == ["version 3.8 is out. ok"]
    assert split_sentences("   ") == []


def test_read_text_file_lines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("the cat sat on the mat\n\nA dog barked.\nno period here\n")
    assert read_text_file(path) == ["the cat sat on the mat", "A dog barked.", "no period here"]


def test_read_text_file_prose(tmp_path):
    path = tmp_path / "prose.txt"
    path.write_text(
        "The first sentence is wrapped\nover two lines. The second one\nends here.\n\n"
        "A new paragraph.\n"
    )
    assert read_text_file(path) == [
        "The first sentence is wrapped over two lines.", "The second one ends here.",
        "A new paragraph.",
    ]
    assert len(read_text_file(path, mode="lines")) == 4
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError):
        read_text_file(empty)


def test_digits():
    images, labels = load_digits_images(10, "heldout")
    assert images.shape == (10, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (10,) and labels.dtype == torch.long
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(images.max()) == 1.0
    train, _ = load_digits_images(None, "train")
    heldout, _ = load_digits_images(None, "heldout")
    assert len(train) + len(heldout) == 1797 and len(heldout) == 359
    assert torch.equal(load_digits_images(10, "heldout")[0], images)
    # disjoint: no held-out image equals a training image at the same index set
    flat_train = {tuple(row.tolist()) for row in train.flatten(1)}
    overlap = sum(tuple(row.tolist()) in flat_train for row in heldout.flatten(1))
    assert overlap < 5  # (the digits data set has a few exact duplicates)
    with pytest.raises(ValueError):
        load_digits_images(10, "test")


def test_both_digits_splits_partition_the_same_images():
    """Validation's split and the ablation task's split are two permutations of one array."""
    images, labels = digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype.name == "float32"
    validation = [load_digits_images(None, split) for split in SPLITS]
    task = digits_train_test()
    assert [len(task[split][1]) for split in ("train", "test")] == [1438, 359]
    everything = torch.from_numpy(images).double().sum()
    for parts in (validation, list(task.values())):
        assert sum(len(part_labels) for _, part_labels in parts) == 1797
        assert torch.cat([part.double().flatten() for part, _ in parts]).sum() == everything
        assert torch.cat([part_labels for _, part_labels in parts]).bincount().tolist() == \
            torch.from_numpy(labels).bincount().tolist()
    assert not torch.equal(task["test"][1], validation[1][1])  # different permutations



def test_labelled_corpus_is_a_deterministic_labelled_subset_of_the_corpus():
    """The pydoc topic of a sentence is its label; the top LABELLED_TOPICS topics are the
    classes, present in both splits; same md5 split and order as load_corpus."""
    names = labelled_topics()
    assert len(names) == LABELLED_TOPICS and len(set(names)) == LABELLED_TOPICS
    parts = {}
    for split in SPLITS:
        sentences, labels, label_names = load_labelled_corpus(split)
        assert label_names == list(names)
        assert len(sentences) == len(labels) and len(set(sentences)) == len(sentences)
        assert load_labelled_corpus(split) == (sentences, labels, label_names)
        corpus = load_corpus(split)
        position = {sentence: i for i, sentence in enumerate(corpus)}
        assert all(sentence in position for sentence in sentences)
        order = [position[sentence] for sentence in sentences]
        assert order == sorted(order)  # the corpus's own order, a subsequence of it
        counts = torch.bincount(torch.tensor(labels), minlength=LABELLED_TOPICS)
        assert int((counts > 0).sum()) == LABELLED_TOPICS  # every class in both splits
        assert int(counts.min()) >= (20 if split == "train" else 5)
        parts[split] = sentences
    assert not set(parts["train"]) & set(parts["heldout"])
    assert load_labelled_corpus("heldout", 7)[0] == parts["heldout"][:7]
    # a label is the topic the sentence comes from
    topics = dict(pydoc_topics())
    sentences, labels, label_names = load_labelled_corpus("heldout", 20)
    for sentence, label in zip(sentences, labels):
        assert " ".join(sentence.split()[:3]) in " ".join(topics[label_names[label]].split())
    with pytest.raises(ValueError):
        load_labelled_corpus("test")
    with pytest.raises(ValueError):
        load_labelled_corpus("heldout", 10**6)
    with pytest.raises(ValueError):
        labelled_topics(1)
