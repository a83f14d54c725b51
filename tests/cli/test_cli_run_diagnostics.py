"""``pdelang run``'s particle diagnostics (mean pairwise cosine, effective rank, rank-collapse
residual), ``--trajectory`` (.pt; .nc through xarray) and ``--plot`` (issue 25, item 2)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run

from pdelang.compiler.spec.load import canonical_hash, load_spec
from pdelang.interpreters.particles import particle_metrics

REPO = Path(__file__).resolve().parents[2]
HEAT = str(REPO / "specs" / "heat1d.yaml")
TINY = str(REPO / "tests" / "cli" / "data" / "tiny_encoder.yaml")
CLUSTER = str(REPO / "tests" / "cli" / "data" / "attention_rmsnorm.yaml")
KEYS = {"layer", "time", "norm", "max_abs", "mean_cosine", "effective_rank", "residual"}


def _json_run(*argv):
    code, out, err = run("run", *argv, "--json", "--no-progress")
    assert code == 0, err
    return json.loads(out)


def test_every_layer_row_has_the_particle_diagnostics():
    data = _json_run(HEAT)
    rows = data["layers"]
    assert all(set(row) == KEYS for row in rows)
    dt = data["dt"]
    spec = load_spec(HEAT)
    assert [row["time"] for row in rows] == pytest.approx(
        [spec.time.span[0] + k * spec.time.substeps * dt for k in range(len(rows))])
    assert rows[-1]["time"] == pytest.approx(spec.time.span[1])


def test_text_output_has_the_new_columns():
    code, out, err = run("run", HEAT, "--no-progress")
    assert code == 0, err
    assert "mean cos" in out and "eff. rank" in out and "residual" in out, out


def test_attention_with_rmsnorm_clusters_for_long_times():
    """Tokens as particles on the sphere (Geshkovski et al.): the mean pairwise cosine rises
    from about 0 toward 1, the effective rank falls to 1 and the residual to 0."""
    rows = _json_run(CLUSTER, "--tokens", "32", "--init", "random:1")["layers"]
    cosine = [row["mean_cosine"] for row in rows]
    assert abs(cosine[0]) < 0.05
    assert cosine[-1] > 0.999
    assert rows[-1]["effective_rank"] < 1.05 and rows[0]["effective_rank"] > 10
    assert rows[-1]["residual"] < 1e-3 < 0.9 < rows[0]["residual"]
    # mostly rising: the late half is far above the early half
    half = len(cosine) // 2
    assert min(cosine[half:]) > max(cosine[: half // 4]) + 0.5


def test_trajectory_pt_round_trip(tmp_path):
    path = tmp_path / "traj.pt"
    final = tmp_path / "final.pt"
    data = _json_run(TINY, "--trajectory", str(path), "--save", str(final))
    saved = torch.load(path)
    layers = len(data["layers"]) - 1
    assert saved["states"].shape == (layers + 1, *data["shape"])
    assert saved["dims"] == ("time", "batch", "token", "channel")
    assert saved["times"].tolist() == pytest.approx([row["time"] for row in data["layers"]])
    assert saved["layers"].tolist() == list(range(layers + 1))
    assert saved["spec_hash"] == canonical_hash(load_spec(TINY))
    assert saved["every"] == "layer" and saved["name"] == "tiny"
    assert torch.equal(saved["output"], torch.load(final))
    # the diagnostics of run are those of the saved states
    for state, row in zip(saved["states"], data["layers"]):
        assert particle_metrics(state)["mean_cosine"] == pytest.approx(row["mean_cosine"])
    assert data["trajectory"] == {"path": str(path), "every": "layer", "states": layers + 1}


def test_trajectory_every_substep(tmp_path):
    path = tmp_path / "traj.pt"
    data = _json_run(HEAT, "--trajectory", str(path), "--every", "substep")
    saved = torch.load(path)
    steps = data["steps"]
    assert saved["states"].shape[0] == steps + 1 and saved["every"] == "substep"
    assert saved["steps"].tolist() == list(range(steps + 1))
    assert saved["times"].tolist() == pytest.approx(
        [k * data["dt"] for k in range(steps + 1)])
    # the layer boundaries of the substep trajectory are the layer trajectory
    layer_path = tmp_path / "layers.pt"
    _json_run(HEAT, "--trajectory", str(layer_path))
    by_layer = torch.load(layer_path)
    substeps = steps // (len(data["layers"]) - 1)
    assert torch.equal(saved["states"][::substeps], by_layer["states"])
    assert saved["layers"][::substeps].tolist() == by_layer["layers"].tolist()


@pytest.mark.skipif(importlib.util.find_spec("xarray") is None,
                    reason="xarray is not installed (the optional extra pdelang[xarray])")
def test_trajectory_netcdf_round_trip(tmp_path):
    import xarray as xr

    path = tmp_path / "traj.nc"
    data = _json_run(TINY, "--trajectory", str(path))
    with xr.open_dataset(path) as ds:
        assert ds["u"].dims == ("time", "batch", "token", "channel")
        assert ds["u"].shape == (len(data["layers"]), *data["shape"])
        assert ds.attrs["spec_hash"] == canonical_hash(load_spec(TINY))
        assert ds["time"].values.tolist() == pytest.approx(
            [row["time"] for row in data["layers"]])
        pt = tmp_path / "traj.pt"
        _json_run(TINY, "--trajectory", str(pt))
        assert (ds["u"].values == torch.load(pt)["states"].numpy()).all()


def test_trajectory_without_xarray_is_a_located_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "xarray" else real(name, *a))
    code, _, err = run("run", HEAT, "--no-progress", "--trajectory", str(tmp_path / "t.nc"))
    assert code == 2 and err.startswith("<--trajectory>:1:14: error"), err
    assert "needs xarray" in err and "pdelang[xarray]" in err and ".pt" in err, err
    assert not (tmp_path / "t.nc").exists()


@pytest.mark.parametrize("argv, fragment", [
    (("--trajectory", "out.csv"), "one of .pt, .nc, .zarr"),
    (("--trajectory", "no/such/dir/t.pt"), "the directory does not exist"),
    (("--every", "substep"), "which is not given"),
    (("--plot", "no/such/dir/p.png"), "the directory does not exist"),
])
def test_bad_trajectory_options_are_user_errors(argv, fragment):
    code, _, err = run("run", HEAT, "--no-progress", *argv)
    assert code == 2 and fragment in err and "Traceback" not in err, err


def test_trajectory_size_is_limited(tmp_path, monkeypatch):
    monkeypatch.setenv("PDELANG_MAX_STATE", "1000")
    code, _, err = run("run", HEAT, "--no-progress", "--batch", "1", "--tokens", "64",
                       "--trajectory", str(tmp_path / "t.pt"), "--every", "substep")
    assert code == 2 and "too many to keep" in err and "--every layer" in err, err


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "diagnostics.png"
    data = _json_run(HEAT, "--plot", str(path))
    assert data["plot"] == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
