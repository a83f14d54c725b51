"""Fuzz the term grammar and the lowering: random expressions over the grammar's tokens.

Structured expressions (numbers of every size, names known and unknown, every operator with
random positional and keyword arguments, signs, parentheses), token soup, and the extreme
shapes that used to reach Python's recursion limit or run for minutes: deep nesting, sums
and products of hundreds to thousands of operands, integer towers, powers of sums.  Parsing
alone, then as a term of a spec, lowered to SymPy.
"""

from __future__ import annotations

import fuzz_strategies as F
from hypothesis import given
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_text
from pdelang.errors import SourceLocation
from pdelang.compiler.language.parse import parse_source
from pdelang.compiler.spec.model import SourceString

TEMPLATE = """\
pdelang: 1
name: fuzz
grid: {{axes: [x], shape: [24], boundary: {boundary}}}
fields: {{u: {{channels: 4}}}}
parameters:
  D: 0.1
  alpha: {{value: 0.5, learnable: true, positive: true}}
terms:
  diffusion: {term}
  reaction: u - u^3
equation: dt(u) = diffusion + reaction
time: {{span: [0, 1], layers: 2, substeps: 2, scheme: {scheme}}}
"""


def spec_text(term: str, boundary: str = "periodic", scheme: str = "euler") -> str:
    return TEMPLATE.format(term=F.quoted(term), boundary=boundary, scheme=scheme)


@F.fuzz_settings(1300)
@given(F.expressions(), st.sampled_from(["term", "equation"]))
def test_expressions_parse_or_fail_located(text, what):
    if what == "equation":
        text = "dt(u) = " + text
    source = SourceString(text, SourceLocation("<fuzz>", 1, 1, text))
    F.outcome("grammar: parse", lambda: parse_source(source, what))


@F.fuzz_settings(400)
@given(F.expressions())
def test_expressions_lower_in_a_spec_or_fail_located(term):
    text = spec_text(term)
    F.outcome("grammar: lower in a spec", lambda: compile_text(text, "fuzz.yaml",
                                                                until="symbolic"))
