"""Stage ``lower``: AST → symbolic IR (SymPy).

Names resolve to the field ``u(x…)``, parameter symbols, or other named terms (inlined;
a reference cycle is an error that names the cycle).  Calls are checked against the
operator registry and become SymPy function applications; every call site that owns
weights is recorded as an :class:`OperatorInstance`.  The right-hand side of the equation
is split into its top-level additive pieces — the terms a splitting scheme steps through.

Resource limits (:mod:`pdelang.compiler.spec.limits`) are checked before SymPy does the work they
bound: the nesting depth and operator count of every expression with the terms it uses
inlined (before lowering), the size of exact constants and powers (before SymPy computes
``2^2^2^2^2^2``), the number of summands a term multiplies out to (before the analysis
expands it) and the weights of the generated stepper (before anything allocates them).
Expressions are lowered with an explicit stack: a long sum does not recurse.
"""

from __future__ import annotations

import math
import re

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
from pdelang.compiler.frozen import frozen_dict
from pdelang.compiler.language import ast
from pdelang.compiler.operators import OPERATORS, CallSite, Operator
from pdelang.compiler.spec.limits import how_to_raise, limit
from pdelang.compiler.spec.model import Spec
from pdelang.compiler.symbolic import functions as F
from pdelang.compiler.symbolic.ir import OperatorInstance, SymbolicModel, SymbolicTerm


def _references(expr: ast.Expr, terms) -> list[ast.Name]:
    return [n for n in ast.walk(expr) if isinstance(n, ast.Name) and n.id in terms]


