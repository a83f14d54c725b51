"""The ablation report's figures, inspected as objects: coinciding curves stay visible
(distinct colour, line style and marker, and a note), no offset notation on any axis."""

from __future__ import annotations

from pdelang.lab.ablation.report_plots import curves_figure, drift_figure


def drift(collapse, errors):
    return [{"layer": i, "rank_collapse_ratio": c, "relative_error": e, "hidden_cosine": 1 - e,
             "finite": True} for i, (c, e) in enumerate(zip(collapse, errors))]


def variant(label, collapse, errors, losses=None):
    runs = [{"losses": losses, "grad_norms": losses, "steps": list(range(len(losses)))}] \
        if losses else []
    return {"label": label, "compiled": True, "drift": drift(collapse, errors),
            "training": {"seeds": runs} if runs else None}


VARIANTS = [
    variant("residual", [0.9999999, 1.0, 0.99999995], [1e-3, 2e-3, 3e-3], [2.3, 2.0, 1.5]),
    variant("no residual, layernorm", [0.5, 0.01, 0.0], [1.0, 1.0, 1.0], [2.3026] * 3),
    variant("no residual, rmsnorm", [0.5, 0.01, 0.0], [1.0, 1.0, 1.0], [2.3026] * 3),
]


def styles(axis):
    return [(line.get_color(), line.get_linestyle(), line.get_marker())
            for line in axis.get_lines()]


def notes(axis):
    """The legend's title: where the figure names the curves drawn over each other."""
    legend = axis.get_legend()
    return legend.get_title().get_text() if legend is not None else ""


def test_coinciding_drift_curves_stay_visible_and_are_named():
    figure = drift_figure(VARIANTS)
    figure.canvas.draw()
    collapse, error = figure.axes[:2]
    for axis in (collapse, error):
        assert len(styles(axis)) == 3 and len(set(styles(axis))) == 3
        sizes = [line.get_markersize() for line in axis.get_lines()]
        assert sizes == sorted(sizes, reverse=True)  # later ones drawn smaller, on top
        text = notes(axis)
        assert "drawn over each other" in text, text
        assert text == "drawn over each other (equal values): 2 = 3", text
    assert collapse.yaxis.get_offset_text().get_text() == ""
    assert error.get_yscale() == "log"


def test_no_offset_for_rounding_noise():
    figure = drift_figure(VARIANTS[:1])
    figure.canvas.draw()
    collapse = figure.axes[0]
    assert collapse.yaxis.get_offset_text().get_text() == ""
    low, high = collapse.get_ylim()
    assert high - low >= 1e-3
    assert not notes(collapse)  # one curve: nothing drawn over another


def test_coinciding_training_curves_are_named():
    figure = curves_figure(VARIANTS, "losses", "Training loss", "loss")
    figure.canvas.draw()
    (axis,) = figure.axes
    assert len(set(styles(axis))) == 3
    assert "drawn over each other (equal values): 2 = 3" in notes(axis)
