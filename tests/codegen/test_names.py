"""Parameter names become attributes of generated torch modules: the loader refuses the
names that would not parse or would clash (its list is checked against the installed torch)."""

from __future__ import annotations

import torch

from pdelang.codegen.names import MODULE_ATTRIBUTES


def test_every_public_nn_module_attribute_is_refused():
    import transformers  # noqa: F401  (it adds methods to nn.Module when imported)

    public = {name for name in dir(torch.nn.Module()) if not name.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)
