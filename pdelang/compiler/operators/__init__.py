"""The operators of the term language, one module each (see :mod:`pdelang.compiler.operators.base`).

Every module of this package except ``base`` defines ``OPERATOR`` (or ``OPERATORS``, a
family such as the elementwise functions); they are collected here, in module-name order,
so adding an operator is adding a module.  Consumers look operators up with
:func:`lookup` / :data:`OPERATORS`, or find the operator of a lowered SymPy call with
:func:`operator_of`.
"""

from __future__ import annotations

import importlib
import pkgutil

from pdelang.compiler.operators.base import CallSite, MissingHandler, Operator, Option

__all__ = ["OPERATORS", "CallSite", "MissingHandler", "Operator", "Option", "lookup",
           "operator_of", "operators"]


def _discover() -> dict[str, Operator]:
    found: dict[str, Operator] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        defined = getattr(module, "OPERATORS", None) or (getattr(module, "OPERATOR", None),)
        for op in defined:
            if op is None:
                continue
            if op.name in found:
                raise RuntimeError(f"two operators named {op.name!r}")
            found[op.name] = op
    return found


OPERATORS: dict[str, Operator] = _discover()
_BY_SYMPY_CLASS = {op.sympy_class: op for op in OPERATORS.values()}


def lookup(name: str) -> Operator | None:
    return OPERATORS.get(name)


def operators(category: str | None = None) -> list[Operator]:
    """Every operator (of one category), in registry order."""
    return [op for op in OPERATORS.values() if category is None or op.category == category]


def operator_of(expr) -> Operator | None:
    """The operator of a lowered SymPy call (``Laplace(u)``, ``tanh(u)``…), else None."""
    op = _BY_SYMPY_CLASS.get(type(expr))
    if op is None:
        name = getattr(type(expr), "op_name", None)
        op = OPERATORS.get(name) if name else None
    return op
