"""``--set KEY=VALUE`` overrides: typed and validated like the file; errors name the override."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from pdelang.cli.main import main
from pdelang.compiler.driver import compile_spec
from pdelang.errors import OverrideError, PdelangError, SpecError
from pdelang.compiler.spec.load import load_spec

REPO = Path(__file__).parent.parent.parent
MASTER = REPO / "specs" / "master.yaml"
HEAT = REPO / "specs" / "heat1d.yaml"
NO_NORM = REPO / "specs" / "no_norm.yaml"


def override_error(override: str, path: Path = MASTER) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, [override])
    return info.value


def test_unknown_key_suggests_the_right_one():
    err = override_error("grid.spacng=2")
    assert isinstance(err, OverrideError)
    assert "unknown key 'grid.spacng'" in err.message
    assert "--set grid.spacng=2" in err.message
    assert err.suggestion == "did you mean 'spacing'?"
    loc = err.location
    assert loc.file == "<--set>"
    # the caret sits under the bad part of the key: `--set grid.spacng=2`
    assert loc.source_line == "--set grid.spacng=2"
    assert loc.source_line[loc.col - 1:].startswith("spacng")
    text = str(err)
    assert text.startswith(f"<--set>:1:{loc.col}: ")
    assert "--set grid.spacng=2" in text and "^~~~~~" in text


def test_unknown_top_level_key():
    err = override_error("equaton=dt(u) = u")
    assert isinstance(err, OverrideError)
    assert err.suggestion == "did you mean 'equation'?"
    assert err.location.col == len("--set ") + 1


def test_bad_value_type_is_located_at_the_value():
    err = override_error("time.layers=two")
    assert "'time.layers' must be an integer, got a string 'two'" in err.message
    loc = err.location
    assert loc.file == "<--set>" and loc.line == 1
    assert loc.source_line == "--set time.layers=two"
    assert loc.source_line[loc.col - 1:] == "two"
    assert "--set time.layers=two" in str(err)


def test_out_of_range_value():
    err = override_error("grid.spacing=-1")
    assert "'grid.spacing' must be > 0.0, got -1.0" in err.message
    loc = err.location
    assert loc.file == "<--set>"
    assert loc.source_line[loc.col - 1:] == "-1"
    assert "--set grid.spacing=-1" in str(err)


def test_out_of_range_accuracy():
    err = override_error("discretization.laplace.accuracy=3")
    assert "must be even" in err.message and err.suggestion == "use 4"
    assert err.location.file == "<--set>"


def test_missing_equals_sign():
    err = override_error("stabilizers.residual")
    assert isinstance(err, OverrideError)
    assert "override 'stabilizers.residual' has no '='" in err.message
    assert err.location.file == "<--set>"
    assert "KEY=VALUE" in err.suggestion
    assert "--set stabilizers.residual" in str(err)


def test_bad_key_syntax_and_bad_yaml_value():
    err = override_error("grid..spacing=2")
    assert isinstance(err, OverrideError) and "not a dotted name" in err.message
    err = override_error("time.span=[0, 6")
    assert isinstance(err, OverrideError) and "not valid YAML" in err.message
    assert "--set time.span=[0, 6" in err.message


def test_override_that_breaks_a_cross_check():
    err = override_error("time.span=[6, 0]")
    assert "'time.span' must increase" in err.message
    assert err.location.file == "<--set>"


def test_good_overrides_change_values():
    base = load_spec(MASTER)
    spec = load_spec(MASTER, [
        "stabilizers.residual=false",
        "discretization.laplace.accuracy=4",
        "time.span=[0,12]",
        "stabilizers.norm.kind=rmsnorm",
        "grid.spacing=1e-3",
    ])
    assert base.stabilizers.residual is True and spec.stabilizers.residual is False
    assert spec.accuracy["laplace"] == 4
    assert spec.time.span == (0.0, 12.0) and spec.time.dt == 2.0
    assert spec.stabilizers.norm.kind == "rmsnorm"
    assert spec.grid.spacing == 1e-3 and isinstance(spec.grid.spacing, float)
    # untouched values stay as in the file
    assert spec.stabilizers.norm.placement == "post"
    assert spec.time.layers == 6
    assert spec.sha256 != base.sha256
    # the locations of overridden values point at the override
    assert spec.locations["time.span"].file == "<--set>"
    assert spec.locations["grid.boundary"].file == str(MASTER)


def test_later_override_wins():
    spec = load_spec(MASTER, ["time.layers=3", "time.layers=2"])
    assert spec.time.layers == 2


def test_parameter_value_on_a_bare_number_parameter():
    base = load_spec(HEAT)
    assert base.parameters["D"].value == 0.5
    spec = load_spec(HEAT, ["parameters.D.value=0.2"])
    assert spec.parameters["D"].value == 0.2
    assert spec.parameters["D"].learnable is False
    spec = load_spec(HEAT, ["parameters.D=0.25"])
    assert spec.parameters["D"].value == 0.25


@pytest.mark.parametrize("override", ["parameters.d=2", "parameters.d.value=2",
                                      "parameters.d={value: 2, learnable: true}"])
def test_an_undeclared_parameter_is_an_error_with_did_you_mean(override):
    """``--set parameters.d=2`` on a spec whose parameter is ``D`` is a typo, not a new
    parameter: an error located under ``d`` (issue 20: it was a warning and exit 0)."""
    err = override_error(override, HEAT)
    assert isinstance(err, OverrideError)
    assert "parameter 'd' is not declared" in err.message and f"--set {override}" in err.message
    assert err.suggestion.startswith("did you mean 'D'?")
    loc = err.location
    assert loc.file == "<--set>" and loc.line == 1 and loc.source_line == f"--set {override}"
    assert loc.col == len("--set parameters.") + 1 and loc.length == 1
    assert str(err).startswith(f"<--set>:1:{loc.col}: override error")


def test_a_parameter_declared_by_an_earlier_override_can_be_set():
    """The whole mapping may still be replaced (declaring new names); a later override then
    sets a parameter it declared."""
    spec = load_spec(HEAT, ["parameters={D: 0.5, k: 1.0}", "parameters.k=3"])
    assert spec.parameters["k"].value == 3.0 and spec.parameters["D"].value == 0.5


def test_cli_undeclared_parameter_exits_2():
    for command in (("check",), ("compile",), ("run", "--no-progress")):
        code, out, err = _cli(command[0], str(HEAT), "--set", "parameters.d=2", *command[1:])
        assert code == 2, (out, err)
        assert "<--set>:1:18: override error" in err and "did you mean 'D'?" in err, err


def test_override_creates_a_missing_section():
    assert "discretization" not in NO_NORM.read_text()
    spec = load_spec(NO_NORM, ["discretization.laplace.accuracy=6"])
    assert spec.accuracy["laplace"] == 6
    analysis = compile_spec(spec, until="analysis").analysis
    assert analysis.stencils["laplace"].stencil.accuracy == 6


def test_override_flows_into_the_analysis():
    base = compile_spec(load_spec(HEAT), until="analysis").analysis
    changed = compile_spec(load_spec(HEAT, ["parameters.D.value=0.25"]), until="analysis").analysis
    assert changed.stability.max_stable_dt == pytest.approx(2 * base.stability.max_stable_dt,
                                                            rel=1e-12)


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_set_changes_the_report():
    code, out, _ = _cli("check", str(HEAT), "--json", "--set", "parameters.D.value=0.25",
                        "--set", "time.substeps=40")
    assert code == 0
    data = json.loads(out)
    h = 0.09817477042468103
    assert data["stability"]["max_stable_dt"] == pytest.approx(h * h / (2 * 0.25), rel=1e-12)
    assert data["stability"]["dt"] == pytest.approx(0.1 / 40)


def test_cli_bad_override_exits_2_and_names_it():
    code, out, err = _cli("check", str(MASTER), "--set", "grid.spacng=2")
    assert code == 2 and out == ""
    assert err.startswith("<--set>:1:")
    assert "grid.spacng=2" in err and "did you mean 'spacing'?" in err
    assert "Traceback" not in err


def test_override_errors_are_user_errors():
    for bad in ("grid.spacng=2", "time.layers=two", "grid.spacing=-1", "nothing"):
        with pytest.raises(PdelangError):
            load_spec(MASTER, [bad])
