"""Golden files of the generated code (tinygrad-style process replay).

For every spec in ``specs/`` the generated module must equal ``tests/golden/<name>.py``
byte for byte, so a change in the printer or the runtime blocks is seen in review.
Specs are always compiled as ``specs/<name>.yaml`` with the repository root as the working
directory, because the header records the spec path as given.

To regenerate the golden files after an intended change to the generated code::

    PDELANG_UPDATE_GOLDEN=1 pytest tests/codegen/test_golden.py

then review ``git diff tests/golden``.  The same tests also check that compiling twice is
byte-identical, that every generated module passes ``ruff check``, and that it imports only
``torch``, ``typing`` and ``__future__``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

from pdelang.compiler.driver import compile_spec

from codegen_helpers import REPO, SPECS, in_repo, spec_path

GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("PDELANG_UPDATE_GOLDEN") == "1"
ALLOWED_IMPORTS = {"torch", "typing", "__future__"}


def generate(name: str) -> str:
    with in_repo():
        return compile_spec(spec_path(name)).python


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return {name: generate(name) for name in SPECS}


def test_every_spec_has_a_golden_file():
    assert SPECS, "no specs found"
    golden = sorted(p.stem for p in GOLDEN.glob("*.py"))
    if UPDATE:
        for stale in set(golden) - set(SPECS):
            (GOLDEN / f"{stale}.py").unlink()
        return
    assert golden == SPECS, "golden files and specs differ; run PDELANG_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", SPECS)
def test_generated_source_matches_golden(name, sources):
    path = GOLDEN / f"{name}.py"
    source = sources[name]
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.encode("utf-8"))
    assert path.exists(), f"missing {path}; run PDELANG_UPDATE_GOLDEN=1 pytest {__file__}"
    expected = path.read_bytes()
    actual = source.encode("utf-8")
    if actual != expected:
        import difflib

        diff = "".join(difflib.unified_diff(
            expected.decode("utf-8").splitlines(True), source.splitlines(True),
            f"golden/{name}.py", f"generated/{name}.py", n=2))
        pytest.fail(f"generated code for {name} differs from the golden file:\n{diff[:6000]}")


@pytest.mark.parametrize("name", SPECS)
def test_compiling_twice_is_byte_identical(name, sources):
    assert generate(name).encode("utf-8") == sources[name].encode("utf-8")


def test_header_records_the_relative_spec_path(sources):
    for name, source in sources.items():
        first = source.splitlines()[0]
        assert f" from specs/{name}.yaml " in first, first
        assert "do not edit" in first


@pytest.mark.parametrize("name", SPECS)
def test_generated_module_imports_only_torch_typing_future(name, sources):
    tree = ast.parse(sources[name])
    seen = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {name}"
            roots = {node.module.split(".")[0]}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("__import__", "eval", "exec"), node.func.id
            continue
        else:
            continue
        assert roots <= ALLOWED_IMPORTS, f"{name} imports {roots - ALLOWED_IMPORTS}"
        seen |= roots
    assert "torch" in seen


def test_generated_modules_pass_ruff(tmp_path, sources):
    _ruff(tmp_path, sources)


# Specs whose modules leave out runtime pieces (no stencil, no mlp, no F.* call at all), plus
# specs drawn from the whole grammar: the generated code must be ruff-clean for every spec,
# not only for the examples (regression: `linear(u)`-only specs imported F unused).
_MINIMAL_SPEC = """\
pdelang: 1
name: {name}
grid: {{axes: [x], shape: [8], boundary: periodic}}
fields: {{u: {{channels: 4}}}}
terms:
  a: "{body}"
equation: dt(u) = a
{extra}time: {{span: [0, 1], layers: 2, scheme: {scheme}}}
"""
_MINIMAL_BODIES = [
    ("linear_only", "linear(u) + linear(u, bias=true)", "", "strang"),
    ("rmsnorm_only", "rmsnorm(u, eps=1e-6) - u", "", "rk4"),
    ("layernorm_only", "layernorm(u, affine=false)",
     "stabilizers: {norm: {kind: rmsnorm, placement: pre, final: true}}\n", "lie"),
    ("polynomial", "-u^3 + 0.5 * u", "", "rk2"),
    ("constant", "u - u + 2", "stabilizers: {residual: false}\n", "euler"),
]


def _ruff(tmp_path, sources: dict[str, str]) -> None:
    """``ruff check`` over the sources, judged on their own (--isolated) under the project's
    rule set: pycodestyle incl. line length, pyflakes, bugbear, pyupgrade, ruff."""
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    rules = ["--isolated", "--select", "E,F,W,B,UP,RUF", "--ignore", "RUF001,RUF002,RUF003",
             "--line-length", "100", "--target-version", "py310"]
    result = subprocess.run(command + ["check", "--no-cache", *rules, str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_without_optional_pieces_pass_ruff(tmp_path):
    from pdelang.compiler.driver import compile_text

    _ruff(tmp_path, {name: compile_text(_MINIMAL_SPEC.format(
        name=name, body=body, extra=extra, scheme=scheme)).python
        for name, body, extra, scheme in _MINIMAL_BODIES})


def test_generated_specs_pass_ruff(tmp_path):
    from hypothesis import HealthCheck, given, settings

    from pdelang.compiler.driver import compile_text
    from pdelang.lab.testing import strategies as S

    sources: dict[str, str] = {}

    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(S.spec_texts())
    def collect(text):
        sources[f"drawn_{len(sources)}"] = compile_text(text).python

    collect()
    _ruff(tmp_path, sources)
