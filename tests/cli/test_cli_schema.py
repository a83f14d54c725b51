"""``pdelang schema`` prints the spec format's JSON Schema, and every shipped spec
(``specs/**/*.yaml``) and example spec (``examples/**/*.yaml``) validates against it
(issue 25, item 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from cli_helpers import run

from pdelang.cli.schema import schema_path
from pdelang.compiler.spec.schema import json_schema_text

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted([*(REPO / "specs").rglob("*.yaml"), *(REPO / "examples").rglob("*.yaml")])
MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$", re.MULTILINE)
# The modeline every shipped spec is to start with (the docs' editor page shows it); once
# every spec carries it, set this to True so that a spec without one fails.
REQUIRE_MODELINE = True


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schema_command_prints_the_shipped_schema():
    code, out, err = run("schema")
    assert code == 0, err
    assert out == json_schema_text() == schema_path().read_text(encoding="utf-8")
    assert json.loads(out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_command_path():
    code, out, err = run("schema", "--path")
    assert code == 0, err
    assert Path(out.strip()) == schema_path() and schema_path().is_file()


def test_there_are_specs_to_validate():
    assert len([p for p in SPEC_FILES if p.is_relative_to(REPO / "specs")]) >= 10


@pytest.mark.parametrize("path", SPEC_FILES, ids=[_id(p) for p in SPEC_FILES])
def test_spec_validates_against_the_json_schema(path, validator):
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{_id(path)}: {'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", SPEC_FILES, ids=[_id(p) for p in SPEC_FILES])
def test_spec_modeline_points_at_the_schema(path):
    """A ``# yaml-language-server: $schema=…`` modeline, where a spec has one (required once
    REQUIRE_MODELINE is set), is a path relative to the spec that reaches the shipped
    schema, on the file's first lines (editors read the modeline anywhere, people look at
    the top)."""
    text = path.read_text(encoding="utf-8")
    found = MODELINE.search(text)
    if found is None:
        assert not REQUIRE_MODELINE, f"{_id(path)} has no schema modeline"
        return
    target = found.group(1)
    assert "://" not in target, "a relative path works offline and in every checkout"
    assert (path.parent / target).resolve() == schema_path().resolve(), target
    assert text[: found.start()].count("\n") < 5, "the modeline belongs at the top"


def test_a_wrong_spec_fails_the_json_schema(validator):
    """The test above can fail: an unknown key and a wrong type are schema errors."""
    document = yaml.safe_load((REPO / "specs" / "master.yaml").read_text(encoding="utf-8"))
    document["stabilizers"]["residul"] = True
    document["time"]["layers"] = "six"
    messages = [e.message for e in validator.iter_errors(document)]
    assert any("residul" in m for m in messages) and any("'six'" in m for m in messages)
