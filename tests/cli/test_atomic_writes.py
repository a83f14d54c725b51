"""Every output is written atomically, through one helper (``pdelang.io``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pdelang.io import atomic_path, save_figure, save_tensor, write_atomically

PACKAGE = Path(__file__).resolve().parents[2] / "pdelang"

# a direct write anywhere in the package but pdelang/io.py
DIRECT_WRITE = re.compile(
    r"\.write_text\(|\.write_bytes\(|\.savefig\(|torch\.save\(|json\.dump\(|np\.save\(|"
    r"open\([^)]*['\"][wax]b?\+?['\"]")


def test_no_direct_writer_outside_the_io_module():
    """A writer that bypasses pdelang.io could leave a half-written file behind."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "io.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DIRECT_WRITE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "write through pdelang.io:\n" + "\n".join(offenders)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_atomically_text_bytes_and_mode(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_atomically(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    write_atomically(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    assert _leftovers(target.parent) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    write_atomically(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_figures_and_tensors(tmp_path):
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    figure.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    save_figure(figure, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")
    save_tensor(torch.arange(3.0), tmp_path / "state.pt")
    assert torch.equal(torch.load(tmp_path / "state.pt"), torch.arange(3.0))
    assert _leftovers(tmp_path) == []


def test_atomic_directory_creates_and_replaces_a_directory(tmp_path):
    from pdelang.io import atomic_directory

    target = tmp_path / "refs" / "model"
    with atomic_directory(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".tmp")
        (tmp / "config.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights.bin").write_bytes(b"\x01")
        assert not target.exists()  # nothing visible before the block ends
    assert sorted(p.name for p in target.rglob("*")) == ["config.json", "sub", "weights.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert (target / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_directory(target) as tmp:
        (tmp / "new.json").write_text("[]")
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]  # replaced, not merged
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]  # no .tmp, no .old


def test_a_failed_directory_write_keeps_the_old_directory(tmp_path):
    from pdelang.io import atomic_directory

    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "old.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.json").write_text("{")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["old.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
