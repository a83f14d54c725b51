"""The same spec and seed give bitwise-identical results on CPU: a validate fit and an
ablation sweep run twice write the same JSON (but for wall-time fields), the same report and
the same plots (issue 11, item 5; ``pdelang run --save`` is in test_cli_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run

REPO = Path(__file__).resolve().parents[2]
TINY = str(Path(__file__).resolve().parent / "data" / "tiny_encoder.yaml")
TIMING = {"seconds", "seconds_total"}  # wall time: the only fields allowed to differ
SMALL = ["fields.u.channels=64", "time.layers=3", "time.span=[0, 3]",
         "terms.interaction=alpha * attention(u, heads=4)",
         "terms.reaction=mlp(u, hidden=256, activation=gelu)"]


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def same_outputs(first: Path, second: Path, names) -> None:
    for name in names:
        a, b = (first / name).read_bytes(), (second / name).read_bytes()
        if name.endswith(".json"):
            assert without_timing(json.loads(a)) == without_timing(json.loads(b)), name
        else:
            assert a == b, name


def test_validate_fit_twice_gives_identical_results(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        code, _, err = run("validate", str(REPO / "specs" / "master.yaml"), "--reference",
                           "hf-config:bert", "--mode", "fit", "--steps", "3", "--samples", "2",
                           "--train-samples", "2", "--seed", "5", "--json", "--out", str(out),
                           *[arg for o in SMALL for arg in ("--set", o)])
        assert code == 0, err
    data = json.loads((outs[0] / "results.json").read_text())
    assert data["convergence"]["fit"]["iterations"] <= 3 and "seconds" in data
    same_outputs(*outs, ["results.json", "metrics.png", "attention_maps.png"])


def test_ablation_twice_gives_identical_results(tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        code, _, err = run("ablate", TINY, "--swap", "stabilizers.norm.kind=layernorm,none",
                           "--reference", "none", "--train", "digits", "--steps", "3",
                           "--seeds", "1", "--batch-size", "8", "--threads", "1", "--json",
                           "--out", str(out))
        assert code == 0, err
    data = json.loads((outs[0] / "results.json").read_text())
    assert all(len(v["training"]["seeds"][0]["losses"]) == 3 for v in data["variants"])
    same_outputs(*outs, ["results.json", "report.md", "drift.png", "loss.png",
                         "grad_norm.png"])
