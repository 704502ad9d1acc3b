"""Embedders behind one protocol: local MiniLM (ONNX), OpenAI-compatible endpoints, hashing."""

from storage.embeddings.hashing import HashingEmbedder, hash_embed
from storage.embeddings.protocol import Embedder

__all__ = ("Embedder", "HashingEmbedder", "hash_embed")
