"""``pdelang ablate`` never reports success for a sweep that did not run: every swap key and
value is checked against the spec schema before anything runs (exit 2, located, with a
suggestion), and a sweep in which a variant failed exits 1 (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run

REPO = Path(__file__).resolve().parents[2]
HEAT = str(REPO / "specs" / "heat1d.yaml")
TINY = str(Path(__file__).resolve().parent / "data" / "tiny_encoder.yaml")
FAST = ("--reference", "none", "--train", "none", "--quick")


def test_a_typo_in_a_swap_key_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "report"
    code, stdout, err = run("ablate", HEAT, "--swap", "stabilizers.residul=true,false",
                            *FAST, "--out", str(out))
    assert code == 2, stdout + err
    assert "unknown key 'stabilizers.residul'" in err, err
    assert err.startswith("<--swap>:1:"), err  # located in the --swap text
    line, caret = [x for x in err.splitlines() if "|" in x][:2]
    assert line.endswith("--swap stabilizers.residul=true,false"), err
    assert caret.index("^") == line.index("residul"), err  # under the unknown part
    assert "did you mean 'residual'" in err, err
    assert "Traceback" not in err
    assert not out.exists()  # nothing ran, nothing was written


def test_a_bad_swap_value_is_refused_with_its_location(tmp_path):
    code, stdout, err = run("ablate", HEAT, "--swap", "stabilizers.residual=true,maybe",
                            *FAST, "--out", str(tmp_path / "r"))
    assert code == 2, stdout + err
    assert "must be true or false" in err and "maybe" in err, err
    line, caret = [x for x in err.splitlines() if "|" in x][:2]
    assert caret.index("^") == line.index("maybe")  # the caret under the bad value
    assert not (tmp_path / "r").exists()


def test_the_second_swap_is_checked_too(tmp_path):
    code, _, err = run("ablate", HEAT, "--swap", "stabilizers.residual=true,false",
                       "--swap", "time.schme=euler,rk4", *FAST, "--out", str(tmp_path / "r"))
    assert code == 2 and "did you mean 'scheme'" in err, err


def test_sweep_file_keys_are_checked(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("swap:\n  stabilizers.norm.kind: [layernorm, rmsnrm]\n")
    code, _, err = run("ablate", HEAT, "--sweep", str(sweep), *FAST,
                       "--out", str(tmp_path / "r"))
    assert code == 2, err
    assert str(sweep) in err and "rmsnrm" in err, err


def test_a_failed_variant_exits_1_and_is_listed(tmp_path):
    """15 channels compile-fail (2 heads do not divide them): the schema accepts the value,
    the variant fails — the sweep runs the others, lists the failure, and exits 1."""
    out = tmp_path / "report"
    code, stdout, err = run("ablate", TINY, "--swap", "fields.u.channels=16,15", *FAST,
                            "--out", str(out), "--json")
    assert code == 1, err
    data = json.loads(stdout)
    assert [v["compiled"] for v in data["variants"]] == [True, False]
    assert "1 of 2 variants failed" in err and "channels=15" in err, err
    report = (out / "report.md").read_text()
    assert "## Errors" in report and "heads" in report


def test_no_variant_compiled_exits_1(tmp_path):
    code, _, err = run("ablate", TINY, "--swap", "fields.u.channels=15,17", *FAST,
                       "--out", str(tmp_path / "r"))
    assert code == 1, err
    assert "no variant compiled" in err, err


def test_a_clean_sweep_exits_0(tmp_path):
    code, _, err = run("ablate", TINY, "--swap", "stabilizers.residual=true,false", *FAST,
                       "--out", str(tmp_path / "r"))
    assert code == 0, err
