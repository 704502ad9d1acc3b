"""Embedders behind one protocol: local MiniLM (ONNX), OpenAI-compatible endpoints, hashing.

Pick one by handle with :func:`embedder_from_handle` (or :func:`open_embedder`, which also
makes ``dimension`` readable). Errors (in :mod:`storage.embeddings.errors`, which loads no
embedder), under memgrid's root (:mod:`storage.errors`)::

    UserError
    ├── UnknownEmbeddingHandle       (ValueError) the handle names no embedder
    ├── EmbeddingNotConfigured       (ValueError) an openai/ handle without OPENAI_API_KEY
    │                                or OPENAI_BASE_URL
    └── EmbeddingModelMissing        (RuntimeError) the MiniLM wheel is not installed
    RuntimeFailure
    ├── EmbeddingEndpointError       (RuntimeError) a remote endpoint failed or answered
    │                                nonsense
    └── EmbeddingDimensionUnknown    (RuntimeError) a remote model's length was read before
                                     probe()

A remote model's vector length is learnt from its endpoint, never assumed from its name.
"""

import importlib
from typing import Any

from storage.embeddings.errors import (
    EmbeddingDimensionUnknown,
    EmbeddingEndpointError,
    EmbeddingModelMissing,
    EmbeddingNotConfigured,
    UnknownEmbeddingHandle,
)
from storage.embeddings.factory import MINILM_HANDLE, embedder_from_handle, open_embedder
from storage.embeddings.hashing import HashingEmbedder, hash_embed
from storage.embeddings.protocol import Embedder
from storage.embeddings.sizes import learned_dimension, load_sizes, record_size

# The ONNX runtime and the openai SDK load on first use of these names, not at import.
_LAZY = {
    "MINILM_DIMENSION": "storage.embeddings.minilm",
    "MiniLMEmbedder": "storage.embeddings.minilm",
    "find_model_dir": "storage.embeddings.minilm",
    "prepare_model": "storage.embeddings.minilm",
    "OpenAIEmbedder": "storage.embeddings.remote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'storage.embeddings' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = (
    "MINILM_DIMENSION",
    "MINILM_HANDLE",
    "Embedder",
    "EmbeddingDimensionUnknown",
    "EmbeddingEndpointError",
    "EmbeddingModelMissing",
    "EmbeddingNotConfigured",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "UnknownEmbeddingHandle",
    "embedder_from_handle",
    "find_model_dir",
    "hash_embed",
    "learned_dimension",
    "load_sizes",
    "open_embedder",
    "prepare_model",
    "record_size",
)
