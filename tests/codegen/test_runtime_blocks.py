"""The runtime blocks (``pdelang/compiler/codegen/runtime/*.py``) as code.

Each block file is a real module: it imports, passes ``ruff check``, and its functions and
classes are run here on small hand-computed examples.  The printer inlines the text between
a file's ``# pdelang: begin NAME`` / ``# pdelang: end NAME`` markers; the golden files check
that the inlined text is what generated modules contain.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from importlib import resources
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from pdelang.compiler.codegen import runtime as R

from codegen_helpers import REPO

PACKAGE = "pdelang.compiler.codegen.runtime"
FILES = sorted(entry.name[:-3] for entry in resources.files(PACKAGE).iterdir()
               if entry.name.endswith(".py") and entry.name != "__init__.py")
BLOCK_FILES = [name for name in FILES if name != "constants"]


def runtime(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def column(values) -> torch.Tensor:
    """(1, L, 1) float64 tensor of a 1-D grid."""
    return torch.tensor(values, dtype=torch.float64)[None, :, None]


# ------------------------------------------------------------------ files and markers
def test_the_expected_files_are_there():
    expected = {"header", "output", "context", "grid_lengths_1d", "grid_lengths_2d",
                "positive", "attention", "finite_logsumexp", "activations", "mlp", "take",
                "hold_border_1d", "hold_border_2d", "stencil_1d", "stencil_1d_copy",
                "stencil_2d", "stencil_2d_copy", "constants", "implicit", "conv", "scalars",
                "basis", "rotary", "glu", "implicit_periodic",
                "sphere_attention", "ghosted", "weighted_sum"}
    expected |= {f"ghosts_{b}" for b in R.BOUNDARIES}
    assert set(FILES) == expected


@pytest.mark.parametrize("name", FILES)
def test_every_runtime_file_imports(name):
    runtime(name)


def test_every_runtime_file_passes_ruff():
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    folder = resources.files(PACKAGE)
    result = subprocess.run(command + ["check", "--no-cache", str(folder)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", BLOCK_FILES)
def test_each_block_defines_its_name(name):
    """A block is a whole top-level statement list whose first statement defines NAME (the
    import block excepted), and it runs in its module's namespace."""
    module = runtime(name)
    for block_name, text in R.blocks(name).items():
        assert text.endswith("\n") and not text.startswith("\n")
        tree = ast.parse(text)
        first = tree.body[0]
        if block_name == "imports":
            assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)
            continue
        defined = first.targets[0].id if isinstance(first, ast.Assign) else first.name
        assert defined == block_name
        assert getattr(module, block_name) is not None
        namespace = dict(vars(module))
        exec(compile(text, f"<{name}:{block_name}>", "exec"), namespace)  # our own file
        assert block_name in namespace


def test_the_old_block_names_are_the_files_blocks():
    assert R.GHOSTS["copy"] == R.block("ghosts_copy", "with_ghosts")
    assert R.RAGGED_VALUE["dirichlet"].startswith("def ghost_value(")
    assert R.ATTENTION.startswith("class Attention(nn.Module):\n")
    assert R.HEADER_IMPORTS.startswith("from __future__ import annotations\n")
    assert R.ACTIVATION_SOURCES["gelu_tanh"] == 'lambda x: F.gelu(x, approximate="tanh")'
    assert set(R.ACTIVATION_SOURCES) == set(runtime("activations").ACTIVATIONS)


def test_stencil_variants_fill_in_the_boundary():
    for dims in (1, 2):
        for boundary in R.BOUNDARIES:
            lines = R.stencil(dims, boundary)
            assert lines[0] == "class Stencil(nn.Module):"
            assert f"The {boundary} boundary's ghosts" in " ".join(lines)
            assert ("hold_border(rate)" in "\n".join(lines)) == (boundary == "copy")
            assert not any("{boundary}" in line for line in lines)
        assert f"    for dim in {(1,) if dims == 1 else (1, 2)}:" in R.hold_border(dims)


