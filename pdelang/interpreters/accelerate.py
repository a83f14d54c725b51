"""Speed options for generated steppers: ``torch.compile`` and reduced precision.

``compile_stepper(stepper)`` compiles a stepper's layers *in place* (as
``nn.Module.compile`` does: each layer's call is a compiled region, so the module's
``state_dict`` keys and attributes are unchanged; see the function for why the layers and
not the whole ``forward``).  Where ``torch.compile`` cannot
be used — an unsupported Python or platform, no C++ compiler for inductor on CPU, an inductor
failure on the first call — the stepper runs uncompiled after ONE
:class:`CompileFallbackWarning` that names the reason; never a traceback.  A failure on a
call is told apart from an error of the inputs by re-running that call uncompiled: when the
uncompiled call fails too, its own error is raised (a wrong mask stays a ``ValueError``).

``precision(dtype, device)`` is the context of a run at ``dtype``:

* ``float32``/``float64``: no context — the module and the state are cast to that dtype,
  and float64 is never autocast (bitwise what it was);
* ``bfloat16``/``float16``: ``torch.autocast(device_type, dtype)`` with the module and the
  state kept in float32.  Matrix products (the attention's and the MLP's ``Linear``\\ s,
  ``scaled_dot_product_attention``) run in the reduced dtype; the state, the residual update
  ``u + Δt·f``, the stencils and the norms stay float32.  Casting the module instead would
  hold the state in 8 (bfloat16) or 11 (float16) significant bits: an update ``Δt·f``
  smaller than ``|u|/256`` would vanish from ``u + Δt·f`` and a small-Δt integration would
  stall.

``check_dtype(dtype, device)`` says whether the device computes ``dtype`` natively: on a CPU
without AVX512-BF16/AMX (e.g. this project's AMD EPYC build machine) bfloat16 and float16
products are emulated and run slower than float32 — a warning with the suggestion to keep
float32 (measured numbers in README, Performance).
"""

from __future__ import annotations

import contextlib
import warnings

DTYPES = ("float32", "float64", "bfloat16", "float16")
REDUCED = ("bfloat16", "float16")


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` could not be used; the stepper runs uncompiled."""


class PrecisionWarning(UserWarning):
    """The device computes the requested reduced dtype slowly (emulated)."""


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


_WARNED: set[str] = set()  # reasons already told: one message per reason and process


def _fallback(reason: str) -> None:
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    warnings.warn(f"torch.compile is not available ({reason}); the run continues uncompiled",
                  CompileFallbackWarning, stacklevel=3)


def compile_unavailable(device_type: str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot be used here (None when nothing is known against it)."""
    import torch  # lazy: torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported  # lazy: torch
    except ImportError:  # a torch without the check: the first call tells
        check_if_dynamo_supported = None
    if check_if_dynamo_supported is not None:
        try:
            check_if_dynamo_supported()
        except Exception as exc:  # Python version, platform
            return _first_line(exc)
    if device_type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler  # lazy: torch
        except ImportError:
            return None
        try:
            get_cpp_compiler()
        except Exception as exc:
            return (f"inductor needs a C++ compiler on CPU and found none: {_first_line(exc)}; "
                    "install g++ or set CXX")
    return None


class _GuardedCall:
    """The compiled call, with the uncompiled one behind it (see the module docstring)."""

    def __init__(self, compiled, eager) -> None:
        self.compiled = compiled
        self.eager = eager
        self.failed = False

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as compiled_error:
            result = self.eager(*args, **kwargs)  # an input's error raises here, as eager
            self.failed = True
            _fallback(_first_line(compiled_error))
            return result


def compile_stepper(stepper, *, dynamic: bool | None = None, device_type: str | None = None):
    """Compile ``stepper``'s layers in place with ``torch.compile`` (inductor); returns it.

    Each layer's call is one compiled region (``stepper.layers``; a module without layers
    is compiled whole).  The stepper's own ``forward`` — the Context (its mask checks read
    tensor values: a graph break, and a logged warning, inside a compiled region) and the
    loop over layers — stays eager; every layer of every instance of the spec shares one
    compiled graph (the parameters are its inputs): no recompilation per layer or per new
    stepper.  ``dynamic``: torch.compile's — None (default) compiles the first shape
    statically and recompiles once with symbolic shapes when another shape comes; False
    recompiles for every new shape.  Falls back to the uncompiled layers with one
    :class:`CompileFallbackWarning` where compiling is not possible.
    """
    import torch  # lazy: torch

    if device_type is None:
        parameter = next(iter(stepper.parameters()), None)
        device_type = parameter.device.type if parameter is not None else "cpu"
    reason = compile_unavailable(device_type)
    parts = list(getattr(stepper, "layers", None) or [stepper])
    calls = []
    if reason is None:
        try:
            calls = [torch.compile(part._call_impl, dynamic=dynamic) for part in parts]
        except Exception as exc:
            reason = _first_line(exc)
    if reason is not None:
        _fallback(reason)
        return stepper
    for part, call in zip(parts, calls):
        part._compiled_call_impl = _GuardedCall(call, part._call_impl)
    return stepper


def is_compiled(stepper) -> bool:
    """Whether ``stepper`` (or a layer) runs compiled (False after a fallback)."""
    parts = list(getattr(stepper, "layers", None) or [stepper])
    return all(isinstance(getattr(part, "_compiled_call_impl", None), _GuardedCall)
               and not part._compiled_call_impl.failed for part in parts)


def device_type_of(device) -> str:
    return device.type if hasattr(device, "type") else str(device).split(":")[0]


def module_dtype(name: str):
    """The dtype the module and the state are held in for a ``--dtype`` choice."""
    import torch  # lazy: torch

    return torch.float32 if name in REDUCED else getattr(torch, name)


def precision(name: str, device="cpu"):
    """The context a run at dtype ``name`` executes in (autocast only for bfloat16/float16)."""
    import torch  # lazy: torch

    if name not in REDUCED:
        return contextlib.nullcontext()
    return torch.autocast(device_type_of(device), dtype=getattr(torch, name))


def check_dtype(name: str, device="cpu") -> str | None:
    """A warning text when ``device`` computes the reduced dtype ``name`` emulated (slowly),
    None when it is native or ``name`` is float32/float64."""
    import torch  # lazy: torch

    if name not in REDUCED:
        return None
    kind = device_type_of(device)
    if kind == "cuda":
        if name == "bfloat16" and not torch.cuda.is_bf16_supported():
            return ("this GPU has no native bfloat16 arithmetic: it runs emulated and slow; "
                    "use --dtype float16 or float32")
        return None
    if kind != "cpu":
        return None
    probe = {"bfloat16": "_is_mkldnn_bf16_supported", "float16": "_is_mkldnn_fp16_supported"}
    try:
        native = bool(getattr(torch.ops.mkldnn, probe[name])())
    except (AttributeError, RuntimeError):
        return None
    if native:
        return None
    flags = "AVX512-BF16 or AMX" if name == "bfloat16" else "AVX512-FP16 or AMX-FP16"
    return (f"this CPU has no native {name} matrix products ({flags}): {name} runs emulated, "
            f"slower than float32; use --dtype float32 for speed (or a GPU for {name})")
