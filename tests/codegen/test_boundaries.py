"""The generated Laplacian against a hand-written NumPy version of the documented ghost rules.

The ghost-cell rules (docstrings of ``with_ghosts`` in
``pdelang/compiler/codegen/runtime.py``), for a
grid axis with tokens u_0 … u_{L−1} and ghosts at −j and L−1+j, j ≥ 1:

* periodic:  u_{−j} = u_{L−j},          u_{L−1+j} = u_{j−1}
* neumann:   u_{−j} = u_j,              u_{L−1+j} = u_{L−1−j}          (even mirror)
* dirichlet: u_{−1} = 0, u_{−1−j} = −u_{j−1};  u_L = 0, u_{L+j} = −u_{L−j}  (odd mirror about
             the zero one spacing beyond each end)
* copy:      u_{−j} = 2u_0 − u_j,       u_{L−1+j} = 2u_{L−1} − u_{L−1−j}, and the end tokens'
             rate is zero (on a 2-D grid: every token on the border of the patch grid)

(L u)_i = Σ_axes Σ_j w_j u_{i+j e_axis} / h²; the 2-D grid is the row-major view
(B, rows, cols, C) of the tokens after the extra tokens.  Extra tokens and padding tokens are
outside the domain: their rate is zero, and a right-padded sequence is differentiated exactly
as if it were alone and as long as its real tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegen_helpers import build, module_of

BOUNDARIES = ["periodic", "neumann", "dirichlet", "copy"]
WEIGHTS = {2: [1.0, -2.0, 1.0], 4: [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]}
H1, H2 = 0.25, 0.5  # spacings used in 1-D and 2-D


# ----------------------------------------------------------------- NumPy oracle
def ghosted(a: np.ndarray, axis: int, r: int, boundary: str) -> np.ndarray:
    """``a`` with r ghost values on each side along ``axis``, by the documented rules."""
    a = np.moveaxis(a, axis, 0)
    size = a.shape[0]
    left, right = [], []
    for j in range(1, r + 1):  # ghost at −j and at L−1+j
        if boundary == "periodic":
            lo, hi = a[size - j], a[j - 1]
        elif boundary == "neumann":
            lo, hi = a[j], a[size - 1 - j]
        elif boundary == "dirichlet":
            lo = np.zeros_like(a[0]) if j == 1 else -a[j - 2]
            hi = np.zeros_like(a[0]) if j == 1 else -a[size + 1 - j]
        elif boundary == "copy":
            lo, hi = 2 * a[0] - a[j], 2 * a[size - 1] - a[size - 1 - j]
        else:
            raise AssertionError(boundary)
        left.insert(0, lo)
        right.append(hi)
    out = np.concatenate([np.stack(left), a, np.stack(right)])
    return np.moveaxis(out, 0, axis)


def numpy_laplace(g: np.ndarray, axes: tuple[int, ...], accuracy: int, h: float,
                  boundary: str) -> np.ndarray:
    """g: (B, *grid, C) in float64."""
    weights = WEIGHTS[accuracy]
    r = len(weights) // 2
    rate = np.zeros_like(g)
    for axis in axes:
        padded = ghosted(g, axis, r, boundary)
        size = g.shape[axis]
        for j, w in zip(range(-r, r + 1), weights):
            rate += w / h**2 * np.take(padded, np.arange(r + j, r + j + size), axis=axis)
    if boundary == "copy":
        for axis in axes:
            index = [slice(None)] * g.ndim
            for end in (0, g.shape[axis] - 1):
                index[axis] = end
                rate[tuple(index)] = 0.0
    return rate


def test_numpy_reference_sanity():
    # the 3-point Laplacian of x² is 2 in the interior; neumann keeps constants in the kernel
    x = np.arange(6.0)[None, :, None]
    assert np.allclose(numpy_laplace(x**2, (1,), 2, 1.0, "dirichlet")[0, 1:-1, 0], 2.0)
    assert np.allclose(numpy_laplace(np.ones((1, 6, 1)), (1,), 4, 1.0, "neumann"), 0.0)
    g = ghosted(np.arange(1.0, 6.0), 0, 2, "dirichlet")
    assert g.tolist() == [-1.0, 0.0, 1, 2, 3, 4, 5, 0.0, -5.0]


# ----------------------------------------------------------------- compiled stencils
def diffusion_1d(boundary, accuracy, extra=0):
    return build("heat1d", [f"grid.boundary={boundary}", f"grid.spacing={H1}",
                            f"discretization.laplace.accuracy={accuracy}",
                            f"grid.extra_tokens={extra}", "time.substeps=4",
                            "grid.padding=true"])


def diffusion_2d(boundary, accuracy, shape=(5, 7)):
    return build("reaction_diffusion2d", [
        f"grid.boundary={boundary}", f"grid.spacing={H2}", f"grid.shape=[{shape[0]}, {shape[1]}]",
        f"discretization.laplace.accuracy={accuracy}", "time.substeps=2"])


def laplace(stepper_class, u, mask=None):
    stepper = stepper_class().double()
    ctx = module_of(stepper_class).Context(u, mask, record=False)
    with torch.no_grad():
        return stepper.layers[0].laplace(u, ctx)


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_1d_laplace_matches_numpy(boundary, accuracy):
    u = random(2, 11, 3)
    rate = laplace(diffusion_1d(boundary, accuracy), u)
    expected = numpy_laplace(u.numpy(), (1,), accuracy, H1, boundary)
    np.testing.assert_allclose(rate.numpy(), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_2d_laplace_matches_numpy(boundary, accuracy):
    rows, cols = 5, 7
    u = random(2, rows * cols, 1, seed=1)
    rate = laplace(diffusion_2d(boundary, accuracy, (rows, cols)), u)
    grid = u.numpy().reshape(2, rows, cols, 1)
    expected = numpy_laplace(grid, (1, 2), accuracy, H2, boundary).reshape(2, rows * cols, 1)
    np.testing.assert_allclose(rate.numpy(), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_laplace_of_a_smooth_field_converges(boundary):
    """Away from the ends, the stencil is the second derivative of a smooth field."""
    n = 40
    x = torch.arange(n, dtype=torch.float64) * H1
    u = torch.sin(0.3 * x)[None, :, None]
    rate = laplace(diffusion_1d(boundary, 4), u)[0, 3:-3, 0]
    torch.testing.assert_close(rate, -0.09 * torch.sin(0.3 * x[3:-3]), rtol=0, atol=1e-5)


# ----------------------------------------------------------------- padding and extra tokens
LENGTHS = [12, 9, 5]


@pytest.mark.parametrize("extra", [0, 1])
@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_right_padding_equals_each_sequence_alone(boundary, accuracy, extra):
    stepper_class = diffusion_1d(boundary, accuracy, extra)
    total = max(LENGTHS) + extra
    u = random(len(LENGTHS), total, 2, seed=2)
    mask = torch.zeros(len(LENGTHS), total, dtype=torch.bool)
    for b, n in enumerate(LENGTHS):
        mask[b, : n + extra] = True
    rate = laplace(stepper_class, u, mask)
    for b, n in enumerate(LENGTHS):
        alone = u[b:b + 1, : n + extra]
        expected = laplace(stepper_class, alone)
        torch.testing.assert_close(rate[b:b + 1, : n + extra], expected, rtol=0, atol=1e-12)
        grid = alone[:, extra:].numpy()
        np.testing.assert_allclose(rate[b, extra:n + extra].numpy(),
                                   numpy_laplace(grid, (1,), accuracy, H1, boundary)[0],
                                   rtol=1e-12, atol=1e-9)
        assert torch.count_nonzero(rate[b, n + extra:]) == 0  # padding: zero rate
        if extra:
            assert float(rate[b, 0].abs().max()) == 0.0  # extra token: zero rate


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_whole_stepper_with_padding_equals_each_sequence_alone(boundary):
    stepper_class = diffusion_1d(boundary, 4)
    stepper = stepper_class().double()
    u = random(len(LENGTHS), max(LENGTHS), 1, seed=3) * 0.1
    mask = torch.arange(max(LENGTHS))[None, :] < torch.tensor(LENGTHS)[:, None]
    with torch.no_grad():
        out = stepper(u, mask)
        for b, n in enumerate(LENGTHS):
            torch.testing.assert_close(out[b:b + 1, :n], stepper(u[b:b + 1, :n]),
                                       rtol=0, atol=1e-12)
            # padding tokens do not move
            assert torch.equal(out[b, n:], u[b, n:])


def test_left_padding_is_rejected():
    stepper_class = diffusion_1d("neumann", 2)
    u = random(1, 6, 1)
    mask = torch.tensor([[False, True, True, True, True, True]])
    with pytest.raises(ValueError, match="right padding"):
        laplace(stepper_class, u, mask)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_extra_tokens_have_zero_diffusion_rate_2d(boundary):
    """vit2d: 4 × 4 patches (spacing 1) plus one CLS token before the grid."""
    stepper_class = build("vit2d", [f"grid.boundary={boundary}"])
    u = random(2, 17, 64, seed=4)
    rate = laplace(stepper_class, u)
    assert float(rate[:, 0].abs().max()) == 0.0
    grid = u[:, 1:].numpy().reshape(2, 4, 4, 64)
    expected = numpy_laplace(grid, (1, 2), 2, 1.0, boundary).reshape(2, 16, 64)
    np.testing.assert_allclose(rate[:, 1:].numpy(), expected, rtol=1e-12, atol=1e-9)
    # masking the CLS token (the only token a 2-D grid may pad) changes nothing on the grid
    mask = torch.ones(2, 17, dtype=torch.bool)
    mask[1, 0] = False
    torch.testing.assert_close(laplace(stepper_class, u, mask), rate, rtol=0, atol=0)


def test_2d_padding_that_is_not_a_corner_image_is_rejected():
    stepper_class = build("vit2d")
    u = random(1, 17, 64)
    mask = torch.ones(1, 17, dtype=torch.bool)
    mask[0, -1] = False  # one patch missing: not whole trailing rows and columns
    with pytest.raises(ValueError, match="2-D grid"):
        laplace(stepper_class, u, mask)


EXTENTS = [(6, 7), (4, 5), (6, 3), (3, 7)]  # (rows, cols) of each image on a 6 × 7 grid


def corner_mask(extents, shape, extra=0):
    mask = torch.zeros(len(extents), extra + shape[0] * shape[1], dtype=torch.bool)
    for b, (r, c) in enumerate(extents):
        image = torch.zeros(shape, dtype=torch.bool)
        image[:r, :c] = True
        mask[b, :extra] = True
        mask[b, extra:] = image.flatten()
    return mask


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_2d_padding_equals_each_image_alone(boundary, accuracy):
    """A smaller image in the top-left corner of the grid (padding fills whole trailing rows
    and columns) is differentiated exactly as the same spec compiled for its own shape, and
    as the hand-written ghost rules on the cropped image; padding tokens have zero rate."""
    shape = (6, 7)
    stepper_class = diffusion_2d(boundary, accuracy, shape)
    u = random(len(EXTENTS), shape[0] * shape[1], 2, seed=5)
    rate = laplace(stepper_class, u, corner_mask(EXTENTS, shape)).reshape(-1, *shape, 2)
    images = u.reshape(-1, *shape, 2)
    for b, (r, c) in enumerate(EXTENTS):
        crop = images[b:b + 1, :r, :c]
        alone = laplace(diffusion_2d(boundary, accuracy, (r, c)), crop.reshape(1, r * c, 2))
        torch.testing.assert_close(rate[b:b + 1, :r, :c].reshape(1, r * c, 2), alone,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            rate[b, :r, :c].numpy(),
            numpy_laplace(crop.numpy(), (1, 2), accuracy, H2, boundary)[0], rtol=1e-12,
            atol=1e-9)
        outside = torch.ones(shape, dtype=torch.bool)
        outside[:r, :c] = False
        assert torch.count_nonzero(rate[b][outside]) == 0


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_whole_2d_stepper_with_padding_equals_each_image_alone(boundary):
    """vit2d (attention, MLP, 2-D diffusion, pre-LN, final norm, a CLS token off the grid):
    a padded batch evolves each image's real tokens exactly as the spec compiled for that
    image's shape, with the same weights (nothing in the stepper depends on the grid size)."""
    big_class = build("vit2d", [f"grid.boundary={boundary}"])
    big = big_class().double().eval()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in big.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    extents = [(4, 4), (3, 2), (2, 4), (4, 3)]
    u = random(len(extents), 17, 64, seed=8)
    mask = corner_mask(extents, (4, 4), extra=1)
    with torch.no_grad():
        out = big(u, mask, return_attention=True)
    images = u[:, 1:].reshape(-1, 4, 4, 64)
    for b, (r, c) in enumerate(extents):
        small = build("vit2d", [f"grid.boundary={boundary}", f"grid.shape=[{r}, {c}]"])()
        small = small.double().eval()
        small.load_state_dict(big.state_dict())
        alone = torch.cat([u[b:b + 1, :1], images[b:b + 1, :r, :c].reshape(1, r * c, 64)], 1)
        with torch.no_grad():
            expected = small(alone, return_attention=True)
        got = out.state[b:b + 1]
        real = torch.cat([got[:, :1], got[:, 1:].reshape(1, 4, 4, 64)[:, :r, :c]
                          .reshape(1, r * c, 64)], 1)
        torch.testing.assert_close(real, expected.state, rtol=0, atol=1e-10)
        # padding keys get zero attention weight
        keys = mask[b]
        for weights in out.attentions:
            assert torch.count_nonzero(weights[b][..., ~keys]) == 0


