"""Writes the generated pages of the site at build time (mkdocs-gen-files, see mkdocs.yml):
the spec language and command references and the gallery, from pdelang.cli.docgen.
They exist only in the built site, so they cannot drift from the code."""

from pathlib import Path

import mkdocs_gen_files

from pdelang.cli.docgen import pages

ROOT = Path(mkdocs_gen_files.config.config_file_path).resolve().parent

for path, content in pages(ROOT / "examples"):
    mode = "wb" if isinstance(content, bytes) else "w"
    with mkdocs_gen_files.open(path, mode) as handle:
        handle.write(content)
