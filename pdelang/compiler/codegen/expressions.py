"""The expression printer: discrete IR expressions → PyTorch source.

:class:`ExpressionPrinter` is strict: it prints exactly the expression node types of the
discrete IR and raises on anything else.  Rational constants print as fractions
(``1 / 3 * u``), which Python evaluates to the same double as their decimal expansion.
"""

from __future__ import annotations

from fractions import Fraction

from pdelang.compiler.discrete import ir as D
from pdelang.compiler.operators import OPERATORS, MissingHandler

PRECEDENCE = {"sum": 1, "product": 2, "neg": 3, "power": 4, "atom": 5}
_PRECEDENCE = PRECEDENCE
_EXACT = 10**6  # numerator and denominator below this print as a fraction


def fraction(q: Fraction) -> str | None:
    """``p / q`` for a rational with a small numerator and denominator (a correctly rounded
    double in Python), else None."""
    q = Fraction(q)
    if q.denominator == 1 or abs(q.numerator) >= _EXACT or q.denominator >= _EXACT:
        return None
    return f"{q.numerator} / {q.denominator}"


def number(value) -> tuple[str, int]:
    """(source, precedence) of a constant: ``2.0``, ``-0.5``, ``1 / 3``, ``1e-05``."""
    if isinstance(value, Fraction):
        text = fraction(value)
        if text is not None:
            return text, PRECEDENCE["product"]
    text = repr(float(value))
    return text, (PRECEDENCE["neg"] if text.startswith("-") else PRECEDENCE["atom"])


class ExpressionPrinter:
    """Prints the expressions of a :class:`~pdelang.compiler.discrete.ir.DiscreteModel`."""

    def __init__(self, model: D.DiscreteModel) -> None:
        self.m = model
        self.shared = {p.name for p in model.parameters if not p.per_layer}

    # ------------------------------------------------------------------ expressions
    def expr(self, node: D.DExpr) -> tuple[str, int]:
        """(source, precedence) of an expression node."""
        if isinstance(node, D.State):
            return "u", _PRECEDENCE["atom"]
        if isinstance(node, D.Const):
            return number(node.value)
        if isinstance(node, D.Param):
            owner = "p" if node.name in self.shared else "self"
            return f"{owner}.{node.name}", _PRECEDENCE["atom"]
        if isinstance(node, D.Sum):
            # a positive term first: u - u**2, not -u**2 + u (one negation less per call)
            terms = list(node.terms)
            first = next((i for i, t in enumerate(terms) if self._negated(t) is None), 0)
            terms.insert(0, terms.pop(first))
            parts = []
            for i, term in enumerate(terms):
                negated = self._negated(term)
                if negated is not None:
                    text = self.wrap(negated, _PRECEDENCE["product"])
                    parts.append(f"- {text}" if i else f"-{text}")
                else:
                    text = self.wrap(term, _PRECEDENCE["sum"])
                    parts.append(f"+ {text}" if i else text)
            return " ".join(parts), _PRECEDENCE["sum"]
        if isinstance(node, D.Product):
            negated = self._negated(node)
            if negated is not None:
                return "-" + self.wrap(negated, _PRECEDENCE["neg"]), _PRECEDENCE["neg"]
            folded = self._folded(node)
            if folded is not None:
                return folded, _PRECEDENCE["atom"]
            factors = sorted(node.factors, key=lambda f: not isinstance(f, (D.Const, D.Param)))
            return " * ".join(self.wrap(f, _PRECEDENCE["product"] + (i > 0) * 0.5)
                              for i, f in enumerate(factors)), _PRECEDENCE["product"]
        if isinstance(node, D.Power):
            exponent = node.exponent
            base = self.wrap(node.base, _PRECEDENCE["power"] + 1)
            if exponent == Fraction(1, 2):
                return f"torch.sqrt({self.expr(node.base)[0]})", _PRECEDENCE["atom"]
            if isinstance(exponent, Fraction) and exponent.denominator == 1:
                exp_text = str(exponent.numerator)
            else:
                exp_text = repr(float(exponent))
            if exp_text.startswith("-"):
                exp_text = f"({exp_text})"
            return f"{base}**{exp_text}", _PRECEDENCE["power"]
        if isinstance(node, D.Elementwise):
            return self.operator(node.func, node), _PRECEDENCE["atom"]
        if isinstance(node, D.ApplyStencil):
            return self.operator(self.m.stencils[node.stencil].operator, node), \
                _PRECEDENCE["atom"]
        if isinstance(node, D.ApplyModule):
            return self.operator(node.op, node), _PRECEDENCE["atom"]
        raise TypeError(f"TorchPrinter cannot print {type(node).__name__}: {node!r}")

    def _folded(self, node: D.Product) -> str | None:
        """``scale · S(x)`` as one call, when the product is one operator application S times
        field-free factors (constant within a step) and S folds a scale into itself
        (:meth:`~pdelang.compiler.operators.base.Operator.torch_scaled_expr`), else None."""
        applied = [f for f in node.factors if isinstance(f, D.ApplyStencil)]
        scalars = [f for f in node.factors if not isinstance(f, D.ApplyStencil)]
        if len(applied) != 1 or not scalars or any(
                isinstance(n, (D.State, D.ApplyStencil, D.ApplyModule))
                for f in scalars for n in D.walk(f)):
            return None
        stencil = applied[0]
        op = OPERATORS.get(self.m.stencils[stencil.stencil].operator)
        if op is None:
            return None
        scale = self.expr(scalars[0] if len(scalars) == 1 else D.Product(tuple(scalars)))[0]
        return op.torch_scaled_expr(stencil, self.field(stencil.operand), scale, self.m)

    def operator(self, name: str, node) -> str:
        """An operator call, printed by its operator (strict: no handler, no code)."""
        op = OPERATORS.get(name)
        if op is None:
            raise MissingHandler("the torch printer", name, "an operator module")
        return op.torch_expr(node, self.field(node.operand), self.m)

    def field(self, node: D.DExpr) -> str:
        """Source of ``node`` as a (B, N, C) tensor.

        A field-free expression (``u - u`` folds to 0, ``gelu(0)``, ``2 * D``) prints as a
        Python float or a 0-dim tensor; where a tensor of the state's shape is needed (the
        operand of an operator, a term's value) it is broadcast explicitly."""
        text = self.expr(node)[0]
        if any(isinstance(n, (D.State, D.ApplyStencil, D.ApplyModule)) for n in D.walk(node)):
            return text
        if isinstance(node, D.Const):
            return f"torch.full_like(u, {text})"
        return f"torch.zeros_like(u) + {self.wrap(node, _PRECEDENCE['sum'] + 0.5)}"

    def wrap(self, node: D.DExpr, level: float) -> str:
        text, precedence = self.expr(node)
        return f"({text})" if precedence < level else text

    @staticmethod
    def _negated(node: D.DExpr) -> D.DExpr | None:
        """``x`` if node is ``-1 * x`` (or a product with a negative constant), else None."""
        if isinstance(node, D.Product) and node.factors and isinstance(node.factors[0], D.Const):
            value = node.factors[0].value
            if value < 0:
                rest = node.factors[1:]
                if value == -1:
                    return rest[0] if len(rest) == 1 else D.Product(rest)
                return D.Product((D.Const(-value),) + rest)
        return None