def test_goldens_inline_the_blocks_specialized_to_the_spec():
    """heat1d (1-D, periodic, no extra tokens, no attention, ``grid.padding: false``): each
    block it needs appears as written, less the branches this spec does not take
    (:func:`specialize`), and the padded-batch machinery is not there at all."""
    from pdelang.compiler.codegen.specialize import specialize

    golden = (REPO / "tests" / "golden" / "heat1d.py").read_text(encoding="utf-8")
    known = {"EXTRA_TOKENS": 0, "GRID_SHAPE": None, "STENCIL_RADIUS": 1,
             "BOUNDARY": "periodic", "CAUSAL": False, "ATTENTION_MASKS": False,
             "GRID_MASKS": False, "PADDING": False, "POSITIVE": False}
    for text in (R.GHOSTS["periodic"], R.OUTPUT):
        assert text in golden  # no branch to fold: verbatim
    for text in (R.CONTEXT, R.SPEC_SCALARS, "\n".join(R.stencil(1, "periodic")) + "\n"):
        assert specialize(text, known) in golden
        assert specialize(text, known) != text  # something was folded away
    for unused in ("EXTRA_TOKENS", "key_mask", "parametrizations", "F.pad", "GRID_SHAPE",
                   "CAUSAL", "def along", "ATTENTION_MASKS", "GRID_MASKS", "POSITIVE",
                   "PADDING", "lengths", "def take", "def ghost_value", "def ragged_ghosts",
                   "def grid_inside"):
        assert unused not in golden, unused
    # with padding allowed, the ragged path and its helpers are there, verbatim
    padded = (REPO / "tests" / "golden" / "master.py").read_text(encoding="utf-8")
    for text in (R.TAKE, R.block("stencil_1d", "ragged_ghosts"), "def ghost_value(",
                 "def grid_inside(", "if ctx.lengths is not None:"):
        assert text in padded


def test_marker_errors_are_reported():
    good = "x = 1\n# pdelang: begin a\na = 1\n# pdelang: end a\n#  pdelang: begin b\n"
    assert R.parse_blocks(good) == {"a": "a = 1\n"}
    with pytest.raises(ValueError, match="no end marker"):
        R.parse_blocks("# pdelang: begin a\na = 1\n")
    with pytest.raises(ValueError, match="does not close"):
        R.parse_blocks("# pdelang: begin a\na = 1\n# pdelang: end b\n")
    with pytest.raises(ValueError, match="begins inside"):
        R.parse_blocks("# pdelang: begin a\n# pdelang: begin b\n")
    with pytest.raises(ValueError, match="two blocks"):
        R.parse_blocks("# pdelang: begin a\n# pdelang: end a\n" * 2)
    with pytest.raises(ValueError, match="no '# pdelang: begin"):
        R.parse_blocks("x = 1\n")
    with pytest.raises(KeyError, match="no block 'nope'"):
        R.block("take", "nope")


# ------------------------------------------------------------------ ghost cells
GHOSTED = {  # g = [1, 2, 3, 4], r = 2: two ghosts on each side
    "periodic": [3, 4, 1, 2, 3, 4, 1, 2],  # wrap around
    "neumann": [3, 2, 1, 2, 3, 4, 3, 2],  # even mirror about the end tokens
    "dirichlet": [-1, 0, 1, 2, 3, 4, 0, -4],  # zero one spacing out, odd mirror beyond
    "copy": [-1, 0, 1, 2, 3, 4, 5, 6],  # odd mirror about the end tokens: 2 u_0 − u_j
}


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
def test_with_ghosts_hand_computed(boundary):
    with_ghosts = runtime(f"ghosts_{boundary}").with_ghosts
    padded = with_ghosts(column([1, 2, 3, 4]), 1, 2)
    assert padded.flatten().tolist() == GHOSTED[boundary]
    # along another axis of a 2-D grid view (B, rows, cols, C)
    grid = column([1, 2, 3, 4]).reshape(1, 1, 4, 1).expand(1, 3, 4, 1)
    assert with_ghosts(grid, 2, 2)[0, 1, :, 0].tolist() == GHOSTED[boundary]


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
def test_ghost_value_agrees_with_with_ghosts(boundary):
    module = runtime(f"ghosts_{boundary}")
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(2, 7, 3, generator=generator, dtype=torch.float64)
    for r in (1, 2, 3):
        positions = torch.arange(-r, 7 + r)[None, :].expand(2, -1)  # (B, L + 2r)
        value = module.ghost_value(g, positions, torch.tensor([[7], [7]]))
        torch.testing.assert_close(value, module.with_ghosts(g, 1, r), rtol=0, atol=0)
    # a padded sequence (5 real tokens of 7) has its ghosts at its own end
    positions = torch.arange(-2, 7)[None, :]
    value = module.ghost_value(g[:1], positions, torch.tensor([[5]]))
    torch.testing.assert_close(value, module.with_ghosts(g[:1, :5], 1, 2), rtol=0, atol=0)


