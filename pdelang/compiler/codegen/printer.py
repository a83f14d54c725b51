"""Stage ``print``: discrete IR → Python source of one standalone ``nn.Module``.

:class:`TorchPrinter` is strict: it prints exactly the node types of the discrete IR and
raises on anything else.  The output imports only torch and the standard library, is
byte-identical for the same spec, and passes ``ruff check``.
"""

from __future__ import annotations

import re
import textwrap
from fractions import Fraction

from pdelang.version import __version__
from pdelang.compiler.codegen import names as N
from pdelang.compiler.codegen import runtime as R
from pdelang.compiler.codegen.text import comment_text, docstring_text, first_lines_text
from pdelang.compiler.discrete import ir as D
from pdelang.compiler.operators import OPERATORS, MissingHandler
from pdelang.compiler.schemes import program as P

_PRECEDENCE = {"sum": 1, "product": 2, "neg": 3, "power": 4, "atom": 5}


implicit_method = N.implicit_method  # the generated names live in pdelang.compiler.codegen.names


def _float(value) -> str:
    return repr(float(value))


def _literal(value, indent: int) -> str:
    """A deterministic, indented Python literal (dicts sorted by key)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}    {k!r}: {_literal(v, indent + 4)}," for k, v in sorted(value.items())]
        return "{\n" + "\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v, indent) for v in value)
        return f"[{inner}]"
    return repr(value)


class TorchPrinter:
    """Prints a :class:`~pdelang.compiler.discrete.ir.DiscreteModel` as PyTorch source."""

    def __init__(self, model: D.DiscreteModel) -> None:
        self.m = model
        self.shared = {p.name for p in model.parameters if not p.per_layer}
        self.layer_name = model.class_name[: -len("Stepper")] + "Layer"

    # ------------------------------------------------------------------ expressions
    def expr(self, node: D.DExpr) -> tuple[str, int]:
        """(source, precedence) of an expression node."""
        if isinstance(node, D.State):
            return "u", _PRECEDENCE["atom"]
        if isinstance(node, D.Const):
            text = _float(node.value)
            return text, (_PRECEDENCE["neg"] if text.startswith("-") else _PRECEDENCE["atom"])
        if isinstance(node, D.Param):
            owner = "p" if node.name in self.shared else "self"
            return f"{owner}.{node.name}", _PRECEDENCE["atom"]
        if isinstance(node, D.Sum):
            parts = []
            for i, term in enumerate(node.terms):
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
                exp_text = _float(exponent)
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

    # ------------------------------------------------------------------ module pieces
    def header(self) -> list[str]:
        m = self.m
        facts = m.facts
        lines = [
            f"# Generated by pdelang {__version__} from {first_lines_text(m.spec_file)} — do not "
            "edit.",
            f"# spec sha256: {m.spec_sha256}",
            f"# {m.name}: {comment_text(m.description)}" if m.description else f"# {m.name}",
            f"# equation: {comment_text(m.equation)}",
        ]
        for term, fact in zip(m.terms, facts.get("terms", [])):
            kind = ("linear" if fact["linear"] else "nonlinear") + ", " + (
                "local" if fact["local"] else "non-local")
            lines.append(f"#   {term.name}: {kind}, differential order {fact['order']}")
        program = m.program
        order = ""
        if program.is_splitting:
            order = " (" + ", ".join(
                term + ("" if fraction == 1 else f"·{fraction}")
                for term, fraction in program.sub_steps) + ")"
        lines.append(f"# scheme: {program.scheme}{order}; Δt = {m.dt!r}; {m.layers} layers × "
                     f"{m.substeps} substeps")
        if program.implicit:
            how = "exact flows" if program.is_splitting else "implicit stages"
            lines.append(f"# implicit ({how}): {', '.join(program.implicit)}")
        norm = m.norm
        norm_text = "none" if norm.kind == "none" else (
            f"{norm.kind} ({norm.placement}, eps={norm.eps!r}"
            f"{', final' if norm.final else ''}) on {', '.join(m.normalized_terms) or 'no term'}")
        lines.append(f"# stabilizers: residual {'on' if m.residual else 'off'}; norm {norm_text}")
        lines.append(f"# grid: {list(m.axes)}"
                     f"{' shape ' + str(list(m.shape)) if m.shape else ''}, h = {m.spacing!r}, "
                     f"boundary {m.boundary}, {m.extra_tokens} extra tokens")
        for key, s in facts.get("stencils", {}).items():
            lines.append(f"# stencil {key}: offsets {s['offsets']}, weights "
                         f"[{', '.join(s['weights'])}] / h^{s['derivative']}, "
                         f"accuracy {s['accuracy']}, order {s['order']}")
            lines.append(f"#   leading error: {s['leading_error']}")
        st = facts.get("stability")
        verdicts = {"stable": "stable", "unstable": "UNSTABLE", "unknown": "of unknown stability",
                    "no_stable_dt": "UNSTABLE (no Δt is stable)"}
        if st and st["max_stable_dt"] is not None:
            formula = f" = {st['formula']}" if st.get("formula") else ""
            lines.append(f"# stability: max stable Δt{formula} = {st['max_stable_dt']:.6g} "
                         f"(von Neumann, {st['scheme']}); Δt = {st['dt']!r} is "
                         f"{verdicts[st['verdict']]}")
        elif st and program.implicit and not st["method"].startswith("none"):
            lines.append(f"# stability: no step size is too large (von Neumann, "
                         f"{st['scheme']}, implicit {', '.join(program.implicit)})")
        # every header line is one comment line: whatever text it carries (names, the
        # equation, derived formulas) cannot break out of it (the file name and the
        # description were escaped already; escaping is idempotent on printable text)
        return [lines[0]] + [comment_text(line) for line in lines[1:]]

    def constants(self) -> list[str]:
        m = self.m
        return [
            f"T0 = {m.t0!r}  # t0: layer ℓ acts on [T0 + ℓ·SUBSTEPS·DT, T0 + (ℓ+1)·SUBSTEPS·DT)",
            f"DT = {m.dt!r}  # (t1 − t0) / (layers × substeps)",
            f"LAYERS = {m.layers}",
            f"SUBSTEPS = {m.substeps}",
            f"CHANNELS = {m.channels}",
            f"EXTRA_TOKENS = {m.extra_tokens}  # tokens before the grid: attention only",
            f"GRID_SHAPE = {tuple(m.shape) if m.shape and len(m.axes) == 2 else None!r}",
            f"STENCIL_RADIUS = {m.stencil_radius}"
            "  # ghost tokens each stencil reads beyond an end",
            f"CAUSAL = {m.causal!r}",
        ] + ([f"BOUNDARY = {m.boundary!r}  # the grid's boundary rule"]
             if m.implicit or any("BOUNDARY" in OPERATORS[mod.op].runtime_constants
                                  for mod in m.modules) else []) + [
            f"{c.name} = {c.value!r}  # {c.definition} ({m.program.scheme})"
            for c in m.program.constants]

    def stencil_class(self) -> list[str]:
        return R.stencil(len(self.m.axes), self.m.boundary)  # runtime/stencil_*.py

    def hold_border(self) -> list[str]:
        return R.hold_border(len(self.m.axes))  # runtime/hold_border_*d.py

    def norm_constructor(self, kind: str, eps: float, affine: bool) -> str:
        return OPERATORS[kind].torch_norm(eps, affine)

    def module_constructor(self, module: D.OperatorModule) -> str:
        return OPERATORS[module.op].torch_module(module)

    def scalar_lines(self, params, indent: str) -> list[str]:
        lines = []
        for p in params:
            if p.basis:
                values = ", ".join(repr(c) for c in p.coefficients)
                lines.append(f"{indent}self.{N.coefficients(p.name)} = "
                             f"nn.Parameter(torch.tensor([{values}]))")
            elif p.learnable:
                lines.append(f"{indent}self.{p.name} = nn.Parameter(torch.tensor({p.value!r}))")
                if p.positive:
                    lines.append(f"{indent}parametrize.register_parametrization(self, "
                                 f"{p.name!r}, Positive())")
            else:
                lines.append(f"{indent}self.register_buffer({p.name!r}, "
                             f"torch.tensor({p.value!r}))")
        return lines

    @staticmethod
    def scalar_class_lines(name: str, doc: str, params) -> list[str]:
        """The head of a class that holds these scalars: ``SpecScalars`` with their exact
        values (which a ``.double()`` module holds bit for bit), or a plain ``nn.Module``."""
        if not params:
            return [f"class {name}(nn.Module):", f'    """{doc}"""', ""]
        head = "    _spec_values: ClassVar[dict[str, float | tuple[float, ...]]] = {" \
            if any(p.basis for p in params) else "    _spec_values: ClassVar[dict[str, float]] = {"
        values = [f"{N.coefficients(p.name)!r}: {p.coefficients!r}" if p.basis
                  else f"{p.name!r}: {p.value!r}" for p in params]
        table = [head + ", ".join(values) + "}"]
        if len(table[0]) > LINE_WIDTH:  # one scalar a line
            table = [head] + [f"        {value}," for value in values] + ["    }"]
        return [f"class {name}(SpecScalars):", f'    """{doc}"""', "", *table, ""]

    def shared_class(self) -> list[str]:
        shared = [p for p in self.m.parameters if not p.per_layer]
        lines = self.scalar_class_lines("SharedParameters", "Scalar coefficients shared by "
                                        "every layer.", shared) + [
            "    def __init__(self) -> None:",
            "        super().__init__()",
        ]
        lines += self.scalar_lines(shared, " " * 8)
        basis = [p for p in shared if p.basis]
        if not basis:
            return lines
        lines += [
            f"        self.{N.DEPTH} = -1.0  # depth t as s = 2(t − T0)/(T1 − T0) − 1 ∈ [−1, 1]",
            "",
            f"    def {N.AT}(self, t: float) -> None:",
            '        """Evaluate the depth-dependent coefficients at depth t from now on."""',
            f"        self.{N.DEPTH} = 2.0 * (float(t) - T0) / (LAYERS * SUBSTEPS * DT) - 1.0",
        ]
        for p in basis:
            lines += [
                "",
                "    @property",
                f"    def {p.name}(self) -> torch.Tensor:",
                f'        """{p.name}(t) = Σ_k c_k P_k(s), k < {p.basis[1]} (Legendre), at the '
                'depth set by at()."""',
                f"        return legendre_series(self.{N.coefficients(p.name)}, self.{N.DEPTH})",
            ]
        return lines

    def term_method(self, term: D.DiscreteTerm) -> list[str]:
        source = self.field(term.expr)
        return [
            f"    def {N.term_method(term.name)}(",
            "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
            "    ) -> torch.Tensor:",
            f'        """The {term.name} term of the vector field: (B, N, C) → (B, N, C)."""',
            f"        return {source}",
        ]

    def _vector_field(self, term: str, state: str) -> str:
        """``self.f_t(x, ctx, p)``, with the term's pre-norm applied to x if it has one."""
        norm = self.m.program.pre_norms.get(term)
        arg = f"self.{norm}({state})" if norm else state
        return f"self.{N.term_method(term)}({arg}, ctx, p)"

    def _rate_method(self, terms: tuple[str, ...]) -> str | None:
        """The generated method that sums several terms' vector fields (None for one)."""
        return N.rate_method(terms, self.m.program)

    @staticmethod
    def _implicit_method(kind: str, terms: tuple[str, ...]) -> str:
        return implicit_method(kind, terms)

    def rate_methods(self) -> list[str]:
        lines = []
        seen = set()
        for ins in self.m.program.instructions:
            if not isinstance(ins, P.Rate):
                continue
            name = self._rate_method(ins.terms)
            if name is None or name in seen:
                continue
            seen.add(name)
            total = " + ".join(self._vector_field(t, "u") for t in ins.terms)
            what = "whole vector field" if name == N.RHS else "vector field of " + \
                ", ".join(ins.terms)
            lines += [
                "",
                f"    def {name}(",
                "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
                "    ) -> torch.Tensor:",
                f'        """The {what} F(u) = Σ_terms f(u)."""',
                f"        return {total}",
            ]
        if self.m.program.ode_obstacle is None and N.RHS not in seen:
            # the continuous-depth limit's vector field (Stepper.rate), for every scheme
            total = " + ".join(self._vector_field(t, "u") for t in self.m.program.terms)
            lines += [
                "",
                f"    def {N.RHS}(",
                "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
                "    ) -> torch.Tensor:",
                '        """The whole vector field F(u) = Σ_terms f(u) (pre-norms inside): '
                'the',
                '        right-hand side of the ODE this layer\'s steps converge to as Δt → 0."""',
                f"        return {total}",
            ]
        return lines

    def implicit_methods(self) -> list[str]:
        """``solve_<t>`` / ``flow_<t>`` for the terms the program treats implicitly."""
        m = self.m
        lines = []
        seen = set()
        for ins in m.program.instructions:
            if not isinstance(ins, (P.Solve, P.Flow)):
                continue
            kind = "solve" if isinstance(ins, P.Solve) else "flow"
            name = self._implicit_method(kind, ins.terms)
            if name in seen:
                continue
            seen.add(name)
            parts, zero, composed = [], [], False
            for term in ins.terms:
                implicit = m.implicit_term(term)
                for coefficient, word in implicit.parts:
                    # a word of one stencil prints as the stencil, a longer one as a tuple
                    stencils = [f"self.{m.stencils[key].attribute}" for key in word]
                    composed = composed or len(stencils) > 1
                    printed = stencils[0] if len(stencils) == 1 else \
                        f"({', '.join(stencils)})"
                    parts.append(f"({self.expr(coefficient)[0]}, {printed})")
                zero.append(self.expr(implicit.zero_order)[0])
            zero_order = " + ".join(z for z in zero if z != "0.0") or "0.0"
            comment = ("# (c_w, (S_w1, S_w2, …)): L = c₀ + Σ c_w S_w1 S_w2 ⋯" if composed
                       else "# (c_i, S_i): L = c₀ + Σ c_i S_i")
            assignment = [f"        parts = ({', '.join(parts)},)  {comment}"]
            if len(assignment[0]) > 100:  # one part a line
                assignment = [f"        parts = (  {comment}"] + \
                    [f"            {part}," for part in parts] + ["        )"]
            doc = ('"""(I − scale·L)⁻¹ x' if kind == "solve" else '"""exp(scale·L) x') + \
                f", L the linear part of {', '.join(ins.terms)}: (B, N, C) → (B, N, C)." + '"""'
            lines += [
                "",
                f"    def {name}(",
                "        self, x: torch.Tensor, scale: float, ctx: Context, p: SharedParameters",
                "    ) -> torch.Tensor:",
                f"        {doc}",
                *assignment,
                f"        return self.{N.IMPLICIT}.{kind}(x, scale, parts, {zero_order}, ctx)",
            ]
        return lines

    def step_lines(self) -> list[str]:
        program = self.m.program
        lines = ["    def forward(",
                 "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
                 "    ) -> torch.Tensor:"]
        if program.is_splitting and not program.implicit:
            lines.append('        """One splitting step: each term in turn advances the state '
                         'by an')
            lines.append('        explicit Euler sub-step of its own vector field."""')
        elif program.is_splitting:
            lines.append('        """One splitting step: each term in turn advances the state '
                         'by a')
            lines.append('        sub-step of its own: an explicit Euler step, or the exact flow '
                         f'of {", ".join(program.implicit)}."""')
        else:
            kind = "explicit Runge–Kutta" if program.kind == "runge_kutta" else \
                f"IMEX Runge–Kutta, implicit in {', '.join(program.implicit)}"
            lines.append(f'        """One {program.scheme} step ({kind})."""')
        lines += StepPrinter(self).lines()
        lines.append("        return u")
        return lines

    def layer_class(self) -> list[str]:
        m = self.m
        per_layer = [p for p in m.parameters if p.per_layer]
        lines = self.scalar_class_lines(self.layer_name, "The weights of one layer (one unit "
                                        "of depth) and its time step.", per_layer) + [
            "    def __init__(self) -> None:",
            "        super().__init__()",
        ]
        for stencil in m.stencils.values():
            weights = ", ".join(repr(w) for w in stencil.scaled_weights())
            dims = tuple(a + 1 for a in stencil.axes)
            lines.append(f"        self.{stencil.attribute} = Stencil({stencil.offsets!r}, "
                         f"({weights},), {dims!r})")
        for module in m.modules:
            lines.append(f"        self.{module.name} = {self.module_constructor(module)}")
        for norm in m.program.norms:
            lines.append(f"        self.{norm.name} = "
                         f"{self.norm_constructor(m.norm.kind, m.norm.eps, m.norm.affine)}")
        if m.implicit:
            lines.append(f"        self.{N.IMPLICIT} = ImplicitLinear()  # (I − aL)⁻¹, exp(aL)")
        lines += self.scalar_lines(per_layer, " " * 8)
        for term in m.terms:
            lines.append("")
            lines += self.term_method(term)
        lines += self.rate_methods()
        lines += self.implicit_methods()
        lines.append("")
        lines += self.step_lines()
        return lines

    def stepper_class(self) -> list[str]:
        m = self.m
        structure = _literal(m.structure(), 4)
        final = ""
        if m.norm.final and m.norm.kind != "none":
            final = self.norm_constructor(m.norm.kind, m.norm.eps, m.norm.affine)
        lines = [
            f"class {m.class_name}(nn.Module):",
            f'    """{m.name}: integrates {docstring_text(m.equation)}',
            "",
            f"    from t0 to t1 in LAYERS × SUBSTEPS steps of Δt = {m.dt!r}; layer ℓ's weights "
            "drive",
            '    steps ℓ·SUBSTEPS … (ℓ+1)·SUBSTEPS − 1."""',
            "",
            f"    {N.STRUCTURE}: ClassVar[dict] = {structure}",
            "",
            "    def __init__(self) -> None:",
            "        super().__init__()",
            f"        self.{N.SHARED} = SharedParameters()",
        ]
        if m.tied:
            lines += [f"        tied = {self.layer_name}()  # time.tied: one weight set for every "
                      "layer",
                      f"        self.{N.LAYERS} = nn.ModuleList([tied] * LAYERS)"]
        else:
            lines.append(f"        self.{N.LAYERS} = "
                         f"nn.ModuleList([{self.layer_name}() for _ in range(LAYERS)])")
        timed = any(p.basis for p in m.parameters)
        if final:
            lines.append(f"        self.{N.FINAL_NORM} = {final}")
        lines += [
            "",
            "    def forward(",
            "        self,",
            "        u: torch.Tensor,",
            "        mask: torch.Tensor | None = None,",
            "        *,",
            "        return_trajectory: bool = False,",
            "        return_attention: bool = False,",
            "    ):",
            '        """u: (B, N, C) initial state; mask: (B, N), 1 for real tokens '
            '(padding last).',
            "",
            "        Returns the final state (B, N, C), or a StepperOutput with the states at",
            "        every layer boundary and the attention maps when either is requested.",
            '        """',
            "        ctx = Context(u, mask, record=return_attention)",
            "        states = [u]",
            f"        for index, layer in enumerate(self.{N.LAYERS}):",
            "            ctx.layer = index",
            *(["            for substep in range(SUBSTEPS):",
                "                # the depth-dependent coefficients at the step's midpoint",
                f"                self.{N.SHARED}.at(T0 + (index * SUBSTEPS + substep + 0.5) * DT)"]
              if timed else ["            for _ in range(SUBSTEPS):"]),
            f"                u = layer(u, ctx, self.{N.SHARED})",
            "            states.append(u)",
        ]
        lines.append(f"        state = self.{N.FINAL_NORM}(u)" if final else "        state = u")
        lines += [
            "        if return_trajectory or return_attention:",
            "            return StepperOutput(state, states, ctx.attentions)",
            "        return state",
        ]
        if m.program.ode_obstacle is None:
            lines += self.rate_lines(timed)
        return lines

    @staticmethod
    def rate_lines(timed: bool = False) -> list[str]:
        """``Stepper.rate(t, u)``: the vector field of the continuous-depth limit, for an
        ODE solver (``torchdiffeq.odeint(lambda t, u: stepper.rate(t, u), …)``)."""
        return [
            "",
            f"    def {N.RATE}(",
            "        self,",
            "        t: float | torch.Tensor,",
            "        u: torch.Tensor,",
            "        mask: torch.Tensor | None = None,",
            "        *,",
            "        layer: int | None = None,",
            "    ) -> torch.Tensor:",
            '        """f(t, u) of the continuous-depth limit du/dt = f(t, u) that the steps '
            'converge',
            "        to as SUBSTEPS → ∞: layer ℓ's whole vector field (pre-norms inside, no final",
            "        norm) on [T0 + ℓ·SUBSTEPS·DT, T0 + (ℓ+1)·SUBSTEPS·DT).  ``layer`` pins ℓ — "
            "an",
            "        adaptive solver on one layer's closed interval must not switch weights at its",
            "        right end.  u: (B, N, C) → (B, N, C).",
            '        """',
            "        if layer is None:",
            "            index = int((float(t) - T0) // (DT * SUBSTEPS))",
            "            layer = min(max(index, 0), LAYERS - 1)",
            "        ctx = Context(u, mask, record=False)",
            "        ctx.layer = layer",
            *([f"        self.{N.SHARED}.at(t)  # the depth-dependent coefficients at t"]
              if timed else []),
            f"        return self.{N.LAYERS}[layer].{N.RHS}(u, ctx, self.{N.SHARED})",
        ]

    # ------------------------------------------------------------------ whole module
    def print_module(self) -> str:
        m = self.m
        ops = {mod.op for mod in m.modules}
        uses_param = any(p.learnable and p.positive for p in m.parameters)
        blocks: list[list[str]] = []
        doc = [f'"""{m.class_name}: a pdelang time-stepper (generated — do not edit)."""']
        imports = R.HEADER_IMPORTS
        if uses_param:
            imports = imports.replace(
                "from torch import nn\n",
                "from torch import nn\nfrom torch.nn.utils import parametrize\n")
        blocks.append(self.header() + [""] + doc)
        blocks.append(imports.rstrip("\n").splitlines())
        blocks.append(self.constants())
        used = [op for op in OPERATORS.values() if op.name in ops]  # registry order
        for op in used:
            constants = op.torch_constants([mod for mod in m.modules if mod.op == op.name])
            if constants:
                blocks.append(constants)
        blocks.append(R.OUTPUT.rstrip("\n").splitlines())
        blocks.append(R.CONTEXT.rstrip("\n").splitlines())
        blocks.append((R.GRID_LENGTHS_2D if len(m.axes) == 2 else R.GRID_LENGTHS_1D)
                      .rstrip("\n").splitlines())
        if uses_param:
            blocks.append(R.POSITIVE.rstrip("\n").splitlines())
        if m.parameters:  # their exact values in every dtype
            blocks.append(R.SPEC_SCALARS.rstrip("\n").splitlines())
        if any(p.basis for p in m.parameters):
            blocks.append(R.block_lines("basis", "legendre_series"))
        if m.stencil_radius or any(op.reads_ghosts for op in used):  # stencils, learned ones
            blocks.append(R.GHOSTS[m.boundary].rstrip("\n").splitlines())
            blocks.append(R.TAKE.rstrip("\n").splitlines())
            blocks.append(R.RAGGED_VALUE[m.boundary].rstrip("\n").splitlines())
            if m.boundary == "copy":
                blocks.append(self.hold_border())
        if m.stencils:
            blocks.append(R.EXACT_BUFFERS.rstrip("\n").splitlines())
            blocks.append(self.stencil_class())
        if m.implicit:
            blocks.append(R.block_lines("implicit", "ImplicitLinear"))
        for op in used:
            for module, name in op.runtime_blocks:
                blocks.append(R.block_lines(module, name))
        blocks.append(self.shared_class())
        blocks.append(self.layer_class())
        blocks.append(self.stepper_class())
        blocks.append([f"Stepper = {m.class_name}"])
        out = []
        for i, block in enumerate(blocks):
            if i:
                is_def = block and block[0].startswith(("class ", "def "))
                prev_def = blocks[i - 1] and blocks[i - 1][0].startswith(("class ", "def "))
                out.append("\n\n" if (is_def or prev_def) else "\n")
            out.append("\n".join(block) + "\n")
        text = fit_lines("".join(out))
        if "parametrize" not in text.split("class SharedParameters")[1]:
            text = text.replace("from torch.nn.utils import parametrize\n", "")
        functional = "import torch.nn.functional as F\n"
        if not re.search(r"(?<![\w.])F\.", text.split(functional, 1)[-1]):
            text = text.replace(functional, "")  # e.g. linear and norm terms only
        return text


