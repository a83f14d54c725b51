"""No user text reaches generated code as code.

An injection corpus — Python fragments, quotes, triple quotes, backslashes, line breaks of
every kind followed by code, NUL, lone surrogates, bidi controls, an encoding cookie,
look-alike unicode identifiers — placed in the description, the spec's file name, names,
expressions, option values and ``--set`` overrides.  Each input gives a clean
:class:`PdelangError` (exit 2 in the CLI), or a module whose *code tokens* are exactly those of
the same spec without the payload (``tokenize``: the payload is only inside comments and
string literals) and which imports and runs without side effects.

And no ``eval``/``exec``/``sympify``/``parse_expr`` in the package (a test reads the source).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import sys
import tokenize
from pathlib import Path

import pytest
import torch

from pdelang.compiler.driver import compile_spec
from pdelang.errors import PdelangError
from pdelang.compiler.spec.load import load_spec, load_spec_text

REPO = Path(__file__).resolve().parent.parent.parent
MARKER = Path("/tmp/pdelang-injection-marker")
SIDE_EFFECT = f"open({str(MARKER)!r}, 'w').write('pwned')"

PAYLOADS = [
    "\n",  # a name ending in a newline (a `$`-anchored identifier pattern accepts it)
    f"\n{SIDE_EFFECT}",
    f"\r{SIDE_EFFECT}",
    f"\r\n{SIDE_EFFECT}",
    f"\u2028{SIDE_EFFECT}",
    f"\u2029{SIDE_EFFECT}",
    f"\x85{SIDE_EFFECT}",
    f"\x0b{SIDE_EFFECT}",
    f"\x0c{SIDE_EFFECT}",
    f"\x1c{SIDE_EFFECT}",
    f'"""\n{SIDE_EFFECT}\n"""',
    f"'''\n{SIDE_EFFECT}\n'''",
    f'"; {SIDE_EFFECT}; "',
    f"'; {SIDE_EFFECT}; '",
    f"\\\n{SIDE_EFFECT}",
    "\\",
    "\\N{",
    "\\x4",
    "\\u12",
    "\x00",
    "\ud800 lone surrogate",
    "\u202e evil bidi override \u202c",
    "\x1b[2J terminal escape",
    "coding: utf-16",
    "# -*- coding: latin-1 -*-",
    "{__import__('os').system('true')}",
    f"__import__('os'); {SIDE_EFFECT}",
    "mаster with a Cyrillic а",
    "tab\tand\ttabs",
    "ends with a backslash \\",
]

BASE = {
    "pdelang": 1,
    "name": "inj",
    "description": "x",
    "grid": {"axes": ["x"], "spacing": 1.0, "boundary": "periodic"},
    "fields": {"u": {"channels": 2}},
    "parameters": {"D": 0.1},
    "terms": {"diffusion": "D * laplace(u)", "reaction": "mlp(u, hidden=4)"},
    "equation": "dt(u) = diffusion + reaction",
    "time": {"span": [0, 1], "layers": 1, "substeps": 2, "scheme": "lie"},
}

RESULTS = {"payloads": len(PAYLOADS), "cases": 0, "clean errors": 0, "safe modules": 0}


def spec_text(**changes) -> str:
    """The spec as YAML text (JSON is YAML: strings escaped as JSON escapes them)."""
    data = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return json.dumps(data, ensure_ascii=True)


def code_tokens(source: str) -> list[tuple[int, str]]:
    """Every token that is code: not a comment (nor the line breaks between comment lines:
    a long comment may wrap), and strings only by their type."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        out.append((tok.type, "<str>" if tok.type == tokenize.STRING else tok.string))
    return out


