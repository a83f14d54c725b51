"""The names the generated module defines, and the check that no spec parameter takes one.

A scalar parameter becomes an attribute of a generated torch module (``self.alpha``,
``p.D``), next to the submodules and methods the printer generates (``reaction_mlp``,
``laplace``, ``f_reaction``, ``norm_reaction``, ``solve_diffusion``…).  This is the one place
that knows those names: :func:`check_parameter_names` runs once, when the discrete model
(which holds them all) exists.
"""

from __future__ import annotations

import keyword

from pdelang.errors import SpecError

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
    # what the generated layer and stepper classes define themselves
    "rhs", "layers", "shared", "STRUCTURE", "norm", "final_norm",
})


def generated_names(model) -> set[str]:
    """Every attribute the printer generates on a layer for a discrete model."""
    names = {m.name for m in model.modules} | {s.attribute for s in model.stencils.values()}
    names |= {n.name for n in model.program.norms}
    for term in model.terms:
        names |= {f"f_{term.name}", f"norm_{term.name}"}
    for term in model.program.implicit:
        names |= {f"solve_{term}", f"flow_{term}", f"implicit_{term}"}
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