_FRACTIONS = {Fraction(1): "", Fraction(1, 2): "½", Fraction(1, 3): "⅓", Fraction(1, 4): "¼"}


class StepPrinter:
    """Prints the step program as the body of the layer's ``forward``: one line per state
    update, registers used once by the next instruction inlined (``u = u + DT * self.f(u)``),
    a post-projection wrapped around the update it follows, Δt as ``DT`` (left out where it
    multiplies by exactly Δt = 1: ``u = u + self.f(u)``)."""

    def __init__(self, printer: TorchPrinter) -> None:
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
        for part in combination.parts:
            register = self.pending.pop(part.register, part.register)
            operand = register if _is_atom(register) else f"({register})"
            if part.dt:
                sign, scale = self.scaled_dt(part.coefficient)
                if scale == "DT" and self.printer.m.dt == 1.0:
                    # Δt = 1 (a Transformer layer): 1·x is x exactly, and skipping the
                    # multiply saves a full pass over the state per update
                    pieces.append((sign, register))
                else:
                    pieces.append((sign, f"{scale} * {operand}"))
                continue
            sign, magnitude = P.signed(part.coefficient)
            if magnitude.rational == 1:
                pieces.append((sign, register))
            else:
                value = repr(float(magnitude.rational)) if magnitude.rational is not None \
                    else f"({magnitude})"
                pieces.append((sign, f"{value} * {operand}"))
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
        term, fraction = program.sub_steps[self.sub_step]
        self.sub_step += 1
        frac = _FRACTIONS.get(fraction, f"{fraction}·")
        if term in program.implicit:
            body = f"exp({frac}Δt·L_{term}) u" + ("" if m.residual else " − u")
        else:
            arg = "P u" if term in program.pre_norms else "u"
            body = ("u + " if m.residual else "") + f"{frac}Δt·f_{term}({arg})"
        return f"  # u ← {'P(' + body + ')' if projected else body}"

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
            out.append(f"        {ins.target} = {value}{comment}")
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
    """Whether ``text`` needs no parentheses as a factor (a name or one call)."""
    if text.replace("_", "").isalnum():
        return True
    return text.endswith(")") and _matching_close(text, text.index("(")) == len(text) - 1 \
        and text[: text.index("(")].replace(".", "").replace("_", "").isalnum()


