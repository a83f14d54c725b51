"""float64 end to end (issue 20): a generated stepper converted to a dtype holds the spec's
values rounded once to that dtype — never float32's rounding widened.

Scalars are built as ``torch.tensor(value)`` (float32, as always) in classes derived from the
runtime block ``SpecScalars``, which rebuilds every scalar that still holds its spec value
from the exact value when the module is converted; the ``Stencil`` block holds its weights
as Python floats (the float64 values), which no conversion touches.  Checked here:
``.double()`` and ``.to(torch.float64)`` hold D = 0.1 bit for bit (also after a detour
through float32 or float16), a converted stepper equals one built in that dtype, a trained
or loaded scalar converts as usual, float32 is what it was, learnable scalars stay
trainable, and ``pdelang run --dtype float64`` is bitwise a hand-written float64 loop.
"""

from __future__ import annotations

import io
import math
from contextlib import redirect_stderr, redirect_stdout
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pdelang.interpreters.builder import import_source
from pdelang.cli.main import main as cli_main
from pdelang.lab.testing.harness import compile_any

REPO = Path(__file__).resolve().parents[2]

SPEC = """pdelang: 1
name: exact_scalars
grid:
  axes: [x]
  spacing: 0.1
  boundary: periodic
fields:
  u: {channels: 2}
parameters:
  D: 0.1                                      # a buffer
  K: {value: 0.3, learnable: true, positive: true}
  a: {value: 0.7, learnable: true}
  b: {value: 0.2, learnable: true, per_layer: true}
  c: {value: 1.1, per_layer: true}            # a per-layer buffer
terms:
  diffusion: D * laplace(u) + K * laplace(u)
  reaction: a * u - b * u^3 + c * tanh(u)
equation: dt(u) = diffusion + reaction
time:
  span: [0, 0.01]
  layers: 2
  substeps: 2
  scheme: rk4
discretization:
  laplace: {accuracy: 4}
"""
VALUES = {"D": 0.1, "K": 0.3, "a": 0.7, "b": 0.2, "c": 1.1}
PER_LAYER = {"b", "c"}


@pytest.fixture(scope="module")
def module():
    compilation = compile_any(SPEC)
    return import_source(compilation.python, compilation.spec.name)


def owners(stepper, name):
    return [stepper.shared] if name not in PER_LAYER else list(stepper.layers)


def stored(owner, name) -> torch.Tensor:
    """The tensor that stores a scalar: the value, or θ of softplus(θ) (positive)."""
    if name == "K":
        return owner.parametrizations.K.original
    return getattr(owner, name)


def built(owner, name, dtype) -> torch.Tensor:
    """What a scalar's storage holds when built in ``dtype``."""
    value = torch.tensor(VALUES[name], dtype=dtype)
    if name == "K":
        return owner.parametrizations.K[0].right_inverse(value)
    return value


def assert_holds_spec_values(stepper, dtype):
    for name in VALUES:
        for owner in owners(stepper, name):
            tensor = stored(owner, name)
            assert tensor.dtype == dtype, (name, tensor.dtype)
            assert torch.equal(tensor, built(owner, name, dtype)), (name, tensor.item())


def inputs(dtype):
    return torch.randn(2, 16, 2, generator=torch.Generator().manual_seed(0)).to(dtype)


def test_default_stepper_holds_float32_scalars_as_before(module):
    """Built in the default dtype: torch.tensor(value) in float32, exactly as before."""
    stepper = module.Stepper()
    assert_holds_spec_values(stepper, torch.float32)
    assert stepper.shared.a.item() == float(np.float32(0.7))
    # stencil numerators are Python ints, the denominator a Python float (float64), rounded
    # to the state's dtype in each call
    laplace = stepper.layers[0].laplace
    assert all(type(n) is int for n in laplace.numerators) and type(laplace.over) is float


@pytest.mark.parametrize("convert", [
    lambda s: s.double(),
    lambda s: s.to(torch.float64),
    lambda s: s.to(device="cpu", dtype=torch.float64),
    lambda s: s.float().double(),
    lambda s: s.half().double(),
    lambda s: s.to(torch.bfloat16).to(torch.float64),
], ids=["double", "to", "to-device-dtype", "float-double", "half-double", "bf16-double"])
def test_double_stepper_holds_the_spec_values_bit_for_bit(module, convert):
    stepper = convert(module.Stepper())
    assert_holds_spec_values(stepper, torch.float64)
    assert torch.equal(stepper.shared.D, torch.tensor(0.1, dtype=torch.float64))
    assert torch.equal(stepper.shared.a, torch.tensor(0.7, dtype=torch.float64))
    assert all(torch.equal(layer.c, torch.tensor(1.1, dtype=torch.float64))
               for layer in stepper.layers)
    # softplus(softplus⁻¹(0.3)) in float64: 0.3 to an ulp (float32 widened: 1e-8 off)
    assert abs(stepper.shared.K.item() - 0.3) <= math.ulp(0.3)
    # the stencil weights: the exact float64 values again, not float32's or float16's
    fresh = module.Stepper().layers[0].laplace
    for layer in stepper.layers:
        assert layer.laplace.numerators == fresh.numerators
        assert layer.laplace.over == fresh.over
        assert layer.laplace.weights == fresh.weights


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_converted_stepper_equals_one_built_in_that_dtype(module, dtype):
    """Converting and building in the dtype give the same module and the same run."""
    torch.manual_seed(0)
    converted = module.Stepper().to(dtype)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        native = module.Stepper()
    finally:
        torch.set_default_dtype(default)
    native_state = native.state_dict()
    for key, value in converted.state_dict().items():
        assert value.dtype == dtype and torch.equal(value, native_state[key]), key
    with torch.no_grad():
        assert torch.equal(converted(inputs(dtype)), native(inputs(dtype)))


