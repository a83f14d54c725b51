"""Map a reference Transformer's weights into a compiled stepper.

The stepper's structure (``structure_of``) says which module of each layer carries the
attention and which the feed-forward block, and which norm stabilizes which term; the
reference's :class:`LayerWeights` are named by the parameters those modules' operators
declare, so the copy is by name.  A spec that does not have the reference's shape is a
:class:`ReferenceMismatchError` naming both sides.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass

import torch

from pdelang.errors import PdelangError
from pdelang.compiler.operators import OPERATORS
from pdelang.compiler.spec.model import Spec
from pdelang.interpreters.builder import structure_of, compilation_of


class ReferenceMismatchError(PdelangError):
    """The spec and the reference Transformer disagree on a shape or a switch."""

    kind = "reference mismatch"


@dataclass(frozen=True)
class Mismatch:
    """One way the spec differs from the reference, with the overrides that fix it:
    ``settings`` (dotted key → YAML value text) and ``edits`` of term expressions
    (term, operator, option, value); ``manual`` when no override can fix it."""

    what: str
    ours: object
    theirs: object
    path: str
    settings: tuple[tuple[str, str], ...] = ()
    edits: tuple[tuple[str, str, str, str], ...] = ()
    manual: str | None = None
    theirs_label: str | None = None  # "the reference X has …" unless given

    def describe(self, reference_name: str) -> str:
        theirs = self.theirs_label or f"the reference {reference_name} has {self.theirs}"
        return f"{self.what}: the spec has {self.ours}, {theirs}"

    def to_json(self, reference_name: str) -> dict:
        return {"what": self.what, "spec": _plain(self.ours), "reference": _plain(self.theirs),
                "message": self.describe(reference_name), "path": self.path}


def _plain(value):
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


def yaml_number(value: float | int) -> str:
    """A number as YAML reads it back as a number (``1e-12`` is a string in YAML 1.1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _yaml_bool(value) -> str:
    return "true" if value else "false"


def _span(start: float, length: float) -> str:
    return f"[{yaml_number(_round(start))}, {yaml_number(_round(start + length))}]"


def _round(x: float):
    return int(x) if float(x).is_integer() else x


def with_option(expression: str, op: str, key: str, value: str) -> str | None:
    """``expression`` with option ``key=value`` set in its one ``op(…)`` call (replaced, or
    appended); None when the expression has no such call or more than one."""
    calls = list(re.finditer(rf"\b{re.escape(op)}\s*\(", expression))
    if len(calls) != 1:
        return None
    start = calls[0].end()
    depth, index = 1, start
    while index < len(expression) and depth:
        depth += {"(": 1, ")": -1}.get(expression[index], 0)
        index += 1
    if depth:
        return None
    inner = expression[start:index - 1]
    pattern = re.compile(rf"(\b{re.escape(key)}\s*=\s*)([^,()]*[^,()\s])")
    if pattern.search(inner):
        inner = pattern.sub(lambda m: m.group(1) + value, inner, count=1)
    else:
        inner = inner.rstrip() + f", {key}={value}"
    return expression[:start] + inner + expression[index - 1:]


def _module_of(structure: dict, part: str) -> tuple[str, dict] | Mismatch:
    """The one module of the spec that carries a reference layer's ``part`` (its operator
    declares ``reference_part``), or the mismatch of having none or several."""
    found = [(name, m) for name, m in structure["modules"].items()
             if OPERATORS[m["op"]].reference_part == part]
    if len(found) != 1:
        calls = " or ".join(f"{op.name}(…)" for op in OPERATORS.values()
                            if op.reference_part == part)
        return Mismatch(f"{part} operators", len(found), 1, "terms",
                        manual=f"write exactly one {calls} term",
                        theirs_label="mapping a reference needs exactly one")
    return found[0]


def term_of(module_name: str, op: str) -> str:
    """The term a module belongs to: modules are named ``<term>_<op>[_k]``."""
    return module_name.rsplit(f"_{op}", 1)[0]


def option_text(value) -> str:
    """An option value as the term language writes it."""
    if isinstance(value, bool):
        return _yaml_bool(value)
    if isinstance(value, (int, float)):
        return yaml_number(value)
    return str(value)


def call_text(op: str, options: dict, field: str) -> str:
    """``op(field, k=v, …)``: a call with the given options."""
    return f"{op}({', '.join([field, *(f'{k}={option_text(v)}' for k, v in options.items())])})"


def call_options(module: dict) -> dict:
    """The options of a structure's module entry (``{"op": …, **options}``)."""
    return {key: value for key, value in module.items() if key != "op"}


def _same(ours, theirs) -> bool:
    if isinstance(theirs, float) and isinstance(ours, (int, float)) \
            and not isinstance(ours, bool):
        return math.isclose(float(ours), theirs, rel_tol=1e-9, abs_tol=0.0)
    return ours == theirs


def mismatches(structure: dict, reference, spec: Spec | None = None,
               stabilizers: bool = True, exact: bool = False) -> tuple[list[Mismatch], dict]:
    """Every way the stepper cannot carry the reference's weights (and the module names).

    Each part of a reference layer (:meth:`ReferenceArchitecture.calls`) must be carried by
    one module whose operator is the part's and whose effective options
    (:meth:`Operator.effective_options`) agree with the reference's.
    ``stabilizers=False`` (ablations) compares only the layer calls: the norm kind, placement
    and presence may differ from the reference's.  ``exact`` (exact mode): a changed depth
    keeps one step of Δt = 1 per layer; otherwise it keeps the spec's time per layer."""
    arch = reference.architecture
    out: list[Mismatch] = []

    def add(what, ours, theirs, path, settings=(), edits=(), manual=None):
        out.append(Mismatch(what, ours, theirs, path, tuple(settings), tuple(edits), manual))

    calls = arch.calls()
    found = {part: _module_of(structure, part) for part in calls}
    broken = [m for m in found.values() if isinstance(m, Mismatch)]
    if broken:
        return broken, {}
    field = spec.field.name if spec is not None else "u"
    if structure["channels"] != arch.channels:
        add("channels", structure["channels"], arch.channels, "fields",
            [(f"fields.{field}.channels", str(arch.channels))])
    if structure["layers"] != arch.layers:
        t0 = spec.time.span[0] if spec is not None else 0.0
        per_layer = 1.0 if exact else structure["dt"] * structure["substeps"]
        add("layers", structure["layers"], arch.layers, "time.layers",
            [("time.layers", str(arch.layers)),
             ("time.span", _span(t0, arch.layers * per_layer))])
    if structure.get("tied"):
        add("tied weights", "one weight set for every layer", f"{arch.layers} distinct layers",
            "time.tied", [("time.tied", "false")])
    names: dict[str, str] = {}
    for part, (operator, wanted) in calls.items():
        module_name, module = found[part]
        term = term_of(module_name, module["op"])
        names[part], names[f"{part}_term"] = module_name, term
        if module["op"] != operator:
            call = call_text(operator, wanted, field)
            whole = spec is not None and term in spec.terms and re.fullmatch(
                rf"\s*{re.escape(module['op'])}\s*\([^()]*\)\s*", spec.terms[term].text)
            add(f"{part} operator", module["op"], operator, f"terms.{term}",
                settings=[(f"terms.{term}", call)] if whole else (),
                manual=None if whole else f"write term '{term}' as {call}")
            continue
        given = call_options(module)
        for key, value in wanted.items():
            # an option mismatches when it still does with every other option fixed (a
            # default that follows another option, like rank = C/heads, then follows it)
            others = {other: v for other, v in wanted.items() if other != key}
            ours = OPERATORS[operator].effective_options({**given, **others}, arch.channels)
            if not _same(ours.get(key), value):
                add(f"{part} {key}", ours.get(key), value, f"terms.{term}",
                    edits=[(term, operator, key, option_text(value))])
    attention_term, mlp_term = names["attention_term"], names["mlp_term"]
    norm = structure["norm"]
    if stabilizers:
        if norm["kind"] != arch.norm_kind:
            add("normalization", norm["kind"], arch.norm_kind, "stabilizers.norm.kind",
                [("stabilizers.norm.kind", arch.norm_kind)])
        if norm["placement"] != arch.norm_placement:
            add("norm placement", norm["placement"], arch.norm_placement,
                "stabilizers.norm.placement",
                [("stabilizers.norm.placement", arch.norm_placement)])
        if not norm["affine"]:
            add("affine norms", False, True, "stabilizers.norm.affine",
                [("stabilizers.norm.affine", "true")])
        if bool(norm["final"]) != arch.final_norm:
            add("final norm", norm["final"], arch.final_norm, "stabilizers.norm.final",
                [("stabilizers.norm.final", _yaml_bool(arch.final_norm))])
        if abs(norm["eps"] - arch.norm_eps) > 1e-3 * arch.norm_eps:
            add("norm eps", norm["eps"], arch.norm_eps, "stabilizers.norm.eps",
                [("stabilizers.norm.eps", yaml_number(arch.norm_eps))])
        missing = [t for t in (attention_term, mlp_term) if t not in norm["terms"]]
        if missing:
            terms = list(norm["terms"]) + missing
            for term in missing:
                add(f"normalization of term '{term}'", "none", f"a {arch.norm_kind}",
                    "stabilizers.norm.terms", [("stabilizers.norm.terms",
                                                f"[{', '.join(terms)}]")])
    grid = tuple(structure["grid_shape"]) if structure["grid_shape"] else None
    theirs = tuple(arch.grid_shape) if arch.grid_shape else None
    if grid != theirs:
        if theirs is not None:
            axes = list(spec.grid.axes) if spec is not None and len(spec.grid.axes) == 2 \
                else ["rows", "cols"]
            add("token grid", grid or "a 1-D sequence", theirs, "grid",
                [("grid.axes", f"[{', '.join(axes)}]"),
                 ("grid.shape", f"[{theirs[0]}, {theirs[1]}]")])
        else:
            add("token grid", grid, "a 1-D sequence", "grid",
                manual="write grid: {axes: [seq]} without a shape")
    if structure["extra_tokens"] != arch.extra_tokens:
        add("extra tokens", structure["extra_tokens"], arch.extra_tokens, "grid.extra_tokens",
            [("grid.extra_tokens", str(arch.extra_tokens))])
    return out, names


EXTRA_TERMS = "terms besides attention and MLP"


def exact_mismatches(structure: dict, reference, spec: Spec | None, names: dict
                     ) -> list[Mismatch]:
    """What keeps a compatible spec from reproducing the reference exactly: one Lie–Trotter
    step of Δt = 1 per layer (one sub-step), attention before the MLP, no other terms."""
    out: list[Mismatch] = []
    t0 = spec.time.span[0] if spec is not None else 0.0
    layers, substeps, dt = structure["layers"], structure["substeps"], structure["dt"]
    depth = reference.architecture.layers  # the layers the fixed spec will have
    fix = ((("time.substeps", "1"),) if substeps != 1 else ()) + \
        (("time.span", _span(t0, depth)),)
    if abs(dt - 1.0) > 1e-12:
        how = f"span {_span(t0, dt * layers * substeps)} / ({layers} layers × {substeps} " \
              f"substep{'s' if substeps != 1 else ''})"
        out.append(Mismatch("Δt", f"{dt:g} = {how}", 1, "time.span", fix,
                            theirs_label="exact mode needs 1 (one step per layer)"))
    elif substeps != 1:
        out.append(Mismatch("substeps", substeps, 1, "time.substeps", fix,
                            theirs_label="exact mode needs 1 (one step of Δt = 1 per layer)"))
    if structure["scheme"] != "lie":
        out.append(Mismatch("scheme", structure["scheme"], "lie", "time.scheme",
                            (("time.scheme", "lie"),),
                            theirs_label="exact mode needs lie (a layer is one Lie–Trotter "
                                         "step)"))
    attention, mlp = names["attention_term"], names["mlp_term"]
    extra = [t for t in structure["terms"] if t not in (attention, mlp)]
    order = list(structure.get("split_order") or [])
    if extra or (attention in order and mlp in order
                 and order.index(attention) > order.index(mlp)):
        field = spec.field.name if spec is not None else "u"
        settings = [("equation", f"dt({field}) = {attention} + {mlp}"),
                    ("time.split_order", f"[{attention}, {mlp}]")]
        if structure.get("implicit"):
            settings.append(("time.implicit", "[]"))
        what = EXTRA_TERMS if extra else "split order"
        ours = ", ".join(extra) if extra else ", ".join(order)
        out.append(Mismatch(what, ours, f"{attention} then {mlp}", "equation",
                            tuple(settings),
                            theirs_label=f"exact mode needs {attention} then {mlp} only"))
    return out


def complete_hint(found: list[Mismatch], spec: Spec | None) -> str | None:
    """One set of ``--set`` overrides that fixes every mismatch at once (later settings of
    a key win; option edits of one term accumulate), plus what needs a hand edit."""
    settings: dict[str, str] = {}
    expressions: dict[str, str] = {}
    manual = []
    for m in found:
        for key, value in m.settings:
            settings.pop(key, None)
            settings[key] = value
        for term, op, key, value in m.edits:
            text = expressions.get(term)
            if text is None and spec is not None and term in spec.terms:
                text = spec.terms[term].text.strip()
            edited = with_option(text, op, key, value) if text is not None else None
            if edited is None:
                manual.append(f"set {key}={value} in the {op} call of term '{term}'")
            else:
                expressions[term] = edited
        if m.manual:
            manual.append(m.manual)
    for term, text in expressions.items():
        settings[f"terms.{term}"] = text
    parts = []
    if settings:
        parts.append(" ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in settings.items()))
    if manual:
        parts.append(("and by hand: " if settings else "") + "; ".join(manual))
    return "; ".join(parts) or None


def mismatch_error(found: list[Mismatch], reference, spec: Spec | None,
                   extra: list[Mismatch] = ()) -> ReferenceMismatchError:
    """One error naming every mismatch, located at the first, with the complete hint
    (including the ``extra`` ones, e.g. exact mode's Δt)."""
    everything = list(found) + list(extra)
    first = everything[0]
    message = first.describe(reference.name)
    if len(everything) > 1:
        message += "; also " + "; ".join(m.describe(reference.name) for m in everything[1:])
    where = spec.where(first.path) if spec is not None else None
    return ReferenceMismatchError(message, where, complete_hint(everything, spec))


def check_compatible(structure: dict, reference, spec: Spec | None = None,
                     stabilizers: bool = True) -> dict:
    """Raise unless the stepper can carry the reference's weights; return the module names.

    ``stabilizers=False`` (ablations) checks only the shapes: the norm kind, placement and
    presence may differ from the reference's, and the norms are mapped where they exist.
    The error names every mismatch and hints one complete set of overrides.
    """
    found, names = mismatches(structure, reference, spec, stabilizers)
    if found:
        raise mismatch_error(found, reference, spec)
    return names


@torch.no_grad()
def load_reference_weights(stepper, reference, spec: Spec | None = None,
                           stabilizers: bool = True) -> dict:
    """Copy the reference's weights into ``stepper`` (in place); returns the module names.

    Every parameter a part's module declares (:meth:`Operator.parameter_shapes`) takes the
    reference tensor of the same name in that part (:class:`LayerWeights`); a declared bias
    the reference does not have is zero (a bias-free projection).  Norms take the affine
    parameters both sides have: with ``stabilizers=False`` an RMSNorm takes a LayerNorm's
    scale, a LayerNorm keeps its zero shift under an RMSNorm's scale; no norm, nothing.
    """
    structure = structure_of(stepper)
    names = check_compatible(structure, reference, spec, stabilizers)
    norms = _norm_weights(type(stepper), names)
    channels = structure["channels"]
    dims = len(structure["grid_shape"]) if structure["grid_shape"] else 1
    for layer, w in zip(stepper.layers, reference.layer_weights):
        for part in reference.architecture.calls():
            module = structure["modules"][names[part]]
            options = call_options(module)
            declared = OPERATORS[module["op"]].parameter_shapes(channels, options, dims)
            _copy_declared(getattr(layer, names[part]), declared, w.part(part), part)
        for attr, which in norms:
            _copy_norm(getattr(layer, attr, None), w.part(f"norm_{which}"))
    if reference.final_norm_weight is not None:
        final = {"weight": reference.final_norm_weight}
        if reference.final_norm_bias is not None:
            final["bias"] = reference.final_norm_bias
        _copy_norm(getattr(stepper, "final_norm", None), final)
    return names


def _copy_declared(module, declared: dict, tensors: dict, part: str) -> None:
    """Copy ``tensors`` into the declared parameters of ``module`` by name."""
    unused = set(tensors) - set(declared)
    if unused:
        raise ValueError(f"the reference's {part} has {', '.join(sorted(unused))}, which the "
                         f"spec's module does not declare")
    for name, shape in declared.items():
        target = module.get_parameter(name)
        if tuple(target.shape) != tuple(shape):
            raise ValueError(f"{part}.{name}: the module has shape {tuple(target.shape)}, its "
                             f"declaration {tuple(shape)}")
        source = tensors.get(name)
        if source is None and not name.endswith("bias"):
            raise ValueError(f"the reference has no {part}.{name}")
        target.copy_(torch.zeros_like(target) if source is None else source)


def _norm_weights(stepper_class, names: dict) -> list[tuple[str, str]]:
    """(norm module, "attention" | "mlp") for each norm module of the layer, from the step
    program the stepper was compiled with: a norm that stabilizes the MLP's term takes the
    reference's MLP norm (the layer's last), one that stabilizes only the attention's term
    the attention norm."""
    program = compilation_of(stepper_class).program
    out = []
    for norm in program.norms:
        if names["mlp_term"] in norm.terms:
            out.append((norm.name, "mlp"))
        elif names["attention_term"] in norm.terms:
            out.append((norm.name, "attention"))
    return out


def _copy_norm(norm, tensors: dict) -> None:
    """The affine parameters of ``norm`` that ``tensors`` has, by name."""
    if norm is None:
        return
    for name, parameter in norm.named_parameters(recurse=False):
        source = tensors.get(name)
        if source is not None:
            parameter.copy_(source)
