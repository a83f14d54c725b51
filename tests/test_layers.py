"""The import contract of the layers (docs/architecture.md): imports point down only.

    cli  →  lab  →  interpreters  →  compiler  →  base (errors, io)

Every ``import``/``from … import`` of a ``pdelang`` module counts, at module level or inside
a function (a lazy import hides a circle, it does not remove it).  ``pdelang/__init__.py``
is the public façade (``pdelang.build``, ``pdelang.validate`` …) and may reach any layer;
nothing inside the layers imports it (the version lives in ``pdelang.version``).  The same
contract, with import-linter's own import graph, is ``.importlinter`` (``lint-imports``,
run by :func:`test_import_linter_contracts_hold`)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pdelang"
LAYERS = {"errors": 0, "io": 0, "version": 0, "compiler": 1, "interpreters": 2, "lab": 3, "cli": 4,
          "__main__": 4}
FACADE = {"__init__"}


def _layer_of(dotted: str) -> tuple[str, int] | None:
    parts = dotted.split(".")
    if parts[0] != "pdelang":
        return None
    if len(parts) < 2:  # the façade: importing it from inside a layer reaches every layer
        return "__init__", 99
    return parts[1], LAYERS.get(parts[1], -1)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pdelang":  # from pdelang import X: the façade or a submodule
                for alias in node.names:
                    yield node.lineno, f"pdelang.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        top = parts[0]
        if top in FACADE:
            continue
        mine = LAYERS.get(top)
        if mine is None:
            found.append(f"{path.relative_to(package.parent)}: outside every layer")
            continue
        for line, dotted in _imports(path):
            target = _layer_of(dotted)
            if target is None:
                continue
            _, theirs = target
            if theirs == 99:
                found.append(f"{path.relative_to(package.parent)}:{line}: imports the "
                             "pdelang façade (import the module itself)")
            elif theirs == -1:
                found.append(f"{path.relative_to(package.parent)}:{line}: {dotted} is in no "
                             "layer")
            elif theirs > mine:
                found.append(f"{path.relative_to(package.parent)}:{line}: {top} imports "
                             f"{dotted} (a layer above)")
    return found


def test_imports_point_down_only():
    assert violations() == []


def test_the_top_level_is_the_layers_and_nothing_else():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert names == set(LAYERS) | FACADE


def test_the_contract_sees_an_upward_import(tmp_path):
    """Control: a lazy import from the compiler into the lab is caught."""
    fake = tmp_path / "pdelang"
    (fake / "compiler").mkdir(parents=True)
    (fake / "lab").mkdir()
    (fake / "compiler" / "x.py").write_text(
        "def f():\n    from pdelang.lab.metrics import hidden_cosine\n")
    (fake / "lab" / "y.py").write_text("from pdelang.compiler import x\n")
    assert violations(fake) == ["pdelang/compiler/x.py:2: compiler imports "
                                "pdelang.lab.metrics (a layer above)"]


def test_import_linter_contracts_hold():
    """import-linter's own graph (lazy imports included) agrees: the layers contract and
    the compiler's torch-free contract of .importlinter."""
    linter = shutil.which("lint-imports")
    if linter is None:
        pytest.skip("import-linter is not installed")
    result = subprocess.run([linter, "--no-cache", "--config",
                             str(PACKAGE.parent / ".importlinter")],
                            capture_output=True, text=True, cwd=PACKAGE.parent,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout
