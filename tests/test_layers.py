"""The import contracts of the layers (docs/architecture.md), checked by import-linter.

    cli  →  lab  →  interpreters  →  compiler  →  base (errors, io)

``.importlinter`` holds the contracts; ``lint-imports`` builds its graph from every
``import``/``from … import`` of the package, at module level or inside a function (a lazy
import hides a circle, it does not remove it):

* the layers: imports point down only;
* the compiler's front stages never import torch (``pdelang check`` stays torch-free);
* no circle between sibling modules of the lab, the interpreters and the CLI;
* the ablation workers never import its orchestrators.

``pdelang/__init__.py`` is the public façade (``pdelang.build``, ``pdelang.validate`` …) and
may reach any layer; nothing inside the layers imports it (the version lives in
``pdelang.version``).  The control test plants each kind of violation in a throwaway package
and checks that the same contracts see it."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pdelang"
CONFIG = REPO / ".importlinter"
LAYERS = {"errors", "io", "version", "compiler", "interpreters", "lab", "cli", "__main__"}
FACADE = {"__init__"}


def lint_imports(config: Path, root: Path) -> subprocess.CompletedProcess:
    linter = shutil.which("lint-imports")
    if linter is None:
        pytest.skip("import-linter is not installed")
    return subprocess.run([linter, "--no-cache", str(config)], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)


def test_import_linter_contracts_hold():
    result = lint_imports(CONFIG, REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_the_top_level_is_the_layers_and_nothing_else():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    assert names == LAYERS | FACADE


def test_the_contracts_see_planted_violations(tmp_path):
    """Control: the layers and no-circle contracts of .importlinter, applied to a throwaway
    package, catch a lazy upward import and a lazy circle."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    fake = tmp_path / "fakepkg"
    for folder in ("cli", "lab", "interpreters", "compiler"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    for base in ("__init__", "errors", "io"):
        (fake / f"{base}.py").write_text("")
    (fake / "compiler" / "x.py").write_text("def f():\n    from fakepkg.lab import a\n")
    (fake / "lab" / "a.py").write_text("def f():\n    from fakepkg.lab import b\n")
    (fake / "lab" / "b.py").write_text("from fakepkg.lab import a\n")
    out = configparser.ConfigParser()
    out["importlinter"] = {"root_package": "fakepkg"}
    kept = {"layers": parser["importlinter:contract:layers"],
            "no-circles": parser["importlinter:contract:no-circles"]}
    for name, section in kept.items():
        out[f"importlinter:contract:{name}"] = {
            key: value.replace("pdelang", "fakepkg") for key, value in section.items()}
    config = tmp_path / "contracts.ini"
    with config.open("w") as handle:
        out.write(handle)
    result = lint_imports(config, tmp_path)
    assert result.returncode != 0
    assert "0 kept, 2 broken" in result.stdout, result.stdout[-3000:]
    assert "fakepkg.compiler.x -> fakepkg.lab.a" in result.stdout
