"""Reference Transformers that a PDE model is compared against.

:func:`load_reference` turns a string (``minilm``, ``vit-digits``, ``hf:PATH``,
``hf-config:bert|vit|gpt2``, ``torch``, ``torch:pre``, ``torch:post``) into a
:class:`Reference`, which exposes a neutral :class:`ReferenceArchitecture`, per-layer
:class:`LayerWeights` in ``nn.Linear`` convention and a :meth:`Reference.run` returning a
:class:`ReferenceRun` (embeddings = the PDE's ``u(0)``, states at every layer boundary,
attention maps).

Importing this package is cheap; ``transformers`` is imported only when a Hugging Face
reference is loaded.
"""

from pdelang.lab.reference.base import (
    LayerWeights,
    Reference,
    ReferenceArchitecture,
    ReferenceRun,
    WordHashTokenizer,
)
from pdelang.lab.reference.registry import REFERENCE_NAMES, load_hf_dir, load_reference

__all__ = [
    "REFERENCE_NAMES",
    "LayerWeights",
    "Reference",
    "ReferenceArchitecture",
    "ReferenceRun",
    "WordHashTokenizer",
    "load_hf_dir",
    "load_reference",
]
