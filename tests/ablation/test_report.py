"""Tests of pdelang.lab.ablation.report on synthetic sweep results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pdelang.lab.ablation.formatting import format_number, format_overrides, json_safe
from pdelang.lab.ablation.report import render_markdown, write_report
from pdelang.lab.ablation.report_rows import variant_row
from pdelang.lab.ablation.train import TrainingRecord


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FILES = ("results.json", "report.md", "drift.png", "loss.png", "grad_norm.png")


def drift_rows(collapse, errors, finite=True):
    return [{"layer": i, "hidden_cosine": 1.0 - e, "relative_error": e,
             "rank_collapse_ratio": c, "state_norm": 1.0 + i, "norm_growth": 1.0 + i,
             "finite": finite} for i, (c, e) in enumerate(zip(collapse, errors))]


def seed_run(losses, grads, diverged=False, step=None):
    return TrainingRecord(losses=losses, grad_norms=grads, update_norms=[0.1] * len(losses),
                          max_activations=[1.0] * len(losses), diverged=diverged,
                          divergence_step=step, steps=list(range(len(losses))),
                          final_loss=losses[-1], eval_accuracy=0.5).to_dict()


def sample_results():
    return {
        "spec": "specs/heat.yaml",
        "swaps": {"stabilizers.residual": [True, False],
                  "stabilizers.norm.kind": ["layernorm", "none"]},
        "task": "digits",
        "steps": 4,
        "seeds": [0, 1],
        "variants": [
            {"overrides": {"stabilizers.residual": True, "stabilizers.norm.kind": "layernorm"},
             "label": "residual=true, norm=layernorm", "compiled": True, "error": None,
             "drift": drift_rows([0.97, 0.95, 0.93], [0.0, 0.0, 0.0]),
             "diverged": False, "divergence_step": None, "final_loss": 1.5,
             "max_grad_norm": 3.0,
             "training": {"seeds": [seed_run([2.3, 2.0, 1.8, 1.4], [1.0, 2.0, 3.0, 2.5]),
                                    seed_run([2.3, 2.1, 1.9, 1.6], [1.0, 1.5, 2.0, 2.0])]}},
            {"overrides": {"stabilizers.residual": False, "stabilizers.norm.kind": "none"},
             "label": "residual=false, norm=none", "compiled": True, "error": None,
             "drift": drift_rows([0.97, 0.2, math.nan], [0.0, 0.8, math.inf], finite=False),
             "diverged": True, "divergence_step": 2, "final_loss": math.nan,
             "max_grad_norm": math.inf,
             "training": {"seeds": [seed_run([2.3, 9.0, math.nan], [1.0, 50.0, math.inf],
                                             diverged=True, step=2),
                                    seed_run([2.3, 2.2, 2.1, 2.0], [1.0, 1.0, 1.0, 1.0])]}},
            {"overrides": {"stabilizers.residual": False, "stabilizers.norm.kind": "layernorm"},
             "label": "residual=false, norm=layernorm", "compiled": False,
             "error": "spec error: a | pipe\nsecond line", "drift": None, "diverged": False,
             "divergence_step": None, "final_loss": None, "max_grad_norm": None,
             "training": None},
        ],
    }


def test_json_safe_conversions():
    value = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, 1: (1, 2.5),
             "tensor": torch.tensor([1.0, math.nan]), "np": np.float32(2.0),
             "array": np.array([1, 2]), "set": {3, 1}, "flag": True}
    safe = json_safe(value)
    assert safe == {"nan": None, "inf": "Infinity", "ninf": "-Infinity", "1": [1, 2.5],
                    "tensor": [1.0, None], "np": 2.0, "array": [1, 2], "set": [1, 3],
                    "flag": True}
    json.dumps(safe, allow_nan=False)


def test_formatting():
    assert format_number(None) == "—"
    assert format_number(math.nan) == "nan" and format_number("Infinity") == "inf"
    assert format_number(12) == "12" and format_number(1.234567) == "1.235"
    assert format_number(12345678.0) == "1.235e+07"
    assert format_overrides({"b": False, "a": "none"}) == 'a="none", b=false'
    assert format_overrides({}) == "(none)"


def test_variant_row_statistics():
    rows = [variant_row(v) for v in sample_results()["variants"]]
    assert rows[0]["final_loss_mean"] == 1.5
    assert rows[0]["final_loss_std"] == pytest.approx(0.1)
    assert rows[0]["diverged_seeds"] == 0 and rows[0]["rank_collapse_ratio"] == 0.93
    assert rows[1]["diverged"] and rows[1]["diverged_seeds"] == 1
    assert rows[1]["final_loss_mean"] == 2.0  # the NaN seed is left out
    assert rows[1]["max_grad_norm"] == math.inf and math.isnan(rows[1]["rank_collapse_ratio"])
    assert not rows[2]["compiled"] and rows[2]["error"].startswith("spec error")


def test_write_report_files(tmp_path):
    paths = write_report(tmp_path / "out", sample_results())
    assert sorted(paths) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / "out" / name).is_file()
    for name in ("drift.png", "loss.png", "grad_norm.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_MAGIC)

    text = (tmp_path / "out" / "results.json").read_text()
    data = json.loads(text)
    assert "NaN" not in text and "Infinity" in text
    assert data["variants"][1]["final_loss"] is None
    assert data["variants"][1]["max_grad_norm"] == "Infinity"
    assert data["variants"][0]["training"]["seeds"][0]["losses"] == [2.3, 2.0, 1.8, 1.4]
    assert list(data) == sorted(data)

    report = (tmp_path / "out" / "report.md").read_text()
    lines = report.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) >= 4  # header + three variants
    assert "| 1 | residual=true, norm=layernorm |" in report
    assert "1.5 ± 0.1" in report and "yes (1/2)" in report and "no (0/2)" in report
    assert "spec error: a \\| pipe second line" in report  # escaped, one line
    assert "## Errors" in report and "second line" in report
    assert "## Per-layer drift" in report
    assert "stabilizers.residual=false" in report


def test_report_is_deterministic_and_survives_json_round_trip(tmp_path):
    results = sample_results()
    write_report(tmp_path / "a", results)
    write_report(tmp_path / "b", results)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    reloaded = json.loads((tmp_path / "a" / "results.json").read_text())
    assert render_markdown(reloaded) == (tmp_path / "a" / "report.md").read_text()


def test_report_without_any_compiled_variant(tmp_path):
    results = {"spec": "x.yaml", "swaps": {}, "task": "text", "steps": 0, "seeds": [0],
               "variants": [{"overrides": {"a": 1}, "label": "a=1", "compiled": False,
                             "error": "boom", "drift": None, "training": None}]}
    write_report(tmp_path, results)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0
    assert "boom" in (tmp_path / "report.md").read_text()
