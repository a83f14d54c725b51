"""Named initial conditions: the spec's ``init:`` value and the ``--init`` option.

``random[:S]`` (i.i.d. N(0, S²), S = 0.1 unless given), ``uniform:A,B`` (i.i.d. uniform in
[A, B]), ``bump[:H]`` (a smooth bump of height H on the middle half of the grid) or a saved
``FILE.pt`` tensor.  Parsing is part of the front end: a spec's ``init:`` is checked when the
spec loads, located at its value, so a typo there fails ``check`` as early as any other.
Building the state itself (it needs the discretized grid) lives in
:func:`pdelang.interpreters.initial_state.initial_state`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from pdelang.errors import PdelangError, SourceLocation, SpecError, did_you_mean

DEFAULT_SIGMA = 0.1  # ``random``: small, so that a reaction term starts near its fixed points

INIT_HELP = (
    "random[:S] = i.i.d. N(0, S²) entries (S = 0.1 unless given); uniform:A,B = i.i.d. "
    "uniform in [A, B]; bump[:H] = a smooth bump of height H (default 1) on the middle half "
    "of the grid, zero near the ends (so it respects every boundary rule), the same in "
    "every channel, zero on extra tokens; FILE.pt = a saved (B, N, C) tensor (or a dict "
    "with key 'u')")


@dataclass(frozen=True)
class Init:
    """A named initial condition (see :data:`INIT_HELP`); ``text`` is what the user wrote."""

    kind: str  # random | uniform | bump | file
    text: str
    sigma: float = DEFAULT_SIGMA
    low: float = 0.0
    high: float = 1.0
    height: float = 1.0
    path: str | None = None
    # where the user wrote it (the spec's ``init:`` value or the command line), for errors
    # found later, when a file is read
    where: SourceLocation | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        if self.kind == "random":
            return f"random N(0, {self.sigma:g}²)"
        if self.kind == "uniform":
            return f"uniform in [{self.low:g}, {self.high:g}]"
        if self.kind == "bump":
            return f"a smooth bump of height {self.height:g}"
        return f"the tensor in {self.path}"

    def scaled(self, factor: float) -> Init:
        """The same condition with ``factor`` times the amplitude (random: σ; bump: H)."""
        if self.kind == "random":
            return Init("random", f"random:{self.sigma * factor:g}", sigma=self.sigma * factor)
        if self.kind == "bump":
            return Init("bump", f"bump:{self.height * factor:g}", height=self.height * factor)
        raise ValueError(f"cannot scale {self.text}")


def option_location(option: str, text: str) -> SourceLocation:
    """Where a command-line value is: ``<--init>:1:C`` under ``--init TEXT``."""
    return SourceLocation(f"<{option}>", 1, len(option) + 2, f"{option} {text}",
                          max(len(text), 1))


def parse_init(text: str, option: str = "--init", where: SourceLocation | None = None,
               relative_to: str | Path | None = None) -> Init:
    """An :class:`Init` from ``random[:S] | uniform:A,B | bump[:H] | FILE.pt``.

    Anything else is a :class:`PdelangError` located at ``where`` (the spec's ``init:``
    value) or on the command line under ``option``.  A relative file name is taken relative
    to ``relative_to`` (the spec file's folder) when given."""
    raw = text
    shown = text if len(text) <= 60 else text[:57] + "…"  # for messages: a value may be huge
    if where is not None and where.length == 1:  # a spec's value: underline all of it
        where = replace(where, length=max(len(text), 1))
    location = where or option_location(option, text)
    error = SpecError if where is not None else PdelangError  # the spec's, or an option's

    def fail(message: str, example: str) -> PdelangError:
        return error(f"{option} {shown}: {message}", location, f"e.g. {option} {example}")

    text = text.strip()
    name, _, argument = text.partition(":")
    key = name.strip().lower()
    if key == "random":
        if not argument:
            return Init("random", raw, where=location)
        sigma = _number(argument, fail, "random:0.1")
        if sigma <= 0:
            raise fail("the standard deviation must be positive", "random:0.1")
        return Init("random", raw, sigma=sigma, where=location)
    if key == "uniform":
        bounds = argument.split(",")
        if len(bounds) != 2 or not all(b.strip() for b in bounds):
            raise fail("uniform needs two bounds A,B", "uniform:0,1")
        low, high = (_number(b.strip(), fail, "uniform:0,1") for b in bounds)
        if not low < high:
            raise fail("the lower bound must be below the upper one",
                       f"uniform:{min(low, high):g},"
                       f"{max(low, high) if low != high else low + 1:g}")
        return Init("uniform", raw, low=low, high=high, where=location)
    if key == "bump":
        if not argument:
            return Init("bump", raw, where=location)
        return Init("bump", raw, height=_number(argument, fail, "bump:1"), where=location)
    path = Path(text).expanduser() if text else None
    if path is not None and relative_to is not None and not path.is_absolute():
        path = Path(relative_to) / path
    if path is not None and (text.endswith(".pt") or _is_file(path)):
        return Init("file", raw, path=str(path), where=location)
    hint = did_you_mean(key, ("random", "uniform", "bump"))
    raise error(f"{option} {shown}: not an initial condition: use random[:S], "
                       "uniform:A,B, bump[:H] or a .pt file", location,
                       (f"{hint} " if hint else "") + INIT_HELP)


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; False where the system refuses the name itself (too
    long, a NUL byte): then it is no file name either."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _number(text: str, fail, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise fail(f"'{text}' is not a finite number", example)
    return value


__all__ = ["DEFAULT_SIGMA", "INIT_HELP", "Init", "option_location", "parse_init"]
