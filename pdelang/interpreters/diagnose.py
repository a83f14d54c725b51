"""Which term made a step non-finite: the step program re-run term by term.

The generated stepper's diagnostics hook (``ctx.after``) sees the state after each
sub-step of a splitting — named by its term — but inside a Runge–Kutta or IMEX step it sees
a stage, whose rate is the sum of several terms.  :func:`blame` re-runs one step of a layer
from the state before it by interpreting the same step program with the layer's own
generated methods (``f_<term>``, the pre-norms, ``solve_…``/``flow_…``, the post-norms), one
term at a time, and reports the first instruction and term whose value is NaN or Inf.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdelang.compiler.codegen.names import implicit_method, term_method
from pdelang.compiler.schemes import program as P


@dataclass(frozen=True)
class Blame:
    """Where a step first produced a non-finite value."""

    label: str  # the instruction: "stage k2", "stage u2", "update", a sub-step's term …
    term: str | None  # the term whose rate (or implicit solve) it was, if one
    kind: str  # NaN or Inf

    def describe(self) -> str:
        where = f"in the rate of term '{self.term}' " if self.term else ""
        return f"{self.kind} {where}at {self.label}"


class _Found(Exception):
    def __init__(self, blame: Blame) -> None:
        super().__init__(blame.describe())
        self.blame = blame


class _TorchMachine:
    """The step program's instructions with the generated layer's methods, checked."""

    def __init__(self, program: P.StepProgram, layer, ctx, shared, dt: float) -> None:
        import torch  # lazy: torch

        self.torch = torch
        self.program = program
        self.layer = layer
        self.ctx = ctx
        self.shared = shared
        self.combine = P.float_combine(dt, program.constant_values)
        self.dt = dt
        self.label = "step"

    def _check(self, value, term=None):
        if not bool(self.torch.isfinite(value).all()):
            kind = "NaN" if bool(self.torch.isnan(value).any()) else "Inf"
            raise _Found(Blame(self.label, term, kind))
        return value

    def rate(self, terms, state):
        total = 0
        for term in terms:
            norm = self.program.pre_norms.get(term)
            arg = getattr(self.layer, norm)(state) if norm else state
            field = getattr(self.layer, term_method(term))
            total = total + self._check(field(arg, self.ctx, self.shared), term)
        return total

    def _implicit(self, kind, terms, coefficient, state):
        scale = self.program.coefficient(coefficient) * self.dt
        method = getattr(self.layer, implicit_method(kind, terms))
        term = terms[0] if len(terms) == 1 else ", ".join(terms)
        return self._check(method(state, scale, self.ctx, self.shared), term)

    def solve(self, terms, coefficient, rhs):
        return self._implicit("solve", terms, coefficient, rhs)

    def flow(self, terms, coefficient, state):
        return self._implicit("flow", terms, coefficient, state)

    def project(self, norm, state):
        return self._check(getattr(self.layer, norm)(state))

    def observe(self, index, label, value):
        self.label = label
        self._check(value)


def blame(program: P.StepProgram, layer, ctx, shared, state, dt: float) -> Blame | None:
    """Re-run one step of ``layer`` from ``state`` (the last finite state), interpreting
    ``program`` term by term; the first non-finite instruction and term, or None."""
    import torch  # lazy: torch

    machine = _TorchMachine(program, layer, ctx, shared, dt)
    try:
        with torch.no_grad():
            _run_labelled(program, machine, state)
    except _Found as found:
        return found.blame
    return None


def _run_labelled(program, machine, state):
    """``program.run`` with the label of the *next* observation current, so a failure
    inside a stage carries that stage's name."""
    upcoming = iter([ins.label for ins in program.instructions if isinstance(ins, P.Observe)])
    machine.label = next(upcoming, "step")
    inner = machine.observe

    def observe(index, label, value):
        inner(index, label, value)
        machine.label = next(upcoming, "step")

    machine.observe = observe
    return P.run(program, machine, state)
