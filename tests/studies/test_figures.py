"""The figures of ``pdelang study paper1`` from a compact synthetic ``summary.json`` of the
same shape as :func:`pdelang.lab.studies.summary.summarize` writes (2 seeds, 4 image layers,
two models, a text section): three valid PNGs, one panel per figure without text, text
alone without the image figures, and the same bytes when written twice."""

from __future__ import annotations

import copy

import pytest

from pdelang.lab.studies.figures import (attention_figure, information_plane_figure,
                                              state_error_figure, write_figures)

PNG = b"\x89PNG\r\n\x1a\n"
SEEDS = (0, 1)
NAMES = ["attention_cosine.png", "state_error.png", "information_plane.png"]


def stat(mean, sd=0.01, n=None, interval=True):
    n = len(SEEDS) if n is None else n
    half = 12.7 * sd / 2 ** 0.5  # t(0.975, 1) × SD / √n
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half if interval else None,
            "high": mean + half if interval else None, "level": 0.95}


def floors(layers):
    return [{"layer": ell, "attention_uniform": stat(0.4 + 0.02 * ell),
             "attention_dataset_mean": stat(0.8 - 0.02 * ell),
             "attention_head_mean": stat(0.65),
             "attention_previous_layer": None if ell == 1 else stat(0.5, interval=False),
             "hidden_cosine_identity": stat(0.2), "cka_identity": stat(0.4),
             "relative_error_identity": stat(0.99),
             "hidden_cosine_previous_state": stat(0.3), "cka_previous_state": stat(0.5),
             "relative_error_previous_state": stat(0.9 - 0.1 * ell)}
            for ell in range(1, layers + 1)]


def model_layers(layers, exact: bool, base: float):
    return [{"layer": ell, "exact_by_construction": exact and ell == 1, "heads_match": True,
             "attention_cosine": stat(1.0 if exact else base + 0.03 * ell),
             "rescaled": stat(1.0 if exact else -1.0),
             "strongest_floor": ["dataset_mean"] * len(SEEDS),
             "difference_from_floor": [{"mean": 0.1, "sd": 0.01, "low": 0.09, "high": 0.11,
                                        "n": 50, "level": 0.95, "excludes_zero": True}],
             "hidden_cosine": stat(0.99 if exact else 0.8),
             "relative_error": stat(1e-4 if exact else 0.5 + 0.05 * ell),
             "previous_state_error": stat(0.9 - 0.1 * ell)}
            for ell in range(1, layers + 1)]


def models(layers):
    return {"fit": {"spec": "specs/vit2d.yaml", "layers": model_layers(layers, True, 1.0)},
            "tied": {"spec": "specs/reduced/vit_tied.yaml",
                     "layers": model_layers(layers, False, 0.4), "breakdown": [[2], [2, 3]]}}


def summary() -> dict:
    per_sigma = [{"scale": scale, "sigma": sigma, "delta_bits": [-0.2 * sigma, 0.1],
                  "low": [-0.3 * sigma, -0.05], "high": [-0.1 * sigma, 0.25],
                  "saturated": [sigma == 0.1, False]}
                 for scale in ("relative", "absolute", "whitened PCA control (k = 35)")
                 for sigma in (0.1, 0.3, 1.0)]
    sweep = [{"scale": scale, "sigma": sigma, "layer": ell,
              "bits": stat(8.0 / (1 + 4 * sigma) - 0.1 * ell, 0.05),
              "standard_error_bits": 0.01, "saturated": sigma == 0.1,
              "participation_ratio": 14.0 - ell}
             for scale in ("relative", "absolute") for sigma in (0.1, 0.3, 1.0)
             for ell in range(5)]
    return {
        "seeds": list(SEEDS), "quick": True,
        "references": [{"seed": s, "accuracy": 0.97, "contributions": [
            {"layer": ell, "attention": 0.8 - 0.1 * ell, "mlp": 0.3 + 0.1 * ell + 0.01 * s,
             "update": 0.9} for ell in range(1, 5)]} for s in SEEDS],
        "floors": floors(4), "models": models(4),
        "information_plane": {"per_sigma": per_sigma, "sweep": sweep,
                              "verdicts": ["no compression"] * 2, "from_layer": 2,
                              "to_layer": 4},
        "text": {"subsets": [64, 64], "floors": floors(6), "models": models(6)},
    }


def titled(figure):
    """The figure's panels (twin axes carry no title)."""
    return [a for a in figure.axes if a.get_title()]


def test_three_valid_pngs_identical_when_written_twice(tmp_path):
    data = summary()
    first = write_figures(data, tmp_path / "a")
    second = write_figures(copy.deepcopy(data), tmp_path / "b")
    assert [p.name for p in first] == NAMES and [p.name for p in second] == NAMES
    for a, b in zip(first, second):
        payload = a.read_bytes()
        assert payload.startswith(PNG) and len(payload) > 1000, a.name
        assert payload == b.read_bytes(), f"{a.name} differs between two writes"
    assert not [p for p in (tmp_path / "a").iterdir() if p.name not in NAMES]  # no temps


def test_text_adds_a_panel_and_exact_layers_are_marked():
    data = summary()
    figure = attention_figure(data)
    assert [a.get_title() for a in titled(figure)] == ["images: attention cosine per layer",
                                                       "text: attention cosine per layer"]
    labels = figure.axes[0].get_legend_handles_labels()[1]
    for label in ("strongest floor", "threshold 0.98", "exact by construction", "fit",
                  "tied", "floor: previous layer's map"):
        assert label in labels
    assert len(titled(state_error_figure(data))) == 2
    assert len(titled(information_plane_figure(data))) == 2


def test_without_text_one_panel_figures(tmp_path):
    data = summary()
    del data["text"]
    assert len(titled(attention_figure(data))) == 1
    state = state_error_figure(data)
    assert len(titled(state)) == 1 and len(state.axes) == 2  # the update sizes' twin axis
    paths = write_figures(data, tmp_path)
    assert [p.name for p in paths] == NAMES
    assert all(p.read_bytes().startswith(PNG) for p in paths)


@pytest.mark.parametrize("missing", ["images", "everything"])
def test_missing_sections_are_skipped(tmp_path, missing):
    data = summary()
    for key in ("references", "floors", "models", "information_plane"):
        del data[key]
    if missing == "everything":
        del data["text"]
    paths = write_figures(data, tmp_path)
    expected = NAMES[:2] if missing == "images" else []
    assert [p.name for p in paths] == expected
    if expected:
        assert len(titled(attention_figure(data))) == 1
