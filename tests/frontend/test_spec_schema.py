"""The JSON Schema shipped with the package is generated from the one source of truth
(``pdelang.compiler.spec.schema.SPEC_SCHEMA``) that also drives the validator."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import pdelang.compiler.spec
from pdelang.errors import SpecError
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.spec.schema import SPEC_SCHEMA, json_schema, json_schema_text

REPO = Path(__file__).parent.parent.parent
SPECS = sorted((REPO / "specs").glob("*.yaml"))
SHIPPED = Path(pdelang.compiler.spec.__file__).with_name("spec.schema.json")
MASTER_TEXT = (REPO / "specs" / "master.yaml").read_text()
REGENERATE = ('python -c "from pdelang.compiler.spec.schema import json_schema_text; '
              "open('pdelang/compiler/spec/spec.schema.json','w').write(json_schema_text())\"")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SHIPPED.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_shipped_schema_equals_the_generated_text():
    assert SHIPPED.is_file(), f"missing {SHIPPED}; create it with {REGENERATE}"
    assert SHIPPED.read_text(encoding="utf-8") == json_schema_text(), \
        f"spec.schema.json is stale; regenerate it with {REGENERATE}"


def test_schema_is_draft_2020_12_and_closed():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"pdelang", "name", "grid", "fields", "equation"}
    assert set(schema["properties"]) == set(SPEC_SCHEMA.fields)
    grid = schema["properties"]["grid"]
    assert grid["properties"]["spacing"]["exclusiveMinimum"] == 0.0
    assert grid["properties"]["boundary"]["enum"] == ["periodic", "neumann", "dirichlet", "copy"]
    accuracy = schema["properties"]["discretization"]["properties"]["laplace"]
    assert accuracy["properties"]["accuracy"] == {
        "type": "integer", "minimum": 2, "maximum": 32, "multipleOf": 2, "default": 2,
        "description": "Order of accuracy of the centred stencil (even, 2 to 32).",
    }


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_bundled_spec_validates(path, validator):
    validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))


BAD = {
    "unknown key": ("  spacing: 1.0\n", "  spacng: 1.0\n"),
    "negative spacing": ("spacing: 1.0", "spacing: -1.0"),
    "odd accuracy": ("accuracy: 2", "accuracy: 3"),
    "accuracy zero": ("accuracy: 2", "accuracy: 0"),
    "missing equation": ("equation: dt(u) = diffusion + interaction + reaction\n", ""),
    "unknown scheme": ("scheme: lie", "scheme: strnag"),
    "string for int": ("channels: 384", "channels: many"),
    "zero layers": ("layers: 6", "layers: 0"),
    "bool for bool-less": ("residual: true", "residual: 1"),
    "bad name": ("name: master", "name: 1master"),
    "span of three": ("span: [0, 6]", "span: [0, 3, 6]"),
}


@pytest.mark.parametrize("label", BAD)
def test_bad_specs_fail_the_schema_and_the_loader(label, validator):
    old, new = BAD[label]
    assert old in MASTER_TEXT
    text = MASTER_TEXT.replace(old, new, 1)
    errors = list(validator.iter_errors(yaml.safe_load(text)))
    assert errors, f"the JSON Schema accepts a spec with {label}"
    # the validator generated from the same source rejects it too
    with pytest.raises(SpecError):
        load_spec_text(text, "bad.yaml")


def test_schema_and_validator_agree_on_defaults():
    schema = json_schema()
    time = schema["properties"]["time"]["properties"]
    spec = load_spec_text("pdelang: 1\nname: d\ngrid: {axes: [seq]}\nfields: {u: {channels: 2}}\n"
                          "equation: dt(u) = u\n")
    assert time["scheme"]["default"] == spec.time.scheme
    assert time["layers"]["default"] == spec.time.layers
    assert time["span"]["default"] == list(spec.time.span)
    grid = schema["properties"]["grid"]["properties"]
    assert grid["boundary"]["default"] == spec.grid.boundary
    assert grid["spacing"]["default"] == spec.grid.spacing
