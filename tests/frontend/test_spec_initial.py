"""The spec's ``init:`` section (``pdelang/compiler/spec/initial.py``): parsed when the spec loads,
located at its value, a file name relative to the spec's folder, overridable with ``--set``,
and the same syntax as ``--init`` (issue 11: "named initial conditions … or an ``init:``
section in the spec")."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdelang.errors import PdelangError, SpecError
from pdelang.compiler.spec.initial import Init, parse_init
from pdelang.compiler.spec.load import load_spec, load_spec_text
from pdelang.compiler.spec.schema import json_schema

FISHER = (Path(__file__).resolve().parents[1] / "cli" / "data" / "fisher_kpp.yaml").read_text()


def _spec(init_line: str | None, overrides=(), filename="<spec>"):
    text = FISHER if init_line is None else FISHER + f"init: {init_line}\n"
    return load_spec_text(text, filename, overrides)


def test_no_init_is_none():
    assert _spec(None).init is None


@pytest.mark.parametrize("text, expected", [
    ("random", Init("random", "random")),
    ("random:0.01", Init("random", "random:0.01", sigma=0.01)),
    ("uniform:0,1", Init("uniform", "uniform:0,1", low=0.0, high=1.0)),
    ("'uniform: -1, 2'", Init("uniform", "uniform: -1, 2", low=-1.0, high=2.0)),
    ("bump", Init("bump", "bump")),
    ("bump:0.5", Init("bump", "bump:0.5", height=0.5)),
])
def test_each_kind_parses(text, expected):
    assert _spec(text).init == expected


def test_a_file_is_relative_to_the_spec(tmp_path):
    spec_file = tmp_path / "sub" / "kpp.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(FISHER + "init: start.pt\n")
    init = load_spec(spec_file).init
    assert init.kind == "file" and Path(init.path) == tmp_path / "sub" / "start.pt"
    absolute = tmp_path / "elsewhere.pt"
    spec_file.write_text(FISHER + f"init: {absolute}\n")
    assert Path(load_spec(spec_file).init.path) == absolute


def test_override_replaces_the_spec_init():
    spec = _spec("bump", overrides=["init=uniform:0,1"])
    assert spec.init.kind == "uniform"
    assert _spec(None, overrides=["init=random:0.2"]).init.sigma == 0.2


@pytest.mark.parametrize("text, fragment, hint", [
    ("gaussian", "not an initial condition", "random[:S]"),
    ("unifrom:0,1", "not an initial condition", "did you mean 'uniform'"),
    ("uniform:1", "uniform needs two bounds A,B", "init: uniform:0,1"),
    ("uniform:1,0", "lower bound must be below", "init: uniform:0,1"),
    ("random:-1", "must be positive", "init: random:0.1"),
    ("bump:inf", "not a finite number", "init: bump:1"),
    ("''", "not an initial condition", "random[:S]"),
])
def test_a_bad_init_is_located_at_its_value(text, fragment, hint):
    with pytest.raises(SpecError) as caught:
        _spec(text, filename="kpp.yaml")
    error = caught.value
    line = FISHER.count("\n") + 1
    assert fragment in error.message and hint in (error.suggestion or "")
    assert (error.location.file, error.location.line, error.location.col) == ("kpp.yaml", line, 7)
    assert "^" in str(error) and "Traceback" not in str(error)


@pytest.mark.parametrize("value", ['"a\\0b"', "x" * 5000])
def test_a_name_the_system_refuses_is_not_a_file(value):
    """A NUL byte or a 5,000-character name: the file probe must not raise OSError (found by
    the long fuzz profile: 'File name too long')."""
    with pytest.raises(SpecError) as caught:
        _spec(value)
    assert "not an initial condition" in caught.value.message
    assert len(caught.value.message) < 200  # the value abbreviated in the message


def test_a_bad_override_is_located_on_the_command_line():
    with pytest.raises(SpecError) as caught:
        _spec(None, overrides=["init=bump:x"])
    assert caught.value.location.file == "<--set>"
    assert caught.value.location.col == len("--set init=") + 1


def test_a_non_string_init_is_a_schema_error():
    with pytest.raises(SpecError, match="'init' must be a string"):
        _spec("[0, 1]")


def test_the_option_form_is_located_on_the_command_line():
    with pytest.raises(PdelangError) as caught:
        parse_init("uniform:2")
    location = caught.value.location
    assert (location.file, location.col, location.source_line) == ("<--init>", 8,
                                                                   "--init uniform:2")


def test_json_schema_documents_init():
    prop = json_schema()["properties"]["init"]
    assert prop["type"] == "string" and "uniform:A,B" in prop["description"]
