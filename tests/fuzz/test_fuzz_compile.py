"""Fuzz the whole compile path (load → parse → lower → schedule → analyse → discretize →
print): mutated shipped specs, specs drawn from the grammar with a term replaced by a random
expression, and text in descriptions and file names that must stay out of the code.  Every
input compiles to Python source that Python compiles, or raises a located PdelangError.

Only a share of the fuzz cases go this far (the analysis is the expensive stage); the
others stop after the loader or the lowering (tests/fuzz/test_fuzz_load.py, …_grammar.py).
"""

from __future__ import annotations

import fuzz_strategies as F
from hypothesis import given
from hypothesis import strategies as st

from pdelang.compiler.driver import compile_spec, compile_text
from pdelang.compiler.spec.load import load_spec_text
from pdelang.lab.testing import strategies as S

TEST = "compile: mutated shipped specs, whole path"


def compiles(source: str) -> None:
    """The generated module is valid Python (importing it needs torch: the codegen tests)."""
    compile(source, "<generated>", "exec", dont_inherit=True)


@F.fuzz_settings(120)
@given(F.mutated_spec_texts(mutations=(1, 2), wildness=10, text_edit=False))
def test_mutated_specs_compile_or_fail_located(text):
    spec = F.outcome(TEST, lambda: load_spec_text(text, "fuzz.yaml"))
    if spec is not None:
        result = F.outcome(TEST, lambda: compile_spec(spec), count=False)
        if result is not None:
            compiles(result.python)


@F.fuzz_settings(60)
@given(S.spec_texts(), F.expressions(), st.data())
def test_drawn_specs_with_a_random_term_compile_or_fail_located(text, expression, data):
    lines = text.splitlines()
    terms = [i for i, line in enumerate(lines) if line.startswith("  t") and ": " in line]
    if terms:
        i = data.draw(st.sampled_from(terms))
        lines[i] = lines[i].split(": ", 1)[0] + ": " + F.quoted(expression)
    text = "\n".join(lines) + "\n"
    result = F.outcome("compile: drawn specs with a random term",
                       lambda: compile_text(text, "fuzz.yaml"))
    if result is not None:
        compiles(result.python)


@F.fuzz_settings(40)
@given(st.sampled_from(F.PAYLOADS + F.LONG_STRINGS), st.sampled_from(F.PAYLOADS),
       st.sampled_from(["heat1d", "master", "conv_mixer"]))
def test_payloads_in_descriptions_and_file_names_stay_out_of_the_code(description, filename,
                                                                       name):
    data = F.copy.deepcopy(F.SPEC_DATA[name])
    data["description"] = description
    text = F.yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    result = F.outcome("compile: payload descriptions and file names",
                       lambda: compile_text(text, f"specs/{filename}.yaml"))
    if result is not None:
        compiles(result.python)
