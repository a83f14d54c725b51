"""Tests of the sweep driver ``pdelang.lab.ablation.ablate`` and the ``pdelang ablate`` command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pdelang.lab.ablation.ablate import (
    ablate,
    load_sweep_file,
    parse_swaps,
    split_values,
    variants_of,
)
from pdelang.errors import OverrideError, PdelangError

ROOT = Path(__file__).resolve().parents[2]
VARIANT_FIELDS = {"overrides", "drift", "diverged", "divergence_step", "final_loss",
                  "max_grad_norm"}




# --- sweep parsing ------------------------------------------------------------------------

def test_split_values_keeps_brackets_together():
    assert split_values("a, b,[0, 6],c") == ["a", "b", "[0, 6]", "c"]


def test_variants_are_the_cartesian_product_in_order():
    swaps = parse_swaps(["stabilizers.residual=true,false",
                         "stabilizers.norm.kind=layernorm,rmsnorm,none"])
    variants = variants_of(swaps)
    assert len(variants) == 6
    assert variants[0] == {"stabilizers.residual": "true", "stabilizers.norm.kind": "layernorm"}
    assert variants[-1] == {"stabilizers.residual": "false", "stabilizers.norm.kind": "none"}


@pytest.mark.parametrize(("swap", "fragment"), [
    ("stabilizers.residual", "has no '='"),
    ("stabilizers.residual=", "lists no values"),
    ("train.momentum=0.9", "unknown training key"),
])
def test_bad_swaps_are_override_errors(swap, fragment):
    with pytest.raises(OverrideError, match=fragment):
        parse_swaps([swap])


def test_sweep_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("swap:\n  stabilizers.residual: [true, false]\n  train.lr: [1.0e-3]\n")
    assert load_sweep_file(str(path)) == {"stabilizers.residual": ["true", "false"],
                                          "train.lr": ["0.001"]}
    path.write_text("[1, 2]\n")
    with pytest.raises(PdelangError, match="must map KEY"):
        load_sweep_file(str(path))


# --- the sweep, in process ------------------------------------------------------------------

def test_failed_compile_is_reported_not_raised(tiny_spec):
    data = ablate(tiny_spec, ["fields.u.channels=16,15"], reference=None, train="none",
                  progress=False)
    good, bad = data["variants"]
    assert good["compiled"] and good["error"] is None and good["drift"]
    assert not bad["compiled"] and bad["drift"] is None
    assert "heads" in bad["error"]  # 2 heads do not divide 15 channels


def test_bad_base_spec_is_an_error_before_the_sweep(tiny_spec):
    with pytest.raises(PdelangError):
        ablate(tiny_spec, ["stabilizers.residual=true"], overrides=["time.scheme=leapfrog"],
               reference=None, train="none", progress=False)


def test_training_sweep_is_deterministic_and_complete(tiny_spec, tmp_path):
    kwargs = dict(reference=None, train="digits", steps=4, seeds=2, batch_size=8,
                  progress=False)
    swaps = ["stabilizers.norm.kind=layernorm,none", "train.lr=1e-3,1e-2"]
    first = ablate(tiny_spec, swaps, out=str(tmp_path / "a"), **kwargs)
    second = ablate(tiny_spec, swaps, out=str(tmp_path / "b"), **kwargs)
    assert len(first["variants"]) == 4
    for a, b in zip(first["variants"], second["variants"], strict=True):
        assert VARIANT_FIELDS <= set(a)
        assert a["compiled"] and math.isfinite(a["final_loss"])
        assert a["final_loss"] == b["final_loss"]
        assert a["max_grad_norm"] == b["max_grad_norm"]
        assert len(a["training"]["seeds"]) == 2
    # the learning-rate swap reached the optimizer
    assert [v["training"]["options"]["lr"] for v in first["variants"]] == [1e-3, 1e-2] * 2
    assert (tmp_path / "a" / "report.md").read_text() == (tmp_path / "b" / "report.md").read_text()


# --- the command, --quick, against MiniLM ---------------------------------------------------

def test_quick_cli_run_against_minilm(tmp_path):
    """``--quick`` is the smoke run the issue asks to finish in under a minute."""
    out = tmp_path / "ablate"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pdelang", "ablate", "specs/master.yaml",
         "--swap", "stabilizers.residual=true,false", "--quick", "--json", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 60, f"--quick took {elapsed:.1f} s"
    printed = json.loads(result.stdout)
    saved = json.loads((out / "results.json").read_text())
    for data in (printed, saved):
        assert [v["overrides"] for v in data["variants"]] == [
            {"stabilizers.residual": "true"}, {"stabilizers.residual": "false"}]
        for variant in data["variants"]:
            assert VARIANT_FIELDS <= set(variant)
    with_residual, without = saved["variants"]
    assert with_residual["drift_source"] == "minilm weights and embeddings"
    layers = [row["layer"] for row in with_residual["drift"]]
    assert layers == list(range(7))
    # with MiniLM's own weights the residual variant stays close to MiniLM at layer 1;
    # without the residual it has left it (the drift the second paper predicts)
    assert with_residual["drift"][1]["hidden_cosine"] > 0.9
    assert without["drift"][1]["hidden_cosine"] < with_residual["drift"][1]["hidden_cosine"]
    for name in ("report.md", "drift.png", "loss.png", "grad_norm.png"):
        assert (out / name).stat().st_size > 0
