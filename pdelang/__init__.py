"""pdelang: a declarative modelling language for the master PDE of a Transformer.

    ∂t u = D Δu + α A[u] + R(u)   (+ residual and normalization stabilizers)

Public API (mirrors the CLI): :func:`load_spec`, :func:`compile_spec`, :func:`build`,
:func:`validate`, :func:`ablate`.  Importing pdelang does not import torch.
"""

from pdelang.version import __version__

from pdelang.errors import PdelangError

__all__ = [
    "PdelangError",
    "__version__",
    "ablate",
    "build",
    "compile_spec",
    "load_spec",
    "validate",
]


def __getattr__(name):  # the façade: each name imports on first use (why, per import)
    if name == "load_spec":
        # lazy: cycle (compiler.spec.load → errors → pdelang)
        from pdelang.compiler.spec.load import load_spec
        return load_spec
    if name == "compile_spec":
        # lazy: cycle (compiler.driver → compiler → pdelang)
        from pdelang.compiler.driver import compile_spec
        return compile_spec
    if name == "build":
        # lazy: cycle (interpreters.builder → interpreters → pdelang)
        from pdelang.interpreters.builder import build
        return build
    if name == "validate":
        from pdelang.lab.validation.validate import validate  # lazy: torch
        return validate
    if name == "ablate":
        # lazy: cycle (lab.ablation.ablate → errors → pdelang)
        from pdelang.lab.ablation.ablate import ablate
        return ablate
    raise AttributeError(f"module 'pdelang' has no attribute {name!r}")
