"""Bad command-line options are user errors: exit code 2, a message, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run


REPO = Path(__file__).resolve().parents[2]
HEAT = str(REPO / "specs" / "heat1d.yaml")
VIT = str(REPO / "specs" / "vit2d.yaml")
BERT = str(REPO / "specs" / "bert_postln.yaml")


@pytest.mark.parametrize("argv, fragment", [
    (("run", HEAT, "--tokens", "1"), "too few"),
    (("run", HEAT, "--tokens", "-3"), "too few"),
    (("run", HEAT, "--batch", "0"), "at least one"),
    (("run", HEAT, "--device", "tpu"), "cpu or cuda"),
    (("run", HEAT, "--device", "meta"), "cpu or cuda"),
    (("run", HEAT, "--save", "/nonexistent-dir/x/state.pt"), "does not exist"),
    (("run", VIT, "--tokens", "5"), "needs 17 tokens"),
    (("verify", HEAT, "--steps", "0"), "at least 100 steps"),
    (("validate", BERT, "--reference", "hf-config:bert", "--sentences", "0"), "at least 1"),
    (("validate", BERT, "--reference", "hf-config:bert", "--max-length", "1"), "at least 3"),
    (("validate", BERT, "--reference", "hf-config:bert", "--lr", "nan"), "positive number"),
    (("ablate", HEAT, "--swap", "train.lr=abc", "--quick"), "not a float"),
    (("ablate", HEAT, "--swap", "train.optimizer=lion", "--quick"), "unknown optimizer"),
    (("ablate", HEAT, "--swap", "train.steps=-1", "--quick"), "must be positive"),
])
def test_bad_option_is_a_user_error(argv, fragment):
    code, _, err = run(*argv)
    assert code == 2, err
    assert fragment in err, err
    assert "Traceback" not in err


def test_run_uses_the_1d_grid_shape(tmp_path):
    import json

    code, out, _ = run("run", HEAT, "--set", "grid.shape=[20]", "--json", "--no-progress")
    assert code == 0
    assert json.loads(out)["shape"] == [2, 20, 1]  # not the 128-token default


def test_validate_reports_unreadable_text(tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8 \xff")
    small = ["fields.u.channels=64", "time.layers=3", "time.span=[0, 3]",
             "terms.interaction=attention(u, heads=4)",
             "terms.reaction=mlp(u, hidden=256, activation=gelu)"]
    code, _, err = run("validate", BERT, "--reference", "hf-config:bert", "--text", str(binary),
                    *[arg for o in small for arg in ("--set", o)])
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err
