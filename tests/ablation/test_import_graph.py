"""The ablation package's imports: no circle and workers below orchestrators are import-linter
contracts (``.importlinter``, checked by ``tests/test_layers.py``); what import-linter cannot
say is checked here: no module imports another ablation module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pdelang" / "lab" / "ablation"


def test_no_module_imports_another_ablation_module_s_private_names():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("pdelang.lab.ablation."):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_")]
    assert not offenders, offenders