@pytest.mark.parametrize("two_d", [False, True])
def test_padded_input_shorter_than_the_stencil_is_rejected(two_d):
    """A padded sequence (or image axis) with no more real tokens than the stencil's radius
    has no defined ghost values: an error that says so, not clamped indices."""
    if two_d:
        stepper_class = diffusion_2d("neumann", 4, (6, 7))  # radius 2
        u = random(2, 42, 2)
        mask = corner_mask([(6, 7), (2, 7)], (6, 7))
    else:
        stepper_class = diffusion_1d("neumann", 4)  # radius 2
        u = random(2, 12, 1)
        mask = torch.arange(12)[None, :] < torch.tensor([12, 2])[:, None]
    with pytest.raises(ValueError, match=r"real tokens.*the stencils need > 2"):
        laplace(stepper_class, u, mask)


# ----------------------------------------------------------------- grid.padding: false
@pytest.mark.parametrize("spec", ["heat1d", "reaction_diffusion2d", "master", "gpt2_preln",
                                  "vit2d"])
def test_a_spec_without_padding_refuses_a_padded_mask(spec):
    """``grid.padding: false`` leaves the padded-batch path out of the module: an all-ones
    mask is accepted (the same result as no mask), a mask with padding is refused by name,
    and the same spec with padding allowed agrees on full batches."""
    import inspect

    lean_class = build(spec, ["grid.padding=false"])
    general_class = build(spec, ["grid.padding=true"])
    lean, general = lean_class().double(), general_class().double()
    general.load_state_dict(lean.state_dict())
    module = module_of(lean_class)
    shape = getattr(module, "GRID_SHAPE", None)  # (rows, cols) in 2-D
    tokens = getattr(module, "EXTRA_TOKENS", 0) + (24 if shape is None else shape[0] * shape[1])
    u = torch.randn(2, tokens, module.CHANNELS, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3))
    full = torch.ones(2, tokens, dtype=torch.bool)
    assert torch.equal(lean(u, full), lean(u))
    torch.testing.assert_close(lean(u), general(u), rtol=1e-14, atol=1e-14)
    padded = full.clone()
    padded[1, -(3 if shape is None else shape[1]):] = False  # 3 tokens, or the last row
    with pytest.raises(ValueError, match=r"grid\.padding: false"):
        lean(u, padded)
    general(u, padded)  # the general module takes it
    text = inspect.getsource(module)
    assert "lengths" not in text and "def take" not in text
    if "def grid_lengths" in inspect.getsource(module_of(general_class)):
        assert "def grid_lengths" not in text