LINE_WIDTH = 99


def _top_level_split(text: str, separators: tuple[str, ...]) -> list[str]:
    """Split at separators outside brackets and string literals (kept at the piece's start
    for operators, dropped for commas)."""
    pieces, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for sep in separators:
                if text.startswith(sep, i):
                    pieces.append(text[start:i])
                    start = i + (len(sep) if sep == ", " else 1)
                    i += len(sep) - 1
                    break
        i += 1
    pieces.append(text[start:])
    return [piece.strip() for piece in pieces]


def _matching_close(text: str, open_at: int) -> int:
    depth, quote = 0, None
    for i in range(open_at, len(text)):
        c = text[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _trailing_comment(code: str) -> int | None:
    """Index of a '#' that starts a comment after code (outside string literals)."""
    quote = None
    for i, c in enumerate(code):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and i > 0:
            return i
    return None


def _fit_line(line: str, width: int = LINE_WIDTH) -> list[str]:
    """Break one generated line that is wider than ``width`` the way a formatter would:
    comments re-flowed, calls and tuples one argument per line, long sums in parentheses."""
    if len(line) <= width:
        return [line]
    indent = line[:len(line) - len(line.lstrip())]
    body = line.strip()
    if body.startswith("#"):
        marker = re.match(r"#\s*", body).group(0)
        return textwrap.wrap(body[len(marker):], width, initial_indent=indent + marker,
                             subsequent_indent=indent + marker + "    ",
                             break_long_words=False, break_on_hyphens=False) or [line]
    comment_at = _trailing_comment(body)
    if comment_at is not None:
        # a long line with a trailing comment: the comment goes on its own line above
        return (_fit_line(indent + body[comment_at:].lstrip(), width)
                + _fit_line(indent + body[:comment_at].rstrip(), width))
    trailing = "," if body.endswith(",") else ""
    core = body[:-1] if trailing else body
    # a call or tuple that closes at the end of the line: one argument per line
    for open_at, c in enumerate(core):
        if c in "([" and _matching_close(core, open_at) == len(core) - 1:
            head = core[:open_at].partition(" = ")[2] or core[:open_at]
            if len(_top_level_split(head.removeprefix("return "), (" + ", " - "))) > 1:
                break  # the call is the last summand of a long sum: break the sum instead
            inner = core[open_at + 1:-1]
            args = [a for a in _top_level_split(inner, (", ",)) if a.rstrip(",")]
            before = core[open_at - 1] if open_at else " "
            grouping = not (before.isalnum() or before in "_)]")
            if c == "(" and len(args) == 1:
                # one argument (or grouping parentheses, where a trailing comma would make a
                # tuple): break a long sum before each + or -, inside the parentheses
                terms = _top_level_split(args[0], (" + ", " - "))
                if len(terms) > 1:
                    return ([indent + core[:open_at + 1]]
                            + [f"{indent}    {t}" for t in terms] + [indent + ")" + trailing])
                if grouping:
                    break
            if len(args) < 2 and "(" not in inner:
                break
            out = [indent + core[:open_at + 1]]
            for arg in args:
                out += _fit_line(indent + "    " + arg.rstrip(",") + ",", width)
            return out + [indent + core[-1] + trailing]
    # an assignment of a long sum: parenthesise and break before each + or -
    target, eq, value = core.partition(" = ")
    if not eq and core.startswith("return "):
        target, eq, value = "return", " ", core[len("return "):]
    if eq:
        terms = _top_level_split(value, (" + ", " - "))
        if len(terms) > 1:
            # the pieces after the first keep their leading operator ("+ 0.5 * k2")
            out = [f"{indent}{target}{eq}("] + [f"{indent}    {t}" for t in terms]
            return out + [f"{indent}){trailing}"]
    return [line]


def fit_lines(text: str, width: int = LINE_WIDTH) -> str:
    """Apply :func:`_fit_line` to every line outside triple-quoted strings."""
    out, in_string = [], False
    for line in text.split("\n"):
        if in_string or '"""' in line:
            out.append(line)
            if line.count('"""') % 2 == 1:
                in_string = not in_string
            continue
        out.extend(_fit_line(line, width))
    return "\n".join(out)


def print_module(model: D.DiscreteModel) -> str:
    """The generated module's source for a discrete model."""
    return TorchPrinter(model).print_module()
