"""Resource limits of the front end: checked *before* the work they bound.

A spec is user input.  Without bounds, a few bytes of it can make the compiler recurse past
Python's stack (deep nesting, thousands of summands), expand an exponential amount of data
(a YAML alias bomb, ``(u + laplace(u))^500`` under ``expand``), compute a number with
millions of digits (``2^2^2^2^2^2``) or make the generated module allocate more memory than
the machine has (channels, hidden widths, layers).  Each limit below is checked on the
cheap representation first (the file's size, the YAML event stream, the parse tree, the
lowered expression's shape) and refused with a located :class:`~pdelang.errors.SpecError`
that names the limit and how to raise it.

Every limit can be raised (or lowered) with an environment variable, read when the limit is
checked, e.g. ``PDELANG_MAX_SPEC_BYTES=4000000 pdelang check big.yaml``.  The limits that
are part of the spec format itself (``MAX_CHANNELS``, ``MAX_STEPS``, ``MAX_ACCURACY``,
``MAX_TOKENS`` in :mod:`pdelang.compiler.spec.schema`, the largest ``diff`` order and ``conv``
kernel in the operators) are fixed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pdelang.errors import PdelangError, SourceLocation


@dataclass(frozen=True)
class Limit:
    name: str
    default: int
    env: str
    what: str  # what is counted, for messages: "bytes in a spec file"


LIMITS = {limit.name: limit for limit in (
    Limit("spec_bytes", 1 << 20, "PDELANG_MAX_SPEC_BYTES", "bytes in a spec file"),
    Limit("yaml_depth", 32, "PDELANG_MAX_YAML_DEPTH", "levels of nested YAML lists and mappings"),
    Limit("yaml_values", 10_000, "PDELANG_MAX_YAML_VALUES",
          "YAML values once aliases are expanded"),
    Limit("expression_nesting", 50, "PDELANG_MAX_NESTING",
          "levels of nesting in an expression: calls, powers, sums inside products, "
          "references to terms"),
    Limit("expression_operators", 1000, "PDELANG_MAX_OPERATORS",
          "operators in an expression, with the terms it uses inlined"),
    Limit("expanded_summands", 1000, "PDELANG_MAX_SUMMANDS",
          "summands of a term multiplied out"),
    Limit("number_digits", 1000, "PDELANG_MAX_DIGITS", "digits of an exact constant"),
    Limit("option_int", 1 << 20, "PDELANG_MAX_OPTION",
          "for an integer operator option without a maximum of its own"),
    Limit("weights", 1 << 30, "PDELANG_MAX_WEIGHTS",
          "weights in the generated stepper, all layers; 4 GiB in float32"),
    Limit("state_values", 1 << 28, "PDELANG_MAX_STATE",
          "values in a state `run` generates (batch × tokens × channels); 2 GiB in float64"),
    Limit("terms", 256, "PDELANG_MAX_TERMS", "named terms, and summands of the equation"),
)}


def limit(name: str) -> int:
    """The current value of a limit: its environment variable, or the default."""
    spec = LIMITS[name]
    text = os.environ.get(spec.env)
    if text is None or not text.strip():
        return spec.default
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        setting = f"{spec.env}={text}"
        raise PdelangError(f"the environment variable {spec.env} must be a positive integer "
                           f"(the largest number of {spec.what}), got {text!r}",
                           SourceLocation("<environment>", 1, len(spec.env) + 2, setting,
                                          max(len(text), 1)),
                           f"unset it to use the default {spec.default}")
    return value


def how_to_raise(name: str) -> str:
    """The hint of an error that reports a limit."""
    spec = LIMITS[name]
    return f"the limit is {limit(name):,} ({spec.what}); set {spec.env} to change it"


__all__ = ["LIMITS", "Limit", "how_to_raise", "limit"]
