"""Stage ``lower``: AST → symbolic IR (SymPy).

Names resolve to the field ``u(x…)``, parameter symbols, or other named terms (inlined;
a reference cycle is an error that names the cycle).  Calls are checked against the
operator registry and become SymPy function applications; every call site that owns
weights is recorded as an :class:`OperatorInstance`.  The right-hand side of the equation
is split into its top-level additive pieces — the terms a splitting scheme steps through.
"""

from __future__ import annotations

import math

import sympy

from pdelang.errors import (
    CycleError,
    ExpressionSyntaxError,
    NameResolutionError,
    OperatorError,
    SourceLocation,
    SpecError,
    did_you_mean,
)
from pdelang.frozen import frozen_dict
from pdelang.language import ast
from pdelang.operators import OPERATORS, CallSite, Operator
from pdelang.symbolic import functions as F
from pdelang.symbolic.ir import OperatorInstance, SymbolicModel, SymbolicTerm
from pdelang.spec.model import Spec


def _references(expr: ast.Expr, terms) -> list[ast.Name]:
    return [n for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id in terms]


def check_cycles(terms: dict[str, ast.Expr]) -> None:
    """Reject term definitions that refer to each other in a cycle (names the cycle)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(name: str, path: list[tuple[str, ast.Name | None]]) -> None:
        state[name] = 1
        for ref in _references(terms[name], terms):
            if state.get(ref.id) == 1:
                names = [p for p, _ in path] + [name]
                cycle = names[names.index(ref.id):] + [ref.id]
                raise CycleError(f"terms refer to each other in a cycle: {' → '.join(cycle)}",
                                 ref.loc, f"one of {', '.join(sorted(set(cycle)))} must be "
                                 "written without the others")
            if state.get(ref.id) is None:
                visit(ref.id, path + [(name, ref)])
        state[name] = 2

    for name in terms:
        if name not in state:
            visit(name, [])


def _split_sum(expr: ast.Expr, sign: int = 1) -> list[tuple[int, ast.Expr]]:
    if isinstance(expr, ast.BinOp) and expr.op in "+-":
        right_sign = sign if expr.op == "+" else -sign
        return _split_sum(expr.left, sign) + _split_sum(expr.right, right_sign)
    return [(sign, expr)]


def _piece_name(expr: ast.Expr, terms) -> str | None:
    """The term a piece of the equation names: ``diffusion`` or ``0.5 * diffusion``."""
    if isinstance(expr, ast.Name) and expr.id in terms:
        return expr.id
    if isinstance(expr, ast.Neg):
        return _piece_name(expr.operand, terms)
    if isinstance(expr, ast.BinOp) and expr.op in "*/":
        names = [_piece_name(side, terms) for side in (expr.left, expr.right)]
        names = [n for n in names if n]
        if len(names) == 1:
            return names[0]
    return None


class Lowering:
    def __init__(self, spec: Spec, parsed: ast.SpecAST) -> None:
        self.spec = spec
        self.parsed = parsed
        self.axes = tuple(sympy.Symbol(a, real=True) for a in spec.grid.axes)
        self.field = sympy.Function(spec.field.name)
        self.u = self.field(*self.axes)
        self.h = sympy.Symbol("h", positive=True)
        self.parameters = {
            name: sympy.Symbol(name, real=True, positive=p.positive or None)
            for name, p in spec.parameters.items()
        }
        self.instances: dict[str, OperatorInstance] = {}
        self.lowered_terms: dict[str, sympy.Expr] = {}
        self._current_term = ""
        self._instance_counts: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ names
    def _known_names(self) -> list[str]:
        return [self.spec.field.name, *self.spec.parameters, *self.spec.terms]

    def name(self, node: ast.Name) -> sympy.Expr:
        if node.id == self.spec.field.name:
            return self.u
        if node.id in self.parameters:
            return self.parameters[node.id]
        if node.id in self.spec.terms:
            return self.term(node.id)
        if node.id in OPERATORS:
            raise NameResolutionError(f"'{node.id}' is an operator and must be called", node.loc,
                                      f"write {node.id}({self.spec.field.name})")
        if node.id in self.spec.grid.axes:
            raise NameResolutionError(
                f"the grid axis '{node.id}' can only name the axis of diff()", node.loc,
                f"write e.g. diff({self.spec.field.name}, {node.id})")
        if node.id == "pi":
            return sympy.pi
        raise NameResolutionError(f"undefined name '{node.id}'", node.loc,
                                  did_you_mean(node.id, self._known_names())
                                  or "declare it under 'parameters:' or 'terms:'")

    def term(self, name: str) -> sympy.Expr:
        if name not in self.lowered_terms:
            outer = self._current_term
            self._current_term = name
            self.lowered_terms[name] = self.expr(self.parsed.terms[name])
            self._current_term = outer
        return self.lowered_terms[name]

    # ------------------------------------------------------------------ expressions
    def expr(self, node: ast.Expr) -> sympy.Expr:
        if isinstance(node, ast.Number):
            if not math.isfinite(node.value):
                raise ExpressionSyntaxError(f"the number {node.text} is too large", node.loc,
                                            "numbers must fit in a float (about 1.8e308)")
            return sympy.Rational(node.text) if any(c in node.text for c in ".eE") \
                else sympy.Integer(node.text)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Neg):
            return -self.expr(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            if node.op == "+":
                return left + right
            if node.op == "-":
                return left - right
            if node.op == "*":
                return left * right
            if node.op == "/":
                if right == 0:
                    raise ExpressionSyntaxError("division by zero", node.right.loc)
                return left / right
            if not F.is_field_free(right):
                raise OperatorError("an exponent cannot depend on the field", node.right.loc,
                                    "use exp(...) for exponentials of the field")
            return left ** right
        if isinstance(node, ast.Call):
            return self.call(node)
        raise TypeError(f"unknown AST node {node!r}")  # pragma: no cover

    # ------------------------------------------------------------------ calls
    def call(self, node: ast.Call) -> sympy.Expr:
        op = OPERATORS.get(node.func)
        if op is None:
            hint = did_you_mean(node.func, OPERATORS)
            if node.func in self.spec.terms or node.func in self.parameters:
                what = "term" if node.func in self.spec.terms else "parameter"
                hint = f"'{node.func}' is a {what}, not an operator; drop the parentheses"
            raise OperatorError(f"unknown operator '{node.func}'", node.loc.shifted(
                0, len(node.func)), hint)
        max_positional = 1 + len(op.positional_options)
        if not node.args:
            raise OperatorError(f"{node.func}() needs an operand", node.loc,
                                f"signature: {op.signature}")
        if len(node.args) > max_positional:
            raise OperatorError(
                f"{node.func}() takes {max_positional} positional argument"
                f"{'s' if max_positional > 1 else ''}, got {len(node.args)}",
                node.args[max_positional].loc, f"signature: {op.signature}")
        given: dict[str, tuple[ast.Expr, SourceLocation]] = {}
        for name, arg in zip(op.positional_options, node.args[1:]):
            given[name] = (arg, arg.loc)
        for kw in node.keywords:
            if op.option(kw.name) is None:
                hint = did_you_mean(kw.name, [o.name for o in op.options])
                raise OperatorError(f"{node.func}() has no option '{kw.name}'",
                                    kw.loc.shifted(0, len(kw.name)),
                                    hint or f"signature: {op.signature}")
            if kw.name in given:
                raise OperatorError(f"{node.func}() got '{kw.name}' twice", kw.loc)
            given[kw.name] = (kw.value, kw.loc)
        options = {}
        for option in op.options:
            if option.name in given:
                value_node, _loc = given[option.name]
                options[option.name] = self.option_value(op, option, value_node)
            elif option.required:
                raise OperatorError(f"{node.func}() needs '{option.name}'", node.loc,
                                    f"signature: {op.signature}")
            else:
                options[option.name] = option.default
        site = CallSite(self.spec.field.name, self.spec.field.channels, self.spec.grid.axes,
                        node.loc, {name: loc for name, (_, loc) in given.items()})
        options = op.check_call(options, site)
        operand = self.expr(node.args[0])
        self._call = node
        return op.to_sympy(operand, options, self)

    # ------------------------------------------------------------------ for the operators
    def axis_symbol(self, axis: str) -> sympy.Symbol:
        """The SymPy symbol of a grid axis."""
        return self.axes[self.spec.grid.axes.index(axis)]

    def new_instance(self, op: Operator, options: dict) -> sympy.Symbol:
        """A new weight-owning call site of ``op`` in the current term: its module name
        (``<term>_<op>``, ``_2``… for further calls) as a SymPy symbol."""
        term = self._current_term
        key = (term, op.name)
        count = self._instance_counts.get(key, 0) + 1
        self._instance_counts[key] = count
        name = f"{term}_{op.name}" + (f"_{count}" if count > 1 else "")
        self.instances[name] = OperatorInstance(name, op.name, frozen_dict(options), term,
                                                self._call.loc)
        return sympy.Symbol(name)

    def option_value(self, op: Operator, option, node: ast.Expr):
        where = f"{op.name}(…, {option.name}=…)"
        if option.kind == "bool":
            if isinstance(node, ast.Name) and node.id in ("true", "false", "True", "False"):
                return node.id.lower() == "true"
            raise OperatorError(f"{where} must be true or false, got '{node}'", node.loc)
        if option.kind == "choice":
            if isinstance(node, ast.Name) and node.id in option.choices:
                return node.id
            got = node.id if isinstance(node, ast.Name) else str(node)
            raise OperatorError(f"{where} must be one of {', '.join(option.choices)}; got '{got}'",
                                node.loc, did_you_mean(got, option.choices))
        if option.kind == "axis":
            axes = self.spec.grid.axes
            if isinstance(node, ast.Name) and node.id in axes:
                return node.id
            got = node.id if isinstance(node, ast.Name) else str(node)
            raise OperatorError(f"'{got}' is not a grid axis (the grid has {', '.join(axes)})",
                                node.loc, did_you_mean(got, axes))
        value = node
        sign = 1
        if isinstance(value, ast.Neg) and isinstance(value.operand, ast.Number):
            sign, value = -1, value.operand
        if not isinstance(value, ast.Number):
            raise OperatorError(f"{where} must be a number, got '{node}'", node.loc)
        number = sign * value.value
        if option.kind == "int":
            if not float(number).is_integer() or any(c in value.text for c in ".eE"):
                raise OperatorError(f"{where} must be an integer, got {value.text}", node.loc)
            number = int(number)
        if option.minimum is not None and number < option.minimum:
            raise OperatorError(f"{where} must be ≥ {option.minimum:g}, got {number}", node.loc)
        if option.maximum is not None and number > option.maximum:
            raise OperatorError(f"{where} must be ≤ {option.maximum:g}, got {number}", node.loc)
        return number

    # ------------------------------------------------------------------ equation
    def lower(self) -> SymbolicModel:
        check_cycles(dict(self.parsed.terms))
        eq = self.parsed.equation
        if eq.field.id != self.spec.field.name:
            raise NameResolutionError(
                f"the equation evolves '{eq.field.id}', but the field is "
                f"'{self.spec.field.name}'", eq.field.loc, f"write dt({self.spec.field.name})")
        pieces: list[SymbolicTerm] = []
        seen: dict[str, SourceLocation] = {}
        for index, (sign, piece) in enumerate(_split_sum(eq.rhs), start=1):
            name = _piece_name(piece, self.parsed.terms) or f"term{index}"
            if name in seen:
                raise SpecError(f"term '{name}' appears twice in the equation", piece.loc,
                                "combine the two occurrences into one coefficient")
            seen[name] = piece.loc
            self._current_term = name
            value = self.expr(piece)
            pieces.append(SymbolicTerm(name, sign * value, piece.loc))
        self._current_term = ""
        for name in self.parsed.terms:  # lower unused terms too: their errors are errors
            self.term(name)
        names = [p.name for p in pieces]
        split = self.spec.time.split_order
        if split is not None:
            for i, name in enumerate(split):
                if name not in names:
                    raise SpecError(
                        f"'time.split_order' names '{name}', which is not a term of the equation",
                        self.spec.where(f"time.split_order[{i}]"), did_you_mean(name, names))
            missing = [n for n in names if n not in split]
            if missing:
                raise SpecError(f"'time.split_order' leaves out {', '.join(missing)}",
                                self.spec.where("time.split_order"),
                                f"list every term of the equation: {', '.join(names)}")
        used = {n.id for piece in [eq.rhs, *self.parsed.terms.values()] for n in ast.walk(piece)
                if isinstance(n, ast.Name)}
        unused = tuple(n for n in self.parsed.terms if n not in used and n not in names)
        return SymbolicModel(
            spec=self.spec, field=self.field, axes=self.axes, u=self.u, h=self.h,
            parameters=frozen_dict(self.parameters), terms=tuple(pieces),
            split_order=tuple(split) if split else tuple(names),
            instances=frozen_dict(self.instances), unused_terms=unused,
        )


def lower(spec: Spec, parsed: ast.SpecAST) -> SymbolicModel:
    """Lower a parsed spec to SymPy."""
    return Lowering(spec, parsed).lower()
