"""A deterministic hashing embedder: for unit tests and the scripted model only.

Texts sharing words get similar vectors (a signed feature hash of lower-cased word unigrams
and bigrams), so that search order in tests is meaningful, with no model at all.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Sequence

__all__ = ("HashingEmbedder", "hash_embed")

_WORD = re.compile(r"[\w']+")


def hash_embed(text: str, dimension: int = 384) -> list[float]:
    """The unit vector of ``text``; the zero text maps to a fixed unit vector."""
    vector = [0.0] * dimension
    words = _WORD.findall(text.lower())
    features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimension
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


class HashingEmbedder:
    """:class:`storage.embeddings.Embedder` by feature hashing; not a semantic model."""

    def __init__(self, dimension: int = 384) -> None:
        self._dimension = dimension

    @property
    def handle(self) -> str:
        return f"hashing/{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [hash_embed(text, self._dimension) for text in texts]

    async def aclose(self) -> None:
        return None
