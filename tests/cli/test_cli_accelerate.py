"""``--compile`` and ``--dtype bfloat16|float16`` on the command line (run, validate,
ablate).  Most tests replace ``torch.compile`` so no inductor runs; one small test compiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run

from pdelang.interpreters import accelerate
from pdelang.interpreters.builder import build

REPO = Path(__file__).resolve().parents[2]
BERT = str(REPO / "specs" / "bert_postln.yaml")
HEAT = str(REPO / "specs" / "heat1d.yaml")
SMALL = ("--set", "fields.u.channels=16", "--set", "terms.interaction=attention(u, heads=2)",
         "--set", "terms.reaction=mlp(u, hidden=32, activation=gelu)",
         "--set", "time.layers=2", "--set", "time.span=[0, 2]")
UNSTABLE = ("--set", "time.substeps=200", "--set", "time.span=[0, 20]")


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(accelerate, "_WARNED", set())


def _identity_compile(monkeypatch):
    """torch.compile that 'compiles' to the eager call: the --compile code paths, no inductor."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)


def test_run_compile_falls_back_with_one_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no inductor today")

    monkeypatch.setattr(torch, "compile", broken)
    code, out, err = run("run", BERT, *SMALL, "--compile", "--json", "--no-progress")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "torch.compile" in line]
    assert lines == ["warning: torch.compile is not available (RuntimeError: no inductor "
                     "today); the run continues uncompiled"], err
    assert "Traceback" not in err
    assert json.loads(out)["compiled"] is False


def test_run_compile_fails_on_first_call_with_one_warning(monkeypatch):
    def lazy(fn, **kwargs):
        def compiled(*args, **kw):
            raise RuntimeError("InductorError: cc failed")
        return compiled

    monkeypatch.setattr(torch, "compile", lazy)
    code, out, err = run("run", BERT, *SMALL, "--compile", "--json", "--no-progress")
    assert code == 0, err
    assert err.count("torch.compile is not available") == 1 and "Traceback" not in err, err
    assert json.loads(out)["compiled"] is False
    _, plain, _ = run("run", BERT, *SMALL, "--json", "--no-progress")
    assert json.loads(out)["layers"] == json.loads(plain)["layers"]


def test_run_compiled_blowup_is_located(monkeypatch):
    """Compiled layers run unwatched; a non-finite step is re-run uncompiled to name the
    sub-step and term, as without --compile."""
    _identity_compile(monkeypatch)
    code, _, plain = run("run", HEAT, *UNSTABLE, "--init", "bump", "--no-progress")
    code_c, _, err = run("run", HEAT, *UNSTABLE, "--init", "bump", "--no-progress",
                           "--compile")
    assert code == code_c == 2, err
    assert err.splitlines()[-2:] == plain.splitlines()[-2:], err
    assert "term 'diffusion'" in err or "sub-step" in err, err


def test_run_compile_with_inductor_matches_uncompiled():
    code, out, err = run("run", BERT, *SMALL, "--compile", "--json", "--no-progress")
    assert code == 0, err
    assert "Traceback" not in err and "Graph break" not in err, err
    compiled = json.loads(out)
    assert compiled["compiled"] is True
    _, plain, _ = run("run", BERT, *SMALL, "--json", "--no-progress")
    for a, b in zip(compiled["layers"], json.loads(plain)["layers"]):
        assert a["norm"] == pytest.approx(b["norm"], rel=1e-5)  # float32, fused norms


def test_run_float64_is_bitwise_the_plain_stepper(tmp_path):
    u0 = torch.randn(2, 8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.save(u0, tmp_path / "u0.pt")
    code, _, err = run("run", BERT, *SMALL, "--dtype", "float64", "--init",
                       str(tmp_path / "u0.pt"), "--save", str(tmp_path / "u.pt"),
                       "--no-progress")
    assert code == 0, err
    torch.manual_seed(0)
    stepper = build(BERT, [a for a in SMALL if a != "--set"])().double().eval()
    with torch.no_grad():
        expected = stepper(u0)
    assert torch.equal(torch.load(tmp_path / "u.pt"), expected)


@pytest.mark.parametrize("dtype, measured", [("bfloat16", 2.1e-3), ("float16", 2.6e-4)])
def test_run_reduced_precision(dtype, measured, tmp_path):
    """The final state under autocast against float32's: the relative error measured on this
    small spec, within a factor 5 (bfloat16's unit roundoff is 2⁻⁹ ≈ 2e-3, float16's
    2⁻¹² ≈ 2.4e-4; see tests/test_accelerate.py for the 384-wide spec)."""
    code, out, err = run("run", BERT, *SMALL, "--dtype", dtype, "--json", "--no-progress",
                         "--save", str(tmp_path / "reduced.pt"))
    assert code == 0, err
    assert json.loads(out)["dtype"] == dtype
    run("run", BERT, *SMALL, "--no-progress", "--save", str(tmp_path / "single.pt"))
    reduced, single = torch.load(tmp_path / "reduced.pt"), torch.load(tmp_path / "single.pt")
    assert reduced.dtype == torch.float32  # the state stays float32
    error = float((reduced - single).norm() / single.norm())
    assert measured / 5 < error < measured * 5, error
    if accelerate.check_dtype(dtype, "cpu"):  # this CPU emulates it: said once, on stderr
        assert err.count(f"warning: --dtype {dtype}: this CPU has no native {dtype}") == 1, err


def test_validate_exact_refuses_reduced_precision():
    code, _, err = run("validate", BERT, "--reference", "torch", "--dtype", "bfloat16")
    assert code == 2, err
    assert "--mode continuous" in err and "Traceback" not in err, err


def test_ablate_refuses_float16():
    with pytest.raises(SystemExit):
        run("ablate", BERT, "--dtype", "float16")
