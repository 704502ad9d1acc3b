"""Errors of the embedders, in a module of their own so that naming one (the API's error
handlers do) loads no embedder: no ONNX Runtime, no openai SDK."""

from __future__ import annotations

from storage.errors import RuntimeFailure, UserError

__all__ = (
    "EmbeddingDimensionUnknown",
    "EmbeddingEndpointError",
    "EmbeddingModelMissing",
    "EmbeddingNotConfigured",
    "UnknownEmbeddingHandle",
)


class UnknownEmbeddingHandle(UserError, ValueError):
    """The embedding handle names no embedder; the message lists the valid forms."""


class EmbeddingNotConfigured(UserError, ValueError):
    """Neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` is set for an ``openai/`` handle."""


class EmbeddingModelMissing(UserError, RuntimeError):
    """The MiniLM weights are not installed; the message says how to install them."""


class EmbeddingEndpointError(RuntimeFailure, RuntimeError):
    """The endpoint failed or answered something that is not one vector per text."""


class EmbeddingDimensionUnknown(RuntimeFailure, RuntimeError):
    """``dimension`` was read before the model's vector length was known."""
