"""Hypothesis strategies: valid specs from the grammar, and smooth test fields.

Specs are generated as YAML *text* (the way users write them) and loaded with
:func:`pdelang.compiler.spec.load.load_spec_text`, so every example also exercises the loader, the
Lark grammar and the lowering.  The term generator covers the whole term language: numbers
in several notations, parameters (plain, learnable, positive, per layer), ``+ - * /``,
unary signs, ``^`` (integer and ½ exponents), parentheses, the elementwise functions, the
differential operators (``laplace``; ``diff`` with positional, keyword or default order) and
the learned operators with their options (attention heads / causal / kernel / iterations /
bias, mlp hidden / activation / bias, linear bias, layernorm and rmsnorm eps / affine); the
spec generator adds 1-D and 2-D grids with every boundary condition and extra tokens, every
scheme with split orders, accuracies 2–8, residual on/off and every normalization placement.

Magnitudes are kept tame by construction (small Δt, powers only of bounded operands,
``exp`` only of bounded operands) so generated steppers stay finite.

Public strategies: :func:`spec_texts`, :func:`specs`, :func:`compilations`,
:func:`derivative_spec_texts`, :func:`diffusion_spec_texts`, :func:`learned_spec_texts`,
:func:`grids`, :func:`expressions`, :func:`smooth_fields`, :func:`periodic_fields`,
:func:`nonperiodic_fields`; plus :data:`BOUNDARIES`, :data:`SCHEMES`, :data:`ACCURACIES`.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field

from hypothesis import strategies as st

from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.operators.mlp import ACTIVATIONS
from pdelang.lab.testing.fields import FieldSample, smooth_field
from pdelang.compiler.spec.load import load_spec_text
from pdelang.compiler.driver import compile_spec

__all__ = [
    "ACCURACIES",
    "BOUNDARIES",
    "IMEX_SCHEMES",
    "SCHEMES",
    "GridChoice",
    "compilations",
    "derivative_spec_texts",
    "diffusion_spec_texts",
    "expressions",
    "grids",
    "learned_spec_texts",
    "nonperiodic_fields",
    "periodic_fields",
    "smooth_fields",
    "spec_texts",
    "specs",
]

BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")
SCHEMES = ("euler", "lie", "strang", "rk2", "rk4")  # the explicit schemes
IMEX_SCHEMES = ("imex_euler", "imex_ars222")
ACCURACIES = (2, 4, 6, 8)
NORM_KINDS = ("none", "layernorm", "rmsnorm")
ELEMENTWISE = ("tanh", "relu", "gelu", "sigmoid")  # bounded or tame: exp is drawn guarded
DISCRETIZED = tuple(op.name for op in OPERATORS.values() if op.discretized)  # accuracy keys


def radius(derivative: int, accuracy: int) -> int:
    """Radius of the centred stencil (see :mod:`pdelang.compiler.analysis.stencils`)."""
    return (derivative + 1) // 2 - 1 + accuracy // 2


# ----------------------------------------------------------------------------- numbers
def _number_text(draw, low: float = 0.05, high: float = 2.0) -> str:
    value = draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
    style = draw(st.sampled_from(["plain", "short", "exp", "int"]))
    if style == "int":
        return str(max(1, round(value)))
    if style == "exp":
        return f"{value * 10:.3g}e-1"
    if style == "short" and value < 1:
        return f"{value:.2f}".lstrip("0")  # .35
    return f"{value:.3g}" if "." in f"{value:.3g}" else f"{value:.3g}.0"


# ----------------------------------------------------------------------------- grids
@dataclass(frozen=True)
class GridChoice:
    axes: tuple[str, ...]
    boundary: str
    spacing: float
    extra_tokens: int

    @property
    def dims(self) -> int:
        return len(self.axes)


@st.composite
def grids(draw, dims=(1, 2), boundaries=BOUNDARIES, max_extra_tokens: int = 2) -> GridChoice:
    """Axes, boundary, spacing and extra tokens (the shape is chosen with the stencils)."""
    d = draw(st.sampled_from(tuple(dims)))
    axes = draw(st.sampled_from([("x",), ("seq",), ("s",)] if d == 1 else
                                [("x", "y"), ("rows", "cols")]))
    boundary = draw(st.sampled_from(tuple(boundaries)))
    spacing = draw(st.sampled_from([0.5, 0.75, 1.0, 1.25, 2.0]))
    extra = draw(st.integers(0, max_extra_tokens))
    return GridChoice(axes, boundary, spacing, extra)


# ----------------------------------------------------------------------------- expressions
@dataclass
class _Context:
    """What the expression generator may use, and what it used."""

    axes: tuple[str, ...]
    params: tuple[str, ...]
    channels: int
    accuracy: dict  # laplace / diff → accuracy
    learned: bool = True
    differential: bool = True
    max_derivative: int = 0  # largest derivative order used (for the grid size)
    max_radius: int = 0
    used: set = field(default_factory=set)

    def note_stencil(self, op: str, k: int) -> None:
        self.max_derivative = max(self.max_derivative, k)
        self.max_radius = max(self.max_radius, radius(k, self.accuracy[op]))
        self.used.add(op)

    def note_radius(self, r: int) -> None:
        """A learned stencil (conv) reads r ghost tokens: the grid must be larger."""
        self.max_radius = max(self.max_radius, r)


def _learned_call(draw, ctx: _Context, operand: str) -> str:
    """A call of a learned operator (every operator of the registry that owns weights),
    with options drawn by the operator itself."""
    op = draw(st.sampled_from([o for o in OPERATORS.values() if o.learned]))
    ctx.used.add(op.name)
    return op.draw_call(draw, ctx, operand)


def _differential_call(draw, ctx: _Context, operand: str) -> str:
    op = draw(st.sampled_from([o for o in OPERATORS.values() if o.category == "differential"]))
    return op.draw_call(draw, ctx, operand)


def _bounded(draw, ctx: _Context, depth: int) -> str:
    """An expression bounded by a small constant (safe to raise to a power or exponentiate)."""
    inner = _expr(draw, ctx, depth)
    return f"{draw(st.sampled_from(['tanh', 'sigmoid']))}({inner})"


def _expr(draw, ctx: _Context, depth: int) -> str:
    """A term expression in the field ``u`` (always depends on ``u``)."""
    if depth <= 0:
        leaf = draw(st.sampled_from(["u", "u", "coef", "param"]))
        if leaf == "coef":
            return f"{_number_text(draw)} * u"
        if leaf == "param" and ctx.params:
            return f"{draw(st.sampled_from(ctx.params))} * u"
        return "u"
    kinds = ["leaf", "scale", "sum", "neg", "power", "elementwise", "divide", "product",
             "sqrt", "exp", "plus"]
    if ctx.differential:
        kinds += ["differential", "differential"]
    if ctx.learned:
        kinds += ["learned", "learned"]
    kind = draw(st.sampled_from(kinds))
    sub = depth - 1
    if kind == "leaf":
        return _expr(draw, ctx, 0)
    if kind == "scale":
        coef = (draw(st.sampled_from(ctx.params)) if ctx.params and draw(st.booleans())
                else _number_text(draw))
        return f"{coef} * {_wrap(_expr(draw, ctx, sub))}"
    if kind == "sum":
        op = draw(st.sampled_from(["+", "-"]))
        return f"({_expr(draw, ctx, sub)} {op} {_expr(draw, ctx, sub)})"
    if kind == "neg":
        return f"-{_wrap(_expr(draw, ctx, sub))}"
    if kind == "plus":
        return f"+{_wrap(_expr(draw, ctx, sub))}"
    if kind == "power":
        base = draw(st.sampled_from(["u", _bounded(draw, ctx, sub)]))
        return f"{_wrap(base)}^{draw(st.sampled_from(['2', '3']))}"
    if kind == "sqrt":
        return f"({_wrap(_bounded(draw, ctx, sub))}^2 + 1)^0.5"
    if kind == "exp":
        return f"exp({_bounded(draw, ctx, sub)})"
    if kind == "elementwise":
        return f"{draw(st.sampled_from(ELEMENTWISE))}({_expr(draw, ctx, sub)})"
    if kind == "divide":
        return f"{_wrap(_expr(draw, ctx, sub))} / {_number_text(draw, 0.5, 4.0)}"
    if kind == "product":
        return f"{_wrap(_bounded(draw, ctx, sub))} * {_wrap(_expr(draw, ctx, sub))}"
    if kind == "differential":
        operand = draw(st.sampled_from(["u", _expr(draw, ctx, max(sub - 1, 0))]))
        return _differential_call(draw, ctx, operand)
    operand = draw(st.sampled_from(["u", _expr(draw, ctx, max(sub - 1, 0))]))
    return _learned_call(draw, ctx, operand)


def _wrap(text: str) -> str:
    simple = text.replace("_", "").isalnum() or (text.endswith(")") and text[0].isalpha()
                                                 and _balanced_call(text))
    return text if simple else f"({text})"


def _balanced_call(text: str) -> bool:
    """True if ``text`` is one call ``f(…)`` (its first '(' closes at the end)."""
    depth = 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
    return False


@st.composite
def expressions(draw, axes=("x",), params=("D",), channels: int = 4, max_depth: int = 3,
                accuracy: int = 2, learned: bool = True, differential: bool = True) -> str:
    """One term expression of the grammar (text)."""
    ctx = _Context(tuple(axes), tuple(params), channels,
                   {op: accuracy for op in DISCRETIZED},
                   learned, differential)
    return _expr(draw, ctx, draw(st.integers(0, max_depth)))


# ----------------------------------------------------------------------------- specs
def _yaml_list(items) -> str:
    return "[" + ", ".join(str(i) for i in items) + "]"


def _grid_block(grid: GridChoice, shape) -> list[str]:
    lines = ["grid:", f"  axes: {_yaml_list(grid.axes)}"]
    if shape is not None:
        lines.append(f"  shape: {_yaml_list(shape)}")
    lines += [f"  spacing: {grid.spacing}", f"  boundary: {grid.boundary}",
              f"  extra_tokens: {grid.extra_tokens}"]
    return lines


def _shape(draw, grid: GridChoice, min_side: int, max_extra: int = 3):
    if grid.dims == 2:
        return [draw(st.integers(min_side, min_side + max_extra)) for _ in range(2)]
    if draw(st.booleans()):
        return [draw(st.integers(min_side, min_side + 6))]
    return None


def _parameters(draw, names) -> list[str]:
    lines = ["parameters:"] if names else []
    for name in names:
        value = draw(st.floats(0.05, 1.0))
        if draw(st.booleans()):
            lines.append(f"  {name}: {value:.4g}")
        else:
            learnable = draw(st.booleans())
            positive = draw(st.booleans())
            per_layer = draw(st.booleans())
            lines.append(f"  {name}: {{value: {value:.4g}, learnable: {str(learnable).lower()}, "
                         f"positive: {str(positive).lower()}, "
                         f"per_layer: {str(per_layer).lower()}}}")
    return lines


def _time_block(draw, scheme: str, split_names, *, span=None, layers=None,
                substeps=None, residual: bool = True) -> list[str]:
    layers = layers or draw(st.integers(1, 2))
    substeps = substeps or draw(st.integers(1, 2))
    if span is None:
        # without the residual a sub-step replaces the state by Δt·f(u): keep Δt near 1 so
        # the states neither vanish nor explode
        dt = draw(st.sampled_from([0.02, 0.05, 0.1] if residual else [0.5, 1.0]))
        span = round(dt * layers * substeps, 6)
    lines = ["time:", f"  span: [0, {span}]", f"  layers: {layers}",
             f"  substeps: {substeps}", f"  scheme: {scheme}"]
    if split_names and scheme in ("lie", "strang") and draw(st.booleans()):
        order = draw(st.permutations(list(split_names)))
        lines.append(f"  split_order: {_yaml_list(order)}")
    return lines


def _norm_block(draw, term_names, residual: bool) -> list[str]:
    kind = draw(st.sampled_from(NORM_KINDS))
    lines = ["stabilizers:", f"  residual: {str(residual).lower()}"]
    if kind == "none" and draw(st.booleans()):
        return lines
    norm = [f"kind: {kind}", f"placement: {draw(st.sampled_from(['pre', 'post']))}",
            f"eps: {draw(st.sampled_from(['1.0e-5', '1.0e-6', '0.01']))}",
            f"final: {str(draw(st.booleans())).lower()}",
            f"affine: {str(draw(st.booleans())).lower()}"]
    if term_names and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(list(term_names)), unique=True, max_size=3))
        norm.append(f"terms: {_yaml_list(chosen)}")
    lines.append("  norm: {" + ", ".join(norm) + "}")
    return lines


@st.composite
def spec_texts(draw, dims=(1, 2), boundaries=BOUNDARIES, schemes=SCHEMES,
               accuracies=ACCURACIES, max_terms: int = 3, max_depth: int = 2,
               channels=(1, 2, 4, 6), learned: bool = True,
               differential: bool = True) -> str:
    """The YAML text of a valid spec drawn from the whole grammar."""
    grid = draw(grids(dims=dims, boundaries=boundaries))
    n_params = draw(st.integers(0, 2))
    params = ("D", "alpha")[:n_params]
    c = draw(st.sampled_from(tuple(channels)))
    accuracy = {op: draw(st.sampled_from(tuple(accuracies))) for op in DISCRETIZED}
    ctx = _Context(grid.axes, params, c, accuracy, learned, differential)
    n_terms = draw(st.integers(1, max_terms))
    names = [f"t{i + 1}" for i in range(n_terms)]
    bodies = [_expr(draw, ctx, draw(st.integers(1, max_depth))) for _ in names]
    pieces = []
    for i, name in enumerate(names):
        sign = "" if i == 0 else draw(st.sampled_from([" + ", " - "]))
        coef = draw(st.sampled_from(["", "", f"{_number_text(draw)} * "]))
        pieces.append(f"{sign}{coef}{name}")
    inline = draw(st.booleans()) and draw(st.booleans())
    if inline:
        pieces.append(f" - {_number_text(draw, 0.05, 0.5)} * u")
    scheme = draw(st.sampled_from(tuple(schemes)))
    min_side = ctx.max_radius + 2
    shape = _shape(draw, grid, min_side)
    lines = ["pdelang: 1", "name: generated",
             "description: a spec drawn by pdelang.lab.testing.strategies"]
    lines += _grid_block(grid, shape)
    lines += ["fields:", f"  u: {{channels: {c}}}"]
    lines += _parameters(draw, params)
    lines += ["terms:"] + [f'  {n}: "{b}"' for n, b in zip(names, bodies)]
    lines.append(f"equation: dt(u) = {''.join(pieces)}")
    residual = draw(st.booleans())
    lines += _norm_block(draw, names, residual)
    lines += _time_block(draw, scheme, None if inline else names, residual=residual)
    if ctx.used & set(DISCRETIZED):
        lines.append("discretization:")
        for op in sorted(ctx.used & set(DISCRETIZED)):
            lines.append(f"  {op}: {{accuracy: {accuracy[op]}}}")
    return "\n".join(lines) + "\n"


def specs(**kwargs):
    """Loaded :class:`~pdelang.compiler.spec.model.Spec` objects (see :func:`spec_texts`)."""
    return spec_texts(**kwargs).map(lambda text: load_spec_text(text, "<generated spec>"))


def compilations(**kwargs):
    """Compilations (every stage) of generated specs (see :func:`spec_texts`)."""
    return specs(**kwargs).map(compile_spec)


@st.composite
def derivative_spec_texts(draw, dims=(1, 2), boundaries=BOUNDARIES, accuracies=ACCURACIES,
                          derivatives=(1, 2, 3, 4), laplace=True) -> str:
    """A spec whose one term is a single derivative operator: ``laplace(u)`` or
    ``diff(u, axis, k)`` at a drawn accuracy (for the stencil properties (a), (b))."""
    grid = draw(grids(dims=dims, boundaries=boundaries, max_extra_tokens=1))
    p = draw(st.sampled_from(tuple(accuracies)))
    use_laplace = laplace and draw(st.booleans())
    if use_laplace:
        body, op, k = "laplace(u)", "laplace", 2
    else:
        k = draw(st.sampled_from(tuple(derivatives)))
        body, op = f"diff(u, {draw(st.sampled_from(grid.axes))}, {k})", "diff"
    side = radius(k, p) + 2
    shape = [side + 2] * grid.dims if grid.dims == 2 else None
    lines = ["pdelang: 1", "name: derivative"] + _grid_block(grid, shape)
    lines += ["fields:", "  u: {channels: 1}", "terms:", f'  op: "{body}"',
              "equation: dt(u) = op", "time:", "  span: [0, 0.001]",
              "discretization:", f"  {op}: {{accuracy: {p}}}"]
    return "\n".join(lines) + "\n"


@st.composite
def diffusion_spec_texts(draw, dims=(1, 2), boundaries=BOUNDARIES, accuracies=ACCURACIES,
                         schemes=SCHEMES, sizes=(8, 16), dt: float | None = None,
                         residual: bool | None = True, implicit: bool = False) -> str:
    """``dt(u) = D Δu`` (split into two diffusion terms for lie/strang/IMEX, so the scheme
    has something to split) on a drawn grid; ``dt`` sets Δt (default: the spec's span /
    steps).  ``residual=None`` draws the residual switch; ``implicit`` lets lie/strang treat
    one of the two terms by its exact flow (drawn) — IMEX schemes always treat one
    implicitly."""
    grid = draw(grids(dims=dims, boundaries=boundaries, max_extra_tokens=1))
    p = draw(st.sampled_from(tuple(accuracies)))
    scheme = draw(st.sampled_from(tuple(schemes)))
    side = max(radius(2, p) + 2, draw(st.integers(*sizes)))
    shape = [side] * grid.dims
    D = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    lines = ["pdelang: 1", "name: diffusion"] + _grid_block(grid, shape)
    lines += ["fields:", "  u: {channels: 1}", "parameters:", f"  D: {D}", "terms:"]
    implicit_terms = []
    if scheme in ("lie", "strang") or scheme in IMEX_SCHEMES:
        lines += ['  half: "0.5 * D * laplace(u)"', '  other: "D * laplace(u) / 2"',
                  "equation: dt(u) = half + other"]
        if scheme in IMEX_SCHEMES or (implicit and draw(st.booleans())):
            implicit_terms = [draw(st.sampled_from(["half", "other"]))]
    else:
        lines += ['  diffusion: "D * laplace(u)"', "equation: dt(u) = diffusion"]
    if residual is None:
        residual = draw(st.booleans())
    if not residual:
        lines += ["stabilizers:", "  residual: false"]
    span = dt if dt is not None else 0.01
    lines += ["time:", f"  span: [0, {span!r}]", "  layers: 1", "  substeps: 1",
              f"  scheme: {scheme}"]
    if implicit_terms:
        lines.append(f"  implicit: {_yaml_list(implicit_terms)}")
    lines += ["discretization:", f"  laplace: {{accuracy: {p}}}"]
    return "\n".join(lines) + "\n"


@st.composite
def learned_spec_texts(draw, attention: bool = True, norm: bool = True, dims=(1, 2)) -> str:
    """A spec with attention (every option) and/or a normalization stabilizer, for the
    attention and normalization properties (f), (g)."""
    grid = draw(grids(dims=dims, boundaries=BOUNDARIES))
    c = draw(st.sampled_from([2, 4, 6]))
    heads = draw(st.sampled_from([d for d in (1, 2, 3, 6) if c % d == 0]))
    causal = draw(st.booleans())
    kernel = draw(st.sampled_from(["softmax", "sinkhorn", "sinkhorn_symmetric"]))
    # Sinkhorn's column sums converge linearly in the iterations, at a rate set by the kernel:
    # the doubly-stochastic property (f) to 1e-4 needs converged maps (measured on a drawn
    # 2-channel kernel: column error 6.5e-4 after 30 iterations, < 1e-4 after 50).
    iterations = draw(st.integers(100, 200))
    terms = {}
    if attention:
        terms["interaction"] = (f"attention(u, heads={heads}, causal={str(causal).lower()}, "
                                f"kernel={kernel}, iterations={iterations})")
    terms["reaction"] = (f"mlp(u, hidden={draw(st.integers(2, 8))}, "
                         f"activation={draw(st.sampled_from(ACTIVATIONS))})")
    if draw(st.booleans()):
        terms["diffusion"] = "0.1 * laplace(u)"
    shape = [draw(st.integers(3, 5)) for _ in range(2)] if grid.dims == 2 else None
    lines = ["pdelang: 1", "name: learned"] + _grid_block(grid, shape)
    lines += ["fields:", f"  u: {{channels: {c}}}", "terms:"]
    lines += [f'  {k}: "{v}"' for k, v in terms.items()]
    lines.append("equation: dt(u) = " + " + ".join(terms))
    if norm:
        kind = draw(st.sampled_from(["layernorm", "rmsnorm"]))
        placement = draw(st.sampled_from(["pre", "post"]))
        lines += ["stabilizers:", "  residual: true",
                  f"  norm: {{kind: {kind}, placement: {placement}, "
                  f"final: {str(draw(st.booleans())).lower()}, "
                  f"affine: {str(draw(st.booleans())).lower()}}}"]
    scheme = draw(st.sampled_from(SCHEMES))
    lines += _time_block(draw, scheme, list(terms), span=1.0)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- fields
@st.composite
def smooth_fields(draw, boundary: str | None = None, shape=None, derivative: int = 2,
                  axes=None, h: float = 1.0) -> FieldSample:
    """A smooth field with the symmetry of ``boundary`` (drawn if None) on ``shape`` (drawn
    if None), with the exact value of its ``derivative``-th derivative summed over ``axes``
    (see :mod:`pdelang.lab.testing.fields`)."""
    boundary = boundary or draw(st.sampled_from(BOUNDARIES))
    if shape is None:
        dims = draw(st.sampled_from([1, 2]))
        shape = tuple(draw(st.integers(16, 40)) for _ in range(dims))
    shape = tuple(shape)
    axes = tuple(axes) if axes is not None else tuple(range(len(shape)))
    modes = tuple(draw(st.integers(1, 3)) for _ in shape)
    seed = draw(st.integers(0, 2**16))
    return smooth_field(boundary, shape, derivative, axes, h, modes, seed)


def periodic_fields(shape=None, derivative: int = 2, h: float = 1.0):
    """Smooth periodic fields (sin/cos modes with random phases)."""
    return smooth_fields("periodic", shape, derivative, None, h)


def nonperiodic_fields(boundary: str | None = None, shape=None, derivative: int = 2,
                       h: float = 1.0):
    """Smooth fields for a non-periodic boundary (drawn if None): even about the end tokens
    (neumann), odd about the points one spacing beyond the ends (dirichlet), odd about the
    end tokens after removing their values (copy)."""
    if boundary is None:
        return st.sampled_from(["neumann", "dirichlet", "copy"]).flatmap(
            lambda b: smooth_fields(b, shape, derivative, None, h))
    return smooth_fields(boundary, shape, derivative, None, h)


# ----------------------------------------------------------------------------- composition
COMPOSED_WORDS_1D = ("u", "laplace(u)", "laplace(laplace(u))", "diff(u, {a}, 2)",
                     "diff(laplace(u), {a}, 2)", "diff(u, {a}, 4)")
COMPOSED_WORDS_2D = COMPOSED_WORDS_1D + ("diff(diff(u, {a}, 2), {b}, 2)",)
COMPOSED_SCHEMES = ("euler", "rk2", "rk4", "lie", "strang", "imex_euler", "imex_ars222")


def _word_scale(word: str, h: float, dims: int) -> float:
    """A rough max |symbol| of a word (for drawing Δt around the bound): 4/h² per second
    derivative, summed over the axes for laplace."""
    order = word.count("laplace") * 2 + sum(int(k) for k in re.findall(r", (\d)\)", word))
    per_axis = 4 / h**2
    if order == 0:
        return 1.0
    return (dims * per_axis if "laplace" in word else per_axis) ** (order / 2) * (
        dims if word.count("laplace") > 1 else 1)


@st.composite
def composed_linear_spec_texts(draw, dims=(1, 2), boundaries=BOUNDARIES,
                               schemes=COMPOSED_SCHEMES, sizes_1d=(8, 16, 64, 512, 4096),
                               sides_2d=(8, 12, 16), steps: int = 200) -> tuple[str, dict]:
    """A linear, constant-coefficient equation built by composition — sums of nested
    laplace/diff words (even derivatives: symmetric stencils, so every boundary has a
    spectral basis) with signed coefficients and parameters, zero-order parts that grow or
    decay, anti-diffusion — split into one or two terms, with implicit parts where the
    scheme takes them, on a 1-D grid of 8 to 4096 tokens or a 2-D grid, every boundary;
    Δt drawn from 1e-3× to 1e3× a rough bound, ``steps`` steps.  Returns (text, facts of
    the draw)."""
    d = draw(st.sampled_from(tuple(dims)))
    boundary = draw(st.sampled_from(tuple(boundaries)))
    h = draw(st.sampled_from([0.5, 1.0]))
    axes = ["x"] if d == 1 else ["x", "y"]
    words = COMPOSED_WORDS_1D if d == 1 else COMPOSED_WORDS_2D
    count = draw(st.integers(1, 3))
    chosen = draw(st.lists(st.sampled_from(words), min_size=count, max_size=count,
                           unique=True))
    pieces, scale = [], 0.0
    for word in chosen:
        a, b = draw(st.permutations(axes))[0], draw(st.sampled_from(axes))
        text = word.format(a=a, b=b if b != a or d == 1 else axes[-1])
        # each word's dissipative sign (+ for second derivatives, − for fourth and for u),
        # flipped one time in three: growth (+u) and anti-diffusion (−Δ, +Δ²)
        fourth = "laplace(laplace" in text or ", 4)" in text or "diff(diff" in text \
            or "diff(laplace" in text
        dissipative = -1 if (fourth or text == "u") else 1
        sign = dissipative * draw(st.sampled_from([1, 1, -1]))
        magnitude = draw(st.sampled_from(["0.25", "0.5", "K", "1.5"]))
        pieces.append(f"{'-' if sign < 0 else ''}{magnitude} * {text}")
        scale += 1.5 * _word_scale(text, h, d)
    scheme = draw(st.sampled_from(tuple(schemes)))
    split = scheme in ("lie", "strang", "imex_euler", "imex_ars222") and len(pieces) > 1
    if split:
        cut = draw(st.integers(1, len(pieces) - 1))
        terms = {"first": " + ".join(pieces[:cut]), "second": " + ".join(pieces[cut:])}
    else:
        terms = {"lin": " + ".join(pieces)}
    implicit: list[str] = []
    stiff = [t for t, body in terms.items() if "laplace" in body or "diff" in body]
    if scheme in ("imex_euler", "imex_ars222") and not stiff:
        scheme = "rk4"  # nothing to treat implicitly: an explicit scheme instead
    if scheme in ("imex_euler", "imex_ars222"):
        if len(terms) == 1:
            terms["decay"] = "-0.125 * u"
        implicit = [draw(st.sampled_from(stiff))]
    elif scheme in ("lie", "strang") and stiff and draw(st.booleans()):
        implicit = [draw(st.sampled_from(stiff))]
    if d == 1:
        n = draw(st.sampled_from(tuple(sizes_1d)))
        shape = [n]
    else:
        shape = [draw(st.sampled_from(tuple(sides_2d))) for _ in range(2)]
    factor = 10 ** draw(st.sampled_from([-3.0, -1.0, -0.3, 0.3, 1.0, 3.0]))
    dt = factor / scale
    lines = ["pdelang: 1", "name: composed", "grid:", f"  axes: {_yaml_list(axes)}",
             f"  shape: {_yaml_list(shape)}", f"  spacing: {h}", f"  boundary: {boundary}",
             "fields:", "  u: {channels: 1}", "parameters:", "  K: 0.75", "terms:"]
    lines += [f'  {name}: "{body}"' for name, body in terms.items()]
    lines.append("equation: dt(u) = " + " + ".join(terms))
    lines += ["time:", f"  span: [0, {dt * steps!r}]", "  layers: 1", f"  substeps: {steps}",
              f"  scheme: {scheme}"]
    if implicit:
        lines.append(f"  implicit: {_yaml_list(implicit)}")
    lines += ["discretization:", f"  laplace: {{accuracy: {draw(st.sampled_from([2, 4]))}}}",
              f"  diff: {{accuracy: {draw(st.sampled_from([2, 4]))}}}"]
    return "\n".join(lines) + "\n", {"dt": dt, "steps": steps, "scheme": scheme,
                                     "implicit": implicit, "shape": shape,
                                     "boundary": boundary}