def test_take_gathers_per_sequence_and_clamps():
    g = torch.arange(6.0).reshape(2, 3, 1)
    index = torch.tensor([[2, 0, 5], [1, 1, -1]])
    assert runtime("take").take(g, index)[..., 0].tolist() == [[2, 0, 2], [4, 4, 3]]


@pytest.mark.parametrize("dims,shape", [(1, (1, 5, 2)), (2, (1, 4, 5, 2))])
def test_hold_border_zeroes_the_ends(dims, shape):
    held = runtime(f"hold_border_{dims}d").hold_border(torch.ones(shape))
    expected = torch.zeros(shape)
    if dims == 1:
        expected[:, 1:-1] = 1
    else:
        expected[:, 1:-1, 1:-1] = 1
    assert torch.equal(held, expected)


# ------------------------------------------------------------------ stencils
LAPLACIAN = ((-1, 0, 1), (1.0, -2.0, 1.0))


def stencil_module(dims: int, boundary: str, monkeypatch, grid_shape=None):
    """The Stencil block of ``dims`` with ``boundary``'s ghost rules patched in."""
    module = runtime(f"stencil_{dims}d" + ("_copy" if boundary == "copy" else ""))
    ghosts = runtime(f"ghosts_{boundary}")
    if dims == 1:
        monkeypatch.setattr(module, "with_ghosts", ghosts.with_ghosts)
    else:  # the 2-D blocks build their ghosts in one allocation (block ``ghosted``)
        monkeypatch.setattr(runtime("ghosted"), "fill_ghosts", ghosts.fill_ghosts)
    # ragged_ghosts (every boundary's, in stencil_{1,2}d.py) reads the boundary's ghost_value
    monkeypatch.setattr(runtime(f"stencil_{dims}d"), "ghost_value", ghosts.ghost_value)
    if grid_shape is not None:
        monkeypatch.setattr(module, "GRID_SHAPE", grid_shape)
    return module


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
def test_stencil_1d_laplacian_of_x_squared(boundary, monkeypatch):
    module = stencil_module(1, boundary, monkeypatch)
    stencil = module.Stencil(*LAPLACIAN, 1.0, (1,))
    x = torch.arange(8, dtype=torch.float64)
    u = (x**2)[None, :, None].expand(2, 8, 3)  # (B, N, C)
    rate = stencil(u, SimpleNamespace(lengths=None))
    assert torch.equal(rate[:, 1:-1], torch.full((2, 6, 3), 2.0, dtype=torch.float64))
    if boundary == "copy":
        assert not rate[:, [0, -1]].any()  # end tokens held fixed
    # a padded batch: sequence 1 has 6 real tokens; padding gets zero rate
    rate = stencil(u, SimpleNamespace(lengths=torch.tensor([8, 6])))
    assert torch.equal(rate[1, 1:5], torch.full((4, 3), 2.0, dtype=torch.float64))
    assert not rate[1, 6:].any()
    torch.testing.assert_close(rate[0], stencil(u[:1], SimpleNamespace(lengths=None))[0])


