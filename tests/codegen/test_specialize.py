"""Print-time specialization of the runtime blocks (``codegen/specialize.py``).

A block branches on module constants and print-time flags; the printer folds the branches
the spec decides and keeps the rest line for line.  Here: the folding rules on small texts,
and every runtime block specialized for every boundary × grid dimension × flag setting
still parses, with the decided names gone.
"""

from __future__ import annotations

import ast
import itertools

import pytest

from pdelang.compiler.codegen import runtime as R
from pdelang.compiler.codegen.specialize import free_names, specialize

TEXT = '''def f(x):
    if A and x:
        y = 1
    elif B:
        y = 2
    elif C:
        # a comment is kept
        y = 3
    else:
        y = 4
    z = 4 if G is None else 5  # kept too
    if E:
        z = F.pad(z)
    return y + z
'''


def test_a_decided_if_keeps_its_taken_body_dedented():
    out = specialize(TEXT, {"A": False, "B": False, "C": True, "G": (2, 3), "E": 1})
    assert out == ('def f(x):\n    # a comment is kept\n    y = 3\n    z = 5  # kept too\n'
                   '    z = F.pad(z)\n    return y + z\n')


def test_an_undecided_test_loses_only_its_known_operands():
    out = specialize(TEXT, {"A": True, "B": True, "G": None, "E": 0})
    assert out == ('def f(x):\n    if x:\n        y = 1\n    else:\n        y = 2\n'
                   '    z = 4  # kept too\n    return y + z\n')


def test_a_view_of_every_token_is_the_tensor_itself():
    text = "g = u[:, EXTRA:]  # grid tokens\nh = f(mask[:, EXTRA:])\nk = u[:, :EXTRA]\n"
    assert specialize(text, {"EXTRA": 0}) == \
        "g = u  # grid tokens\nh = f(mask)\nk = u[:, :EXTRA]\n"
    assert specialize(text, {"EXTRA": 1}) == text


def test_unknown_names_leave_the_text_as_it_is():
    assert specialize(TEXT, {}) == TEXT
    assert specialize(TEXT, {"Z": 1}) == TEXT


def test_free_names_are_the_names_read():
    names = free_names("def g(u):\n    v = torch.cat([u, EXTRA])\n    return take(v, 1)\n")
    assert {"torch", "EXTRA", "take", "u", "v"} <= names
    assert "g" not in names  # defined, not read


FLAGS = ("ATTENTION_MASKS", "GRID_MASKS", "POSITIVE")
SETTINGS = [
    {"BOUNDARY": boundary, "GRID_SHAPE": shape, "EXTRA_TOKENS": extra, "STENCIL_RADIUS": 1,
     "CAUSAL": False, **dict(zip(FLAGS, flags, strict=True))}
    for boundary, shape, extra, flags in itertools.product(
        R.BOUNDARIES, (None, (4, 5)), (0, 1), itertools.product((False, True), repeat=3))
]
FILES = ["context", "scalars", "implicit", "implicit_periodic", "conv", "stencil_1d",
         "stencil_2d", "stencil_1d_copy", "stencil_2d_copy", "grid_lengths_1d",
         "grid_lengths_2d"]


@pytest.mark.parametrize("name", FILES)
def test_every_specialized_block_parses_and_holds_no_decided_name(name):
    for block in R.blocks(name).values():
        for known in SETTINGS:
            text = specialize(block, known)
            ast.parse(text)
            left = free_names(text) & set(FLAGS)
            assert not left, (name, known, left)
            if known["BOUNDARY"] != "periodic" or name != "implicit":
                assert "BOUNDARY ==" not in text


ATTENTION_FLAGS = ("SOFTMAX", "SINKHORN", "ROTARY", "GROUPED_QUERIES", "ATTENTION_MASKS")


@pytest.mark.parametrize("flags", [f for f in itertools.product((False, True), repeat=5)
                                   if f[0] or f[1]])  # a call has one of the two kernels
def test_the_attention_block_folds_to_the_calls_of_the_spec(flags):
    """The Attention block holds no decided flag, parses, and calls rotary /
    finite_logsumexp / the grouped repeat only when a call of the spec needs them."""
    known = {"EXTRA_TOKENS": 0, "GRID_SHAPE": None, "STENCIL_RADIUS": 1, "CAUSAL": False,
             "BOUNDARY": "periodic", **dict(zip(ATTENTION_FLAGS, flags, strict=True))}
    text = specialize(R.block("attention", "Attention"), known)
    ast.parse(text)
    assert not free_names(text) & set(ATTENTION_FLAGS)
    softmax, sinkhorn, rotary, grouped, _ = flags
    assert ("rotary" in free_names(text)) == rotary
    assert ("finite_logsumexp" in free_names(text)) == sinkhorn
    assert ("repeat_interleave" in text) == grouped
    assert ("scaled_dot_product_attention" in text) == softmax
