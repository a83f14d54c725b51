"""Resolve a reference string to a :class:`~pdelang.lab.reference.base.Reference`.

=========================  ====================================================================
``minilm``                 pretrained all-MiniLM-L6-v2 (post-LN BERT, 6 x 384, 12 heads)
``vit-digits``             a pre-LN ViT (4 x 64, 4 heads) trained on 8x8 digits by
                           ``pdelang reference train vit-digits`` (cached, see
                           :mod:`pdelang.lab.reference.vit_digits`); seed 0
``vit-digits@S``           the same trained with seed ``S`` (a non-negative integer;
                           ``pdelang reference train vit-digits --seed S``);
                           ``vit-digits@0`` is ``vit-digits``
``hf:PATH``                a local Hugging Face dir with a BertModel, ViTModel, GPT2Model or a
                           Llama-architecture model (LlamaModel / LlamaForCausalLM)
``hf-config:bert``         a small random BERT (64 channels, 4 heads, 3 layers, seed 0)
``hf-config:vit``          a small random ViT on 8x8 digits (2x2 patches: 4x4 grid + CLS)
``hf-config:gpt2``         a small random GPT-2 (64 channels, 4 heads, 3 layers, seed 0)
``hf-config:llama``        a small random Llama (64 channels, 4 query / 2 key-value heads,
                           RoPE θ = 500000, SwiGLU, RMSNorm, 3 layers, seed 0)
``torch`` / ``torch:post``  ``nn.TransformerEncoder``, post-LN (``torch:pre``: pre-LN + final norm);
                           append ``:relu`` for a ReLU MLP (``torch:pre:relu``)
=========================  ====================================================================

Nothing is ever downloaded: ``HF_HUB_OFFLINE=1`` is set before any model is loaded.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from pdelang.lab.reference.base import Reference

#: The fixed names :func:`load_reference` knows (``hf:PATH`` comes on top).
REFERENCE_NAMES: tuple[str, ...] = (
    "minilm",
    "vit-digits",
    "hf-config:bert",
    "hf-config:vit",
    "hf-config:gpt2",
    "hf-config:llama",
    "torch",
    "torch:pre",
    "torch:post",
    "torch:relu",
    "torch:pre:relu",
    "torch:post:relu",
)

_ALIASES = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "vit_digits": "vit-digits",
    "vitdigits": "vit-digits",
    "torch:gelu": "torch",
    "torch:pre:gelu": "torch:pre",
    "torch:post:gelu": "torch:post",
}


def _unknown(name: str) -> ValueError:
    candidates = [*REFERENCE_NAMES, "vit-digits@SEED", "hf:PATH"]
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(
        f"unknown reference {name!r}{hint} Known references: {', '.join(candidates)}"
    )


def load_hf_dir(path: str | Path, name: str | None = None) -> Reference:
    """A local Hugging Face directory, dispatched on ``config.json``'s ``model_type``."""
    directory = Path(path).expanduser()
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"hf:{path}: no Hugging Face model directory (missing {config_file})")
    model_type = json.loads(config_file.read_text()).get("model_type")
    label = name or f"hf:{path}"
    if model_type == "bert":
        # lazy: cycle (lab.reference.bert → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.bert import load_bert_dir

        return load_bert_dir(directory, name=label)
    if model_type == "vit":
        # lazy: cycle (lab.reference.vit → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.vit import load_vit_dir

        return load_vit_dir(directory, name=label)
    if model_type == "gpt2":
        # lazy: cycle (lab.reference.gpt2 → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.gpt2 import load_gpt2_dir

        return load_gpt2_dir(directory, name=label)
    if model_type == "llama":
        # lazy: cycle (lab.reference.llama → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.llama import load_llama_dir

        return load_llama_dir(directory, name=label)
    raise ValueError(
        f"hf:{path}: model_type {model_type!r} is not supported "
        f"(supported: bert, vit, gpt2, llama)"
    )


def load_reference(name: str) -> Reference:
    """The reference a string names (see the module docstring); ``ValueError`` if unknown,
    or for a ``vit-digits@…`` whose seed is not a non-negative integer."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("empty reference name")
    text = name.strip()
    if text.lower().startswith("hf:"):
        path = text[3:]
        if not path:
            raise ValueError("hf: needs a directory, e.g. hf:./my-bert")
        return load_hf_dir(path)
    key = _ALIASES.get(text.lower(), text.lower())
    base, at, seed_text = key.partition("@")
    if at and _ALIASES.get(base, base) == "vit-digits":
        # lazy: cycle (lab.reference.vit_digits → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.vit_digits import load_vit_digits, seed_from_suffix

        return load_vit_digits(seed=seed_from_suffix(seed_text, text))
    if key == "minilm":
        # lazy: cycle (lab.reference.bert → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.bert import load_minilm

        return load_minilm()
    if key == "vit-digits":
        # lazy: cycle (lab.reference.vit_digits → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.vit_digits import load_vit_digits

        return load_vit_digits()
    if key == "hf-config:bert":
        # lazy: cycle (lab.reference.bert → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.bert import bert_from_config

        return bert_from_config()
    if key == "hf-config:vit":
        # lazy: cycle (lab.reference.vit → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.vit import vit_from_config

        return vit_from_config()
    if key == "hf-config:gpt2":
        # lazy: cycle (lab.reference.gpt2 → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.gpt2 import gpt2_from_config

        return gpt2_from_config()
    if key == "hf-config:llama":
        # lazy: cycle (lab.reference.llama → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.llama import llama_from_config

        return llama_from_config()
    if key in REFERENCE_NAMES and key.startswith("torch"):
        # lazy: cycle (lab.reference.torch_encoder → lab.reference → lab.reference.registry)
        from pdelang.lab.reference.torch_encoder import torch_reference

        parts = key.split(":")[1:]
        placement = next((part for part in parts if part in ("pre", "post")), "post")
        activation = next((part for part in parts if part in ("gelu", "relu")), "gelu")
        reference = torch_reference(placement, activation)
        reference.name = key
        return reference
    raise _unknown(text)