def check_cycles(terms: dict[str, ast.Expr]) -> None:
    """Reject term definitions that refer to each other in a cycle (names the cycle).

    A depth-first search with an explicit stack (a chain of many terms does not recurse)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in terms:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(_references(terms[start], terms)))]
        while stack:
            name, refs = stack[-1]
            ref = next(refs, None)
            if ref is None:
                state[name] = 2
                stack.pop()
                continue
            if state.get(ref.id) == 1:
                names = [n for n, _ in stack]
                cycle = names[names.index(ref.id):] + [ref.id]
                raise CycleError(f"terms refer to each other in a cycle: {' → '.join(cycle)}",
                                 ref.loc, f"one of {', '.join(sorted(set(cycle)))} must be "
                                 "written without the others")
            if state.get(ref.id) is None:
                state[ref.id] = 1
                stack.append((ref.id, iter(_references(terms[ref.id], terms))))


_FLAT = {"+": "sum", "-": "sum", "*": "product", "/": "product"}


def _class(node) -> str | None:
    if isinstance(node, ast.BinOp):
        return _FLAT.get(node.op)
    if isinstance(node, ast.Neg):
        return "product"
    return None


def measure(expr: ast.Expr, terms: dict[str, tuple[int, int]]) -> tuple[int, int, ast.Name | None]:
    """(nesting depth, operators, the term reference that brings the deepest part) of an
    expression with the terms in ``terms`` (name → their own measure) inlined.  The depth
    is the parser's (:mod:`pdelang.compiler.language.parse`): a level per call, power, or sum and
    product inside each other — what SymPy nests."""
    depth: dict[int, int] = {}
    count: dict[int, int] = {}
    deepest: dict[int, ast.Name | None] = {}
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        kids = ast.children(node)
        if not ready:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
            continue
        level, ops, via = 0, 0, None
        if isinstance(node, ast.Name) and node.id in terms:
            level, ops = terms[node.id]
            level += 1  # lowering a reference recurses into the term
            via = node
        if isinstance(node, (ast.BinOp, ast.Neg)):
            ops += 1
        for index, kid in enumerate(kids):
            kid_level = depth.pop(id(kid))
            kind = _class(kid)
            same = kind is not None and kind == _class(node) and not (
                isinstance(node, ast.BinOp) and node.op == "/" and index == 1)
            kid_level += 0 if same else 1
            ops += count.pop(id(kid))
            kid_via = deepest.pop(id(kid))
            if kid_level > level or (via is None and kid_via is not None and kid_level == level):
                level, via = kid_level, kid_via or via
        depth[id(node)], count[id(node)], deepest[id(node)] = level, ops, via
    return depth[id(expr)], count[id(expr)], deepest[id(expr)]


def check_sizes(parsed: ast.SpecAST) -> None:
    """The nesting and operator limits on every term and the equation, with the terms they
    use inlined (the parser checked each expression alone)."""
    terms = dict(parsed.terms)
    most_terms = limit("terms")
    if len(terms) > most_terms:
        name = list(terms)[most_terms]
        raise SpecError(f"the spec defines {len(terms):,} terms, more than {most_terms}",
                        terms[name].loc, how_to_raise("terms"))
    nesting, operators = limit("expression_nesting"), limit("expression_operators")
    measured: dict[str, tuple[int, int]] = {}

    def check(label: str, expr: ast.Expr) -> tuple[int, int]:
        level, ops, via = measure(expr, measured)
        where = via.loc if via is not None else expr.loc
        if level > nesting:
            raise SpecError(f"{label} nests more than {nesting} levels deep once the terms it "
                            "uses are inlined", where,
                            "simplify the terms; " + how_to_raise("expression_nesting"))
        if ops > operators:
            raise SpecError(f"{label} has {ops:,} operators once the terms it uses are "
                            f"inlined, more than {operators:,}", where,
                            "simplify the terms; " + how_to_raise("expression_operators"))
        return level, ops

    # the terms in an order where every term comes after the terms it uses (no cycles here)
    done: set[str] = set()
    for start in terms:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in done:
                stack.pop()
                continue
            pending = [r.id for r in _references(terms[name], terms)
                       if r.id not in done and r.id != name]
            if pending:
                stack.extend(reversed(pending))
                continue
            measured[name] = check(f"term '{name}'", terms[name])
            done.add(name)
            stack.pop()
    check("the equation", parsed.equation.rhs)


def _split_sum(expr: ast.Expr, sign: int = 1) -> list[tuple[int, ast.Expr]]:
    """The signed summands of a sum, left to right (an explicit stack: any length)."""
    out = []
    stack = [(sign, expr)]
    while stack:
        sign, node = stack.pop()
        if isinstance(node, ast.BinOp) and node.op in "+-":
            right_sign = sign if node.op == "+" else -sign
            stack.append((right_sign, node.right))
            stack.append((sign, node.left))
        else:
            out.append((sign, node))
    return out


def _piece_name(expr: ast.Expr, terms) -> str | None:
    """The term a piece of the equation names: ``diffusion`` or ``0.5 * diffusion``."""
    # bottom-up over the products and signs of the piece (an explicit stack)
    order, stack = [], [expr]
    while stack:
        node = stack.pop()
        order.append(node)
        if isinstance(node, ast.Neg):
            stack.append(node.operand)
        elif isinstance(node, ast.BinOp) and node.op in "*/":
            stack.extend((node.left, node.right))
    named: dict[int, str | None] = {}
    for node in reversed(order):
        if isinstance(node, ast.Name) and node.id in terms:
            named[id(node)] = node.id
        elif isinstance(node, ast.Neg):
            named[id(node)] = named[id(node.operand)]
        elif isinstance(node, ast.BinOp) and node.op in "*/":
            names = [n for n in (named[id(node.left)], named[id(node.right)]) if n]
            named[id(node)] = names[0] if len(names) == 1 else None
        else:
            named[id(node)] = None
    return named[id(expr)]


_LITERAL = re.compile(r"(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")


def literal_value(node: ast.Number) -> sympy.Rational:
    """The exact value of a number literal, refused before SymPy builds it when it is
    beyond float64 or has more digits than the limit (``1e-99999999`` would take forever)."""
    if not math.isfinite(node.value):
        raise ExpressionSyntaxError(f"the number {_short(node.text)} is too large", node.loc,
                                    "numbers must fit in a float (about 1.8e308)")
    whole, fraction, exponent = _LITERAL.fullmatch(node.text).groups()
    fraction = fraction or ""
    digits = (whole + fraction).lstrip("0")
    shift = int(exponent or 0) - len(fraction) if len(exponent or "") < 12 else None
    most = limit("number_digits")
    if shift is None or len(digits) > most or (digits and abs(shift) > most):
        raise ExpressionSyntaxError(f"the number {_short(node.text)} has too many digits",
                                    node.loc, how_to_raise("number_digits"))
    mantissa = sympy.Integer(int(digits or "0"))
    return mantissa * sympy.Integer(10) ** shift


def expanded_size(expr: sympy.Expr, cap: int) -> tuple[int, sympy.Expr | None]:
    """(an upper bound of the summands of ``sympy.expand(expr)``, capped at ``cap + 1``; the
    first subexpression whose bound passes ``cap``, or ``None``).  Computed over the
    expression's DAG with an explicit stack, without expanding anything: a sum adds its
    summands' counts, a product multiplies them, a power n of s summands has
    C(s + n − 1, n) monomials; the arguments of a function are expanded on their own."""
    sizes: dict[sympy.Expr, int] = {}
    stack = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in sizes:
            continue
        if not ready and node.args:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in sizes)
            continue
        args = [sizes[a] for a in node.args]
        if node.is_Add:
            size = sum(args)
        elif node.is_Mul:
            size = 1
            for a in args:
                size = min(size * a, cap + 1)
        elif node.is_Pow and node.exp.is_Rational and args[0] > 1 and abs(node.exp) >= 1:
            n = int(abs(node.exp))  # the integer part is multiplied out
            base = args[0]
            size = base if n == 1 else cap + 1 if n > cap else 1
            if 1 < n <= cap:
                for k in range(1, n + 1):  # C(base + n − 1, n), stopped past the cap
                    size = size * (base + k - 1) // k
                    if size > cap:
                        size = cap + 1
                        break
        else:
            size = 1
        size = min(size, cap + 1)
        if size > cap:
            return size, node
        sizes[node] = size
    return sizes[expr], None


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}…{text[-10:]} ({len(text):,} characters)"


def _digits(value: int) -> int:
    """Decimal digits of an integer, without converting it to a string."""
    return int(abs(value).bit_length() * 0.30103) + 1


def _log10(value: sympy.Rational) -> float:
    """log10 of the larger of |numerator| and denominator (the digits of one power)."""
    return max(math.log10(abs(int(value.p))), math.log10(int(value.q)))


class Lowering:
    def __init__(self, spec: Spec, parsed: ast.SpecAST) -> None:
        self.spec = spec
        self.parsed = parsed
        self.axes = tuple(sympy.Symbol(a, real=True) for a in spec.grid.axes)
        self.field = F.field_function(spec.field.name)
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
    def expr(self, root: ast.Expr) -> sympy.Expr:
        """Lower an expression: operands left to right, with an explicit stack."""
        stack: list[tuple[ast.Expr, bool]] = [(root, False)]
        values: list[sympy.Expr] = []
        while stack:
            node, ready = stack.pop()
            if isinstance(node, ast.BinOp):
                if not ready:
                    stack += [(node, True), (node.right, False), (node.left, False)]
                    continue
                right = values.pop()
                values.append(self._checked(self.binop(node, values.pop(), right), node))
            elif isinstance(node, ast.Neg):
                if not ready:
                    stack += [(node, True), (node.operand, False)]
                    continue
                values.append(-values.pop())
            else:
                values.append(self.leaf(node))
        (value,) = values
        return value

    def leaf(self, node: ast.Expr) -> sympy.Expr:
        if isinstance(node, ast.Number):
            return literal_value(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise TypeError(f"unknown AST node {node!r}")  # pragma: no cover

    def binop(self, node: ast.BinOp, left: sympy.Expr, right: sympy.Expr) -> sympy.Expr:
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
        return self.power(node, left, right)

    def power(self, node: ast.BinOp, left: sympy.Expr, right: sympy.Expr) -> sympy.Expr:
        """``left ^ right``, refused before SymPy computes a number that is too large."""
        if not F.is_field_free(right):
            raise OperatorError("an exponent cannot depend on the field", node.right.loc,
                                "use exp(...) for exponentials of the field")
        if not right.is_number:
            raise OperatorError(f"an exponent must be a number, got '{_short(str(node.right))}'",
                                node.right.loc, "parameters cannot be exponents; use "
                                "exp(...) for exponentials")
        if right.is_extended_real is False or right.has(sympy.I, sympy.zoo, sympy.nan,
                                                         sympy.oo):
            raise OperatorError(f"the exponent {_short(str(node.right))} is not a real number",
                                node.right.loc)
        base = left.as_coeff_Mul()[0] if left.is_Mul else left
        if base.is_Rational and base not in (0, 1, -1):
            most = limit("number_digits")
            exponent = abs(right)
            # |p| or q ≥ 2, so the result has at least 0.30103 · |exponent| digits
            digits = (_log10(base) * float(exponent)) if exponent <= most / 0.30103 else math.inf
            if digits > most:
                shown = f" (about {digits:,.0f} digits)" if math.isfinite(digits) else ""
                raise OperatorError(f"{_short(str(node))} is too large a number{shown}",
                                    node.loc, how_to_raise("number_digits"))
        value = left ** right
        infinite = value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)  # analyse names them
        if value.is_number and not infinite and (value.has(sympy.I)
                                                 or value.is_extended_real is False):
            raise OperatorError(f"{_short(str(node))} is not a real number", node.loc,
                                "a negative number has no real fractional power")
        return value

    def _checked(self, value: sympy.Expr, node: ast.Expr) -> sympy.Expr:
        """Refuse an exact constant with more digits than the limit (products of large
        numbers; SymPy keeps every digit)."""
        number = value
        if value.is_Add or value.is_Mul:
            number = value.args[0]  # SymPy puts the numeric coefficient first
        if number.is_Rational and max(_digits(int(number.p)), _digits(int(number.q))) \
                > limit("number_digits"):
            raise OperatorError(f"a constant of {_short(str(node))} has more than "
                                f"{limit('number_digits'):,} digits", node.loc,
                                how_to_raise("number_digits"))
        return value

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
            raise OperatorError(f"{where} must be true or false, got '{_short(str(node))}'",
                                node.loc)
        if option.kind == "choice":
            if isinstance(node, ast.Name) and node.id in option.choices:
                return node.id
            got = node.id if isinstance(node, ast.Name) else _short(str(node))
            raise OperatorError(f"{where} must be one of {', '.join(option.choices)}; got '{got}'",
                                node.loc, did_you_mean(got, option.choices))
        if option.kind == "axis":
            axes = self.spec.grid.axes
            if isinstance(node, ast.Name) and node.id in axes:
                return node.id
            got = node.id if isinstance(node, ast.Name) else _short(str(node))
            raise OperatorError(f"'{got}' is not a grid axis (the grid has {', '.join(axes)})",
                                node.loc, did_you_mean(got, axes))
        value = node
        sign = 1
        if isinstance(value, ast.Neg) and isinstance(value.operand, ast.Number):
            sign, value = -1, value.operand
        if not isinstance(value, ast.Number):
            raise OperatorError(f"{where} must be a number, got '{_short(str(node))}'",
                                node.loc)
        number = sign * value.value
        if not math.isfinite(number):
            raise OperatorError(f"{where} must be a finite number, got {_short(value.text)}",
                                node.loc, "numbers must fit in a float (about 1.8e308)")
        if option.kind == "int":
            if not float(number).is_integer() or any(c in value.text for c in ".eE"):
                raise OperatorError(f"{where} must be an integer, got {_short(value.text)}",
                                    node.loc)
            number = int(number)
            most = limit("option_int")
            if option.maximum is None and abs(number) > most:
                raise OperatorError(f"{where} must be ≤ {most:,}, got {_short(value.text)}",
                                    node.loc, how_to_raise("option_int"))
        elif option.kind == "float":
            number = float(number)  # rope_theta=10000 is the number 10000.0
        if option.minimum is not None and number < option.minimum:
            raise OperatorError(f"{where} must be ≥ {option.minimum:g}, got {number}", node.loc)
        if option.maximum is not None and number > option.maximum:
            raise OperatorError(f"{where} must be ≤ {option.maximum:g}, got {number}", node.loc)
        return number

    # ------------------------------------------------------------------ equation
    def lower(self) -> SymbolicModel:
        check_cycles(dict(self.parsed.terms))
        check_sizes(self.parsed)
        eq = self.parsed.equation
        if eq.field.id != self.spec.field.name:
            raise NameResolutionError(
                f"the equation evolves '{eq.field.id}', but the field is "
                f"'{self.spec.field.name}'", eq.field.loc, f"write dt({self.spec.field.name})")
        pieces: list[SymbolicTerm] = []
        seen: dict[str, SourceLocation] = {}
        summands = _split_sum(eq.rhs)
        if len(summands) > limit("terms"):
            raise SpecError(f"the equation has {len(summands):,} summands, more than "
                            f"{limit('terms')} (each is a term of the step program)",
                            summands[limit("terms")][1].loc, "group them into named terms; "
                            + how_to_raise("terms"))
        for index, (sign, piece) in enumerate(summands, start=1):
            name = _piece_name(piece, self.parsed.terms) or f"term{index}"
            if name in seen:
                raise SpecError(f"term '{name}' appears twice in the equation", piece.loc,
                                "combine the two occurrences into one coefficient")
            seen[name] = piece.loc
            self._current_term = name
            value = self.expr(piece)
            most = limit("expanded_summands")
            _size, culprit = expanded_size(value, most)
            if culprit is not None:
                what = ("a power of a sum" if culprit.is_Pow else "a product of sums"
                        if culprit.is_Mul else "a sum")
                raise SpecError(
                    f"term '{name}' multiplies out to more than {most:,} summands ({what}); "
                    "the analysis expands it",
                    piece.loc, "factor the term differently; " + how_to_raise("expanded_summands"))
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


def check_weights(spec: Spec, instances) -> None:
    """Refuse a spec whose generated stepper would hold more weights than the limit (all
    layers; before anything allocates them)."""
    channels, dims = spec.field.channels, spec.grid.dims
    layers = 1 if spec.time.tied else spec.time.layers  # tied: one weight set for all
    per_call = {name: sum(math.prod(shape) for shape in OPERATORS[inst.op].parameter_shapes(
                    channels, inst.options, dims).values())
                for name, inst in instances.items()}
    total = layers * (sum(per_call.values()) + 2 * channels * len(spec.terms or ()) + 2 * channels)
    most = limit("weights")
    if total > most:
        largest = max(per_call, key=per_call.get) if per_call else None
        where = instances[largest].loc if largest else spec.where("fields")
        alone = f"; {largest} alone {per_call[largest]:.3g} per layer" if largest else ""
        raise SpecError(
            f"the generated stepper would hold about {total:.3g} weights ({layers:,} "
            f"layer{'s' if layers > 1 else ''} × "
            f"{channels:,} channels{alone}), more than {most:.3g}", where,
            "use fewer channels, a smaller hidden width or fewer layers; "
            + how_to_raise("weights"))


def lower(spec: Spec, parsed: ast.SpecAST) -> SymbolicModel:
    """Lower a parsed spec to SymPy."""
    model = Lowering(spec, parsed).lower()
    check_weights(spec, model.instances)
    return model
