"""The learned depthwise convolution ``conv(u, kernel=K, bias=…)`` end to end.

* generated torch code == the independent NumPy oracle on every boundary, in 1-D and 2-D,
  for kernels 1, 3, 5, with and without a bias, an extra (CLS) token and padding;
* its semantics against hand-written convolutions (circular, reflect, zero and odd-mirror
  padding; the held border of ``copy``; zero rate on the CLS token);
* padding: a padded batch evolves exactly as each sequence / image alone;
* the facts ``pdelang check`` reports (linear, local, order 0, learnable; left out of the
  stability bound);
* the CLI on ``specs/conv_mixer.yaml`` (check, compile, run, verify);
* training (Adam reduces a toy regression loss; gradients against finite differences);
* user errors (the bad-spec corpus holds the located errors; here the CLI exit code);
* the hypothesis strategy draws conv calls, and the drawn specs compile and run.

Every stepper here runs in float64 with random weights (``stepper_for``).
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pdelang.cli.main import main
from pdelang.lab.testing.harness import compile_any, reference_for, stepper_for
from pdelang.lab.testing.stepper_checks import check_generated_matches_reference, padding_mask

REPO = Path(__file__).resolve().parents[2]
CONV_MIXER = "specs/conv_mixer.yaml"
BOUNDARIES = ("periodic", "neumann", "dirichlet", "copy")


def conv_spec(*, boundary: str = "periodic", dims: int = 1, kernel: int | None = 3,
              bias: bool | None = None, extra: int = 0, channels: int = 3,
              shape=None, body: str | None = None, more_terms: str = "",
              equation: str = "dt(u) = mixing", layers: int = 1, scheme: str = "euler",
              tail: str = "") -> str:
    """YAML of a spec whose term ``mixing`` is a conv call (or ``body``); euler, Δt = 1 by
    default, so one step is ``u + conv(u)``."""
    if body is None:
        options = []
        if kernel is not None:
            options.append(f"kernel={kernel}")
        if bias is not None:
            options.append(f"bias={str(bias).lower()}")
        body = f"conv({', '.join(['u', *options])})"
    if dims == 1:
        grid = "  axes: [seq]\n" + (f"  shape: [{shape[0]}]\n" if shape else "")
    else:
        rows, cols = shape or (5, 6)
        grid = f"  axes: [rows, cols]\n  shape: [{rows}, {cols}]\n"
    return (f"pdelang: 1\nname: convtest\ngrid:\n{grid}  spacing: 1.0\n"
            f"  boundary: {boundary}\n  extra_tokens: {extra}\n"
            f"fields:\n  u: {{channels: {channels}}}\n"
            f'terms:\n  mixing: "{body}"\n{more_terms}'
            f"equation: {equation}\n{tail}"
            f"time:\n  span: [0, {layers}]\n  layers: {layers}\n  substeps: 1\n"
            f"  scheme: {scheme}\n")


def module_of(stepper):
    return sys.modules[type(stepper).__module__]


def conv_module(stepper, layer: int = 0):
    return stepper.layers[layer].mixing_conv


def cli(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``pdelang ARGV`` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def rate_of(stepper, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One euler step with Δt = 1 and the residual: the conv's rate is ``u₁ − u₀``."""
    with torch.no_grad():
        return stepper(u, mask) - u


# ------------------------------------------------------------------- 1. generated == NumPy
def _cases():
    """Every boundary × 1-D/2-D × kernel 1, 3, 5; bias and the CLS token alternate so that
    each (boundary, dims) pair sees both values of each, and each kernel does too."""
    cases = []
    for b, boundary in enumerate(BOUNDARIES):
        for dims in (1, 2):
            for k, kernel in enumerate((1, 3, 5)):
                bias = (k + b + dims) % 2 == 0
                extra = (k + dims) % 2
                cases.append(pytest.param(boundary, dims, kernel, bias, extra,
                                          id=f"{boundary}-{dims}d-k{kernel}-"
                                             f"{'bias' if bias else 'nobias'}-cls{extra}"))
    return cases


