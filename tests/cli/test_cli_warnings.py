"""Specs that are accepted but almost certainly not what the user meant get a word
(issue 11, "accepted without a word").

The warnings of ``check`` and ``compile`` come from the analysis (``Analysis.warnings``);
``run``, ``verify`` and ``validate`` print the same ones.  Tests marked xfail wait for a
change in a file of the analysis or the spec loader (their owners switch them on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run

REPO = Path(__file__).resolve().parents[2]
BERT = str(REPO / "specs" / "bert_postln.yaml")

UNUSED = """\
pdelang: 1
name: unused
grid: {axes: [x], spacing: 0.5, boundary: periodic}
fields:
  u: {channels: 1}
parameters:
  D: 1.0
  k: 2.0
terms:
  diffusion: D * laplace(u)
equation: dt(u) = diffusion
time: {span: [0, 1], layers: 1, substeps: 10, scheme: euler}
"""


@pytest.fixture()
def unused(tmp_path) -> str:
    path = tmp_path / "unused.yaml"
    path.write_text(UNUSED)
    return str(path)


def check_json(*argv: str) -> dict:
    code, out, err = run("check", "--json", *argv)
    assert code in (0, 1), err
    return json.loads(out)


def warned(data: dict, *fragments: str) -> bool:
    return any(all(f in w for f in fragments) for w in data["warnings"])


# --------------------------------------------------------------------------- unused parameters
def test_an_unused_parameter_is_warned_about(unused):
    assert warned(check_json(unused), "parameter 'k'", "not used")


def test_a_parameter_added_with_set_that_no_term_uses(unused):
    # a new parameter comes with the whole mapping: `--set parameters.zz=3` for an undeclared
    # zz is a typo, refused (tests/frontend/test_spec_overrides.py)
    data = check_json(unused, "--set", "parameters={D: 1.0, k: 2.0, zz: 3}")
    assert warned(data, "parameter 'zz'", "--set")
    assert not warned(data, "parameter 'D'")
    code, _, err = run("check", unused, "--set", "parameters.zz=3")
    assert code == 2 and "parameter 'zz' is not declared" in err, err


def test_compile_prints_the_warning(unused, tmp_path):
    code, _, err = run("compile", unused, "-o", str(tmp_path / "m.py"))
    assert code == 0 and "warning: parameter 'k'" in err, err


def test_run_prints_the_warning(unused):
    code, _, err = run("run", unused, "--no-progress", "--json")
    assert code == 0 and "warning: parameter 'k'" in err, err


def test_verify_reports_the_warning(unused):
    code, out, err = run("verify", unused, "--json", "--steps", "100", "--no-equivalence")
    assert code == 0, err
    assert any("parameter 'k'" in w for w in json.loads(out)["warnings"])
    code, out, _ = run("verify", unused, "--steps", "100", "--no-equivalence")
    assert "warning: parameter 'k'" in out


# --------------------------------------------------------------------------- causal Sinkhorn
def test_causal_sinkhorn_attention_is_warned_about():
    data = check_json(BERT, "--set",
                      "terms.interaction=attention(u, heads=12, causal=true, kernel=sinkhorn)")
    assert warned(data, "causal=true", "sinkhorn", "identity")
    plain = check_json(BERT, "--set", "terms.interaction=attention(u, heads=12, "
                                      "kernel=sinkhorn)")
    assert not warned(plain, "sinkhorn")


# --------------------------------------------------------------------------- laplace(u^2)
def test_laplace_of_a_nonlinear_expression_says_why_there_is_no_bound(unused):
    data = check_json(unused, "--set", "terms.diffusion=D * laplace(u^2)")
    stability = data["stability"]
    assert stability["max_stable_dt"] is None
    said = [stability["method"], *data["warnings"]]
    assert any("nonlinear" in text and "laplace" in text.lower() for text in said), said


# --------------------------------------------------------------------------- YAML indentation
MISINDENTED = """\
pdelang: 1
name: indent
grid: {axes: [x], spacing: 0.5, boundary: periodic}
fields:
  u: {channels: 1}
terms:
  diffusion: laplace(u)
equation: dt(u) = diffusion
time:
  span: [0, 1]
  layers: 1
   substeps: 10
  scheme: euler
"""


def test_a_line_indented_one_space_too_far_is_an_indentation_error(tmp_path):
    path = tmp_path / "indent.yaml"
    path.write_text(MISINDENTED)
    code, _, err = run("check", str(path))
    assert code == 2 and "Traceback" not in err, err
    assert f"{path}:12:4:" in err, err  # at 'substeps', the key one column too far right
    assert "indent" in err and "quote the value" not in err, err
