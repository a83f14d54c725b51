"""An error inside a term is reported at its exact line and column in the YAML file, whatever
the scalar style the term is written in (plain, quoted, block, folded, multi-line)."""

from __future__ import annotations

import pytest

from pdelang.compiler.driver import compile_spec
from pdelang.errors import PdelangError
from pdelang.compiler.spec.load import load_spec_text

HEAD = """pdelang: 1
name: loc
grid:
  axes: [seq]
fields:
  u: {channels: 8}
parameters:
  alpha: 1.0
terms:
"""
TAIL = "equation: dt(u) = x\n"


def error_for(term_yaml: str) -> tuple[PdelangError, str]:
    text = HEAD + term_yaml + TAIL
    with pytest.raises(PdelangError) as info:
        compile_spec(load_spec_text(text, "loc.yaml"), until="analysis")
    return info.value, text


def where(text: str, needle: str) -> tuple[int, int]:
    pos = text.index(needle)
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


CASES = {
    "plain": "  x: laplace(u) + alpah * u\n",
    "double-quoted": '  x: "laplace(u) + alpah * u"\n',
    "single-quoted": "  x: 'laplace(u) + alpah * u'\n",
    "double-quoted, padded": '  x:    "  laplace(u)   +   alpah * u"\n',
    "block |": "  x: |\n    laplace(u)\n    + alpah * u\n",
    "block |-, deeper indent": "  x: |-\n        laplace(u)\n        + alpah * u\n",
    "block | with a blank line": "  x: |\n    laplace(u)\n\n    + alpah * u\n",
    "block | more indented line": "  x: |\n    laplace(u)\n      + alpah * u\n",
    "folded >": "  x: >\n    laplace(u)\n    + alpah * u\n",
    "folded > third line": "  x: >\n    laplace(u)\n    + u\n    + alpah * u\n",
    "plain over two lines": "  x: laplace(u)\n    + alpah * u\n",
    "double-quoted over two lines": '  x: "laplace(u)\n    + alpah * u"\n',
    "single-quoted over two lines": "  x: 'laplace(u)\n     + alpah * u'\n",
    "double-quoted with an escape": '  x: "laplace(u)\\t+ alpah * u"\n',
    "flow mapping": "  {x: laplace(u) + alpah * u}\n",
}


@pytest.mark.parametrize("label", CASES)
def test_name_error_is_located_exactly(label):
    err, text = error_for(CASES[label])
    assert "undefined name 'alpah'" in err.message
    assert err.suggestion == "did you mean 'alpha'?"
    line, col = where(text, "alpah")
    assert (err.location.line, err.location.col) == (line, col), str(err)
    assert err.location.length == len("alpah")
    rendered = str(err).splitlines()
    assert rendered[0].startswith(f"loc.yaml:{line}:{col}: name error")
    assert rendered[1].endswith("| " + text.splitlines()[line - 1])
    caret = rendered[2].split("| ", 1)[1]
    assert caret == " " * (col - 1) + "^~~~~"


@pytest.mark.parametrize("term,needle", [
    ('"u + $u"', "$"),                      # double-quoted: the quote counts as a column
    ("'u + 2 $ u'", "$"),                   # single-quoted
    ("|\n    u\n    + (u $ u)\n", "$"),     # block scalar, second line
    ('"laplace(u"', "\""),                  # ends too early: just after the last character
])
def test_syntax_errors_in_quoted_and_block_terms(term, needle):
    yaml_term = f"  x: {term}" + ("" if term.endswith("\n") else "\n")
    err, text = error_for(yaml_term)
    if needle == "\"":
        # the caret goes right after `laplace(u`, i.e. on the closing quote
        line, col = where(text, "laplace(u\"")
        col += len("laplace(u")
    else:
        line, col = where(text, needle)
    assert (err.location.line, err.location.col) == (line, col), str(err)


def test_error_in_the_equation_is_located():
    text = HEAD + "  x: laplace(u)\n" + 'equation: "dt(u) = x + lapalce(u)"\n'
    with pytest.raises(PdelangError) as info:
        compile_spec(load_spec_text(text, "loc.yaml"), until="analysis")
    err = info.value
    assert (err.location.line, err.location.col) == where(text, "lapalce")
    assert err.suggestion == "did you mean 'laplace'?"


def test_block_scalar_equation():
    text = HEAD + "  x: laplace(u)\n" + "equation: >-\n  dt(u) =\n    x + tahn(u)\n"
    with pytest.raises(PdelangError) as info:
        compile_spec(load_spec_text(text, "loc.yaml"), until="analysis")
    err = info.value
    assert (err.location.line, err.location.col) == where(text, "tahn")
