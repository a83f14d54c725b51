"""Stand-ins for the module constants that the blocks read.

A generated module defines these from its spec (``TorchPrinter.constants``); here they
only give the block files real, importable names.  Tests set other values on a block's
module (``monkeypatch.setattr(stencil_2d, "GRID_SHAPE", (4, 5))``).
"""

EXTRA_TOKENS = 0  # tokens before the grid: attention only
GRID_SHAPE: tuple[int, int] | None = None  # (rows, cols) of a 2-D grid
STENCIL_RADIUS = 1  # ghost tokens each stencil reads beyond an end
CAUSAL = False
BOUNDARY = "periodic"  # the grid's boundary rule (implicit terms only)

# Print-time flags: the printer knows them from the spec and folds the branches they guard
# (pdelang.compiler.codegen.specialize); a generated module never holds them.
ATTENTION_MASKS = True  # an operator reads the attention masks (ctx.key_mask, ctx.masks)
GRID_MASKS = True  # an operator reads each padded sequence's grid extent (ctx.lengths)
PADDING = True  # the spec allows padded batches (grid.padding)
POSITIVE = True  # a learnable scalar is positive (softplus-parametrized)
# what the spec's attention calls use (AttentionOperator.print_flags)
SOFTMAX = True  # a call with kernel=softmax
SINKHORN = True  # a call with kernel=sinkhorn
ROTARY = True  # a call with rotary embeddings (rope_theta > 0)
GROUPED_QUERIES = True  # a call with fewer key/value heads than query heads