def test_float32_runs_are_unchanged_by_conversions(module):
    """float32 → float64 → float32 gives back the float32 stepper, bit for bit."""
    stepper = module.Stepper()
    u = inputs(torch.float32)
    with torch.no_grad():
        plain = stepper(u)
        assert torch.equal(module.Stepper().to(torch.float32)(u), plain)
        assert torch.equal(module.Stepper().double().float()(u), plain)
        assert torch.equal(module.Stepper().half().float()(u), plain)


def test_a_changed_scalar_is_converted_as_usual(module):
    """Only a scalar that holds its spec value is rebuilt: a trained or loaded value is the
    module's own and is widened like any weight."""
    stepper = module.Stepper()
    with torch.no_grad():
        stepper.shared.a.fill_(0.123)
        stepper.layers[1].c.fill_(2.5)
        stepper.shared.K = torch.tensor(0.45)
    stepper.double()
    assert torch.equal(stepper.shared.a, torch.tensor(0.123).double())
    assert stepper.layers[1].c.item() == 2.5
    assert stepper.shared.K.item() == pytest.approx(0.45, rel=1e-6)
    assert stepper.shared.K.item() != 0.45  # float32's θ, widened
    # the untouched ones are still rebuilt
    assert torch.equal(stepper.layers[0].c, torch.tensor(1.1, dtype=torch.float64))
    assert torch.equal(stepper.shared.D, torch.tensor(0.1, dtype=torch.float64))


def test_learnable_scalars_stay_parameters_and_train_in_float64(module):
    stepper = module.Stepper().double()
    params = dict(stepper.named_parameters())
    assert {"shared.a", "shared.parametrizations.K.original", "layers.0.b",
            "layers.1.b"} <= set(params)
    assert isinstance(stepper.shared.a, nn.Parameter)
    assert all(p.requires_grad and p.dtype == torch.float64 for p in params.values())
    assert "shared.D" in dict(stepper.named_buffers())
    loss = stepper(inputs(torch.float64)).square().mean()
    loss.backward()
    for name in ("shared.a", "shared.parametrizations.K.original", "layers.0.b"):
        grad = params[name].grad
        assert grad is not None and grad.dtype == torch.float64 and grad.item() != 0, name
    optimizer = torch.optim.SGD(stepper.parameters(), lr=0.1)
    optimizer.step()
    trained = stepper.shared.a.item()
    assert trained != 0.7
    stepper.float()  # a trained scalar is the module's own: converted as usual
    assert stepper.shared.a.item() == float(np.float32(trained))


# --------------------------------------------------------------------------- pdelang run
def heat_euler_float64(u: np.ndarray, D: float, h: float, dt: float, steps: int):
    """Explicit Euler for u' = D ∂²u with the 3-point Laplacian, periodic, in float64, in the
    generated stepper's order of operations: the integer-weighted sum (u_{i-1} + u_{i+1}) −
    2 u_i, times D / h² (one rounding each), then the update u + Δt·rate as one fused
    multiply-add (``torch.add(u, k1, alpha=DT)``: one rounding of the exact u + Δt·rate)."""
    factor = D / h**2
    for _ in range(steps):
        rate = (np.roll(u, 1, axis=1) + np.roll(u, -1, axis=1)) - 2 * u
        rate = rate * factor
        fused = [float(Fraction(float(a)) + Fraction(dt) * Fraction(float(k)))
                 for a, k in zip(u.ravel(), rate.ravel(), strict=True)]
        u = np.array(fused, dtype=np.float64).reshape(u.shape)
    return u


def test_run_dtype_float64_is_bitwise_the_float64_computation(tmp_path):
    """``pdelang run specs/heat1d.yaml --set parameters.D=0.1 --dtype float64`` equals a
    hand-written float64 loop bit for bit; the same loop with D = float32(0.1), what the run
    computed before, is 1e-8 away."""
    u0 = torch.randn(2, 64, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.save(u0, tmp_path / "u0.pt")
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = cli_main(["run", str(REPO / "specs" / "heat1d.yaml"), "--set",
                         "parameters.D=0.1", "--dtype", "float64", "--init",
                         str(tmp_path / "u0.pt"), "--save", str(tmp_path / "u.pt"),
                         "--no-progress"])
    assert code == 0, err.getvalue()
    out = torch.load(tmp_path / "u.pt")
    assert out.dtype == torch.float64
    h, dt, steps = 2 * math.pi / 64, 0.1 / 20, 20  # the spec's spacing, span / substeps
    expected = heat_euler_float64(u0.numpy(), 0.1, h, dt, steps)
    assert np.array_equal(out.numpy(), expected)
    widened = heat_euler_float64(u0.numpy(), float(np.float32(0.1)), h, dt, steps)
    assert 1e-9 < np.max(np.abs(out.numpy() - widened)) < 1e-7
