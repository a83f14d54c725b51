"""``pdelang verify`` on a correct Fisher–KPP spec: the test state respects the equation's
range, an overflow is reported as such, and ``--init`` / ``--span`` choose the state and the
time window (issue 11, "no silent wrong answers")."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from cli_helpers import run

FISHER = str(Path(__file__).resolve().parent / "data" / "fisher_kpp.yaml")
HEAT = str(Path(__file__).resolve().parents[2] / "specs" / "heat1d.yaml")


def verify_json(*argv: str) -> tuple[int, dict, str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run("verify", FISHER, "--json", "--steps", "200", *argv)
    overflow = [str(w.message) for w in caught if "overflow" in str(w.message)]
    assert not overflow, f"the test state overflowed: {overflow}"
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.mark.parametrize("boundary, seed", [("neumann", 0), ("periodic", 1), ("copy", 1)])
def test_a_correct_fisher_kpp_spec_passes(boundary, seed):
    """Before: N(0, 0.5²) test states left the range [0, 1] and overflowed — silently equal
    NaNs (neumann) or 'relative error inf' (periodic and copy with seed 1)."""
    code, data, err = verify_json("--seed", str(seed), "--set", f"grid.boundary={boundary}")
    assert code == 0, (err, data.get("details", {}).get("generated_equals_reference"))
    assert data["passed"] and data["properties"]["generated_equals_reference"]
    state = data["test_state"]
    assert state["overflow"] is None and state["amplitude"] < 0.5  # scaled down, and said so
    assert any("overflow" in note and "amplitude" in note for note in data["notes"])


def test_an_overflow_is_reported_as_such():
    """An explicit state outside the range: a failure that says 'overflow', not 'inf'."""
    code, data, _ = verify_json("--init", "uniform:-0.5,0")
    assert code == 1
    result = data["details"]["generated_equals_reference"]
    assert not data["properties"]["generated_equals_reference"]
    assert "overflow" in result["message"] and "relative error inf" not in result["message"]
    assert "uniform in [-0.5, 0]" in result["message"]
    assert "--init" in result["message"] and "--span" in result["message"]
    assert data["test_state"]["overflow"]["step"] >= 1


def test_init_inside_the_range_passes():
    for init in ("uniform:0,1", "bump"):
        code, data, err = verify_json("--init", init)
        assert code == 0, err
        assert data["test_state"]["init"] == ("uniform in [0, 1]" if init != "bump"
                                              else "a smooth bump of height 1")


def test_span_chooses_the_window():
    # from negative values the blow-up takes t ≈ ln 3 ≈ 1.1: the window [0, 0.5] stays finite
    code, data, err = verify_json("--init", "uniform:-0.5,0", "--span", "0,0.5")
    assert code == 0, (err, data["details"]["generated_equals_reference"])
    assert data["test_state"]["window"] == {"t0": 0.0, "t1": 0.5, "steps": [0, 5]}
    code, data, err = verify_json("--init", "bump", "--span", "2,3")  # starts at layer step 20
    assert code == 0, err
    assert data["test_state"]["window"]["steps"] == [20, 30]


@pytest.mark.parametrize("span, fragment", [
    ("1", "two times T0,T1"),
    ("1,x", "not a number"),
    ("3,1", "T0 < T1"),
    ("0,11", "within the spec's span [0, 10]"),
    ("0,0.05", "not a step boundary"),
])
def test_bad_span_is_a_user_error(span, fragment):
    code, out, err = run("verify", FISHER, "--span", span)
    assert code == 2, out + err
    assert fragment in err and "Traceback" not in err, err


def test_bad_init_is_a_user_error():
    code, _, err = run("verify", HEAT, "--init", "uniform:2,1")
    assert code == 2 and "lower bound must be below" in err, err


def test_text_report_names_the_test_state():
    code, out, err = run("verify", FISHER, "--steps", "200", "--init", "bump")
    assert code == 0, err
    assert "test state: a smooth bump of height 1" in out, out


def test_the_spec_init_is_the_test_state(tmp_path):
    """A spec's init: is verify's test state, used as given (as --init would be)."""
    spec = tmp_path / "kpp.yaml"
    spec.write_text(Path(FISHER).read_text() + "init: bump:0.5\n")
    code, out, err = run("verify", str(spec), "--json", "--steps", "200")
    data = json.loads(out)
    assert code == 0 and data["passed"], err
    assert data["test_state"]["init"] == "a smooth bump of height 0.5"
    assert not data["notes"] or not any("amplitude" in note for note in data["notes"])
    code, out, _ = run("verify", str(spec), "--json", "--steps", "200",
                       "--init", "uniform:-0.5,0")
    assert code == 1 and json.loads(out)["test_state"]["init"] == "uniform in [-0.5, 0]"
