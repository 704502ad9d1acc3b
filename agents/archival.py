"""Archival memory of agents: the passage store plus the embedder each agent names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Unpack

from agents.tools.base import Archival, NewPassages, ScoredText, SearchOptions
from storage.embeddings import Embedder
from storage.passages import PassageStore
from storage.records import Passage, new_id, now

__all__ = ("PassageArchival",)


class PassageArchival(Archival):
    """:class:`agents.tools.base.Archival` over a :class:`storage.passages.PassageStore`.

    Embedders are created on first use per handle and shared by every agent using it, so a
    remote endpoint's vector size is learnt once per handle (and endpoint: the process has
    one). ``on_dimension(handle, size)`` hears each handle's size once, after its first
    embedding, for views in other processes.
    """

    def __init__(
        self,
        store: PassageStore,
        embedder_for: Callable[[str], Embedder],
        *,
        clock: Callable[[], float] = now,
        on_dimension: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self._embedder_for = embedder_for
        self._embedders: dict[str, Embedder] = {}
        self._on_dimension = on_dimension
        self._reported: set[str] = set()
        self._clock = clock
        # count and tags are shown every step; cached per owner, dropped on every write.
        # Exact while this process owns the store (the embedded engine opens in one process).
        self._stats: dict[str, tuple[int, list[str]]] = {}

    def embedder(self, handle: str) -> Embedder:
        embedder = self._embedders.get(handle)
        if embedder is None:
            embedder = self._embedders[handle] = self._embedder_for(handle)
        return embedder

    async def _embed(self, handle: str, texts: list[str]) -> list[list[float]]:
        vectors = await self.embedder(handle).embed(texts)
        if vectors and handle not in self._reported and self._on_dimension is not None:
            await self._on_dimension(handle, len(vectors[0]))
            self._reported.add(handle)
        return vectors

    async def add_passages(
        self, owner_id: str, embedding: str, batch: NewPassages
    ) -> list[Passage]:
        vectors = await self._embed(embedding, batch.texts)
        passages = [
            Passage(
                id=batch.ids[index] if batch.ids else new_id("passage"),
                owner_id=owner_id,
                text=text,
                tags=batch.tags,
                source_id=batch.source_id,
                file_id=batch.file_id,
                created_at=self._clock(),
            )
            for index, text in enumerate(batch.texts)
        ]
        await self.store.insert(passages, vectors)
        self._stats.pop(owner_id, None)
        return passages

    async def delete(self, owner_id: str, passage_ids: list[str]) -> int:
        self._stats.pop(owner_id, None)
        return await self.store.delete(owner_id, passage_ids)

    async def delete_owner(self, owner_id: str) -> int:
        self._stats.pop(owner_id, None)
        return await self.store.delete_owner(owner_id)

    async def _owner_stats(self, owner_id: str) -> tuple[int, list[str]]:
        cached = self._stats.get(owner_id)
        if cached is None:
            count = await self.store.count(owner_id)
            tags = await self.store.tags(owner_id) if count else []
            cached = self._stats[owner_id] = (count, tags)
        return cached

    async def search(
        self, owner_id: str, embedding: str, query: str, **options: Unpack[SearchOptions]
    ) -> list[ScoredText]:
        [vector] = await self._embed(embedding, [query])
        # The owner's own passages and its archives' are ranked together by one query.
        found = await self.store.search(
            [owner_id, *options.get("archive_ids", ())],
            vector,
            top_k=options["top_k"],
            tags=options["tags"],
            match_all_tags=options["match_all_tags"],
            start=options["start"],
            end=options["end"],
            offset=options["offset"],
        )
        return [ScoredText(passage=hit.passage, score=hit.score) for hit in found]

    async def count(self, owner_id: str) -> int:
        return (await self._owner_stats(owner_id))[0]

    async def tags(self, owner_id: str) -> list[str]:
        return list((await self._owner_stats(owner_id))[1])

    async def aclose(self) -> None:
        for embedder in self._embedders.values():
            await embedder.aclose()
        self._embedders.clear()
        await self.store.aclose()