@pytest.mark.parametrize("boundary", R.BOUNDARIES)
def test_stencil_2d_laplacian_of_r_squared(boundary, monkeypatch):
    module = stencil_module(2, boundary, monkeypatch, grid_shape=(4, 5))
    monkeypatch.setattr(module, "EXTRA_TOKENS", 1)  # a CLS token before the grid
    stencil = module.Stencil(*LAPLACIAN, 1.0, (1, 2))
    rows = torch.arange(4, dtype=torch.float64)[:, None]
    cols = torch.arange(5, dtype=torch.float64)[None, :]
    grid = (rows**2 + cols**2).reshape(1, 20, 1)
    u = torch.cat([torch.full((1, 1, 1), 7.0, dtype=torch.float64), grid], dim=1)
    for lengths in (None, torch.tensor([[4, 5]])):
        rate = stencil(u, SimpleNamespace(lengths=lengths))
        assert rate.shape == u.shape and rate[0, 0, 0] == 0  # zero rate off the grid
        rate = rate[0, 1:, 0].reshape(4, 5)
        assert torch.equal(rate[1:-1, 1:-1], torch.full((2, 3), 4.0, dtype=torch.float64))
        if boundary == "copy":
            border = torch.ones(4, 5, dtype=torch.bool)
            border[1:-1, 1:-1] = False
            assert not rate[border].any()


# ------------------------------------------------------------------ the other blocks
def test_finite_logsumexp_of_a_masked_row_is_zero_with_zero_gradient():
    finite_logsumexp = runtime("finite_logsumexp").finite_logsumexp
    x = torch.tensor([[float("-inf")] * 3, [0.0, 1.0, float("-inf")]], requires_grad=True)
    value = finite_logsumexp(x, dim=-1)
    assert value[0, 0] == 0
    torch.testing.assert_close(value[1, 0], torch.logsumexp(x[1].detach(), dim=0))
    value.sum().backward()
    assert torch.equal(x.grad[0], torch.zeros(3))
    torch.testing.assert_close(x.grad[1], torch.tensor([0.0, 1.0, float("-inf")]).softmax(0))


def test_positive_right_inverse_inverts_softplus():
    positive = runtime("positive").Positive()
    value = torch.tensor([1e-3, 0.1, 1.0, 5.0, 30.0], dtype=torch.float64)
    raw = positive.right_inverse(value)
    torch.testing.assert_close(positive(raw), value)
    torch.testing.assert_close(raw, torch.log(torch.expm1(value)))


def test_grid_lengths_count_real_tokens_and_reject_left_padding(monkeypatch):
    module = runtime("grid_lengths_1d")
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    assert module.grid_lengths(mask).tolist() == [4, 3]
    with pytest.raises(ValueError, match="right padding"):
        module.grid_lengths(torch.tensor([[0, 1, 1, 1]], dtype=torch.bool))
    module_2d = runtime("grid_lengths_2d")
    monkeypatch.setattr(module_2d, "GRID_SHAPE", (3, 3))
    image = torch.zeros(3, 3, dtype=torch.bool)
    image[:2, :3] = True
    assert module_2d.grid_lengths(image.reshape(1, 9)).tolist() == [[2, 3]]


def test_attention_paths_agree_and_context_masks_padding():
    torch.manual_seed(0)
    Context = runtime("context").Context
    u = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    ctx = Context(u, mask, record=False)
    assert ctx.lengths.tolist() == [5, 3]
    attention = runtime("attention").Attention(8, 2, causal=False, kernel="softmax",
                                               iterations=3, bias=True)
    fused = attention(u, ctx)
    recorded = Context(u, mask, record=True)
    explicit = attention(u, recorded)
    torch.testing.assert_close(fused, explicit)
    weights = recorded.attentions[0]  # (B, H, N, N)
    assert not weights[1, :, :, 3:].any()  # padding keys get no weight
    sinkhorn = runtime("attention").Attention(8, 2, causal=False, kernel="sinkhorn",
                                              iterations=20, bias=True)
    sinkhorn(u, recorded)
    columns = recorded.attentions[-1][1, :, :3, :3].sum(dim=-2)  # real queries × keys
    torch.testing.assert_close(columns, torch.ones(2, 3), atol=1e-3, rtol=0)


def test_mlp_uses_the_named_activation():
    mlp = runtime("mlp").MLP(4, 6, "gelu_tanh", bias=False)
    u = torch.randn(1, 3, 4)
    expected = mlp.fc2(F.gelu(mlp.fc1(u), approximate="tanh"))
    torch.testing.assert_close(mlp(u), expected)
