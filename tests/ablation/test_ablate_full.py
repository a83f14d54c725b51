"""The issue's full ablation command with its defaults (slow: about 4 minutes on 2 cores).

Run with ``python -m pytest -m slow``; the default run covers the same code with ``--quick``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_full_default_sweep_finishes_in_ten_minutes(tmp_path):
    out = tmp_path / "ablate"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pdelang", "ablate", "specs/master.yaml",
         "--swap", "stabilizers.residual=true,false",
         "--swap", "stabilizers.norm.kind=layernorm,rmsnorm,none", "--json", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 600, f"the default sweep took {elapsed:.0f} s"
    data = json.loads((out / "results.json").read_text())
    assert data["steps"] == 100 and data["seeds"] == [0, 1]
    assert len(data["variants"]) == 6
    by_label = {v["label"]: v for v in data["variants"]}
    baseline = by_label["residual=true, kind=layernorm"]
    # every variant compiled, trained two seeds for 100 steps and was measured layer by layer
    for variant in data["variants"]:
        assert variant["compiled"] and len(variant["drift"]) == 7
        assert len(variant["training"]["seeds"]) == 2
    # the measured direction of the README's table: the residual-free variants lose the
    # reference's states, the norm-free one grows its token norms by orders of magnitude
    assert by_label["residual=false, kind=layernorm"]["drift"][-1]["hidden_cosine"] < 0.1
    assert by_label["residual=true, kind=none"]["drift"][-1]["norm_growth"] > 10
    assert baseline["drift"][1]["hidden_cosine"] > 0.9
