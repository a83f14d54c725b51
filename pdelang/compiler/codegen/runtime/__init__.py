'''Runtime blocks of generated modules, kept as real Python files.

Every other ``.py`` file in this package is an importable, linted module whose source
text the printer copies into a generated stepper.  A file has

* a docstring and a *preamble*: the imports and module-level names its block refers to
  (``torch``, ``EXTRA_TOKENS`` from :mod:`.constants`, ``Context`` from :mod:`.context`,
  ``take`` from :mod:`.take`, …), so that the file imports and ``ruff check`` passes;
* one or more *blocks*, each between two marker lines at column 0::

      # pdelang: begin NAME
      def NAME(...):
          ...
      # pdelang: end NAME

  NAME is the name the block defines.  :func:`block` returns the lines strictly between
  the markers, byte for byte, and that is exactly what the printer inlines.

The preamble never reaches generated code: there the names come from earlier blocks and
from ``TorchPrinter.constants``.  A generated module holds a block only when something it
emits reads the block's name (:mod:`pdelang.compiler.codegen.assemble`).  Variants that
define the same name live in separate files, and the printer picks the spec's:
``grid_lengths_1d`` / ``grid_lengths_2d``, ``hold_border_1d`` / ``hold_border_2d``,
``ghosts_<boundary>`` (blocks ``with_ghosts`` and ``ghost_value``), ``stencil_1d``,
``stencil_2d``, ``stencil_1d_copy``, ``stencil_2d_copy`` (``Stencil``), and
``implicit_periodic`` / ``implicit`` (``ImplicitLinear``: Fourier modes only, or every
boundary).  Within a block, branches on module constants (``if EXTRA_TOKENS:``,
``if BOUNDARY == "copy":``) and on the print-time flags of :mod:`.constants`
(``if GRID_MASKS:``) are folded at print time (:mod:`pdelang.compiler.codegen.specialize`),
in the files of :data:`SPECIALIZED`; the others are inlined as written.  The only hole is
``{boundary}`` in the docstring of the non-copy ``Stencil`` blocks, which
:func:`stencil` fills in.
The ``ACTIVATIONS`` block of ``activations.py`` is not inlined whole: the printer
prints only the entries a spec uses, each value's source as written there
(:data:`ACTIVATION_SOURCES`).

The files are read with :mod:`importlib.resources` (so an installed wheel works) and
cached; this package never imports them, so compiling a spec does not import torch.
The names below (``ATTENTION``, ``GHOSTS[boundary]``, …) are the blocks as strings.
'''

from __future__ import annotations

import ast
import functools
import re
from importlib import resources

BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")
# the files whose blocks the printer specializes to the spec; any other file (the attention
# family: attention, rotary, mlp, glu, …) is inlined as written
SPECIALIZED = frozenset({"context", "scalars", "conv", "implicit", "implicit_periodic", "attention",
                         "grid_lengths_1d", "grid_lengths_2d", "stencil_1d", "stencil_2d",
                         "stencil_1d_copy", "stencil_2d_copy"})

_MARKER = re.compile(r"^# pdelang: (begin|end) (\w+)\n", re.MULTILINE)


@functools.cache
def source(module: str) -> str:
    """The text of the runtime file ``<module>.py``."""
    return resources.files(__name__).joinpath(f"{module}.py").read_text(encoding="utf-8")


@functools.cache
def blocks(module: str) -> dict[str, str]:
    """Every block of the runtime file ``<module>.py``, by name, in file order."""
    return parse_blocks(source(module), f"{module}.py")


def parse_blocks(text: str, where: str = "<runtime>") -> dict[str, str]:
    """The blocks of a runtime file's text: name → the lines between its markers."""
    found: dict[str, str] = {}
    open_name, start = None, 0
    for match in _MARKER.finditer(text):
        kind, name = match.groups()
        if kind == "begin":
            if open_name is not None:
                raise ValueError(f"{where}: block {name!r} begins inside {open_name!r}")
            if name in found:
                raise ValueError(f"{where}: two blocks named {name!r}")
            open_name, start = name, match.end()
        else:
            if name != open_name:
                raise ValueError(f"{where}: 'end {name}' does not close {open_name!r}")
            found[name] = text[start:match.start()]
            open_name = None
    if open_name is not None:
        raise ValueError(f"{where}: block {open_name!r} has no end marker")
    if not found:
        raise ValueError(f"{where} has no '# pdelang: begin NAME' block")
    return found


def block(module: str, name: str) -> str:
    """The source of block ``name`` in ``<module>.py`` (ends with a newline)."""
    try:
        return blocks(module)[name]
    except KeyError:
        raise KeyError(f"runtime file {module}.py has no block {name!r}") from None


def block_lines(module: str, name: str) -> list[str]:
    """:func:`block` as lines, without newlines (the printer's unit)."""
    return block(module, name).rstrip("\n").splitlines()


def stencil(dims: int, boundary: str) -> list[str]:
    """The ``Stencil`` class of a ``dims``-D grid with the given boundary, as lines."""
    variant = f"stencil_{dims}d" + ("_copy" if boundary == "copy" else "")
    return block(variant, "Stencil").replace("{boundary}", boundary).rstrip("\n").splitlines()


def hold_border(dims: int) -> list[str]:
    """``hold_border`` (copy boundary) of a ``dims``-D grid, as lines."""
    return block_lines(f"hold_border_{dims}d", "hold_border")


def _activation_sources() -> dict[str, str]:
    """name → source text of each value in the ``ACTIVATIONS`` block."""
    text = block("activations", "ACTIVATIONS")
    table = ast.parse(text).body[0].value
    return {key.value: ast.get_source_segment(text, value)
            for key, value in zip(table.keys, table.values, strict=True)}


HEADER_IMPORTS = block("header", "imports")
OUTPUT = block("output", "StepperOutput")
CONTEXT = block("context", "Context")
GRID_LENGTHS_1D = block("grid_lengths_1d", "grid_lengths")
GRID_LENGTHS_2D = block("grid_lengths_2d", "grid_lengths")
POSITIVE = block("positive", "Positive")
SPEC_SCALARS = block("scalars", "SpecScalars")
ATTENTION = block("attention", "Attention")
FINITE_LOGSUMEXP = block("finite_logsumexp", "finite_logsumexp")
MLP = block("mlp", "MLP")
ACTIVATION_SOURCES = _activation_sources()
GHOSTS = {b: block(f"ghosts_{b}", "with_ghosts") for b in BOUNDARIES}
RAGGED_VALUE = {b: block(f"ghosts_{b}", "ghost_value") for b in BOUNDARIES}
TAKE = block("take", "take")