def import_and_run(source: str, tag: str) -> None:
    path = Path("/tmp") / f"pdelang_injection_{tag}.py"
    path.write_text(source, encoding="utf-8", errors="surrogateescape")
    spec = importlib.util.spec_from_file_location(f"pdelang_injection_{tag}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stepper = module.Stepper().double()
    with torch.no_grad():
        out = stepper(torch.randn(2, 6, 2, dtype=torch.float64))
    assert torch.isfinite(out).all()
    sys.modules.pop(spec.name, None)


BASELINE = code_tokens(compile_spec(load_spec_text(spec_text(), "spec.yaml")).python)


def outcome(compile_it, tag: str) -> str:
    """'error' (a clean PdelangError) or 'module' (checked safe)."""
    MARKER.unlink(missing_ok=True)
    RESULTS["cases"] += 1
    try:
        source = compile_it()
    except PdelangError as error:
        assert error.location is not None and error.location.line >= 1, str(error)
        RESULTS["clean errors"] += 1
        return "error"
    assert code_tokens(source) == BASELINE, "the payload changed the code tokens"
    import_and_run(source, tag)
    assert not MARKER.exists(), "the payload ran"
    RESULTS["safe modules"] += 1
    return "module"


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_payload_in_the_description(index):
    text = spec_text(description=PAYLOADS[index])
    got = outcome(lambda: compile_spec(load_spec_text(text, "spec.yaml")).python,
                  f"d{index}")
    assert got == "module"  # a description is free text: always accepted, always inert


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_payload_in_the_spec_file_name(index, tmp_path):
    name = PAYLOADS[index].replace("/", "_").replace("\x00", "NUL")
    try:
        path = tmp_path / f"{name}.yaml"
        path.write_text(spec_text(), encoding="utf-8")
    except (OSError, UnicodeEncodeError, ValueError):
        pytest.skip("the file system refuses this name")
    outcome(lambda: compile_spec(load_spec(path)).python, f"f{index}")


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_payload_in_a_description_override(index):
    override = f"description={PAYLOADS[index]}"
    outcome(lambda: compile_spec(load_spec_text(spec_text(), "spec.yaml",
                                                [override])).python, f"o{index}")


PLACES = {
    "spec name": lambda p: spec_text(name=f"inj{p}"),
    "term name": lambda p: spec_text(terms={f"diffusion{p}": "D * laplace(u)",
                                            "reaction": "mlp(u, hidden=4)"},
                                     equation=f"dt(u) = diffusion{p} + reaction"),
    "parameter name": lambda p: spec_text(parameters={f"D{p}": 0.1}),
    "axis name": lambda p: spec_text(grid={"axes": [f"x{p}"], "spacing": 1.0}),
    "expression": lambda p: spec_text(terms={"diffusion": f"D * laplace(u) + {p}",
                                             "reaction": "mlp(u, hidden=4)"}),
    "option value": lambda p: spec_text(terms={"diffusion": "D * laplace(u)",
                                               "reaction": f"mlp(u, activation={p})"}),
    "field name": lambda p: spec_text(fields={f"u{p}": {"channels": 2}}),
}


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_payload_in_names_expressions_and_options_is_a_clean_error(place, index):
    """Names become code, so they must be identifiers; expressions and option values must
    parse in the term grammar: a payload there is always a located error."""
    text = PLACES[place](PAYLOADS[index])
    got = outcome(lambda: compile_spec(load_spec_text(text, "spec.yaml")).python,
                  f"p{index}")
    assert got == "error"


def test_the_corpus_is_large_enough_and_reported(record_property):
    assert len(PAYLOADS) >= 25
    record_property("injection corpus", dict(RESULTS))
    print(f"\ninjection corpus: {RESULTS}")


# ----------------------------------------------------------------------------- the source
BUILTINS = {"eval", "exec", "compile", "__import__"}  # called by bare name
PARSERS = {"sympify", "parse_expr"}  # as sympy.sympify / parse_expr or imported


def test_the_package_never_evaluates_text():
    """No eval/exec/compile/__import__ builtin call, no sympify/parse_expr anywhere in the
    package (and no ``sympy.S("…")`` of a string).  Methods such as ``nn.Module.eval()`` or
    ``re.compile`` are not the builtins."""
    found = []
    for path in sorted((REPO / "pdelang").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else None
            if (isinstance(func, ast.Name) and name in BUILTINS) or name in PARSERS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}(…)")
            if name == "S" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: S('…')")
    assert not found, found
