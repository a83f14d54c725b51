"""Stage ``print``: discrete IR → Python source of one standalone ``nn.Module``.

The printer is split by job: :mod:`.expressions` (expressions), :mod:`.steps` (the step
program), :mod:`.assemble` (the module: header, constants, classes, the runtime blocks it
reads, specialized by :mod:`.specialize`), :mod:`.layout` (statements within the line
width).  This module is their entry point.
"""

from __future__ import annotations

from pdelang.compiler.codegen.assemble import TorchPrinter, implicit_method, print_module
from pdelang.compiler.codegen.steps import StepPrinter

__all__ = ["StepPrinter", "TorchPrinter", "implicit_method", "print_module"]
