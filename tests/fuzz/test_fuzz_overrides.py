"""Fuzz the ``--set KEY=VALUE`` overrides: every key of the spec format with random values
(numbers of every size, collections, expressions, YAML aliases including an alias bomb,
deep nesting), garbage keys and separators, payload text."""

from __future__ import annotations

import fuzz_strategies as F
from hypothesis import given
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text

TEST = "overrides: --set strings"


@F.fuzz_settings(1100)
@given(st.sampled_from(sorted(F.SPEC_TEXTS)), st.lists(F.override_strings(), min_size=1,
                                                        max_size=3))
def test_overrides_apply_or_fail_located(name, overrides):
    text = F.SPEC_TEXTS[name]
    spec = F.outcome(TEST, lambda: load_spec_text(text, f"specs/{name}.yaml", overrides))
    if spec is not None:
        F.outcome(TEST, lambda: compile_spec(spec, until="symbolic"), count=False)
