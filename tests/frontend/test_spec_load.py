"""Stage ``load``: a spec file becomes a typed, immutable Spec whose values keep file:line:col."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pdelang.errors import PdelangError, SpecError, SpecSyntaxError
from pdelang.compiler.spec.load import canonical_hash, load_spec, load_spec_text
from pdelang.compiler.spec.model import Grid, NormSpec, ParameterDecl, SourceString, Spec, TimeSpec

REPO = Path(__file__).parent.parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))
MASTER = REPO / "specs" / "master.yaml"


def position(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of ``needle`` in ``text``."""
    pos = -1
    for _ in range(nth):
        pos = text.index(needle, pos + 1)
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_bundled_spec_loads(path):
    spec = load_spec(path)
    assert isinstance(spec, Spec)
    assert spec.file == str(path)
    assert len(spec.sha256) == 64
    assert spec.time.steps >= 1 and spec.time.dt > 0


def test_master_values_are_typed():
    spec = load_spec(MASTER)
    assert spec.name == "master"
    assert spec.class_name == "MasterStepper"
    assert spec.grid == Grid(("seq",), None, 1.0, "neumann", 0)
    assert spec.field.name == "u" and spec.field.channels == 384
    assert spec.parameters["D"] == ParameterDecl("D", 0.1, True, True, False)
    assert spec.parameters["alpha"] == ParameterDecl("alpha", 1.0, True, False, True)
    assert isinstance(spec.parameters["D"].value, float)
    assert list(spec.terms) == ["diffusion", "interaction", "reaction"]
    assert all(isinstance(t, SourceString) for t in spec.terms.values())
    assert spec.terms["interaction"].text == "alpha * attention(u, heads=12)"
    assert spec.equation.text == "dt(u) = diffusion + interaction + reaction"
    assert spec.stabilizers.residual is True
    assert spec.stabilizers.norm == NormSpec("layernorm", "post", 1e-12, False, True, None)
    assert spec.time == TimeSpec((0.0, 6.0), 6, 1, "lie",
                                 ("interaction", "reaction", "diffusion"))
    assert isinstance(spec.time.span[0], float)
    assert spec.time.dt == 1.0
    assert dict(spec.accuracy) == {"laplace": 2}


def test_defaults_are_filled():
    text = ("pdelang: 1\nname: tiny\ngrid:\n  axes: [seq]\nfields:\n  u: {channels: 4}\n"
            "equation: dt(u) = u\n")
    spec = load_spec_text(text, "tiny.yaml")
    assert spec.description == ""
    assert spec.grid == Grid(("seq",), None, 1.0, "periodic", 0)
    assert dict(spec.parameters) == {} and dict(spec.terms) == {}
    assert spec.stabilizers.residual is True
    assert spec.stabilizers.norm.kind == "none"
    assert spec.stabilizers.norm.placement == "pre"
    assert spec.stabilizers.norm.eps == 1e-5
    assert spec.time == TimeSpec((0.0, 1.0), 1, 1, "euler", None)
    assert dict(spec.accuracy) == {}


def test_bare_number_parameter_is_a_constant():
    spec = load_spec(REPO / "specs" / "heat1d.yaml")
    assert spec.parameters["D"] == ParameterDecl("D", 0.5, False, False, False)


def test_spec_is_immutable():
    spec = load_spec(MASTER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.grid.spacing = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.parameters["E"] = spec.parameters["D"]  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.terms["x"] = spec.terms["diffusion"]  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.locations["x"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.accuracy["laplace"] = 4  # type: ignore[index]
    assert isinstance(spec.time.span, tuple) and isinstance(spec.grid.axes, tuple)


@pytest.mark.parametrize("path,needle,nth", [
    ("grid.spacing", "1.0", 1),
    ("grid.boundary", "neumann", 1),
    ("grid.axes[0]", "seq", 1),
    ("fields.u.channels", "384", 1),
    ("parameters.D.value", "0.1", 1),
    ("parameters.alpha#key", "alpha:", 1),
    ("terms.reaction", "mlp(u", 1),
    ("terms.diffusion#key", "diffusion:", 1),
    ("equation", "dt(u)", 1),
    ("time.split_order[1]", "reaction, diffusion]", 1),
    ("time.span", "[0, 6]", 1),
    ("stabilizers.norm.eps", "1.0e-12", 1),
    ("discretization.laplace.accuracy", "2}", 1),
])
def test_every_value_keeps_its_location(path, needle, nth):
    spec = load_spec(MASTER)
    text = MASTER.read_text()
    loc = spec.locations[path]
    assert loc.file == str(MASTER)
    assert (loc.line, loc.col) == position(text, needle, nth)
    assert loc.source_line == text.splitlines()[loc.line - 1]


def test_where_falls_back_to_the_enclosing_value():
    spec = load_spec(MASTER)
    assert spec.where("grid.spacing") == spec.locations["grid.spacing"]
    # `grid.shape` is not written in the file: the location of `grid` is the closest one
    assert spec.where("grid.shape") == spec.locations["grid"]


def test_term_strings_locate_inside_the_file():
    spec = load_spec(MASTER)
    text = MASTER.read_text()
    term = spec.terms["interaction"]
    offset = term.text.index("heads")
    loc = term.locate(offset, len("heads"))
    assert (loc.line, loc.col) == position(text, "heads=12")
    assert loc.length == 5
    eq = spec.equation
    loc = eq.locate(eq.text.index("reaction"))
    assert (loc.line, loc.col) == position(text, "reaction", 2)


def test_canonical_hash_ignores_formatting_but_sha_does_not():
    text = MASTER.read_text()
    reformatted = "\n".join(line.split("#")[0].rstrip() for line in text.splitlines()
                            if not line.startswith("#")) + "\n"
    a = load_spec_text(text, "a.yaml")
    b = load_spec_text(reformatted, "b.yaml")
    assert a.sha256 != b.sha256
    assert canonical_hash(a) == canonical_hash(b)
    c = load_spec_text(text, "a.yaml", ["grid.spacing=2.0"])
    assert canonical_hash(c) != canonical_hash(a)
    assert c.sha256 != a.sha256


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(PdelangError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(PdelangError, match="is a directory"):
        load_spec(tmp_path)


def test_non_utf8_file_is_a_user_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)


def test_yaml_is_read_safely():
    text = MASTER.read_text().replace("name: master", "name: !!python/object/apply:os.system [ls]")
    with pytest.raises(PdelangError) as info:
        load_spec_text(text, "evil.yaml")
    assert isinstance(info.value, (SpecSyntaxError, SpecError))
    assert info.value.location.line == position(text, "name:")[0]
