"""Archival memory of agents: the passage store plus the embedder each agent names."""

from __future__ import annotations

from collections.abc import Callable

from agents.tools.base import ScoredText
from storage.embeddings import Embedder
from storage.passages import PassageStore
from storage.records import Passage, new_id, now

__all__ = ("PassageArchival",)


class PassageArchival:
    """:class:`agents.tools.base.Archival` over a :class:`storage.passages.PassageStore`.

    Embedders are created on first use per handle and shared by every agent using it.
    """

    def __init__(
        self,
        store: PassageStore,
        embedder_for: Callable[[str], Embedder],
        *,
        clock: Callable[[], float] = now,
    ) -> None:
        self.store = store
        self._embedder_for = embedder_for
        self._embedders: dict[str, Embedder] = {}
        self._clock = clock
        # count and tags are shown every step; cached per owner, dropped on every write.
        # Exact while this process owns the store (the embedded engine opens in one process).
        self._stats: dict[str, tuple[int, list[str]]] = {}

    def embedder(self, handle: str) -> Embedder:
        embedder = self._embedders.get(handle)
        if embedder is None:
            embedder = self._embedders[handle] = self._embedder_for(handle)
        return embedder

    async def insert(
        self,
        owner_id: str,
        embedding: str,
        text: str,
        tags: list[str],
        *,
        passage_id: str | None = None,
    ) -> Passage:
        ids = [passage_id] if passage_id else None
        return (await self.insert_many(owner_id, embedding, [text], tags, ids=ids))[0]

    async def insert_many(
        self,
        owner_id: str,
        embedding: str,
        texts: list[str],
        tags: list[str],
        *,
        source_id: str | None = None,
        file_id: str | None = None,
        ids: list[str] | None = None,
    ) -> list[Passage]:
        vectors = await self.embedder(embedding).embed(texts)
        passages = [
            Passage(
                id=ids[index] if ids else new_id("passage"),
                owner_id=owner_id,
                text=text,
                tags=tags,
                source_id=source_id,
                file_id=file_id,
                created_at=self._clock(),
            )
            for index, text in enumerate(texts)
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
        self,
        owner_id: str,
        embedding: str,
        query: str,
        *,
        top_k: int,
        offset: int,
        tags: list[str] | None,
        match_all_tags: bool,
        start: float | None,
        end: float | None,
    ) -> list[ScoredText]:
        [vector] = await self.embedder(embedding).embed([query])
        found = await self.store.search(
            owner_id,
            vector,
            top_k=top_k,
            tags=tags,
            match_all_tags=match_all_tags,
            start=start,
            end=end,
            offset=offset,
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
