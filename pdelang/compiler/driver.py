"""The compiler driver: the list of stages, each a pure function of the earlier values.

    spec.yaml ─load─▶ Spec ─parse─▶ AST ─lower─▶ symbolic IR ─schedule─▶ step program
              ─analyse─▶ Analysis ─discretize─▶ discrete IR ─print─▶ Python source

``compile_spec`` returns every intermediate form, so ``pdelang compile --emit …`` costs
nothing extra; ``until=`` stops after a stage (``check`` stops after ``discrete``).  With
``debug`` (``--debug`` on the command line, or ``PDELANG_DEBUG=1``) the verifier
(:mod:`pdelang.compiler.invariants`) checks each stage's output before the next stage runs.
Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pdelang.compiler import invariants
from pdelang.compiler.analysis.analyse import Analysis, analyse
from pdelang.compiler.codegen.printer import print_module
from pdelang.compiler.discrete.constants import check_constants
from pdelang.compiler.discrete.discretize import discretize
from pdelang.compiler.discrete.ir import DiscreteModel
from pdelang.compiler.language.ast import SpecAST
from pdelang.compiler.language.parse import parse_spec
from pdelang.compiler.schemes.program import StepProgram
from pdelang.compiler.schemes.schedule import schedule
from pdelang.compiler.spec.load import load_spec, load_spec_text
from pdelang.compiler.spec.model import Spec
from pdelang.compiler.symbolic.ir import SymbolicModel
from pdelang.compiler.symbolic.lower import lower

# (name, stage, the names of the earlier values it takes), in pipeline order.
STAGES = (
    ("ast", parse_spec, ("spec",)),
    ("symbolic", lower, ("spec", "ast")),
    ("program", schedule, ("symbolic",)),
    ("analysis", analyse, ("symbolic", "program")),
    ("discrete", discretize, ("symbolic", "program", "analysis")),
    ("python", print_module, ("discrete",)),
)
STAGE_NAMES = tuple(name for name, _, _ in STAGES)


@dataclass(frozen=True)
class Compilation:
    """Every stage's output for one spec (``None`` after the stage ``until`` named)."""

    spec: Spec
    ast: SpecAST | None = None
    symbolic: SymbolicModel | None = None
    program: StepProgram | None = None
    analysis: Analysis | None = None
    discrete: DiscreteModel | None = None
    python: str | None = None


def debug_enabled(debug: bool | None = None) -> bool:
    if debug is not None:
        return debug
    return os.environ.get("PDELANG_DEBUG", "") not in ("", "0")


def compile_spec(spec: Spec | str | Path, overrides: Iterable[str] = (), *,
                 until: str = "python", debug: bool | None = None) -> Compilation:
    """Run the stages on a spec (a path, or an already loaded :class:`Spec`) up to and
    including ``until``; with ``debug``, verify every stage's output."""
    if until not in STAGE_NAMES:
        raise ValueError(f"unknown stage {until!r}; stages: {', '.join(STAGE_NAMES)}")
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    check = debug_enabled(debug)
    values: dict[str, object] = {"spec": spec}
    for name, stage, inputs in STAGES:
        values[name] = stage(*(values[i] for i in inputs))
        if name == "discrete":  # what the printer writes as literals: finite, or a located error
            check_constants(spec, values[name])
        if check:
            invariants.verify_stage(name, values)
        if name == until:
            break
    return Compilation(**values)


def compile_text(text: str, filename: str = "<spec>", overrides: Iterable[str] = (), *,
                 until: str = "python", debug: bool | None = None) -> Compilation:
    return compile_spec(load_spec_text(text, filename, overrides), until=until, debug=debug)
