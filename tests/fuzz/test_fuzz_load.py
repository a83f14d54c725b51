"""Fuzz the loader (YAML → validated Spec) with mutations of every shipped spec.

Mutations of the spec tree: keys deleted, duplicated, renamed (payload names included),
retyped; values swapped between keys; 0, negative, huge, NaN, inf, floats for ints; lists
and mappings where scalars go; unicode, long strings, text with newlines, quotes and
backslashes; random term and equation expressions — and text-level edits (a duplicated
line, a tab, a truncation).  Every input loads, or raises a located PdelangError; what
loads is also parsed and lowered (the cheap stages; tests/fuzz/test_fuzz_compile.py runs
the whole compile path on a share of such inputs).
"""

from __future__ import annotations

import fuzz_strategies as F
from hypothesis import given
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_spec
from pdelang.compiler.spec.load import load_spec_text

TEST = "load: mutated shipped specs"


@F.fuzz_settings(1700)
@given(F.mutated_spec_texts())
def test_mutated_shipped_specs_load_or_fail_located(text):
    spec = F.outcome(TEST, lambda: load_spec_text(text, "fuzz.yaml"))
    if spec is not None:
        F.outcome(TEST, lambda: compile_spec(spec, until="symbolic"), count=False)


@F.fuzz_settings(150)
@given(st.sampled_from(sorted(F.SPEC_TEXTS)), st.data())
def test_every_key_of_every_shipped_spec_retyped(name, data):
    """One value of a shipped spec replaced by a value of another shape."""
    tree = F.copy.deepcopy(F.SPEC_DATA[name])
    paths = [p for p, _ in F._paths(tree) if p]
    path = data.draw(st.sampled_from(paths))
    F._set(tree, path, data.draw(F.yaml_values()))
    text = F.yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    spec = F.outcome("load: one value retyped", lambda: load_spec_text(text, "fuzz.yaml"))
    if spec is not None:
        F.outcome("load: one value retyped", lambda: compile_spec(spec, until="symbolic"),
                  count=False)
