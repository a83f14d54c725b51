"""Map a reference Transformer's weights into a compiled stepper.

The stepper's ``STRUCTURE`` says which module of each layer is the attention, which the
MLP, and which norm stabilizes which term; the reference's :class:`LayerWeights` are in
``nn.Linear`` convention, so the copy is one-to-one.  A spec that does not have the
reference's shape is a :class:`ReferenceMismatchError` naming both sides.
"""

from __future__ import annotations

import torch

from pdelang.errors import PdelangError, SourceLocation
from pdelang.spec.model import Spec


class ReferenceMismatchError(PdelangError):
    """The spec and the reference Transformer disagree on a shape or a switch."""

    kind = "reference mismatch"


def _module_of(structure: dict, op: str) -> tuple[str, dict]:
    found = [(name, m) for name, m in structure["modules"].items() if m["op"] == op]
    if len(found) != 1:
        raise ReferenceMismatchError(
            f"the spec has {len(found)} {op} operators; mapping a reference needs exactly one",
            suggestion=f"write one {op}(…) term")
    return found[0]


def term_of(module_name: str, op: str) -> str:
    """The term a module belongs to: modules are named ``<term>_<op>[_k]``."""
    return module_name.rsplit(f"_{op}", 1)[0]


def check_compatible(structure: dict, reference, spec: Spec | None = None,
                     stabilizers: bool = True) -> dict:
    """Raise unless the stepper can carry the reference's weights; return the module names.

    ``stabilizers=False`` (ablations) checks only the shapes: the norm kind, placement and
    presence may differ from the reference's, and the norms are mapped where they exist.
    """
    arch = reference.architecture

    def where(path: str) -> SourceLocation | None:
        return spec.where(path) if spec is not None else None

    def mismatch(what: str, ours, theirs, path: str, hint: str | None = None):
        raise ReferenceMismatchError(
            f"{what}: the spec has {ours}, the reference {reference.name} has {theirs}",
            where(path), hint)

    attention_name, attention = _module_of(structure, "attention")
    mlp_name, mlp = _module_of(structure, "mlp")
    attention_term = term_of(attention_name, "attention")
    mlp_term = term_of(mlp_name, "mlp")
    if structure["channels"] != arch.channels:
        mismatch("channels", structure["channels"], arch.channels, "fields",
                 f"set the field's channels to {arch.channels}")
    if structure["layers"] != arch.layers:
        mismatch("layers", structure["layers"], arch.layers, "time.layers",
                 f"--set time.layers={arch.layers}")
    if attention["heads"] != arch.heads:
        mismatch("attention heads", attention["heads"], arch.heads, f"terms.{attention_term}",
                 f"write attention(u, heads={arch.heads})")
    if bool(attention["causal"]) != arch.causal:
        mismatch("causal attention", attention["causal"], arch.causal, f"terms.{attention_term}")
    if not attention["bias"]:
        mismatch("attention biases", False, True, f"terms.{attention_term}",
                 "drop bias=false from the attention call")
    if mlp["hidden"] != arch.hidden:
        mismatch("mlp hidden width", mlp["hidden"], arch.hidden, f"terms.{mlp_term}",
                 f"write mlp(u, hidden={arch.hidden}, …)")
    if mlp["activation"] != arch.activation:
        mismatch("mlp activation", mlp["activation"], arch.activation, f"terms.{mlp_term}",
                 f"write mlp(u, …, activation={arch.activation})")
    norm = structure["norm"]
    if not stabilizers:
        pass
    elif norm["kind"] != "layernorm":
        mismatch("normalization", norm["kind"], "layernorm", "stabilizers.norm.kind")
    if stabilizers and norm["placement"] != arch.norm_placement:
        mismatch("norm placement", norm["placement"], arch.norm_placement,
                 "stabilizers.norm.placement")
    if stabilizers and not norm["affine"]:
        mismatch("affine norms", False, True, "stabilizers.norm.affine")
    if stabilizers and bool(norm["final"]) != arch.final_norm:
        mismatch("final norm", norm["final"], arch.final_norm, "stabilizers.norm.final")
    if stabilizers and abs(norm["eps"] - arch.norm_eps) > 1e-3 * arch.norm_eps:
        mismatch("norm eps", norm["eps"], arch.norm_eps, "stabilizers.norm.eps")
    for term in (attention_term, mlp_term) if stabilizers else ():
        if term not in norm["terms"]:
            mismatch(f"normalization of term '{term}'", "none", "a LayerNorm",
                     "stabilizers.norm.terms")
    grid = tuple(structure["grid_shape"]) if structure["grid_shape"] else None
    if grid != (tuple(arch.grid_shape) if arch.grid_shape else None):
        mismatch("token grid", grid or "a 1-D sequence", arch.grid_shape or "a 1-D sequence",
                 "grid")
    if structure["extra_tokens"] != arch.extra_tokens:
        mismatch("extra tokens", structure["extra_tokens"], arch.extra_tokens,
                 "grid.extra_tokens")
    return {"attention": attention_name, "mlp": mlp_name, "attention_term": attention_term,
            "mlp_term": mlp_term}