def test_cases_cover_every_combination_of_bias_and_cls_per_boundary_and_dims():
    seen = {}
    for case in _cases():
        boundary, dims, kernel, bias, extra = case.values
        seen.setdefault((boundary, dims), set()).add((bias, extra))
        seen.setdefault(kernel, set()).add((bias, extra))
    for key, combos in seen.items():
        assert {b for b, _ in combos} == {True, False}, key
        assert {e for _, e in combos} == {0, 1}, key


def _explicit_mask(model, tokens: int) -> np.ndarray:
    """Three sequences / images: whole, and two padded ones (in 2-D: trailing rows and
    trailing columns padded) that still hold more than the kernel's radius."""
    mask = np.ones((3, tokens), dtype=bool)
    e = model.extra_tokens
    if len(model.axes) == 2:
        rows, cols = model.shape
        for b, (r, c) in ((1, (rows - 1, cols - 2)), (2, (3, cols))):
            image = np.zeros((rows, cols), dtype=bool)
            image[:r, :c] = True
            mask[b, e:] = image.ravel()
    else:
        mask[1, tokens - 2:] = False
        mask[2, e + 3:] = False
    return mask


@pytest.mark.parametrize(("boundary", "dims", "kernel", "bias", "extra"), _cases())
def test_generated_matches_numpy_reference(boundary, dims, kernel, bias, extra):
    compilation = compile_any(conv_spec(boundary=boundary, dims=dims, kernel=kernel,
                                        bias=bias, extra=extra, layers=2))
    model = compilation.discrete
    assert [m.op for m in model.modules] == ["conv"]
    torch.manual_seed(0)
    stepper = stepper_for(compilation, seed=1)
    # the check's own padding (a seed whose padded sequences fit the kernel, and padding
    # does happen), then a mask of our own that pads rows and columns in 2-D
    tokens = extra + (30 if dims == 2 else 7)
    seed = next(s for s in range(50) if _fits(model, padding_mask(model, 2, tokens, s), kernel)
                and not padding_mask(model, 2, tokens, s).all())
    result = check_generated_matches_reference(compilation, seed=seed, length=7,
                                               stepper=stepper)
    result.assert_passed()
    assert any(k.startswith("padded ") for k in result.details["errors"]), result.details

    reference = reference_for(compilation, stepper)
    mask = _explicit_mask(model, tokens)
    u = np.random.default_rng(2).standard_normal((3, tokens, 3))
    with torch.no_grad():
        got = stepper(torch.as_tensor(u), torch.as_tensor(mask),
                      return_trajectory=True).states
    want = reference.forward(u, mask, return_trajectory=True).states
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-12)
    # the conv acts: the state moves
    rate = got[1].numpy() - u
    assert np.abs(rate[:, extra:]).max() > 1e-3


def _fits(model, mask, kernel) -> bool:
    """Every padded sequence / image of ``mask`` has more tokens than the kernel's radius
    along every axis."""
    radius = kernel // 2
    grid = mask[:, model.extra_tokens:]
    if len(model.axes) == 2:
        grid = grid.reshape(len(mask), *model.shape)
        return bool((grid.any(axis=2).sum(axis=1) > radius).all()
                    and (grid.any(axis=1).sum(axis=1) > radius).all())
    return bool((grid.sum(axis=1) > radius).all())


def test_reference_check_padding_respects_the_conv_radius():
    compilation = compile_any(conv_spec(boundary="neumann", dims=2, kernel=5))
    model = compilation.discrete
    assert model.stencil_radius == 2
    for seed in range(10):  # seed 3 draws a 2-row image
        mask = padding_mask(model, 2, 30, seed)
        assert _fits(model, mask, 5), (seed, mask[1].reshape(5, 6))
        check_generated_matches_reference(compilation, seed=seed).assert_passed()


