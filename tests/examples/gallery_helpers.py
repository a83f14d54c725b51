"""Helpers for the gallery tests: load an entry's ``examples/<name>/run.py`` as a module
(``examples/`` is not a package), so a test runs the entry's own computation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    """The module ``examples/<name>/run.py`` (imported once per process)."""
    key = f"pdelang_example_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, EXAMPLES / name / "run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
