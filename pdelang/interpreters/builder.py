"""``pdelang.build``: compile a spec and import the generated module in-process.

Modules are cached by the canonical hash of the spec (its validated values, so
comments and formatting do not matter) together with the generated source.

``build(spec, compile=True)`` returns a subclass of the generated ``Stepper`` whose
instances are compiled with ``torch.compile`` as they are made (see
:mod:`pdelang.interpreters.accelerate`); it is cached under its own key, so ``build(spec)`` keeps
returning the plain generated class and the two never share an instance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from collections.abc import Iterable

from pdelang.compiler.driver import Compilation, compile_spec
from pdelang.io import write_atomically
from pdelang.compiler.spec.load import canonical_hash, load_spec
from pdelang.compiler.spec.model import Spec
from pdelang.interpreters.accelerate import compile_stepper

_CACHE: dict[str, ModuleType] = {}
_COMPILED: dict[tuple[str, bool | None], type] = {}  # (module name, dynamic) → subclass
_BUILD_DIR = Path(tempfile.gettempdir()) / "pdelang-build"


def import_source(source: str, name: str) -> ModuleType:
    """Import generated source as a real module file (so tracebacks show the code)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module_name = f"pdelang_generated_{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    _BUILD_DIR.mkdir(parents=True, exist_ok=True)
    path = _BUILD_DIR / f"{module_name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        write_atomically(path, source)  # concurrent builders never see half a module
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def build_module(spec: Spec | str | Path, overrides: Iterable[str] = ()) -> ModuleType:
    """Compile (cached) and import; returns the generated module."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec, overrides)
    key = canonical_hash(spec)
    if key not in _CACHE:
        compilation = compile_spec(spec)
        _CACHE[key] = import_source(compilation.python, spec.name)
        _CACHE[key].COMPILATION = compilation
    return _CACHE[key]


def build(spec: Spec | str | Path, overrides: Iterable[str] = (), *, compile: bool = False,
          dynamic: bool | None = None):
    """Compile a spec and return its generated ``Stepper`` class.

    ``compile=True``: a subclass whose every instance is compiled in place with
    ``torch.compile(dynamic=dynamic)`` when it is made (the same structure, parameters
    and ``state_dict`` keys; uncompiled, after one warning, where torch.compile cannot be
    used).  The first call of an instance compiles (tens of seconds on a CPU)."""
    module = build_module(spec, overrides)
    if not compile:
        return module.Stepper
    key = (module.__name__, dynamic)  # the module's name carries its source's digest
    if key not in _COMPILED:
        _COMPILED[key] = _compiled_class(module.Stepper, dynamic)
    return _COMPILED[key]


def _compiled_class(base: type, dynamic: bool | None) -> type:
    def __init__(self, *args, **kwargs):
        base.__init__(self, *args, **kwargs)
        compile_stepper(self, dynamic=dynamic)

    return type(base.__name__, (base,), {
        "__init__": __init__, "__module__": base.__module__,
        "__qualname__": base.__qualname__, "COMPILED": True,
        "__doc__": f"{base.__doc__}\n\n    (compiled with torch.compile on construction)"})


def compilation_of(stepper_class) -> Compilation:
    """The compilation a stepper class was built from (by :func:`build_module`)."""
    return sys.modules[stepper_class.__module__].COMPILATION


def structure_of(stepper) -> dict:
    """The JSON-able description of a stepper (a class or an instance): channels, layers, Δt,
    scheme, norm, grid, modules with their options, parameters — built on demand from the step
    program it was compiled from (:meth:`DiscreteModel.structure`), so generated modules do not
    carry it.  A hand-written stand-in may declare it as a ``STRUCTURE`` class attribute."""
    cls = stepper if isinstance(stepper, type) else type(stepper)
    compilation = getattr(sys.modules.get(cls.__module__), "COMPILATION", None)
    if compilation is not None:
        return compilation.discrete.structure()
    declared = getattr(cls, "STRUCTURE", None)
    if declared is None:
        raise TypeError(f"{cls.__name__} was not built by pdelang.build (no step program to "
                        f"describe it) and declares no STRUCTURE")
    return declared
