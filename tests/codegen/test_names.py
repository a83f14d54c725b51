"""Parameter names become attributes of generated torch modules: the loader refuses the
names that would not parse or would clash (its list is checked against the installed torch)."""

from __future__ import annotations

import pytest
import torch

from pdelang.compiler.codegen.names import MODULE_ATTRIBUTES


def test_every_public_nn_module_attribute_is_refused():
    import transformers  # noqa: F401  (it adds methods to nn.Module when imported)

    public = {name for name in dir(torch.nn.Module()) if not name.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)


# ------------------------------------------------- a parameter named like a generated name
# Two small specs that between them make the printer generate every kind of name: operator
# modules, stencils, pre- and post-norms and a final norm, f_<term>, rhs, rhs_explicit,
# solve_<term>/solve_implicit (IMEX, two implicit terms), flow_<term> (a splitting), the
# implicit solver, a positive scalar's parametrizations, and the stepper's own attributes.
PROBE = """\
pdelang: 1
name: probe
grid: {{axes: [x], spacing: 1.0, boundary: periodic}}
fields:
  u: {{channels: 4}}
parameters:
  D: {{value: 0.1, learnable: true, positive: true}}
  c: 0.5
{declaration}terms:
  diffusion: D * laplace(u)
  smooth: c * diff(u, x, 2)
  interaction: attention(u, heads=2)
  reaction: {factor}mlp(u, hidden=8, activation=gelu)
equation: dt(u) = diffusion + smooth + interaction + reaction
stabilizers:
  residual: true
  norm: {{kind: layernorm, placement: {placement}, final: {final}}}
time: {{span: [0, 2], layers: 2, substeps: 1, scheme: {scheme}, implicit: {implicit}}}
"""
PROBES = {
    "imex": dict(placement="pre", final="true", scheme="imex_ars222",
                 implicit="[diffusion, smooth]"),
    "strang": dict(placement="post", final="false", scheme="strang", implicit="[diffusion]"),
}


def _probe(kind: str, name: str | None = None, per_layer: bool = False) -> str:
    declaration = (f"  {name}: {{value: 0.5, learnable: true, per_layer: "
                   f"{str(per_layer).lower()}}}\n") if name else ""
    return PROBE.format(declaration=declaration, factor=f"{name} * " if name else "",
                        **PROBES[kind])


def _construct(text: str, tmp_path):
    from pdelang.interpreters.builder import import_source
    from pdelang.compiler.driver import compile_text

    path = tmp_path / "probe.yaml"
    path.write_text(text)
    compilation = compile_text(text, str(path))
    return import_source(compilation.python, "probe").Stepper()


def _names_on(stepper) -> dict[str, set[str]]:
    """Every public name the generated classes put on the stepper, a layer and the shared
    parameters (keyed by where): found on the objects themselves, not taken from
    pdelang.compiler.codegen.names."""
    out = {}
    for where, obj in (("stepper", stepper), ("layer", stepper.layers[0]),
                       ("shared", stepper.shared)):
        classes = [k for k in type(obj).__mro__
                   if k.__module__ == type(stepper).__module__ or "Parametrized" in k.__name__]
        names = {n for k in classes for n in vars(k)}
        names |= set(vars(obj)) | set(obj._modules) | set(obj._parameters) | set(obj._buffers)
        out[where] = {n for n in names if n.isidentifier() and not n.startswith("_")} - {"D", "c"}
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    return {kind: _names_on(_construct(_probe(kind), tmp)) for kind in PROBES}


def _refused_or_works(kind: str, name: str, per_layer: bool, tmp_path) -> bool:
    """True when the module compiles, constructs, holds the parameter under its name and
    runs; False when the name is refused with a location in the spec and a suggestion."""
    from pdelang.errors import PdelangError

    try:
        stepper = _construct(_probe(kind, name, per_layer), tmp_path)
    except PdelangError as err:
        loc = err.location
        assert loc is not None and loc.file == str(tmp_path / "probe.yaml"), (name, str(err))
        assert loc.line >= 1 and loc.caret() and err.suggestion, (name, str(err))
        return False
    owner = stepper.layers[0] if per_layer else stepper.shared
    assert float(getattr(owner, name).detach()) == 0.5, (name, per_layer)
    u = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.isfinite(stepper(u)).all(), (name, per_layer)
    return True


def test_the_probes_generate_the_names_that_once_collided(generated):
    every = set().union(*(names for kind in generated.values() for names in kind.values()))
    assert {"implicit", "rhs", "rhs_explicit", "solve_implicit", "flow_diffusion",
            "final_norm", "parametrizations", "f_reaction", "laplace"} <= every, sorted(every)


def test_a_parameter_named_like_a_generated_name_is_refused_or_works(generated, tmp_path):
    """Every name the generated module defines, once (in a probe that generates it): a
    parameter of that name where the name lives (per-layer for the layer's and the
    stepper's names, shared for SharedParameters') is either refused with a location in
    the spec, or the module compiles, constructs, holds it and runs (issue 20: a per-layer
    'implicit' compiled, then construction raised KeyError).  A name nothing generates
    ('alpha') is the control: it works."""
    cases = {}
    for kind, where in generated.items():
        for place, names in where.items():
            for name in names:
                cases.setdefault((name, place == "shared"), kind)
    for (name, shared), kind in sorted(cases.items()):
        _refused_or_works(kind, name, not shared, tmp_path)
    assert _refused_or_works("imex", "alpha", True, tmp_path)
    assert _refused_or_works("strang", "alpha", False, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PROBES))
def test_every_generated_name_as_a_per_layer_or_shared_parameter(kind, generated, tmp_path):
    """The exhaustive form: every name of each probe, per-layer and shared."""
    names = set().union(*generated[kind].values())
    for name in sorted(names):
        for per_layer in (True, False):
            _refused_or_works(kind, name, per_layer, tmp_path)
