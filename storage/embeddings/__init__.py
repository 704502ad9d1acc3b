"""Embedders behind one protocol: local MiniLM (ONNX), OpenAI-compatible endpoints, hashing.

Pick one by handle with :func:`embedder_from_handle` (or :func:`open_embedder`, which also
makes ``dimension`` readable). Errors::

    ValueError
    └── UnknownEmbeddingHandle       the handle names no embedder
    RuntimeError
    ├── EmbeddingModelMissing        the MiniLM wheel is not installed (message: how to)
    ├── EmbeddingEndpointError       a remote endpoint failed or answered nonsense
    └── EmbeddingDimensionUnknown    a remote model's length was read before probe()
"""

from storage.embeddings.factory import UnknownEmbeddingHandle, embedder_from_handle, open_embedder
from storage.embeddings.hashing import HashingEmbedder, hash_embed
from storage.embeddings.minilm import (
    MINILM_DIMENSION,
    MINILM_HANDLE,
    EmbeddingModelMissing,
    MiniLMEmbedder,
    find_model_dir,
    prepare_model,
)
from storage.embeddings.protocol import Embedder
from storage.embeddings.remote import (
    EmbeddingDimensionUnknown,
    EmbeddingEndpointError,
    OpenAIEmbedder,
)

__all__ = (
    "MINILM_DIMENSION",
    "MINILM_HANDLE",
    "Embedder",
    "EmbeddingDimensionUnknown",
    "EmbeddingEndpointError",
    "EmbeddingModelMissing",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "UnknownEmbeddingHandle",
    "embedder_from_handle",
    "find_model_dir",
    "hash_embed",
    "open_embedder",
    "prepare_model",
)
