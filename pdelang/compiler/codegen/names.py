"""The names the generated module defines, and the check that no spec parameter takes one.

A scalar parameter becomes an attribute of a generated torch module (``self.alpha``,
``p.D``), next to the submodules and methods the printer generates (``reaction_mlp``,
``laplace``, ``f_reaction``, ``norm_reaction``, ``solve_diffusion``…).  This is the one place
that knows those names: the printer takes them from here (the constants and functions
below), and :func:`check_parameter_names` runs once, when the discrete model (which holds
them all) exists.  The names the model itself carries (operator modules, stencils, norms)
are chosen by the stages that create them; this module collects them.
"""

from __future__ import annotations

import keyword

from pdelang.errors import SpecError
from pdelang.compiler.schemes import program as P

# Attribute names of ``torch.nn.Module`` (torch 2.x; a test checks the list against the
# installed torch): a parameter with one of these names would be shadowed or refused.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr",
    "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule",
    "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "register_backward_hook",
    "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
    "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule",
    "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
    "smart_apply",  # added to nn.Module by transformers when it is imported
    # added by torch.nn.utils.parametrize to a module with a parametrized (positive) scalar
    "parametrizations",
})

# The attributes the generated classes define whatever the spec (the printer uses these):
RHS = "rhs"  # layer: the whole vector field F(u) = Σ_terms f(u)
RHS_EXPLICIT = "rhs_explicit"  # layer: the vector field of the explicit terms
IMPLICIT = "implicit"  # layer: the ImplicitLinear solver of the implicit terms
SHARED = "shared"  # stepper: the SharedParameters
LAYERS = "layers"  # stepper: the nn.ModuleList of layers
FINAL_NORM = "final_norm"  # stepper: the norm after the last layer
STRUCTURE = "STRUCTURE"  # stepper: the JSON-able description
RATE = "rate"  # stepper: the continuous-depth vector field f(t, u)
AT = "at"  # shared parameters: set the depth at which basis coefficients are evaluated
DEPTH = "depth"  # shared parameters: that depth, as s ∈ [−1, 1]
FIXED = frozenset({RHS, RHS_EXPLICIT, IMPLICIT, SHARED, LAYERS, FINAL_NORM, STRUCTURE, RATE,
                   AT, DEPTH, "norm"})  # "norm": the prefix of the norm modules, kept out as a name


def coefficients(parameter: str) -> str:
    """The SharedParameters attribute holding a ``basis`` parameter's coefficients c_k."""
    return f"{parameter}_coefficients"


def term_method(term: str) -> str:
    """The layer method ``f_<term>``: the term's vector field."""
    return f"f_{term}"


def rate_method(terms: tuple[str, ...], program) -> str | None:
    """The layer method that sums several terms' vector fields (None for one term)."""
    if terms == program.terms and not program.is_splitting:
        return RHS
    if len(terms) == 1:
        return None
    explicit = tuple(t for t in program.terms if t not in program.implicit)
    return RHS_EXPLICIT if terms == explicit else "rhs_" + "_".join(terms)


def implicit_method(kind: str, terms: tuple[str, ...]) -> str:
    """The layer method that applies a ``Solve`` (kind ``solve``) or ``Flow`` (``flow``) of
    these implicit terms: ``solve_<term>`` or ``solve_implicit``."""
    return f"{kind}_{terms[0]}" if len(terms) == 1 else f"{kind}_implicit"


def generated_names(model) -> set[str]:
    """Every attribute the printer generates on a layer or the stepper for a discrete model
    (some whether or not this model uses them: a name is refused the same way in every
    spec)."""
    program = model.program
    names = set(FIXED)
    names |= {m.name for m in model.modules} | {s.attribute for s in model.stencils.values()}
    names |= {n.name for n in program.norms}
    names |= {coefficients(p.name) for p in model.parameters}
    for term in model.terms:
        names |= {term_method(term.name), f"norm_{term.name}"}
    for term in program.implicit:
        names |= {implicit_method(kind, (term,)) for kind in ("solve", "flow")}
    names |= {implicit_method(kind, ("", "")) for kind in ("solve", "flow")}
    for ins in program.instructions:
        if isinstance(ins, P.Rate):
            names.add(rate_method(ins.terms, program) or RHS)
    return names


def check_parameter_names(spec, model) -> None:
    """Refuse a parameter name that is a Python keyword, starts with ``_``, is an
    ``nn.Module`` attribute or the name of a generated submodule or method."""
    generated = generated_names(model)
    for name in spec.parameters:
        loc = spec.where(f"parameters.{name}#key") or spec.where(f"parameters.{name}")
        if keyword.iskeyword(name):
            raise SpecError(f"parameter '{name}' is a Python keyword, and parameters become "
                            "attributes of the generated module", loc,
                            f"rename it, e.g. '{name}_'")
        if name in MODULE_ATTRIBUTES or name.startswith("_"):
            raise SpecError(f"parameter '{name}' would clash with an attribute of the generated "
                            "torch module", loc, f"rename it, e.g. '{name.strip('_')}_param'")
        if name in generated:
            raise SpecError(f"parameter '{name}' has the name of a generated submodule or "
                            "method", loc, f"rename it, e.g. '{name}_param'")
