"""mkdocs hook (mkdocs.yml: hooks): the gallery's pages in the navigation, one entry per
examples/<name>/README.md, so that a new example needs no edit of mkdocs.yml."""

from pathlib import Path

from pdelang.cli.docgen import gallery_nav


def on_config(config):
    root = Path(config.config_file_path).resolve().parent
    for item in config.nav or []:
        if isinstance(item, dict) and "Gallery" in item:
            item["Gallery"] = [{"Overview": "gallery/index.md"},
                               *gallery_nav(root / "examples")]
    return config