# ------------------------------------------------------------------- 2. semantics
def _random_u(batch: int, tokens: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, tokens, channels, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _depthwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise cross-correlation of an already padded (B, C, …) tensor."""
    conv = F.conv1d if weight.ndim == 2 else F.conv2d
    return conv(x, weight[:, None], groups=weight.shape[0])


def _stepper(text: str, seed: int = 3):
    torch.manual_seed(seed)
    return stepper_for(compile_any(text), seed=seed)


@pytest.mark.parametrize(("boundary", "kernel", "pad"), [
    ("periodic", 5, lambda x, r: F.pad(x, (r, r), mode="circular")),
    ("neumann", 5, lambda x, r: F.pad(x, (r, r), mode="reflect")),
    ("dirichlet", 3, lambda x, r: F.pad(x, (r, r))),  # zero padding
    # radius 2: zero one spacing beyond each end, odd mirror about that point further out
    ("dirichlet", 5, lambda x, r: torch.cat([-x[..., :1], 0 * x[..., :1], x,
                                             0 * x[..., -1:], -x[..., -1:]], dim=-1)),
], ids=["periodic-circular", "neumann-reflect", "dirichlet-zero", "dirichlet-k5-odd"])
@pytest.mark.parametrize("bias", [False, True])
def test_1d_equals_a_handwritten_depthwise_convolution(boundary, kernel, pad, bias):
    stepper = _stepper(conv_spec(boundary=boundary, kernel=kernel, bias=bias, extra=1))
    conv = conv_module(stepper)
    weight = conv.weight.detach()
    assert weight.shape == (3, kernel)
    assert not torch.allclose(weight, weight.flip(-1))  # a flipped kernel would be caught
    u = _random_u(2, 1 + 9)
    rate = rate_of(stepper, u)
    x = u[:, 1:].movedim(-1, 1)  # (B, C, L)
    want = _depthwise(pad(x, kernel // 2), weight).movedim(1, -1)
    if bias:
        assert conv.bias is not None and conv.bias.abs().min() > 0
        want = want + conv.bias.detach()
    else:
        assert conv.bias is None
    torch.testing.assert_close(rate[:, 1:], want, rtol=1e-12, atol=1e-12)
    assert torch.equal(rate[:, 0], torch.zeros_like(rate[:, 0]))  # the CLS token


@pytest.mark.parametrize("kernel", [3, 5])
def test_1d_copy_holds_the_end_tokens(kernel):
    """copy: the end tokens have rate zero; inside, the ghosts are the odd mirror about the
    end tokens, u₋ⱼ = 2u₀ − uⱼ (for kernel 3 the interior reads no ghost at all)."""
    stepper = _stepper(conv_spec(boundary="copy", kernel=kernel, bias=True))
    conv = conv_module(stepper)
    u = _random_u(2, 8)
    rate = rate_of(stepper, u)
    assert torch.equal(rate[:, 0], torch.zeros_like(rate[:, 0]))
    assert torch.equal(rate[:, -1], torch.zeros_like(rate[:, -1]))
    r = kernel // 2
    x = u.movedim(-1, 1)
    left = 2 * x[..., :1] - x[..., 1:r + 1].flip(-1)
    right = 2 * x[..., -1:] - x[..., -1 - r:-1].flip(-1)
    want = _depthwise(torch.cat([left, x, right], dim=-1), conv.weight.detach())
    want = want.movedim(1, -1) + conv.bias.detach()
    torch.testing.assert_close(rate[:, 1:-1], want[:, 1:-1], rtol=1e-12, atol=1e-12)
    assert rate[:, 1:-1].abs().min() > 0


@pytest.mark.parametrize(("boundary", "mode"), [("periodic", "circular"),
                                                ("neumann", "reflect")])
def test_2d_equals_a_handwritten_depthwise_conv2d(boundary, mode):
    """Row-major patch grid [5, 6] (not square: a transposed grid is caught), 3×3 kernel
    along rows and columns, a CLS token with rate zero."""
    stepper = _stepper(conv_spec(boundary=boundary, dims=2, kernel=3, extra=1))
    weight = conv_module(stepper).weight.detach()
    assert weight.shape == (3, 3, 3)
    assert not torch.allclose(weight, weight.transpose(1, 2))
    u = _random_u(2, 1 + 30)
    rate = rate_of(stepper, u)
    x = u[:, 1:].reshape(2, 5, 6, 3).permute(0, 3, 1, 2)  # (B, C, rows, cols)
    want = _depthwise(F.pad(x, (1, 1, 1, 1), mode=mode), weight)
    want = want.permute(0, 2, 3, 1).reshape(2, 30, 3)
    torch.testing.assert_close(rate[:, 1:], want, rtol=1e-12, atol=1e-12)
    assert torch.equal(rate[:, 0], torch.zeros_like(rate[:, 0]))


def test_2d_copy_holds_the_border():
    stepper = _stepper(conv_spec(boundary="copy", dims=2, kernel=3, bias=True))
    conv = conv_module(stepper)
    u = _random_u(1, 30)
    rate = rate_of(stepper, u).reshape(5, 6, 3)
    border = torch.ones(5, 6, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.equal(rate[border], torch.zeros_like(rate[border]))
    x = u.reshape(1, 5, 6, 3).permute(0, 3, 1, 2)
    want = (_depthwise(x, conv.weight.detach())[0].permute(1, 2, 0) + conv.bias.detach())
    torch.testing.assert_close(rate[1:-1, 1:-1], want, rtol=1e-12, atol=1e-12)


def test_kernel_1_is_a_channelwise_scale():
    stepper = _stepper(conv_spec(boundary="dirichlet", kernel=1))
    weight = conv_module(stepper).weight.detach()
    assert weight.shape == (3, 1)
    u = _random_u(2, 6)
    torch.testing.assert_close(rate_of(stepper, u), u * weight[:, 0], rtol=1e-12, atol=1e-12)


def test_kernel_1_beside_a_stencil_on_dirichlet():
    stepper = _stepper(conv_spec(boundary="dirichlet", body="conv(u, kernel=1) + laplace(u)"))
    weight = conv_module(stepper).weight.detach()
    u = _random_u(2, 6)
    x = u.movedim(-1, 1)
    laplace = F.pad(x, (1, 1))
    laplace = (laplace[..., :-2] - 2 * x + laplace[..., 2:]).movedim(1, -1)
    torch.testing.assert_close(rate_of(stepper, u), u * weight[:, 0] + laplace,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("body", ["conv(u + 1, kernel=3)", "conv(2, kernel=3) + u"])
def test_conv_of_a_constant_is_not_zero(body):
    stepper = _stepper(conv_spec(body=body))
    weight = conv_module(stepper).weight.detach()
    u = _random_u(2, 7)
    shift = 1.0 if body.startswith("conv(u + 1") else 2.0
    base = u if shift == 1.0 else torch.zeros_like(u)
    x = (base + shift).movedim(-1, 1)
    want = _depthwise(F.pad(x, (1, 1), mode="circular"), weight).movedim(1, -1)
    if shift == 2.0:
        want = want + u
    torch.testing.assert_close(rate_of(stepper, u), want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- 3. padding
PADDED_TERMS = '  reaction: "mlp(u, hidden=8, activation=gelu)"\n'
PADDED_TAIL = ("stabilizers:\n  residual: true\n"
               "  norm: {kind: layernorm, placement: pre, eps: 1.0e-5, final: true}\n")


def _padded_spec(boundary: str, dims: int, shape=None) -> str:
    return conv_spec(boundary=boundary, dims=dims, kernel=5, bias=True, extra=1,
                     shape=shape, more_terms=PADDED_TERMS, layers=2, scheme="lie",
                     equation="dt(u) = mixing + reaction", tail=PADDED_TAIL)


@pytest.mark.parametrize("boundary", ["neumann", "copy"])
def test_1d_padded_batch_equals_each_sequence_alone(boundary):
    stepper = _stepper(_padded_spec(boundary, 1))
    lengths = [10, 6, 3]  # grid tokens; 3 is the fewest a radius-2 kernel allows
    u = _random_u(3, 1 + 10, seed=4) * 3  # padding holds garbage
    mask = torch.zeros(3, 11, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :1 + n] = True
    with torch.no_grad():
        batched = stepper(u, mask)
        assert torch.isfinite(batched).all()
        for b, n in enumerate(lengths):
            alone = stepper(u[b:b + 1, :1 + n])
            torch.testing.assert_close(batched[b:b + 1, :1 + n], alone, rtol=1e-12, atol=1e-12)
        # the mask matters: with the padding taken as real tokens the sequence differs
        unmasked = stepper(u[1:2])
        assert not torch.allclose(batched[1:2, :1 + 6], unmasked[:, :1 + 6])


@pytest.mark.parametrize("boundary", ["neumann", "copy"])
def test_2d_padded_images_equal_each_image_alone(boundary):
    """Images in the top-left corner of a [5, 6] grid, whole trailing rows and columns
    padded; each alone runs through a stepper compiled for its own shape, same weights."""
    stepper = _stepper(_padded_spec(boundary, 2))
    images = [(5, 6), (3, 4), (4, 3), (5, 3)]
    u = _random_u(len(images), 1 + 30, seed=5) * 3
    mask = torch.zeros(len(images), 31, dtype=torch.bool)
    mask[:, 0] = True  # the CLS token
    for b, (r, c) in enumerate(images):
        image = torch.zeros(5, 6, dtype=torch.bool)
        image[:r, :c] = True
        mask[b, 1:] = image.reshape(-1)
    with torch.no_grad():
        batched = stepper(u, mask)
        assert torch.isfinite(batched).all()
        for b, (r, c) in enumerate(images):
            small = stepper_for(compile_any(_padded_spec(boundary, 2, (r, c))), seed=None)
            small.load_state_dict(stepper.state_dict())
            grid = u[b, 1:].reshape(5, 6, 3)[:r, :c].reshape(1, r * c, 3)
            alone = small(torch.cat([u[b:b + 1, :1], grid], dim=1))
            got = torch.cat([batched[b:b + 1, :1],
                             batched[b, 1:].reshape(5, 6, 3)[:r, :c].reshape(1, r * c, 3)],
                            dim=1)
            torch.testing.assert_close(got, alone, rtol=1e-12, atol=1e-12)


def test_padding_tokens_get_zero_conv_rate():
    """conv alone (no MLP, no norm): the padding tokens do not move."""
    stepper = _stepper(conv_spec(boundary="neumann", kernel=5, bias=True, extra=1))
    u = _random_u(2, 1 + 8)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 1 + 4:] = False
    rate = rate_of(stepper, u, mask)
    assert torch.equal(rate[1, 1 + 4:], torch.zeros_like(rate[1, 1 + 4:]))
    assert rate[1, 1:1 + 4].abs().min() > 0
    torch.testing.assert_close(rate[1:, :1 + 4], rate_of(stepper, u[1:, :1 + 4]),
                               rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- 4. check's facts
def _check_json(tmp_path, text: str) -> dict:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    code, out, err = cli("check", "--json", str(path))
    assert code == 0, err
    return json.loads(out)


def test_check_classifies_conv_as_linear_local_order_0_learnable(tmp_path):
    data = _check_json(tmp_path, conv_spec(kernel=5))
    (term,) = data["terms"]
    assert term["operators"] == ["conv"]
    assert (term["linear"], term["local"], term["order"]) == (True, True, 0)
    assert term["learnable"] == ["mixing_conv"]
    stability = data["stability"]
    assert stability["exact"] is False
    assert any("left out" in c and "conv" in c and "learned" in c
               for c in stability["caveats"]), stability
    assert stability["max_stable_dt"] is None


def test_check_conv_with_bias_is_not_linear(tmp_path):
    data = _check_json(tmp_path, conv_spec(bias=True))
    (term,) = data["terms"]
    assert term["linear"] is False
    assert (term["local"], term["order"], term["learnable"]) == (True, 0, ["mixing_conv"])
    assert data["stability"]["exact"] is False


def test_check_bound_beside_a_conv_is_not_exact(tmp_path):
    """The diffusion's bound is still derived, but with the conv left out it is no longer
    exact (the same spec without the conv is)."""
    with_conv = _check_json(tmp_path, conv_spec(body="0.1 * laplace(u) + conv(u)"))
    without = _check_json(tmp_path, conv_spec(body="0.1 * laplace(u)"))
    assert without["stability"]["exact"] is True and without["stability"]["caveats"] == []
    stability = with_conv["stability"]
    assert stability["max_stable_dt"] == without["stability"]["max_stable_dt"] == 5.0
    assert stability["exact"] is False
    assert any("left out: conv" in c and "(learned)" in c for c in stability["caveats"])


# ------------------------------------------------------------------- 5. CLI end to end
@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)
    return REPO


def test_cli_check_conv_mixer(in_repo):
    code, out, err = cli("check", CONV_MIXER)
    assert code == 0, err
    assert "conv" in out.lower()


def test_cli_compile_conv_mixer_is_ruff_clean_and_imports_only_torch(in_repo, tmp_path):
    target = tmp_path / "conv_mixer_generated.py"
    code, _out, err = cli("compile", CONV_MIXER, "-o", str(target))
    assert code == 0, err
    source = target.read_text()
    assert "class Conv(nn.Module)" in source and "Conv(CHANNELS, 5, bias=False)" in source
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            roots.add(node.module.split(".")[0])
    assert "torch" in roots and roots <= {"torch", "typing", "__future__"}, roots
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    rules = ["--isolated", "--select", "E,F,W,B,UP,RUF", "--ignore", "RUF001,RUF002,RUF003",
             "--line-length", "100", "--target-version", "py310"]
    result = subprocess.run([*command, "check", "--no-cache", *rules, str(target)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_run_conv_mixer(in_repo):
    code, out, err = cli("run", CONV_MIXER, "--no-progress", "--tokens", "32")
    assert code == 0, err
    assert "conv_mixer" in out


def test_cli_verify_conv_mixer(in_repo):
    """verify on the shipped spec, narrowed (8 channels, hidden 16) to keep it fast: the
    verifier's time-order checks run the NumPy MLP thousands of times."""
    code, out, err = cli("verify", CONV_MIXER, "--json", "--set", "fields.u.channels=8",
                         "--set", "terms.reaction=mlp(u, hidden=16, activation=gelu)")
    assert code == 0, out + err
    data = json.loads(out)
    assert data["passed"] is True
    assert data["properties"]["generated_equals_reference"] is True
    errors = data["details"]["generated_equals_reference"]["details"]["errors"]
    assert "term mixing" in errors and any(k.startswith("padded ") for k in errors)


# ------------------------------------------------------------------- 6. training
def test_adam_learns_a_convolution(tmp_path):
    """Regress u ↦ u + (a fixed smoothing stencil)·u through a conv spec (float32, as built
    by ``pdelang.build``): the loss falls by > 10× in 60 Adam steps, and the conv weights
    get finite, non-zero gradients."""
    import pdelang

    path = tmp_path / "conv_train.yaml"
    path.write_text(conv_spec(boundary="neumann", kernel=3, bias=True, channels=2))
    stepper = pdelang.build(str(path))
    torch.manual_seed(0)
    model = stepper()
    generator = torch.Generator().manual_seed(1)
    u = torch.randn(8, 12, 2, generator=generator)
    padded = torch.cat([u[:, 1:2], u, u[:, -2:-1]], dim=1)  # reflect
    target = u + 0.25 * padded[:, :-2] - 0.5 * u + 0.25 * padded[:, 2:] + 0.1
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(60):
        optimizer.zero_grad()
        loss = F.mse_loss(model(u), target)
        loss.backward()
        if step == 0:
            for name, param in model.named_parameters():
                assert param.grad is not None, name
                assert torch.isfinite(param.grad).all() and (param.grad != 0).any(), name
        optimizer.step()
        losses.append(loss.item())
    assert {n for n, _ in model.named_parameters()} == {"layers.0.mixing_conv.weight",
                                                        "layers.0.mixing_conv.bias"}
    assert losses[-1] < 0.1 * losses[0], losses


@pytest.mark.parametrize(("boundary", "dims", "masked"), [("dirichlet", 1, True),
                                                         ("copy", 1, True),
                                                         ("periodic", 2, False),
                                                         ("neumann", 2, True)])
def test_gradients_match_finite_differences(boundary, dims, masked):
    """float64 gradcheck of the whole stepper (2 layers, conv + bias) with respect to both
    layers' weights and biases and the input, with padding."""
    text = conv_spec(boundary=boundary, dims=dims, kernel=3, bias=True, channels=2,
                     shape=(3, 4) if dims == 2 else None, layers=2)
    stepper = _stepper(text)
    names = [n for n, _ in stepper.named_parameters()]
    assert len(names) == 4
    tokens = 12 if dims == 2 else 5
    u = _random_u(2, tokens, channels=2).requires_grad_(True)
    mask = torch.ones(2, tokens, dtype=torch.bool)
    if masked:
        if dims == 2:
            mask[1] = torch.tensor([[1, 1, 1, 0]] * 2 + [[0, 0, 0, 0]]).bool().reshape(-1)
        else:
            mask[1, 3:] = False
    params = tuple(p.detach().clone().requires_grad_(True) for p in stepper.parameters())

    def f(x, *values):
        return torch.func.functional_call(stepper, dict(zip(names, values)), (x, mask))

    assert torch.autograd.gradcheck(f, (u, *params), eps=1e-6, atol=1e-7, rtol=1e-6)
    out = f(u, *params)
    grads = torch.autograd.grad(out.pow(2).sum(), params)
    for name, grad in zip(names, grads):
        assert torch.isfinite(grad).all() and (grad != 0).any(), name


# ------------------------------------------------------------------- 7. user errors
def test_cli_conv_errors_exit_2_with_a_located_message(tmp_path):
    """The located messages live in tests/frontend/bad_specs (the conv entries); here the
    CLI's exit code and form, never a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(conv_spec(kernel=4))
    code, out, err = cli("check", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"{path}:") and "must be odd" in err and "Traceback" not in err
    assert "hint: use kernel=3 or kernel=5" in err


@pytest.mark.parametrize(("dims", "shape", "kernel", "axis"), [(1, (3,), 9, "seq"),
                                                               (2, (6, 2), 5, "cols")])
def test_kernel_larger_than_the_grid_is_a_spec_error(dims, shape, kernel, axis):
    from pdelang.errors import SpecError

    with pytest.raises(SpecError) as info:
        compile_any(conv_spec(dims=dims, shape=shape, kernel=kernel))
    assert f"grid axis '{axis}' has {shape[-1]} tokens" in info.value.message
    assert info.value.location is not None


def test_kernel_larger_than_the_grid_hints_at_the_kernel():
    from pdelang.errors import SpecError

    with pytest.raises(SpecError) as info:
        compile_any(conv_spec(shape=(3,), kernel=9))
    assert "accuracy" not in info.value.suggestion
    assert "kernel" in info.value.suggestion


# ------------------------------------------------------------------- 8. strategies
def _conv_options(text: str) -> list[str]:
    return [call.split(")")[0] for call in text.split("conv(")[1:]]


def _one_d(text: str) -> bool:
    return "," not in text.split("axes: [", 1)[1].split("]", 1)[0]


def test_strategy_draws_conv_calls_that_compile_and_run():
    """``spec_texts()`` draws conv calls: find (generate phase only, no shrinking) a spec
    with any conv call, one with a kernel > 1, one on a 1-D grid, one with a bias option;
    each compiles to a conv module and runs exactly like the NumPy oracle."""
    from hypothesis import HealthCheck, Phase, find, settings

    from pdelang.lab.testing import strategies as S

    quick = settings(database=None, derandomize=True, deadline=None, max_examples=2000,
                     phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    wanted = {
        "any": lambda text: "conv(" in text,
        "kernel > 1": lambda text: "conv(" in text
        and all("kernel=1" not in o for o in _conv_options(text)),
        "1-D": lambda text: "conv(" in text and _one_d(text),
        "bias": lambda text: any("bias=" in o for o in _conv_options(text)),
    }
    found = {name: find(S.spec_texts(), condition, settings=quick)
             for name, condition in wanted.items()}
    kernels = set()
    for name, text in found.items():
        compilation = compile_any(text)
        convs = [m for m in compilation.discrete.modules if m.op == "conv"]
        assert convs, (name, text)
        kernels |= {int(m.options["kernel"]) for m in convs}
        result = check_generated_matches_reference(compilation, masked=False)
        assert result.passed, (name, text, result.message)
    assert kernels - {1}, kernels
