"""Stage ``print``: discrete IR → Python source of one standalone ``nn.Module``.

:class:`TorchPrinter` is strict: it prints exactly the node types of the discrete IR and
raises on anything else.  The output imports only torch and the standard library, is
byte-identical for the same spec, and passes ``ruff check``.
"""

from __future__ import annotations

import re
import textwrap
from fractions import Fraction

from pdelang import __version__
from pdelang.codegen import runtime as R
from pdelang.discrete import ir as D

_PRECEDENCE = {"sum": 1, "product": 2, "neg": 3, "power": 4, "atom": 5}


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
    """Prints a :class:`~pdelang.discrete.ir.DiscreteModel` as PyTorch source."""

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
            func = {"tanh": "torch.tanh", "exp": "torch.exp", "relu": "torch.relu",
                    "gelu": "F.gelu", "sigmoid": "torch.sigmoid"}[node.func]
            return f"{func}({self.field(node.operand)})", _PRECEDENCE["atom"]
        if isinstance(node, D.ApplyStencil):
            attribute = self.m.stencils[node.stencil].attribute
            return f"self.{attribute}({self.field(node.operand)}, ctx)", _PRECEDENCE["atom"]
        if isinstance(node, D.ApplyModule):
            operand = self.field(node.operand)
            if node.op == "attention":
                return f"self.{node.module}({operand}, ctx)", _PRECEDENCE["atom"]
            return f"self.{node.module}({operand})", _PRECEDENCE["atom"]
        raise TypeError(f"TorchPrinter cannot print {type(node).__name__}: {node!r}")

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
            f"# Generated by pdelang {__version__} from {m.spec_file} — do not edit.",
            f"# spec sha256: {m.spec_sha256}",
            f"# {m.name}: {m.description}" if m.description else f"# {m.name}",
            f"# equation: {m.equation}",
        ]
        for term, fact in zip(m.terms, facts.get("terms", [])):
            kind = ("linear" if fact["linear"] else "nonlinear") + ", " + (
                "local" if fact["local"] else "non-local")
            lines.append(f"#   {term.name}: {kind}, differential order {fact['order']}")
        program = m.program
        order = ""
        if program.is_splitting:
            order = " (" + ", ".join(
                f"{s.term}" + ("" if s.fraction == 1 else f"·{s.fraction}") for s in
                program.split_steps) + ")"
        lines.append(f"# scheme: {program.scheme}{order}; Δt = {m.dt!r}; {m.layers} layers × "
                     f"{m.substeps} substeps")
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
        if st and st["max_stable_dt"] is not None:
            formula = f" = {st['formula']}" if st.get("formula") else ""
            lines.append(f"# stability: max stable Δt{formula} = {st['max_stable_dt']:.6g} "
                         f"(von Neumann, {st['scheme']}); Δt = {st['dt']!r} is "
                         f"{'stable' if st['stable'] else 'UNSTABLE'}")
        return lines

    def constants(self) -> list[str]:
        m = self.m
        return [
            f"DT = {m.dt!r}  # (t1 − t0) / (layers × substeps)",
            f"LAYERS = {m.layers}",
            f"SUBSTEPS = {m.substeps}",
            f"CHANNELS = {m.channels}",
            f"EXTRA_TOKENS = {m.extra_tokens}  # tokens before the grid: attention only",
            f"GRID_SHAPE = {tuple(m.shape) if m.shape and len(m.axes) == 2 else None!r}",
            f"STENCIL_RADIUS = {max((s.radius for s in m.stencils.values()), default=0)}"
            "  # ghost tokens each stencil reads beyond an end",
            f"CAUSAL = {m.causal!r}",
        ]

    def stencil_class(self) -> list[str]:
        return R.stencil(len(self.m.axes), self.m.boundary)  # runtime/stencil_*.py

    def hold_border(self) -> list[str]:
        return R.hold_border(len(self.m.axes))  # runtime/hold_border_*d.py

    def norm_constructor(self, kind: str, eps: float, affine: bool) -> str:
        cls = {"layernorm": "nn.LayerNorm", "rmsnorm": "nn.RMSNorm"}[kind]
        return f"{cls}(CHANNELS, eps={eps!r}, elementwise_affine={affine!r})"

    def module_constructor(self, module: D.OperatorModule) -> str:
        o = module.options
        if module.op == "attention":
            return (f"Attention(CHANNELS, {o['heads']}, causal={o['causal']!r}, "
                    f"kernel={o['kernel']!r}, iterations={o['iterations']}, bias={o['bias']!r})")
        if module.op == "mlp":
            return f"MLP(CHANNELS, {o['hidden']}, {o['activation']!r}, bias={o['bias']!r})"
        if module.op == "linear":
            return f"nn.Linear(CHANNELS, CHANNELS, bias={o['bias']!r})"
        if module.op in ("layernorm", "rmsnorm"):
            return self.norm_constructor(module.op, float(o["eps"]), bool(o["affine"]))
        raise TypeError(f"TorchPrinter cannot print a module for operator {module.op!r}")

    def scalar_lines(self, params, indent: str) -> list[str]:
        lines = []
        for p in params:
            if p.learnable:
                lines.append(f"{indent}self.{p.name} = nn.Parameter(torch.tensor({p.value!r}))")
                if p.positive:
                    lines.append(f"{indent}parametrize.register_parametrization(self, "
                                 f"{p.name!r}, Positive())")
            else:
                lines.append(f"{indent}self.register_buffer({p.name!r}, "
                             f"torch.tensor({p.value!r}))")
        return lines

    def shared_class(self) -> list[str]:
        shared = [p for p in self.m.parameters if not p.per_layer]
        lines = [
            "class SharedParameters(nn.Module):",
            '    """Scalar coefficients shared by every layer."""',
            "",
            "    def __init__(self) -> None:",
            "        super().__init__()",
        ]
        return lines + self.scalar_lines(shared, " " * 8)

    def term_method(self, term: D.DiscreteTerm) -> list[str]:
        source = self.field(term.expr)
        return [
            f"    def f_{term.name}(",
            "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
            "    ) -> torch.Tensor:",
            f'        """The {term.name} term of the vector field: (B, N, C) → (B, N, C)."""',
            f"        return {source}",
        ]

    def _vector_field(self, term: D.DiscreteTerm, state: str) -> str:
        m = self.m
        arg = state
        if term.normalized and m.norm.placement == "pre":
            arg = f"self.norm_{term.name}({state})"
        return f"self.f_{term.name}({arg}, ctx, p)"

    @staticmethod
    def _scaled(coefficient: float, text: str) -> str:
        return text if coefficient == 1.0 else f"{coefficient!r} * {text}"

    def step_lines(self) -> list[str]:
        m = self.m
        program = m.program
        lines = ["    def forward(",
                 "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
                 "    ) -> torch.Tensor:"]
        if program.is_splitting:
            lines.append('        """One splitting step: each term in turn advances the state '
                         'by an')
            lines.append('        explicit Euler sub-step of its own vector field."""')
            for index, split in enumerate(program.split_steps):
                term = m.term(split.term)
                step = float(split.fraction) * m.dt
                rate = self._scaled(step, self._vector_field(term, "u"))
                update = f"u + {rate}" if m.residual else rate
                post = term.normalized and m.norm.placement == "post"
                pre = term.normalized and m.norm.placement == "pre"
                rate_text = ("" if step == 1.0 else f"{step!r}·") + (
                    f"f_{term.name}(P u)" if pre else f"f_{term.name}(u)")
                comment = "  # u ← " + ("P(" if post else "") + (
                    "u + " if m.residual else "") + rate_text + (")" if post else "")
                if term.normalized and m.norm.placement == "post":
                    update = f"self.norm_{term.name}({update})"
                lines.append(f"        u = {update}{comment}")
                lines.append(f"        ctx.after({index}, {term.name!r}, u)")
            lines.append("        return u")
            return lines
        tableau = program.tableau
        lines.append(f'        """One {program.scheme} step (explicit Runge–Kutta)."""')
        for i, row in enumerate(tableau.a, start=1):
            increments = [f"{float(a) * m.dt!r} * k{j}" for j, a in enumerate(row, start=1)
                          if a != 0]
            state = "u" if not increments else "u + " + " + ".join(increments)
            lines.append(f"        k{i} = self.rhs({state}, ctx, p)")
            lines.append(f"        ctx.after({i - 1}, 'stage k{i}', k{i})")
        combination = " + ".join(
            self._scaled(float(b) * m.dt, f"k{i}") for i, b in enumerate(tableau.b, start=1))
        update = f"u + {combination}" if m.residual else combination
        if m.norm.kind != "none" and m.norm.placement == "post":
            update = f"self.norm({update})"
        lines.append(f"        u = {update}")
        lines.append(f"        ctx.after({len(tableau.a)}, 'update', u)")
        lines.append("        return u")
        return lines

    def layer_class(self) -> list[str]:
        m = self.m
        lines = [
            f"class {self.layer_name}(nn.Module):",
            '    """The weights of one layer (one unit of depth) and its time step."""',
            "",
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
        if m.norm.kind != "none":
            norm = self.norm_constructor(m.norm.kind, m.norm.eps, m.norm.affine)
            if m.program.is_splitting or m.norm.placement == "pre":
                for term in m.terms:
                    if term.normalized:
                        lines.append(f"        self.norm_{term.name} = {norm}")
            else:
                lines.append(f"        self.norm = {norm}")
        lines += self.scalar_lines([p for p in m.parameters if p.per_layer], " " * 8)
        for term in m.terms:
            lines.append("")
            lines += self.term_method(term)
        if not m.program.is_splitting:
            total = " + ".join(self._vector_field(t, "u") for t in m.terms)
            lines += [
                "",
                "    def rhs(",
                "        self, u: torch.Tensor, ctx: Context, p: SharedParameters",
                "    ) -> torch.Tensor:",
                '        """The whole vector field F(u) = Σ_terms f(u)."""',
                f"        return {total}",
            ]
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
            f'    """{m.name}: integrates {m.equation}',
            "",
            f"    from t0 to t1 in LAYERS × SUBSTEPS steps of Δt = {m.dt!r}; layer ℓ's weights "
            "drive",
            '    steps ℓ·SUBSTEPS … (ℓ+1)·SUBSTEPS − 1."""',
            "",
            f"    STRUCTURE: ClassVar[dict] = {structure}",
            "",
            "    def __init__(self) -> None:",
            "        super().__init__()",
            "        self.shared = SharedParameters()",
            f"        self.layers = nn.ModuleList([{self.layer_name}() for _ in range(LAYERS)])",
        ]
        if final:
            lines.append(f"        self.final_norm = {final}")
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
            "        for index, layer in enumerate(self.layers):",
            "            ctx.layer = index",
            "            for _ in range(SUBSTEPS):",
            "                u = layer(u, ctx, self.shared)",
            "            states.append(u)",
        ]
        lines.append("        state = self.final_norm(u)" if final else "        state = u")
        lines += [
            "        if return_trajectory or return_attention:",
            "            return StepperOutput(state, states, ctx.attentions)",
            "        return state",
        ]
        return lines

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
        if "mlp" in ops:
            activations = sorted({mod.options["activation"] for mod in m.modules
                                  if mod.op == "mlp"})
            blocks.append(["ACTIVATIONS = {"] + [f"    {a!r}: {R.ACTIVATION_SOURCES[a]},"
                                                  for a in activations] + ["}"])
        blocks.append(R.OUTPUT.rstrip("\n").splitlines())
        blocks.append(R.CONTEXT.rstrip("\n").splitlines())
        blocks.append((R.GRID_LENGTHS_2D if len(m.axes) == 2 else R.GRID_LENGTHS_1D)
                      .rstrip("\n").splitlines())
        if uses_param:
            blocks.append(R.POSITIVE.rstrip("\n").splitlines())
        if m.stencils:
            blocks.append(R.GHOSTS[m.boundary].rstrip("\n").splitlines())
            blocks.append(R.TAKE.rstrip("\n").splitlines())
            blocks.append(R.RAGGED_VALUE[m.boundary].rstrip("\n").splitlines())
            if m.boundary == "copy":
                blocks.append(self.hold_border())
            blocks.append(self.stencil_class())
        if "attention" in ops:
            blocks.append(R.FINITE_LOGSUMEXP.rstrip("\n").splitlines())
            blocks.append(R.ATTENTION.rstrip("\n").splitlines())
        if "mlp" in ops:
            blocks.append(R.MLP.rstrip("\n").splitlines())
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
