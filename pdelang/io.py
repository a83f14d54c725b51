"""Atomic writes: the one way pdelang writes a file.

Every output — a generated module, a report, a JSON file, a plot, a saved tensor — is
written to a temporary file in the target's directory, flushed to disk and then renamed
over the target (``os.replace``, atomic on POSIX and Windows).  A reader never sees a
half-written file, and an interrupted or failed write leaves the previous file (or none)
and no temporary file behind.

Importing this module does not import torch or matplotlib (``pdelang compile`` uses it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_directory", "atomic_path", "save_figure", "save_tensor", "write_atomically"]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0666 minus the umask);
    ``mkstemp`` makes its files private (0600)."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception the
    temporary file becomes ``path`` (flushed to disk, then renamed); otherwise it is removed
    and ``path`` is untouched.  The parent directory is created if needed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # the writer may have closed its own handle
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_tree(directory: Path) -> None:
    """Flush every file under ``directory`` to disk and give files and folders the modes a
    plain ``open``/``mkdir`` would (``mkdtemp`` makes its folder private, 0700)."""
    file_mode = _mode()
    folder_mode = 0o777 & ~_umask()
    for item in sorted(directory.rglob("*")):
        if item.is_symlink():
            continue
        if item.is_file():
            with open(item, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(item, file_mode)
        elif item.is_dir():
            os.chmod(item, folder_mode)
    os.chmod(directory, folder_mode)


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; when the block ends without an exception
    its files are flushed to disk and the directory becomes ``path``; otherwise it is removed
    and ``path`` is untouched.  The parent directory is created if needed.

    A directory cannot be renamed over a non-empty one, so an existing ``path`` is first
    renamed aside (a hidden ``.NAME.*.old`` sibling), the new directory renamed into place,
    and the old one then deleted; should the second rename fail, the old one is put back.
    Between the two renames (microseconds) ``path`` does not exist: a reader sees the old
    directory, the new one, or none — never a half-written one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
        _fsync_tree(tmp)
        aside = None
        if target.exists() or target.is_symlink():
            aside = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
            os.replace(target, aside)
        try:
            os.replace(tmp, target)
        except BaseException:
            if aside is not None:
                os.replace(aside, target)
            raise
        if aside is not None:
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_atomically(path: str | os.PathLike, data: str | bytes, *,
                     encoding: str = "utf-8") -> Path:
    """Write ``data`` (text in ``encoding``, or bytes) to ``path`` atomically."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def _write_with(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def save_figure(figure, path: str | os.PathLike, **options) -> Path:
    """``figure.savefig`` to ``path`` atomically (the format from the suffix unless given:
    the temporary file's own suffix is ``.tmp``)."""
    options.setdefault("format", Path(path).suffix.lstrip(".").lower() or "png")
    return _write_with(path, lambda tmp: figure.savefig(tmp, **options))


def save_tensor(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically."""
    import torch  # lazy: torch

    return _write_with(path, lambda tmp: torch.save(obj, tmp))
