"""The elementwise functions ``tanh relu gelu sigmoid exp`` (no options, no weights).

``tanh`` and ``exp`` lower to SymPy's own functions (so SymPy can simplify them); ``relu``,
``gelu`` (exact, erf form) and ``sigmoid`` are opaque SymPy functions.  An elementwise
function of a constant folds to its value in the discrete IR.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sympy

from pdelang.compiler.operators.base import Operator
from pdelang.compiler.symbolic.functions import OperatorCall
from pdelang.compiler.discrete import ir as D


class Relu(OperatorCall):
    op_name = "relu"


class Gelu(OperatorCall):
    op_name = "gelu"


class Sigmoid(OperatorCall):
    op_name = "sigmoid"


def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))  # exact (erf) GELU


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # no overflow for large negative x
    return e / (1.0 + e)


def numpy_gelu(x):
    """x Φ(x) with the exact normal CDF Φ(x) = (1 + erf(x/√2))/2."""
    import numpy as np  # lazy: numpy
    from scipy.special import erf  # lazy: scipy

    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def numpy_sigmoid(x):
    import numpy as np  # lazy: numpy
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def numpy_relu(x):
    import numpy as np  # lazy: numpy
    return np.maximum(x, 0.0)


def numpy_tanh(x):
    import numpy as np  # lazy: numpy
    return np.tanh(x)


def numpy_exp(x):
    import numpy as np  # lazy: numpy
    return np.exp(x)


class Elementwise(Operator):
    """One elementwise function."""

    category = "elementwise"

    def __init__(self, name: str, meaning: str, sympy_function, value: Callable[[float], float],
                 torch_function: str, numpy_function: Callable) -> None:
        self.name = name
        self.meaning = meaning
        self.sympy_class = sympy_function
        self.value = value  # the function on a Python float (constant folding)
        self.torch_function = torch_function
        self.numpy_function = numpy_function

    def to_sympy(self, operand, options, lowering):
        return self.sympy_class(operand)

    def options_of(self, call, model) -> dict:
        return {}

    def discretize(self, call, operand, model):
        if isinstance(operand, D.Const):
            return D.Const(self.value(float(operand.value)))
        return D.Elementwise(self.name, operand)

    def torch_expr(self, node, operand: str, model) -> str:
        return f"{self.torch_function}({operand})"

    def numpy_eval(self, node, operand, oracle, layer, ctx):
        return self.numpy_function(operand)

    def draw_call(self, draw, ctx, operand: str) -> str:
        return f"{self.name}({operand})"


OPERATORS = (
    Elementwise("tanh", "tanh(u), elementwise", sympy.tanh, math.tanh, "torch.tanh",
                numpy_tanh),
    Elementwise("relu", "max(u, 0), elementwise", Relu, lambda x: max(x, 0.0), "torch.relu",
                numpy_relu),
    Elementwise("gelu", "u Φ(u), elementwise (exact, erf form)", Gelu, _gelu, "F.gelu",
                numpy_gelu),
    Elementwise("sigmoid", "1 / (1 + e^{−u}), elementwise", Sigmoid, _sigmoid,
                "torch.sigmoid", numpy_sigmoid),
    Elementwise("exp", "e^u, elementwise", sympy.exp, math.exp, "torch.exp", numpy_exp),
)
