"""The step printer: the step program → the body of the layer's ``forward``."""

from __future__ import annotations

import ast
from fractions import Fraction

from pdelang.compiler.codegen.expressions import fraction
from pdelang.compiler.codegen.layout import statement
from pdelang.compiler.schemes import program as P

_FRACTIONS = {Fraction(1): "", Fraction(1, 2): "½", Fraction(1, 3): "⅓", Fraction(1, 4): "¼"}


class StepPrinter:
    """Prints the step program as the body of the layer's ``forward``: one line per state
    update, registers used once by the next instruction inlined (``u = u + DT * self.f(u)``),
    a post-projection wrapped around the update it follows, Δt as ``DT`` (left out where it
    multiplies by exactly Δt = 1: ``u = u + self.f(u)``)."""

    def __init__(self, printer) -> None:
        self.printer = printer
        self.program = printer.m.program
        self.pending: dict[str, str] = {}
        self.sub_step = 0

    # ------------------------------------------------------------------ coefficients
    @staticmethod
    def scaled_dt(c: P.Coefficient) -> tuple[str, str]:
        """(sign, text) of ``c·DT``: ``DT``, ``DT / 2``, ``2 * DT / 3``, ``GAMMA * DT``,
        ``(1 - GAMMA) * DT``."""
        sign, c = P.signed(c)
        q = c.rational
        if q is not None:
            head = "DT" if q.numerator == 1 else f"{q.numerator} * DT"
            return sign, head if q.denominator == 1 else f"{head} / {q.denominator}"
        text = str(c).replace("*", " * ")
        return sign, f"({text}) * DT" if len(c.parts) > 1 else f"{text} * DT"

    def combination(self, combination: P.Combination) -> str:
        pieces = []
        scaled = []  # (c, k) of each piece printed as c * k, else None
        for part in combination.parts:
            register = self.pending.pop(part.register, part.register)
            operand = register if _is_atom(register) else f"({register})"
            if part.dt:
                sign, scale = self.scaled_dt(part.coefficient)
                if scale == "DT" and self.printer.m.dt == 1.0:
                    # Δt = 1 (a Transformer layer): 1·x is x exactly, and skipping the
                    # multiply saves a full pass over the state per update
                    pieces.append((sign, register))
                    scaled.append(None)
                else:
                    pieces.append((sign, f"{scale} * {operand}"))
                    scaled.append((scale, register))
                continue
            sign, magnitude = P.signed(part.coefficient)
            if magnitude.rational == 1:
                pieces.append((sign, register))
                scaled.append(None)
            else:
                value = (fraction(magnitude.rational) or repr(float(magnitude.rational))
                         if magnitude.rational is not None else f"({magnitude})")
                pieces.append((sign, f"{value} * {operand}"))
                scaled.append((value, register))
        if (len(pieces) == 2 and pieces[0][0] == "+" and scaled[0] is None
                and _is_atom(pieces[0][1]) and scaled[1] is not None):
            # x + c * k in one pass and one new tensor (the multiply fused into the add)
            scale, register = scaled[1]
            alpha = scale if pieces[1][0] == "+" else f"-{scale}"
            return f"torch.add({pieces[0][1]}, {register}, alpha={alpha})"
        return P.join_signed(pieces, empty="0.0 * u")

    # ------------------------------------------------------------------ instructions
    def source(self, ins) -> str:
        printer = self.printer
        if isinstance(ins, P.Rate):
            at = self.combination(ins.at)
            method = printer._rate_method(ins.terms)
            if method is None:
                return printer._vector_field(ins.terms[0], at)
            return f"self.{method}({at}, ctx, p)"
        if isinstance(ins, (P.Solve, P.Flow)):
            kind = "solve" if isinstance(ins, P.Solve) else "flow"
            value = self.combination(ins.rhs if kind == "solve" else ins.at)
            sign, scale = self.scaled_dt(ins.coefficient)
            scale = scale if sign == "+" else f"-{scale}"
            return f"self.{printer._implicit_method(kind, ins.terms)}({value}, {scale}, ctx, p)"
        if isinstance(ins, P.Assign):
            return self.combination(ins.value)
        raise TypeError(f"the step printer cannot print {ins!r}")  # pragma: no cover

    def inlined(self, index: int) -> bool:
        """Whether instruction ``index``'s register is read once, by the next instruction
        (and not by the diagnostics hook): then it is printed inside that instruction."""
        instructions = self.program.instructions
        target = instructions[index].target
        if target == "u" or index + 1 >= len(instructions):
            return False
        reads = []
        for later in instructions[index + 1:]:
            if _reads(later, target):
                reads.append(later)
            if getattr(later, "target", None) == target and not isinstance(later, P.Project):
                break
        nxt = instructions[index + 1]  # only into an update: u = u + DT * self.f(u)
        return len(reads) == 1 and reads[0] is nxt and isinstance(nxt, P.Assign)

    def comment(self, projected: str | None) -> str:
        """The update of a splitting sub-step in mathematical notation."""
        program, m = self.program, self.printer.m
        if not program.is_splitting:
            return ""
        term, part = program.sub_steps[self.sub_step]
        self.sub_step += 1
        frac = _FRACTIONS.get(part, f"{part}·")
        # Δt = 1: an explicit update leaves out the multiply by DT (see combination), and
        # so does its comment; an exact flow's scale is DT in the code and Δt here
        dt = "" if m.dt == 1.0 and part == 1 else "Δt·"
        if term in program.implicit:
            body = f"exp({frac}Δt·L_{term}) u" + ("" if m.residual else " − u")
        else:
            arg = "P u" if term in program.pre_norms else "u"
            body = ("u + " if m.residual else "") + f"{frac}{dt}f_{term}({arg})"
        return f"u ← {'P(' + body + ')' if projected else body}"

    def lines(self) -> list[str]:
        out = []
        instructions = self.program.instructions
        i = 0
        while i < len(instructions):
            ins = instructions[i]
            if isinstance(ins, P.Observe):
                out.append(f"        ctx.after({ins.index}, {ins.label!r}, {ins.register})")
                i += 1
                continue
            if isinstance(ins, P.Project):
                out.append(f"        {ins.target} = self.{ins.norm}({ins.target})")
                i += 1
                continue
            value = self.source(ins)
            if self.inlined(i):
                self.pending[ins.target] = value
                i += 1
                continue
            projected = None
            nxt = instructions[i + 1] if i + 1 < len(instructions) else None
            if isinstance(nxt, P.Project) and nxt.target == ins.target:
                projected = nxt.norm
                value = f"self.{projected}({value})"
                i += 1
            comment = self.comment(projected) if ins.target == "u" else ""
            out += statement(" " * 8, f"{ins.target} = ", value, note=comment)
            i += 1
        return out


def _reads(ins, register: str) -> bool:
    if isinstance(ins, P.Observe):
        return ins.register == register
    if isinstance(ins, P.Project):
        return ins.target == register
    combination = {P.Rate: "at", P.Solve: "rhs", P.Flow: "at", P.Assign: "value"}[type(ins)]
    return register in getattr(ins, combination).registers


def _is_atom(text: str) -> bool:
    """Whether ``text`` needs no parentheses as a factor (a name, attribute or call)."""
    return isinstance(ast.parse(text, mode="eval").body, (ast.Name, ast.Attribute, ast.Call))

