"""``validate --mode depth``: refinements of a Transformer's depth against its ODE limit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pdelang.interpreters.builder import build_module
from pdelang.errors import PdelangError
from pdelang.lab.reference.registry import load_reference
from pdelang.compiler.spec.load import load_spec
from pdelang.lab.validation import depth
from pdelang.lab.validation.validate import _inputs, validate

SMALL_VIT = ["time.layers=3", "time.span=[0, 3]", "parameters.D=0.0"]


def test_the_adaptive_limit_of_pure_diffusion_is_the_exact_heat_flow():
    """dopri5 on ``Stepper.rate`` against exp(t D L) of the 3-point Laplacian, computed
    independently in Fourier space: λ_k = −(4D/h²) sin²(πk/N)."""
    module = build_module("specs/heat1d.yaml")
    stepper = module.Stepper().double()
    n, d, h, t1 = 64, 0.5, 2 * math.pi / 64, 0.1
    u0 = torch.randn(2, n, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states, evaluations = depth._limit(stepper, u0, None, layers=1, layer_time=t1, t0=0.0,
                                       rtol=1e-11, atol=1e-11)
    k = np.arange(n)
    decay = np.exp(-t1 * 4 * d / h**2 * np.sin(np.pi * k / n) ** 2)
    exact = np.fft.ifft(np.fft.fft(u0[..., 0].numpy(), axis=1) * decay, axis=1).real
    np.testing.assert_allclose(states[-1][..., 0].numpy(), exact, rtol=0, atol=1e-9)
    assert evaluations > 6


@pytest.fixture(scope="module")
def vit_inputs():
    reference = load_reference("hf-config:vit")
    return reference, _inputs(reference, 1, "heldout", None, 128)


@pytest.mark.parametrize("scheme, claimed, low, high", [("lie", 1, 0.9, 1.1),
                                                        ("rk4", 4, 3.6, 4.4)])
def test_observed_order_approaches_the_schemes_order(vit_inputs, scheme, claimed, low, high):
    """Far enough into the refinement the distance to the dopri5 limit falls like k^(−p);
    (measured: lie 0.98 and rk4 4.01 between 16 and 32 substeps on this reference)."""
    reference, inputs = vit_inputs
    spec = load_spec("specs/vit2d.yaml", [*SMALL_VIT, f"time.scheme={scheme}"])
    result = depth.continuous_limit(spec, reference, inputs, reference_name="hf-config:vit",
                                    levels=(8, 16, 32), rtol=1e-9, atol=1e-9)
    assert result.claimed_order == claimed
    assert result.levels == [8, 16, 32]
    for layer in range(3):
        column = [row[layer] for row in result.to_limit]
        assert column[0] > column[1] > column[2] > 0
        assert low <= result.orders[1][layer] <= high, result.orders
        assert result.orders[2][layer] is None
    assert result.to_finest[-1] == [0.0, 0.0, 0.0]


def test_depth_mode_through_validate_one_step_per_layer_is_the_real_network():
    result = validate("specs/vit2d.yaml", "hf-config:vit", "depth", overrides=SMALL_VIT,
                      samples=2, levels=(1, 2), rtol=1e-7, atol=1e-7)
    assert isinstance(result, depth.DepthResult)
    # substeps 1 with the reference's weights and no diffusion is the network itself
    assert max(result.reference_to_substeps1) <= 1e-5
    # and the network is far from its own continuous limit (measured ≈ 1 on this reference)
    assert min(result.reference_to_limit) > 0.1
    data = result.to_json()
    assert data["mode"] == "depth" and len(data["to_limit"]) == 2
    table = depth.format_depth_table(result)
    assert "observed order" in table and "dopri5" in table


@pytest.mark.parametrize("spec, reference, reason", [
    ("specs/bert_postln.yaml", "hf-config:bert", "post-norm"),
    ("specs/no_residual.yaml", "hf-config:bert", "residual")])
def test_no_ode_limit_is_a_clear_error(spec, reference, reason):
    overrides = ["fields.u.channels=64", "time.layers=3", "time.span=[0, 3]",
                 "terms.interaction=attention(u, heads=4)",
                 "terms.reaction=mlp(u, hidden=256, activation=gelu)"]
    with pytest.raises(PdelangError, match=reason) as error:
        validate(spec, reference, "depth", overrides=overrides, samples=2, levels=(1, 2))
    assert "continuous-depth limit" in str(error.value)
    assert error.value.suggestion and "pre" in error.value.suggestion


@pytest.mark.parametrize("levels", ["1", "2,1", "1,x", "0,1", "1,1,2"])
def test_bad_levels_are_user_errors(levels):
    with pytest.raises(PdelangError, match="--levels"):
        depth.parse_levels(levels)


def test_cli_depth_json_and_plot(tmp_path, cli):
    code, stdout, stderr = cli(
        "validate", "specs/vit2d.yaml", "--reference",
        "hf-config:vit", "--mode", "depth", "--levels", "1,2", "--samples", "2",
        "--rtol", "1e-6", "--atol", "1e-6", "--json", "--out", str(tmp_path),
        *[arg for o in SMALL_VIT for arg in ("--set", o)])
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["levels"] == [1, 2] and data["solver"]["method"].startswith("dopri5")
    assert (tmp_path / "depth.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["mode"] == "depth"
    code, _, stderr = cli(
        "validate", "specs/vit2d.yaml", "--reference",
        "hf-config:vit", "--mode", "depth", "--levels", "4,2")
    assert code == 2 and "--levels" in stderr and "Traceback" not in stderr
