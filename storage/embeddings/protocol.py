"""The embedder protocol shared by the local model, remote endpoints and the test embedder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ("Embedder",)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def handle(self) -> str:
        """The handle that selects this embedder, e.g. ``local/all-MiniLM-L6-v2``."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. CPU-bound work runs off the event loop."""
        ...

    async def aclose(self) -> None:
        """Release sessions, clients and threads."""
        ...
