"""The figures of ``pdelang validate`` are inspected as objects, not pixels: attention maps
with colorbars and a difference panel, no offset notation, rounding noise drawn flat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pdelang.lab.validation.plots import attention_figure, metrics_figure, write_plots
from pdelang.lab.validation.validate import ValidationResult

LAYERS = 3


def stochastic(rng, n=5):
    m = rng.random((n, n))
    return torch.tensor(m / m.sum(axis=1, keepdims=True))


def result(noise=1e-3, cosine=(1.0, 0.99999994, 1.0)) -> ValidationResult:
    rng = np.random.default_rng(0)
    reference = [stochastic(rng) for _ in range(LAYERS)]
    model = [r + noise * torch.tensor(rng.standard_normal(r.shape)) for r in reference]
    rows = [{"layer": i + 1, "attention_cosine": cosine[i], "hidden_cosine": 1.0 - 1e-8 * i,
             "relative_error": [0.0, 2e-7, 3e-7][i], "cka": 0.9999999 + 1e-8 * i,
             "attention_kl": 0.0} for i in range(LAYERS)]
    return ValidationResult("specs/bert_postln.yaml", "minilm", "exact", 2, rows, True,
                            maps=(reference, model))


def drawn(figure):
    figure.canvas.draw()
    return figure


def test_metric_panels_have_no_offset_and_show_rounding_noise_flat():
    figure = drawn(metrics_figure(result()))
    panels = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in panels] == ["attention cosine", "hidden cosine",
                                               "relative error", "linear CKA"]
    for axis in panels:
        assert axis.yaxis.get_offset_text().get_text() == "", axis.get_title()
        assert axis.xaxis.get_offset_text().get_text() == "", axis.get_title()
    cosine = panels[0]
    low, high = cosine.get_ylim()
    assert high - low >= 1e-3  # 6e-8 of rounding noise is not a drop
    labels = [t.get_text() for t in cosine.get_yticklabels() if t.get_text()]
    assert labels and not any("e" in label for label in labels), labels
    error = panels[2]
    assert error.get_yscale() == "log"
    assert any("0 (exact) in layer 1" in t.get_text() for t in error.texts)


def test_attention_maps_have_colorbars_and_a_difference_panel():
    res = result()
    figure = drawn(attention_figure(res))
    colorbars = [a for a in figure.axes if a.get_label() == "<colorbar>"]
    panels = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 3 * LAYERS and len(colorbars) == 3
    titles = [a.get_title() for a in panels]
    assert titles[2 * LAYERS:] == [f"PDE − reference, layer {i + 1}" for i in range(LAYERS)]
    for i, axis in enumerate(panels[2 * LAYERS:]):
        (image,) = axis.get_images()
        expected = (res.maps[1][i] - res.maps[0][i]).numpy()
        np.testing.assert_allclose(image.get_array(), expected)
        low, high = image.get_clim()
        assert low == -high and high == pytest.approx(
            max(float((m - r).abs().max()) for r, m in zip(*res.maps)))
        assert image.get_cmap().name == "RdBu_r"
    # the maps share one scale
    clims = {a.get_images()[0].get_clim() for a in panels[:2 * LAYERS]}
    assert len(clims) == 1
    for bar in colorbars:
        assert bar.yaxis.get_offset_text().get_text() == ""


def test_an_exact_match_draws_a_zero_difference():
    figure = drawn(attention_figure(result(noise=0.0)))
    panels = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    for axis in panels[2 * LAYERS:]:
        assert not np.any(axis.get_images()[0].get_array())
    assert "= 0" in figure._suptitle.get_text()
    for bar in (a for a in figure.axes if a.get_label() == "<colorbar>"):
        assert bar.yaxis.get_offset_text().get_text() == ""  # no "1e-12" over the panel


def test_write_plots(tmp_path):
    paths = write_plots(result(), tmp_path)
    assert [p.name for p in paths] == ["metrics.png", "attention_maps.png"]
    for path in paths:
        assert path.read_bytes().startswith(b"\x89PNG")