@torch.no_grad()
def load_reference_weights(stepper, reference, spec: Spec | None = None,
                           stabilizers: bool = True) -> dict:
    """Copy the reference's weights into ``stepper`` (in place); returns the module names.

    With ``stabilizers=False`` the norms are copied only where the stepper has them (an
    RMSNorm takes the LayerNorm's scale; no norm, nothing).
    """
    structure = type(stepper).STRUCTURE
    names = check_compatible(structure, reference, spec, stabilizers)
    norms = _norm_weights(type(stepper), names)
    for layer, w in zip(stepper.layers, reference.layer_weights):
        attention = getattr(layer, names["attention"])
        for proj, weight, bias in ((attention.q, w.q_weight, w.q_bias),
                                   (attention.k, w.k_weight, w.k_bias),
                                   (attention.v, w.v_weight, w.v_bias),
                                   (attention.o, w.o_weight, w.o_bias)):
            proj.weight.copy_(weight)
            proj.bias.copy_(bias if bias is not None else torch.zeros_like(proj.bias))
        mlp = getattr(layer, names["mlp"])
        mlp.fc1.weight.copy_(w.fc1_weight)
        mlp.fc1.bias.copy_(w.fc1_bias)
        mlp.fc2.weight.copy_(w.fc2_weight)
        mlp.fc2.bias.copy_(w.fc2_bias)
        for attr, which in norms:
            weight, bias = ((w.norm_mlp_weight, w.norm_mlp_bias) if which == "mlp" else
                            (w.norm_attention_weight, w.norm_attention_bias))
            _copy_norm(getattr(layer, attr, None), weight, bias)
    if reference.final_norm_weight is not None:
        _copy_norm(getattr(stepper, "final_norm", None), reference.final_norm_weight,
                   reference.final_norm_bias)
    return names


def _norm_weights(stepper_class, names: dict) -> list[tuple[str, str]]:
    """(norm module, "attention" | "mlp") for each norm module of the layer, from the step
    program the stepper was compiled with: a norm that stabilizes the MLP's term takes the
    reference's MLP norm (the layer's last), one that stabilizes only the attention's term
    the attention norm."""
    from pdelang.builder import compilation_of

    program = compilation_of(stepper_class).program
    out = []
    for norm in program.norms:
        if names["mlp_term"] in norm.terms:
            out.append((norm.name, "mlp"))
        elif names["attention_term"] in norm.terms:
            out.append((norm.name, "attention"))
    return out


def _copy_norm(norm, weight, bias) -> None:
    if norm is None or getattr(norm, "weight", None) is None:
        return
    norm.weight.copy_(weight)
    if getattr(norm, "bias", None) is not None:
        norm.bias.copy_(bias)
