"""``pdelang.interpreters.accelerate``: torch.compile with a one-warning fallback, and
reduced precision.

The fallback tests replace ``torch.compile`` (no inductor runs); the tests that run inductor
are few and small; the one on the 384-wide spec is ``slow``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import pdelang
from pdelang.interpreters.builder import structure_of
from pdelang.interpreters import accelerate
from pdelang.interpreters.accelerate import (
    CompileFallbackWarning,
    compile_stepper,
    is_compiled,
    precision,
)
from pdelang.interpreters.builder import build, compilation_of

REPO = Path(__file__).resolve().parents[1]
BERT = str(REPO / "specs" / "bert_postln.yaml")
HEAT = str(REPO / "specs" / "heat1d.yaml")
SMALL = ["fields.u.channels=16", "terms.interaction=attention(u, heads=2)",
         "terms.reaction=mlp(u, hidden=32, activation=gelu)", "time.layers=2",
         "time.span=[0, 2]"]


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(accelerate, "_WARNED", set())


def _pair(stepper_class, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    eager = stepper_class().to(dtype).eval()
    other = stepper_class().to(dtype).eval()
    other.load_state_dict(eager.state_dict())
    return eager, other


def _inputs(dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(2, 8, 16, generator=generator, dtype=dtype)
    mask = torch.ones(2, 8)
    mask[1, 6:] = 0
    return u, mask


# ------------------------------------------------------------------------ fallback
def test_compile_raising_falls_back_with_one_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("inductor is broken here\nsecond line of detail")

    monkeypatch.setattr(torch, "compile", broken)
    eager, other = _pair(build(BERT, SMALL))
    with pytest.warns(CompileFallbackWarning) as caught:
        compile_stepper(other)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "RuntimeError: inductor is broken here" in text and "second line" not in text
    assert "continues uncompiled" in text
    assert not is_compiled(other)
    u, mask = _inputs()
    with torch.no_grad():
        assert torch.equal(other(u, mask), eager(u, mask))


def test_failure_on_the_first_call_falls_back_once(monkeypatch):
    calls = []

    def lazy(fn, **kwargs):
        def compiled(*args, **kw):
            calls.append(1)
            raise RuntimeError("C++ compile error: cc1plus not found")
        return compiled

    monkeypatch.setattr(torch, "compile", lazy)
    eager, other = _pair(build(BERT, SMALL))
    compile_stepper(other)
    assert is_compiled(other)
    u, mask = _inputs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            first = other(u, mask)
            second = other(u, mask)
    fallbacks = [w for w in caught if issubclass(w.category, CompileFallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in fallbacks]  # one for all layers
    assert "cc1plus not found" in str(fallbacks[0].message)
    with torch.no_grad():
        assert torch.equal(first, eager(u, mask)) and torch.equal(second, first)
    assert not is_compiled(other)
    assert len(calls) == 2  # each layer tried once (they fail apart), never again after


def test_an_input_error_stays_the_uncompiled_one(monkeypatch):
    def lazy(fn, **kwargs):
        def compiled(*args, **kw):
            raise RuntimeError("compiler failure")
        return compiled

    monkeypatch.setattr(torch, "compile", lazy)
    stepper = compile_stepper(build(BERT, SMALL)().eval())
    u = torch.randn(2, 8, 16)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2|shape"):
        stepper.layers[0](u[..., :15], None, stepper.shared)  # a wrong width fails eagerly too


def test_no_cxx_compiler_is_named(monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder

    def missing():
        raise RuntimeError("No compiler found in ('g++',)")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    with pytest.warns(CompileFallbackWarning, match="C\\+\\+ compiler .* install g\\+\\+"):
        stepper = compile_stepper(build(BERT, SMALL)())
    assert not is_compiled(stepper)


def test_unsupported_python_is_named(monkeypatch):
    import torch._dynamo.eval_frame as eval_frame

    def unsupported():
        raise RuntimeError("Dynamo is not supported on Python 3.99+")

    monkeypatch.setattr(eval_frame, "check_if_dynamo_supported", unsupported)
    with pytest.warns(CompileFallbackWarning, match="Python 3.99"):
        compile_stepper(build(BERT, SMALL)())


# ------------------------------------------------------------------------ build(compile=True)
def test_build_compile_is_its_own_cache_entry(monkeypatch):
    plain = build(BERT, SMALL)
    compiled = build(BERT, SMALL, compile=True)
    assert compiled is not plain and issubclass(compiled, plain)
    assert build(BERT, SMALL) is plain and build(BERT, SMALL, compile=True) is compiled
    assert build(BERT, SMALL, compile=True, dynamic=False) is not compiled
    assert structure_of(compiled) == structure_of(plain) and compiled.__name__ == plain.__name__
    assert compilation_of(compiled) is compilation_of(plain)
    instance = compiled()
    assert is_compiled(instance) and not is_compiled(plain())
    assert list(instance.state_dict()) == list(plain().state_dict())
    assert pdelang.build is not None  # the public name keeps working


# ------------------------------------------------------------------------ inductor
def test_compiled_equals_eager_float64():
    """Inductor on the small attention spec, float64, padded batch: measured max |Δ| 9e-16
    (a fused LayerNorm sums in another order); the bound leaves a factor 100."""
    eager, other = _pair(build(BERT, SMALL))
    compile_stepper(other)
    u, mask = _inputs()
    with torch.no_grad():
        expected = eager(u, mask, return_trajectory=True)
        got = other(u, mask, return_trajectory=True)
    assert is_compiled(other)
    for a, b in zip(got.states, expected.states):
        assert (a - b).abs().max() <= 1e-13
    with torch.no_grad():  # a second instance reuses the compiled layers
        third = compile_stepper(build(BERT, SMALL)().double().eval())
        third.load_state_dict(eager.state_dict())
        assert (third(u, mask) - expected.state).abs().max() <= 1e-13


@pytest.mark.slow
def test_compiled_bert_postln_equals_eager_float64():
    eager, other = _pair(build(BERT))
    compile_stepper(other)
    u = torch.randn(2, 32, 384, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (other(u) - eager(u)).abs().max() <= 1e-12


# ------------------------------------------------------------------------ precision
def test_float32_and_float64_are_not_autocast():
    with precision("float64"):
        assert not torch.is_autocast_enabled("cpu")
    with precision("float32"):
        assert not torch.is_autocast_enabled("cpu")
    with precision("bfloat16"):
        assert torch.is_autocast_enabled("cpu")


def test_float64_is_bitwise_unchanged():
    eager, _ = _pair(build(BERT, SMALL))
    u, mask = _inputs()
    with torch.no_grad():
        expected = eager(u, mask)
        with precision("float64"):
            got = eager(u, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast never touches float64
            autocast = eager(u, mask)
    assert torch.equal(got, expected) and torch.equal(autocast, expected)


def test_bfloat16_agrees_with_float32():
    """bert_postln (random weights, 8×32 tokens, 6 layers) under bfloat16 autocast against
    float32, both against float64: measured relative error (Frobenius) 2.2e-3 for bfloat16,
    2.8e-4 for float16, 2.5e-7 for float32.  bfloat16 keeps 8 significant bits (unit
    roundoff 2⁻⁹ ≈ 2e-3): the measured error is one unit roundoff, as products rounded to
    bfloat16 and accumulated in float32 give, the LayerNorms keeping it from growing over the
    layers.  The bound 0.02 allows ten roundoffs; the lower bound 1e-4 (400× float32's)
    shows the products did run in bfloat16."""
    stepper = build(BERT)().eval()
    torch.manual_seed(0)
    u = torch.randn(8, 32, 384)
    with torch.no_grad():
        reference = stepper.double()(u.double())
        stepper.float()
        single = stepper(u)
        with precision("bfloat16"):
            half = stepper(u)
    assert half.dtype == torch.float32  # the state stays float32
    assert torch.isfinite(half).all()
    error = float((half.double() - reference).norm() / reference.norm())
    assert float((single.double() - reference).norm() / reference.norm()) < 1e-5
    assert 1e-4 < error < 0.02, error  # reduced, but bfloat16-accurate


def test_check_dtype_names_an_emulated_cpu(monkeypatch):
    assert accelerate.check_dtype("float32") is None
    assert accelerate.check_dtype("float64") is None
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    text = accelerate.check_dtype("bfloat16", "cpu")
    assert "no native bfloat16" in text and "--dtype float32" in text
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert accelerate.check_dtype("bfloat16", "cpu") is None
