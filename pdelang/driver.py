"""The compiler driver: the list of stages, each a pure function of the previous value.

    spec.yaml ─load─▶ Spec ─parse─▶ AST ─lower─▶ symbolic IR ─analyse─▶ Analysis
              ─discretize─▶ discrete IR ─print─▶ Python source

``compile_spec`` returns every intermediate form, so ``pdelang compile --emit …`` costs
nothing extra.  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable

from pdelang.analysis.analyse import Analysis, analyse
from pdelang.codegen.printer import print_module
from pdelang.discrete.discretize import discretize
from pdelang.discrete.ir import DiscreteModel
from pdelang.language.ast import SpecAST
from pdelang.language.parse import parse_spec
from pdelang.spec.load import load_spec, load_spec_text
from pdelang.spec.model import Spec
from pdelang.symbolic.ir import SymbolicModel
from pdelang.symbolic.lower import lower


@dataclass(frozen=True)
class Compilation:
    """Every stage's output for one spec."""

    spec: Spec
    ast: SpecAST
    symbolic: SymbolicModel
    analysis: Analysis
    discrete: DiscreteModel
    python: str


def front_end(spec: Spec) -> tuple[SpecAST, SymbolicModel, Analysis]:
    parsed = parse_spec(spec)
    symbolic = lower(spec, parsed)
    return parsed, symbolic, analyse(symbolic)


def compile_spec(spec: Spec | str | Path, overrides: Iterable[str] = ()) -> Compilation:
    """Run every stage on a spec (a path, or an already loaded :class:`Spec`)."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    parsed = parse_spec(spec)
    symbolic = lower(spec, parsed)
    analysis = analyse(symbolic)
    discrete = discretize(symbolic, analysis)
    python = print_module(discrete)
    return Compilation(spec, parsed, symbolic, analysis, discrete, python)


def compile_text(text: str, filename: str = "<spec>", overrides: Iterable[str] = ()) -> Compilation:
    return compile_spec(load_spec_text(text, filename, overrides))
