"""An empty cell of the ablation report says why it is empty (issue 11: drift columns shown
as "—" without a reason)."""

from __future__ import annotations

from pdelang.lab.ablation.report import render_markdown

DRIFT_COLUMNS = ("Cosine (final)", "Rel. error (final)", "Rank collapse (final)")
TRAINING_COLUMNS = ("Final loss (mean ± std)", "Max grad norm", "Eval acc.")


def variant(label, **fields):
    entry = {"overrides": {"x": label}, "label": label, "compiled": True, "error": None,
             "drift": None, "drift_source": None, "diverged": False, "divergence_step": None,
             "final_loss": None, "max_grad_norm": None, "training": None}
    entry.update(fields)
    return entry


def shape_only_drift():
    return [{"layer": i, "rank_collapse_ratio": 0.9 - 0.1 * i, "state_norm": 1.0,
             "norm_growth": 1.0, "finite": True} for i in range(3)]


def results():
    mismatch = ("random weights: reference mismatch: channels: the spec has 16, the "
                "reference minilm has 384")
    return {"spec": "tiny.yaml", "swaps": {"x": ["a", "b", "c"]}, "task": "none", "steps": 8,
            "seeds": [0], "reference": "minilm", "variants": [
                variant("a", drift=shape_only_drift(), drift_source=mismatch),
                variant("b", drift=shape_only_drift(),
                        drift_source="random weights, random initial state"),
                variant("c", compiled=False, error="operator error: heads"),
            ]}


def table(report: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[1:4]]
    return header, rows


def test_every_empty_drift_or_training_cell_has_a_reason():
    report = render_markdown(results())
    header, rows = table(report)
    for row in rows:
        for column in DRIFT_COLUMNS[:2] + TRAINING_COLUMNS:
            cell = row[header.index(column)]
            assert cell != "—", (column, row)  # a bare dash is what the issue saw
    notes = report.split("## Variants", 1)[1]
    assert "no reference comparison" in notes and "channels: the spec has 16" in notes
    assert "--reference none" in notes or "random initial state" in notes
    assert "not trained" in notes and "not compiled" in notes


def test_footnote_markers_match_their_notes():
    report = render_markdown(results())
    header, rows = table(report)
    cosine = [row[header.index("Cosine (final)")] for row in rows]
    markers = [cell.split()[-1] for cell in cosine]
    assert len(set(markers)) == 3  # three different reasons
    for marker in markers:
        assert any(line.startswith(marker + " ") for line in report.splitlines()), marker


def test_per_layer_tables_say_why_the_reference_columns_are_empty():
    report = render_markdown(results())
    section = report.split("## Per-layer drift", 1)[1]
    first = section.split("### 2.", 1)[0]
    assert "Cosine and relative error: no reference comparison" in first, first


def test_the_divergence_step_column_is_explained():
    report = render_markdown(results())
    assert "Div. step" in report and "— when no seed diverged" in report
