"""``pdelang reference list`` and ``pdelang reference train vit-digits``: exit codes, output,
reuse, ``--force``, seeds in folders of their own (``--seed S`` / ``vit-digits@S``), and located
option errors.  Training is two optimiser steps
(``--max-steps 2``) into a temporary ``PDELANG_CACHE_DIR``."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDELANG_CACHE_DIR", str(tmp_path))
    return tmp_path / "references" / "vit-digits"


def test_list_before_and_after_training(cache):
    code, out, err = run("reference", "list")
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names[:2] == ["minilm", "vit-digits"] and "hf:PATH" in names
    assert f"not trained: `pdelang reference train vit-digits` writes {cache}" in out

    code, out, err = run("reference", "train", "vit-digits", "--epochs", "1",
                         "--max-steps", "2")
    assert code == 0, err
    assert out.startswith("trained vit-digits: held-out accuracy ")
    assert "2 steps (1 epochs, seed 0)" in out and str(cache) in out
    assert "train vit-digits" in err  # the tqdm bar, on stderr
    assert (cache / "config.json").is_file()

    code, out, err = run("reference", "list", "--json")
    assert code == 0, err
    row = next(r for r in json.loads(out)["references"] if r["name"] == "vit-digits")
    assert row["trained"] is True and row["path"] == str(cache)
    assert 0.0 <= row["accuracy"] <= 1.0
    code, out, _ = run("reference", "list")
    assert f"trained (held-out accuracy {row['accuracy']:.4f}) in {cache}" in out


def test_train_reuses_unless_forced(cache):
    assert run("reference", "train", "vit-digits", "--max-steps", "2", "--epochs", "1")[0] == 0
    weights = (cache / "model.safetensors").read_bytes()
    mtime = (cache / "model.safetensors").stat().st_mtime_ns

    code, out, err = run("reference", "train", "vit-digits", "--epochs", "1")
    assert code == 0, err
    assert out.startswith(f"reused the trained vit-digits in {cache}: held-out accuracy ")
    assert "--force retrains" in out and "train vit-digits:" not in err  # no progress bar
    assert (cache / "model.safetensors").stat().st_mtime_ns == mtime

    code, out, err = run("reference", "train", "vit-digits", "--seed", "0")
    assert code == 0
    assert "not the seed 0 and 150 epochs asked" in err  # the stored copy differs

    code, out, err = run("reference", "train", "vit-digits", "--max-steps", "1", "--epochs",
                         "1", "--force", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["reused"] is False and data["metadata"]["seed"] == 0
    assert data["metadata"]["steps"] == 1 and data["path"] == str(cache)
    assert (cache / "model.safetensors").read_bytes() != weights
    assert err == ""  # --json: no progress bar

    code, out, _ = run("reference", "train", "vit-digits", "--json")
    assert code == 0 and json.loads(out)["reused"] is True


def test_seeds_train_into_folders_of_their_own(cache):
    seed2 = cache.parent / "vit-digits-seed2"
    assert run("reference", "train", "vit-digits", "--max-steps", "1", "--epochs", "1")[0] == 0
    zero = (cache / "model.safetensors").read_bytes()
    code, out, err = run("reference", "train", "vit-digits", "--seed", "2", "--max-steps", "1",
                         "--epochs", "1")
    assert code == 0, err
    assert out.startswith("trained vit-digits@2: held-out accuracy ")
    assert "(1 epochs, seed 2)" in out and str(seed2) in out
    assert "train vit-digits@2" in err
    assert (cache / "model.safetensors").read_bytes() == zero  # seed 0 untouched
    assert (seed2 / "model.safetensors").read_bytes() != zero

    # NAME@SEED is the same as --seed SEED (reused here), and may repeat it
    for extra in ([], ["--seed", "2"]):
        code, out, err = run("reference", "train", "vit-digits@2", "--epochs", "1", *extra)
        assert code == 0, err
        assert out.startswith(f"reused the trained vit-digits@2 in {seed2}: ")
        assert err == ""  # same seed and epochs: no note
    code, out, _ = run("reference", "train", "vit-digits@2", "--epochs", "1", "--json")
    data = json.loads(out)
    assert data["name"] == "vit-digits@2" and data["reused"] is True
    assert data["path"] == str(seed2)

    code, out, err = run("reference", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["references"]}
    assert [name for name in rows if name.startswith("vit-digits")] == ["vit-digits",
                                                                       "vit-digits@2"]
    assert rows["vit-digits@2"]["path"] == str(seed2) and rows["vit-digits@2"]["seed"] == 2
    assert rows["vit-digits@2"]["trained"] is True and rows["vit-digits"]["seed"] == 0
    code, out, _ = run("reference", "list")
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names[:3] == ["minilm", "vit-digits", "vit-digits@2"]
    accuracy = rows["vit-digits@2"]["accuracy"]
    assert f"trained (held-out accuracy {accuracy:.4f}) in {seed2}" in out


def test_seed_errors_are_located(cache):
    code, out, err = run("reference", "train", "vit-digits@2", "--seed", "3")
    assert code == 2 and out == ""
    assert "reference 'vit-digits@2' names seed 2 but --seed is 3" in err
    code, _, err = run("reference", "train", "vit-digits@x")
    assert code == 2 and "the form is vit-digits@SEED" in err and "Traceback" not in err
    code, _, err = run("reference", "train", "vit-digits", "--seed", "-1")
    assert code == 2 and "--seed -1: must be a non-negative integer" in err
    code, _, err = run("reference", "train", "minilm@1")
    assert code == 2 and "not trained locally" in err
    assert not cache.parent.exists()


def test_validate_names_the_missing_seed(cache):
    from pathlib import Path

    spec = str(Path(__file__).resolve().parents[2] / "specs" / "vit2d.yaml")
    code, out, err = run("validate", spec, "--reference", "vit-digits@3", "--samples", "2")
    assert code == 2, out + err
    assert "reference 'vit-digits@3' is not trained yet" in err
    assert "hint: run `pdelang reference train vit-digits --seed 3`" in err
    code, out, err = run("validate", spec, "--reference", "vit-digits@three", "--samples", "2")
    assert code == 2 and "the form is vit-digits@SEED" in err and "Traceback" not in err


def test_option_errors_are_located(cache):
    code, out, err = run("reference", "train", "vit-digit")
    assert code == 2 and out == ""
    assert err.startswith("<train>:1:7: error: reference 'vit-digit': unknown reference")
    assert "did you mean 'vit-digits'?" in err and "Traceback" not in err

    code, _, err = run("reference", "train", "minilm")
    assert code == 2 and "not trained locally" in err

    code, _, err = run("reference", "train", "vit-digits", "--epochs", "0")
    assert code == 2 and "--epochs 0: must be at least 1" in err
    code, _, err = run("reference", "train", "vit-digits", "--max-steps", "-3")
    assert code == 2 and "--max-steps -3: must be at least 1" in err
    assert not cache.exists()


def test_validate_without_a_trained_copy_says_how_to_train(cache):
    from pathlib import Path

    spec = str(Path(__file__).resolve().parents[2] / "specs" / "vit2d.yaml")
    code, out, err = run("validate", spec, "--reference", "vit-digits", "--samples", "2")
    assert code == 2, out + err
    assert "reference 'vit-digits' is not trained yet" in err
    assert "hint: run `pdelang reference train vit-digits`" in err


def test_the_help_states_the_trainers_default_epochs(capsys):
    from pdelang.cli import reference
    from pdelang.lab.reference import vit_digits

    assert reference.DEFAULT_EPOCHS == vit_digits.DEFAULT_EPOCHS
    from pdelang.cli.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["reference", "train", "--help"])
    assert f"(default {vit_digits.DEFAULT_EPOCHS})" in capsys.readouterr().out
