"""A reference mismatch hint is a complete, working set of overrides: apply it and the
command succeeds; in exact mode a Δt ≠ 1 is reported explicitly (issue 11)."""

from __future__ import annotations

import io
import json
import shlex
from contextlib import redirect_stderr, redirect_stdout

import pytest

from pdelang.cli.main import main
from pdelang.lab.validation.weights import with_option

SMALL = ["fields.u.channels=64", "time.layers=3", "time.span=[0, 3]",
         "terms.interaction=attention(u, heads=4)",
         "terms.reaction=mlp(u, hidden=256, activation=gelu)", "stabilizers.norm.eps=1.0e-5"]


def validate(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", *argv])
    return code, out.getvalue(), err.getvalue()


def sets(overrides) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def hint_overrides(err: str) -> list[str]:
    """The KEY=VALUE of every --set in the error's hint line."""
    hint = next(line for line in err.splitlines() if line.startswith("hint:"))
    words = shlex.split(hint[len("hint:"):])
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


def test_hint_for_a_reference_of_another_shape_and_depth_is_complete():
    """bert_postln (6 × 384, 12 heads, 1536 hidden, eps 1e-12) against hf-config:bert (3 × 64,
    4 heads, 256 hidden): before, one hint at a time, and `--set time.layers=3` left
    Δt = 6/3 = 2, so exact mode then failed."""
    argv = ("specs/bert_postln.yaml", "--reference", "hf-config:bert", "--mode", "exact",
            "--sentences", "2")
    code, _, err = validate(*argv)
    assert code == 2 and "reference mismatch" in err and "Traceback" not in err, err
    overrides = hint_overrides(err)
    assert "time.layers=3" in overrides and "time.span=[0, 3]" in overrides, overrides
    code, out, err = validate(*argv, *sets(overrides))
    assert code == 0, out + err
    assert "PASSED" in out


@pytest.mark.parametrize("user", [["time.layers=3"], ["time.layers=3", "time.span=[0, 3]"]])
def test_hint_after_a_depth_override_fixes_the_span_too(user):
    """The issue's `--set time.layers=3` (Δt = 2), and the user's --set time.layers=3 --set
    time.span=[0, 3] (Δt = 1), against MiniLM's six layers: `--set time.layers=6` alone would
    give Δt = 0.5 in the second case."""
    argv = ("specs/bert_postln.yaml", "--reference", "minilm", "--mode", "exact",
            "--sentences", "2")
    code, _, err = validate(*argv, *sets(user))
    assert code == 2, err
    overrides = hint_overrides(err)
    assert overrides == ["time.layers=6", "time.span=[0, 6]"], overrides
    code, out, err = validate(*argv, *sets(user + overrides))
    assert code == 0 and "PASSED" in out, out + err


def test_a_dt_mismatch_is_reported_explicitly_with_a_working_hint():
    user = SMALL + ["time.substeps=2"]  # Δt = 3 / (3 × 2) = 0.5
    argv = ("specs/bert_postln.yaml", "--reference", "torch:post", "--mode", "exact",
            "--sentences", "2")
    code, out, err = validate(*argv, *sets(user))
    assert code == 1, out + err
    assert "Δt: the spec has 0.5" in out and "exact mode needs 1" in out, out
    assert "FAILED" in out
    overrides = hint_overrides(out)
    assert overrides == ["time.substeps=1", "time.span=[0, 3]"], overrides
    code, out, err = validate(*argv, *sets(user + overrides))
    assert code == 0 and "PASSED" in out, out + err


def test_the_dt_mismatch_is_in_the_json():
    user = SMALL + ["time.span=[0, 6]"]  # Δt = 2
    code, out, _ = validate("specs/bert_postln.yaml", "--reference", "torch:post", "--mode",
                            "exact", "--sentences", "2", "--json", *sets(user))
    assert code == 1
    data = json.loads(out)
    assert data["passed"] is False
    assert any(p["what"] == "Δt" for p in data["problems"]), data["problems"]
    assert "--set 'time.span=[0, 3]'" in data["hint"], data["hint"]


def test_every_mismatch_is_named_at_once():
    code, _, err = validate("specs/bert_postln.yaml", "--reference", "hf-config:bert",
                            "--mode", "exact")
    assert code == 2
    for what in ("channels", "layers", "attention heads", "mlp hidden"):
        assert what in err, err


@pytest.mark.parametrize("expr, op, key, value, expected", [
    ("attention(u, heads=12)", "attention", "heads", "4", "attention(u, heads=4)"),
    ("alpha * attention(u)", "attention", "heads", "4", "alpha * attention(u, heads=4)"),
    ("attention(u, heads=2, causal=false) + 1", "attention", "causal", "true",
     "attention(u, heads=2, causal=true) + 1"),
    ("mlp(tanh(u), hidden=8)", "mlp", "activation", "relu",
     "mlp(tanh(u), hidden=8, activation=relu)"),
    ("attention(u) + attention(u)", "attention", "heads", "2", None),  # ambiguous: no rewrite
])
def test_with_option(expr, op, key, value, expected):
    assert with_option(expr, op, key, value) == expected
