"""The documentation site (mkdocs.yml, docs/): ``mkdocs build --strict`` succeeds — no broken
link, no missing API page, no warning — and the generated reference pages cover every spec
key, operator option and command-line option (issue 25, item 3)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pdelang.cli.docgen import (
    command_reference,
    gallery_nav,
    gallery_pages,
    pages,
    spec_reference,
)

REPO = Path(__file__).resolve().parents[2]
INSTALL = "install the docs extra: pip install -e '.[docs]' (scripts/setup.sh does)"


def test_mkdocs_build_strict(tmp_path):
    try:
        import mkdocs  # noqa: F401
        import mkdocs_gen_files  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as error:
        pytest.fail(f"{error}: {INSTALL}")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site"), "--config-file", str(REPO / "mkdocs.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "reference/spec/index.html",
                 "reference/commands/index.html", "editors/index.html",
                 "diagnostics/index.html", "api/interpreters/index.html",
                 "architecture/index.html", "gallery/index.html"):
        assert (site / page).is_file(), page
    for folder in sorted((REPO / "examples").glob("*/README.md")):
        assert (site / "gallery" / folder.parent.name / "index.html").is_file(), folder
    api = (site / "api" / "interpreters" / "index.html").read_text(encoding="utf-8")
    assert "mean_pairwise_cosine" in api and "rank_collapse_residual" in api
    print(f"mkdocs build --strict: {seconds:.1f} s")


def test_spec_reference_covers_every_key_and_operator_option():
    from pdelang.compiler import schemes
    from pdelang.compiler.operators import OPERATORS
    from pdelang.compiler.spec.schema import SPEC_SCHEMA

    page = spec_reference()
    for key in SPEC_SCHEMA.fields:
        assert f"| `{key}" in page, key
    for key in ("grid.boundary", "stabilizers.norm.placement", "time.scheme",
                "parameters.<name>.basis.size", "discretization.<name>.accuracy"):
        assert f"| `{key}` |" in page, key
    for name, op in OPERATORS.items():
        assert f"### `{name}` {{#op-{name}}}" in page and op.signature in page, name
        for option in op.options:
            assert f"| `{option.name}` |" in page, (name, option.name)
    for name in schemes.SCHEMES:
        assert f"| `{name}` |" in page, name
    assert "```text" in page  # the grammar


def test_command_reference_covers_every_command_and_option():
    from pdelang.cli.main import COMMANDS, build_parser

    page = command_reference()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMANDS)
    for name, sub in commands.choices.items():
        assert f"## `pdelang {name}` {{#{name}}}" in page, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in page, (name, flag)
    assert "--trajectory FILE" in page and "`pdelang schema`" in page


def test_gallery_has_one_page_per_example_readme(tmp_path):
    (tmp_path / "clustering").mkdir()
    (tmp_path / "clustering" / "README.md").write_text(
        "# Clustering on the sphere\n\nTokens collapse to one cluster.\n\n![f](figure.png)\n")
    (tmp_path / "clustering" / "figure.png").write_bytes(b"\x89PNG")
    (tmp_path / "clustering" / "__pycache__").mkdir()
    (tmp_path / "clustering" / "__pycache__" / "x.pyc").write_bytes(b"")
    (tmp_path / "no_readme").mkdir()
    (tmp_path / "test_loose.py").write_text("")
    files = dict(gallery_pages(tmp_path))
    assert set(files) == {"gallery/index.md", "gallery/clustering/index.md",
                          "gallery/clustering/figure.png"}
    index = files["gallery/index.md"]
    assert "[Clustering on the sphere](clustering/index.md): Tokens collapse" in index
    empty = dict(gallery_pages(tmp_path / "missing"))
    assert "No entries yet" in empty["gallery/index.md"]
    # docs/hooks.py puts each entry in the site's navigation
    assert gallery_nav(tmp_path) == [{"Clustering on the sphere": "gallery/clustering/index.md"}]
    assert gallery_nav(tmp_path / "missing") == []


def test_generated_pages_are_not_in_the_source_tree():
    """Generated at build time only: a copy in docs/ would be a second, drifting source."""
    for path, _ in pages():
        assert not (REPO / "docs" / path).exists(), path
